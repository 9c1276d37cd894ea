//! Finding the subject's mail and contacts, and exporting them (Art. 15).

use std::collections::HashSet;

use chrono::{DateTime, Days, NaiveDate, Utc};
use dsr_connector::{ConnectorError, Email, FileMeta, Identities, Record, RecordSink};
use futures::{StreamExt, TryStreamExt};
use serde_json::{Value, json};

use crate::Microsoft365;
use crate::client::{kql_value, needs_permission, odata_literal};

/// What a search returns per message: enough to check the addresses and find the folder.
const SEARCH_FIELDS: &str =
    "id,from,sender,toRecipients,ccRecipients,bccRecipients,hasAttachments,parentFolderId,receivedDateTime";

/// A mailbox to search: the key used in URLs (id or address) and its address.
#[derive(Debug, Clone)]
pub struct Mailbox {
    pub key: String,
    pub address: String,
}

/// A message found for the subject, with the mailbox it is in.
#[derive(Debug, Clone)]
pub struct FoundMessage {
    pub mailbox: Mailbox,
    pub json: Value,
}

impl FoundMessage {
    pub fn id(&self) -> &str {
        self.json["id"].as_str().unwrap_or_default()
    }
}

/// A contact found for the subject.
#[derive(Debug, Clone)]
pub struct FoundContact {
    pub mailbox: Mailbox,
    pub json: Value,
}

impl FoundContact {
    pub fn id(&self) -> &str {
        self.json["id"].as_str().unwrap_or_default()
    }
}

/// Every address on a message: sender, from and every recipient.
fn addresses(message: &Value) -> impl Iterator<Item = &str> {
    ["from", "sender"]
        .into_iter()
        .map(move |k| &message[k])
        .chain(
            ["toRecipients", "ccRecipients", "bccRecipients"]
                .into_iter()
                .flat_map(move |k| message[k].as_array().into_iter().flatten()),
        )
        .filter_map(|r| r["emailAddress"]["address"].as_str())
}

/// `participants:` also matches display names and parts of addresses: keep only messages
/// on which one of the subject's addresses appears exactly.
pub fn names_subject(message: &Value, emails: &[Email]) -> bool {
    addresses(message).any(|a| emails.iter().any(|e| e.matches(a)))
}

