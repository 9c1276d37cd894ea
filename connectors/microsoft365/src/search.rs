//! Finding the subject's mail and contacts: the mailboxes to search, a `$search` per address
//! in each (split by date where Graph's result cap is reached), and a `$filter` per address in
//! every contact folder. What a search returns that is not hers is kept apart, with no claim,
//! for the engine to refuse.
//! - https://learn.microsoft.com/en-us/graph/api/user-list (at most 999 users a page)
//! - https://learn.microsoft.com/en-us/graph/search-query-parameter (`$search` on messages, KQL)
//! - https://learn.microsoft.com/en-us/graph/api/user-list-contactfolders
//! - https://learn.microsoft.com/en-us/graph/api/contactfolder-list-childfolders

use std::collections::HashSet;

use chrono::{Days, NaiveDate, Utc};
use dsr_connector::http::odata_literal;
use dsr_connector::{ConnectorError, Email, Identities, IdentityKind, MatchClaim};

use crate::Microsoft365;
use crate::client::needs_permission;
use crate::wire::{Contact, ContactFolder, Message, User};

/// What a search returns per message: enough to check the addresses and find the folder.
/// `replyTo` counts who else a message concerns (`erase`), never whose it is.
const SEARCH_FIELDS: &str =
    "id,from,sender,toRecipients,ccRecipients,bccRecipients,replyTo,hasAttachments,parentFolderId,receivedDateTime";

/// Graph cannot read an online archive mailbox: said wherever dsr reports on Microsoft 365.
pub const NO_ARCHIVE: &str = "Microsoft Graph cannot read online archive mailboxes (In-Place Archive): mail moved there was \
     not searched. The company searches archives with Microsoft Purview eDiscovery.";

/// Mail and contacts are found by address: said when a request gives none.
pub const NO_EMAIL: &str = "Mail and contacts are found by e-mail address, and none was given.";

/// `/users` pages at most 999 users (https://learn.microsoft.com/en-us/graph/api/user-list).
const USERS_TOP_MAX: u32 = 999;

/// Mailboxes searched at once (for export, erasure). Graph's limits are four concurrent
/// requests per app per mailbox, and 130,000 requests per 10 seconds per app across the
/// tenant (https://learn.microsoft.com/en-us/graph/throttling-limits): four mailboxes keep at
/// most sixteen requests in flight, far below the tenant's rate, and each mailbox in flight
/// holds only its search's headers.
pub const MAILBOXES_IN_FLIGHT: usize = 4;

/// Contact folders nested deeper than this are not followed (a guard against a loop).
const MAX_FOLDER_DEPTH: usize = 16;

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

/// The contacts of a folder (`None`: the default Contacts folder), as Graph documents each.
pub fn contacts_segments<'a>(mailbox: &'a str, folder: Option<&'a str>) -> Vec<&'a str> {
    match folder {
        None => vec!["users", mailbox, "contacts"],
        Some(folder) => vec!["users", mailbox, "contactFolders", folder, "contacts"],
    }
}

/// The `$filter` for the contacts holding `email` among their addresses.
pub fn contact_filter(email: &str) -> String {
    format!("emailAddresses/any(a:a/address eq {})", odata_literal(email))
}

/// A KQL value inside the double-quoted `$search` parameter: `\` and `"` escaped.
pub fn kql_value(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
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
            .url(&["users"], &[("$select", "id,mail,userPrincipalName"), ("$top", &top)])?;
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
        )?;
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
        )?;
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
                )?;
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
                let filter = contact_filter(email.as_str());
                let segments = contacts_segments(&mailbox.key, folder.as_deref());
                let url = self.graph.url(&segments, &[("$filter", &filter), ("$top", &top)])?;
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
    }

    #[test]
    fn search_values_are_escaped_for_kql_and_odata() {
        assert_eq!(kql_value(r#""kari"@example.no"#), r#"\"kari\"@example.no"#);
        assert_eq!(kql_value(r"a\b"), r"a\\b");
        assert_eq!(
            contact_filter("o'hara@example.ie"),
            "emailAddresses/any(a:a/address eq 'o''hara@example.ie')"
        );
    }
}
