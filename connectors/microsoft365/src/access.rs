//! Finding the subject's mail and contacts, and exporting them (Art. 15).

use std::collections::HashSet;

use chrono::{DateTime, Days, NaiveDate, Utc};
use dsr_connector::{ConnectorError, Email, FileMeta, Identities, IdentityKind, MatchClaim, Record, RecordSink};
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use serde_json::{Value, json};

use crate::Microsoft365;
use crate::client::{kql_value, needs_permission, odata_literal};
use crate::reach::Reach;
use crate::wire::{Attachment, Contact, ContactFolder, Message, User};

/// What a search returns per message: enough to check the addresses and find the folder.
/// `replyTo` counts who else a message concerns (`erase`), never whose it is.
const SEARCH_FIELDS: &str =
    "id,from,sender,toRecipients,ccRecipients,bccRecipients,replyTo,hasAttachments,parentFolderId,receivedDateTime";

/// A mailbox to search: the key used in URLs (id or address) and its address.
#[derive(Debug, Clone)]
pub struct Mailbox {
    pub key: String,
    pub address: String,
    /// The owner's other address where Graph lists one (the userPrincipalName).
    pub aliases: Vec<String>,
}

impl Mailbox {
    /// Whether `address` is the mailbox owner's: the company user whose mailbox it is is no
    /// other participant of the mail in it.
    pub fn is_owner(&self, address: &str) -> bool {
        let address = address.trim();
        std::iter::once(&self.address)
            .chain(&self.aliases)
            .any(|own| !own.is_empty() && own.eq_ignore_ascii_case(address))
    }
}

/// A message found for the subject, with the mailbox it is in.
#[derive(Debug, Clone)]
pub struct FoundMessage {
    pub mailbox: Mailbox,
    pub message: Message,
}

/// A contact found for the subject, and the contact folder it is in (`None`: the default
/// Contacts folder).
#[derive(Debug, Clone)]
pub struct FoundContact {
    pub mailbox: Mailbox,
    pub folder: Option<String>,
    pub contact: Contact,
}

/// A contact's address under its folder (`None`: the default Contacts folder), as Graph
/// documents it for each.
pub fn contact_segments<'a>(mailbox: &'a str, folder: Option<&'a str>, id: &'a str) -> Vec<&'a str> {
    match folder {
        None => vec!["users", mailbox, "contacts", id],
        Some(folder) => vec!["users", mailbox, "contactFolders", folder, "contacts", id],
    }
}

/// Graph cannot read an online archive mailbox: said wherever dsr reports on Microsoft 365.
pub const NO_ARCHIVE: &str = "Microsoft Graph cannot read online archive mailboxes (In-Place Archive): mail moved there was \
     not searched. The company searches archives with Microsoft Purview eDiscovery.";

/// `/users` pages at most 999 users (https://learn.microsoft.com/en-us/graph/api/user-list).
const USERS_TOP_MAX: u32 = 999;

/// Contact folders nested deeper than this are not followed (a guard against a loop).
const MAX_FOLDER_DEPTH: usize = 16;

/// A message as exported: Graph's whole message, the mailbox it is in and its attachments.
#[derive(Serialize)]
struct MailRecord<'a> {
    #[serde(flatten)]
    message: &'a Message,
    mailbox: &'a str,
    attachments: Vec<Value>,
}

/// A contact as exported: Graph's whole contact and the mailbox it is in.
#[derive(Serialize)]
struct ContactRecord<'a> {
    #[serde(flatten)]
    contact: &'a Contact,
    mailbox: &'a str,
}

/// `participants:` also matches display names and parts of addresses: a message is the
/// subject's where one of its address fields is one of her addresses (the core's rule).
pub fn message_claims(message: &Message, subject: &Identities) -> Vec<MatchClaim> {
    message
        .address_pointers()
        .into_iter()
        .filter(|(_, address)| subject.owns(IdentityKind::Email, address))
        .map(|(at, _)| MatchClaim::email(at))
        .collect()
}