/// Whether the subject wrote the message (what they provided, for portability).
pub fn sent_by_subject(message: &Value, emails: &[Email]) -> bool {
    message["from"]["emailAddress"]["address"]
        .as_str()
        .is_some_and(|a| emails.iter().any(|e| e.matches(a)))
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
                })
                .collect());
        }
        let top = self.graph.page_size.to_string();
        let url = self
            .graph
            .url(&["users"], &[("$select", "id,mail,userPrincipalName"), ("$top", &top)]);
        let users: Vec<Value> = self
            .graph
            .all("users", url)
            .await
            .map_err(|e| needs_permission(e, "User.Read.All", "list the tenant's users"))?;
        Ok(users
            .iter()
            .filter_map(|u| {
                let address = u["mail"]
                    .as_str()
                    .or(u["userPrincipalName"].as_str())
                    .unwrap_or_default();
                u["id"].as_str().map(|id| Mailbox {
                    key: id.to_string(),
                    address: address.to_string(),
                })
            })
            .collect())
    }

    /// One `$search`; returns the messages and whether the result cap was reached.
    async fn search_once(
        &self,
        mailbox: &Mailbox,
        email: &Email,
        range: Option<(NaiveDate, NaiveDate)>,
    ) -> Result<(Vec<Value>, bool), ConnectorError> {
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
        let messages: Vec<Value> = self
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
    ) -> Result<Vec<Value>, ConnectorError> {
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

    /// The subject's messages in `mailbox`, each once however many of their addresses it names.
    pub async fn find_messages(
        &self,
        mailbox: &Mailbox,
        subject: &Identities,
        notes: &mut Vec<String>,
    ) -> Result<Vec<FoundMessage>, ConnectorError> {
        let mut seen = HashSet::new();
        let mut found = Vec::new();
        for email in &subject.emails {
            for message in self.search_messages(mailbox, email, notes).await? {
                let id = message["id"].as_str().unwrap_or_default().to_string();
                if names_subject(&message, &subject.emails) && seen.insert(id) {
                    found.push(FoundMessage {
                        mailbox: mailbox.clone(),
                        json: message,
                    });
                }
            }
        }
        Ok(found)
    }

    /// Contacts in `mailbox` with one of the subject's addresses.
    pub async fn find_contacts(
        &self,
        mailbox: &Mailbox,
        subject: &Identities,
    ) -> Result<Vec<FoundContact>, ConnectorError> {
        let mut seen = HashSet::new();
        let mut found = Vec::new();
        let top = self.graph.page_size.to_string();
        for email in &subject.emails {
            let filter = format!("emailAddresses/any(a:a/address eq {})", odata_literal(email.as_str()));
            let url = self.graph.url(
                &["users", &mailbox.key, "contacts"],
                &[("$filter", &filter), ("$top", &top)],
            );
            let contacts: Vec<Value> = self
                .graph
                .all(&mailbox.key, url)
                .await
                .map_err(|e| needs_permission(e, "Contacts.ReadWrite", "read contacts"))?;
            for contact in contacts {
                let id = contact["id"].as_str().unwrap_or_default().to_string();
                if seen.insert(id) {
                    found.push(FoundContact {
                        mailbox: mailbox.clone(),
                        json: contact,
                    });
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
        let id = message.id();
        let url = self.graph.url(
            &["users", &mailbox.key, "messages", id, "attachments"],
            &[("$select", "id,name,contentType,size,isInline")],
        );
        let listed: Vec<Value> = self.graph.all(&mailbox.key, url).await?;
        let mut described = Vec::new();
        for attachment in listed {
            let kind = attachment["@odata.type"].as_str().unwrap_or_default();
            let name = attachment["name"].as_str().unwrap_or("attachment").to_string();
            let media_type = attachment["contentType"]
                .as_str()
                .unwrap_or("application/octet-stream")
                .to_string();
            let Some(attachment_id) = attachment["id"].as_str() else {
                continue;
            };
            if kind != "#microsoft.graph.fileAttachment" {
                // An attached Outlook item or a link to a cloud file: its metadata is what
                // this mailbox holds.
                described.push(json!({"name": name, "type": kind, "note": "not a file: listed, not exported"}));
                continue;
            }
            let value_url = self.graph.url(
                &[
                    "users",
                    &mailbox.key,
                    "messages",
                    id,
                    "attachments",
                    attachment_id,
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
                "name": name, "contentType": media_type, "size": attachment["size"],
                "isInline": attachment["isInline"], "file": stored.path, "bytes": stored.bytes, "sha256": stored.sha256,
            }));
        }
        Ok(described)
    }

    /// Exports everything found for the subject into the sink; returns how many records.
    pub async fn export(
        &self,
        subject: &Identities,
        sink: &mut dyn RecordSink,
        notes: &mut Vec<String>,
    ) -> Result<u64, ConnectorError> {
        let mut count = 0;
        for mailbox in self.mailboxes().await? {
            for found in self.find_messages(&mailbox, subject, notes).await? {
                // The search returned headers only; each message is read whole, exported,
                // and let go, so a heavy correspondent's mail is never held at once.
                let url = self.graph.url(&["users", &mailbox.key, "messages", found.id()], &[]);
                let full: Value = match self.graph.get(&mailbox.key, url).await {
                    Ok(m) => m,
                    Err(e) if e.is_not_found() => continue,
                    Err(e) => return Err(needs_permission(e, "Mail.ReadWrite", "read mail")),
                };
                let message = FoundMessage {
                    mailbox: found.mailbox.clone(),
                    json: full,
                };
                let attachments = if message.json["hasAttachments"].as_bool() == Some(true) {
                    self.export_attachments(&message, sink).await?
                } else {
                    Vec::new()
                };
                let mut data = message.json.clone();
                data["mailbox"] = json!(mailbox.address);
                data["attachments"] = json!(attachments);
                sink.accept(Record {
                    category: "mail".into(),
                    id: Some(message.id().to_string()),
                    provided_by_subject: sent_by_subject(&message.json, &subject.emails),
                    data,
                })
                .await?;
                count += 1;
            }
            for contact in self.find_contacts(&mailbox, subject).await? {
                let mut data = contact.json.clone();
                data["mailbox"] = json!(mailbox.address);
                sink.accept(Record {
                    category: "contacts".into(),
                    id: Some(contact.id().to_string()),
                    provided_by_subject: false,
                    data,
                })
                .await?;
                count += 1;
            }
        }
        Ok(count)
    }
}

/// For tests and evidence: a point in time as Graph writes it.
pub fn graph_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(from: &str, to: &[&str]) -> Value {
        json!({
            "from": {"emailAddress": {"name": "X", "address": from}},
            "toRecipients": to.iter().map(|a| json!({"emailAddress": {"name": "Kari Nordmann", "address": a}})).collect::<Vec<_>>(),
        })
    }

    #[test]
    fn only_exact_addresses_count_as_the_subject() {
        let kari = vec![Email::parse("kari.nordmann@example.no").unwrap()];
        assert!(names_subject(
            &message("ola@racom.no", &["KARI.NORDMANN@example.no"]),
            &kari
        ));
        assert!(!names_subject(
            &message("ola@racom.no", &["annkari.nordmann@example.no"]),
            &kari
        ));
        assert!(!names_subject(&message("kari.nordmann@example.no.evil", &[]), &kari));
        assert!(sent_by_subject(&message("kari.nordmann@example.no", &[]), &kari));
        assert!(!sent_by_subject(
            &message("ola@racom.no", &["kari.nordmann@example.no"]),
            &kari
        ));
    }
}