/// A contact is the subject's where one of its addresses is hers (`$filter` may be ignored).
pub fn contact_claims(contact: &Contact, subject: &Identities) -> Vec<MatchClaim> {
    contact
        .email_addresses
        .iter()
        .enumerate()
        .filter(|(_, e)| {
            e.address
                .as_deref()
                .is_some_and(|a| subject.owns(IdentityKind::Email, a))
        })
        .map(|(i, _)| MatchClaim::email(format!("/emailAddresses/{i}/address")))
        .collect()
}

/// Whether the subject wrote the message (what they provided, for portability).
pub fn sent_by_subject(message: &Message, subject: &Identities) -> bool {
    message
        .from
        .as_ref()
        .and_then(|from| from.email_address.address.as_deref())
        .is_some_and(|a| subject.owns(IdentityKind::Email, a))
}

/// A record for the bundle, under Graph's property names.
fn record_data(record: &impl Serialize) -> Result<Value, ConnectorError> {
    serde_json::to_value(record).map_err(|e| ConnectorError::Permanent {
        processor: crate::client::PROCESSOR,
        code: "export".into(),
        message: format!("could not write a Graph item as JSON: {e}"),
    })
}

fn day(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

impl Microsoft365 {
    /// The mailboxes configured, or every user in the tenant for `["*"]`.
    pub async fn mailboxes(&self) -> Result<Vec<Mailbox>, ConnectorError> {
        if !self.config.all_mailboxes() {
            return Ok(self
                .config
                .mailboxes
                .iter()
                .map(|m| Mailbox {
                    key: m.clone(),
                    address: m.clone(),
                    aliases: Vec::new(),
                })
                .collect());
        }
        let top = self.graph.page_size.min(USERS_TOP_MAX).to_string();
        let url = self
            .graph
            .url(&["users"], &[("$select", "id,mail,userPrincipalName"), ("$top", &top)]);
        let users: Vec<User> = self
            .graph
            .all("users", url)
            .await
            .map_err(|e| needs_permission(e, "User.Read.All", "list the tenant's users"))?;
        Ok(users
            .into_iter()
            .map(|u| Mailbox {
                aliases: u
                    .user_principal_name
                    .iter()
                    .filter(|_| u.mail.is_some())
                    .cloned()
                    .collect(),
                address: u.mail.or(u.user_principal_name).unwrap_or_default(),
                key: u.id,
            })
            .collect())
    }

    /// One `$search`; returns the messages and whether the result cap was reached.
    async fn search_once(
        &self,
        mailbox: &Mailbox,
        email: &Email,
        range: Option<(NaiveDate, NaiveDate)>,
    ) -> Result<(Vec<Message>, bool), ConnectorError> {
        let mut kql = format!("participants:{}", kql_value(email.as_str()));
        if let Some((from, to)) = range {
            kql.push_str(&format!(" AND received>={} AND received<{}", day(from), day(to)));
        }
        let search = format!("\"{kql}\"");
        let top = self.graph.page_size.to_string();
        let url = self.graph.url(
            &["users", &mailbox.key, "messages"],
            &[("$search", &search), ("$top", &top), ("$select", SEARCH_FIELDS)],
        );
        let messages: Vec<Message> = self
            .graph
            .all(&mailbox.key, url)
            .await
            .map_err(|e| needs_permission(e, "Mail.ReadWrite", "read mail"))?;
        let capped = messages.len() >= self.config.search_cap;
        Ok((messages, capped))
    }

    /// Every message in `mailbox` on which `email` appears. A search that reaches Graph's
    /// result cap is split into date ranges until each is complete.
    async fn search_messages(
        &self,
        mailbox: &Mailbox,
        email: &Email,
        notes: &mut Vec<String>,
    ) -> Result<Vec<Message>, ConnectorError> {
        let (messages, capped) = self.search_once(mailbox, email, None).await?;
        if !capped {
            return Ok(messages);
        }
        // Mail older than Exchange itself is not expected; tomorrow covers clock skew.
        let start = NaiveDate::from_ymd_opt(1990, 1, 1).unwrap_or(NaiveDate::MIN);
        let end = Utc::now()
            .date_naive()
            .checked_add_days(Days::new(2))
            .unwrap_or(NaiveDate::MAX);
        let mut pending = vec![(start, end)];
        let mut out = Vec::new();
        while let Some((from, to)) = pending.pop() {
            let (found, capped) = self.search_once(mailbox, email, Some((from, to))).await?;
            let days = (to - from).num_days();
            if capped && days > 1 {
                let middle = from + chrono::Duration::days(days / 2);
                pending.push((middle, to));
                pending.push((from, middle));
            } else {
                if capped {
                    notes.push(format!(
                        "More than {} messages in {} on {} alone: Graph's search cannot return them all.",
                        self.config.search_cap,
                        mailbox.address,
                        day(from)
                    ));
                }
                out.extend(found);
            }
        }
        Ok(out)
    }

    /// Every message the searches return in `mailbox`, each once: the subject's (an address
    /// field is hers), and the rest, which the engine is shown and refuses.
    pub async fn search_results(
        &self,
        mailbox: &Mailbox,
        subject: &Identities,
        notes: &mut Vec<String>,
    ) -> Result<(Vec<FoundMessage>, Vec<Message>), ConnectorError> {
        let mut seen = HashSet::new();
        let (mut found, mut others) = (Vec::new(), Vec::new());
        for email in &subject.emails {
            for message in self.search_messages(mailbox, email, notes).await? {
                if !seen.insert(message.id.clone()) {
                    continue;
                }
                if message_claims(&message, subject).is_empty() {
                    others.push(message);
                } else {
                    found.push(FoundMessage {
                        mailbox: mailbox.clone(),
                        message,
                    });
                }
            }
        }
        Ok((found, others))
    }

    /// Every contact folder of `mailbox` below the default one, child folders included.
    /// `/users/{id}/contacts` covers the default folder only
    /// (https://learn.microsoft.com/en-us/graph/api/user-list-contactfolders,
    /// https://learn.microsoft.com/en-us/graph/api/contactfolder-list-childfolders).
    pub async fn contact_folders(&self, mailbox: &Mailbox) -> Result<Vec<String>, ConnectorError> {
        let top = self.graph.page_size.to_string();
        let url = self.graph.url(
            &["users", &mailbox.key, "contactFolders"],
            &[("$select", "id"), ("$top", &top)],
        );
        let mut pending: Vec<(String, usize)> = self
            .graph
            .all::<ContactFolder>(&mailbox.key, url)
            .await
            .map_err(|e| needs_permission(e, "Contacts.ReadWrite", "read contact folders"))?
            .into_iter()
            .map(|f| (f.id, 0))
            .collect();
        let mut folders = Vec::new();
        while let Some((folder, depth)) = pending.pop() {
            if folders.contains(&folder) {
                continue;
            }
            if depth < MAX_FOLDER_DEPTH {
                let url = self.graph.url(
                    &["users", &mailbox.key, "contactFolders", &folder, "childFolders"],
                    &[("$select", "id"), ("$top", &top)],
                );
                let children: Vec<ContactFolder> = self.graph.all(&mailbox.key, url).await?;
                pending.extend(children.into_iter().map(|c| (c.id, depth + 1)));
            }
            folders.push(folder);
        }
        Ok(folders)
    }

    /// Every contact the `$filter` queries return, in every folder, each once: the
    /// subject's and any the vendor returned that are not hers.
    pub async fn search_contacts(
        &self,
        mailbox: &Mailbox,
        subject: &Identities,
    ) -> Result<Vec<FoundContact>, ConnectorError> {
        let mut seen = HashSet::new();
        let mut found = Vec::new();
        if subject.emails.is_empty() {
            return Ok(found);
        }
        let top = self.graph.page_size.to_string();
        let mut places: Vec<Option<String>> = vec![None];
        places.extend(self.contact_folders(mailbox).await?.into_iter().map(Some));
        for folder in places {
            for email in &subject.emails {
                let filter = format!("emailAddresses/any(a:a/address eq {})", odata_literal(email.as_str()));
                let segments: Vec<&str> = match &folder {
                    None => vec!["users", &mailbox.key, "contacts"],
                    Some(f) => vec!["users", &mailbox.key, "contactFolders", f, "contacts"],
                };
                let url = self.graph.url(&segments, &[("$filter", &filter), ("$top", &top)]);
                let contacts: Vec<Contact> = self
                    .graph
                    .all(&mailbox.key, url)
                    .await
                    .map_err(|e| needs_permission(e, "Contacts.ReadWrite", "read contacts"))?;
                for contact in contacts {
                    if seen.insert(contact.id.clone()) {
                        found.push(FoundContact {
                            mailbox: mailbox.clone(),
                            folder: folder.clone(),
                            contact,
                        });
                    }
                }
            }
        }
        Ok(found)
    }

    /// Streams a message's file attachments into the sink; returns what the record says of them.
    async fn export_attachments(
        &self,
        message: &FoundMessage,
        sink: &mut dyn RecordSink,
    ) -> Result<Vec<Value>, ConnectorError> {
        let mailbox = &message.mailbox;
        let id = message.message.id.as_str();
        let url = self.graph.url(
            &["users", &mailbox.key, "messages", id, "attachments"],
            &[("$select", "id,name,contentType,size,isInline")],
        );
        let listed: Vec<Attachment> = self.graph.all(&mailbox.key, url).await?;
        let mut described = Vec::new();
        for attachment in listed {
            let name = attachment.name.clone().unwrap_or_else(|| "attachment".into());
            let media_type = attachment
                .content_type
                .clone()
                .unwrap_or_else(|| "application/octet-stream".into());
            if !attachment.is_file() {
                // An attached Outlook item or a link to a cloud file: its metadata is what
                // this mailbox holds.
                described.push(
                    json!({"name": name, "type": attachment.odata_type, "note": "not a file: listed, not exported"}),
                );
                continue;
            }
            let value_url = self.graph.url(
                &[
                    "users",
                    &mailbox.key,
                    "messages",
                    id,
                    "attachments",
                    &attachment.id,
                    "$value",
                ],
                &[],
            );
            let response = self
                .graph
                .client
                .send(&mailbox.key, |http| http.get(value_url.clone()))
                .await?;
            let body = response.bytes_stream().map_err(std::io::Error::other).boxed();
            let stored = sink
                .attach(
                    FileMeta {
                        folder: "attachments".into(),
                        name: name.clone(),
                        media_type: media_type.clone(),
                    },
                    body,
                )
                .await?;
            described.push(json!({
                "name": name, "contentType": media_type, "size": attachment.size,
                "isInline": attachment.is_inline, "file": stored.path, "bytes": stored.bytes, "sha256": stored.sha256,
            }));
        }
        Ok(described)
    }

    /// Exports everything found for the subject into the sink; returns how many records and
    /// which mailboxes were searched or skipped.
    pub async fn export(
        &self,
        subject: &Identities,
        sink: &mut dyn RecordSink,
        notes: &mut Vec<String>,
    ) -> Result<(u64, Reach), ConnectorError> {
        let mut count = 0;
        let mut reach = Reach::new(self.config.all_mailboxes());
        for mailbox in self.mailboxes().await? {
            let first = self.search_results(&mailbox, subject, notes).await;
            let Some((messages, others)) = reach.admit(&mailbox, first)? else {
                continue;
            };
            // What the search returned that is not hers goes to the engine as the search gave
            // it (headers only, never fetched whole): it is refused there and counted.
            for other in others {
                sink.accept(Record {
                    category: "mail".into(),
                    id: Some(other.id.clone()),
                    provided_by_subject: false,
                    data: json!(other),
                    claims: vec![],
                })
                .await?;
            }
            for found in messages {
                // The search returned headers only; each message is read whole, exported,
                // and let go, so a heavy correspondent's mail is never held at once.
                let url = self
                    .graph
                    .url(&["users", &mailbox.key, "messages", &found.message.id], &[]);
                let full: Message = match self.graph.get(&mailbox.key, url).await {
                    Ok(m) => m,
                    Err(e) if e.is_not_found() => continue,
                    Err(e) => return Err(needs_permission(e, "Mail.ReadWrite", "read mail")),
                };
                let found = FoundMessage {
                    mailbox: found.mailbox,
                    message: full,
                };
                let attachments = if found.message.has_attachments == Some(true) {
                    self.export_attachments(&found, sink).await?
                } else {
                    Vec::new()
                };
                let data = record_data(&MailRecord {
                    message: &found.message,
                    mailbox: &mailbox.address,
                    attachments,
                })?;
                sink.accept(Record {
                    category: "mail".into(),
                    id: Some(found.message.id.clone()),
                    provided_by_subject: sent_by_subject(&found.message, subject),
                    data,
                    claims: message_claims(&found.message, subject),
                })
                .await?;
                count += 1;
            }
            for found in self.search_contacts(&mailbox, subject).await? {
                let data = record_data(&ContactRecord {
                    contact: &found.contact,
                    mailbox: &mailbox.address,
                })?;
                sink.accept(Record {
                    category: "contacts".into(),
                    claims: contact_claims(&found.contact, subject),
                    id: Some(found.contact.id),
                    provided_by_subject: false,
                    data,
                })
                .await?;
                count += 1;
            }
        }
        reach.finish()?;
        Ok((count, reach))
    }
}

/// For tests and evidence: a point in time as Graph writes it.
pub fn graph_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{EmailAddress, Recipient};

    fn recipient(address: &str) -> Recipient {
        Recipient {
            email_address: EmailAddress {
                name: Some("Kari Nordmann".into()),
                address: Some(address.into()),
                ..Default::default()
            },
            rest: Default::default(),
        }
    }

    fn message(from: &str, to: &[&str]) -> Message {
        Message {
            id: "m".into(),
            from: Some(recipient(from)),
            sender: None,
            to_recipients: to.iter().map(|a| recipient(a)).collect(),
            cc_recipients: vec![],
            bcc_recipients: vec![],
            reply_to: None,
            received_date_time: None,
            has_attachments: None,
            parent_folder_id: "inbox".into(),
            rest: Default::default(),
        }
    }

    #[test]
    fn only_exact_addresses_count_as_the_subject() {
        let kari = Identities {
            emails: vec![Email::parse("kari.nordmann@example.no").unwrap()],
            ..Default::default()
        };
        assert_eq!(
            message_claims(
                &message("ola@racom.no", &["per@x.no", "KARI.NORDMANN@example.no"]),
                &kari
            ),
            [MatchClaim::email("/toRecipients/1/emailAddress/address")]
        );
        assert!(message_claims(&message("ola@racom.no", &["annkari.nordmann@example.no"]), &kari).is_empty());
        assert!(message_claims(&message("kari.nordmann@example.no.evil", &[]), &kari).is_empty());
        assert!(sent_by_subject(&message("kari.nordmann@example.no", &[]), &kari));
        assert!(!sent_by_subject(
            &message("ola@racom.no", &["kari.nordmann@example.no"]),
            &kari
        ));
    }

    #[test]
    fn an_exported_message_is_graphs_whole_message_and_the_mailbox() {
        let message = message("ola@racom.no", &["kari.nordmann@example.no"]);
        let data = record_data(&MailRecord {
            message: &message,
            mailbox: "post@racom.no",
            attachments: vec![],
        })
        .unwrap();
        let mut expected = serde_json::to_value(&message).unwrap();
        let fields = expected.as_object_mut().unwrap();
        fields.insert("mailbox".into(), json!("post@racom.no"));
        fields.insert("attachments".into(), json!([]));
        assert_eq!(data, expected);
    }
}
