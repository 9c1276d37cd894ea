//! Exporting what was found for the subject (Art. 15): each message read whole with its
//! file attachments streamed byte for byte, each contact as Graph holds it, and the mailbox
//! each is in.
//! - https://learn.microsoft.com/en-us/graph/api/message-get
//! - https://learn.microsoft.com/en-us/graph/api/message-list-attachments
//! - https://learn.microsoft.com/en-us/graph/api/attachment-get (`$value`: the file's bytes)

use dsr_connector::{AccessSummary, ConnectorError, FileMeta, Identities, IdentityKind, Record, RecordSink};
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use serde_json::{Value, json};

use crate::Microsoft365;
use crate::client::{PROCESSOR, needs_permission};
use crate::reach::Reach;
use crate::search::{FoundMessage, NO_ARCHIVE, NO_EMAIL, contact_claims, message_claims};
use crate::wire::{Attachment, Contact, Message};

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

/// Whether the subject wrote the message (what they provided, for portability).
pub fn sent_by_subject(message: &Message, subject: &Identities) -> bool {
    message
        .from
        .as_ref()
        .and_then(|from| from.email_address.address.as_deref())
        .is_some_and(|a| subject.owns(IdentityKind::Email, a))
}

/// Message reads sent at once to one mailbox. Graph allows an app four concurrent requests
/// per mailbox (https://learn.microsoft.com/en-us/graph/throttling-limits#outlook-service-limits),
/// which the client's limiter enforces per mailbox: while a message's attachments are read,
/// one read has just been answered, so at most three reads wait beside the attachment call.
/// Never more than the limiter's four: a waiting read holds its permit, and a fifth would
/// leave the attachment call none.
const READS_IN_FLIGHT: usize = 4;

/// A record for the bundle, under Graph's property names.
fn record_data(record: &impl Serialize) -> Result<Value, ConnectorError> {
    serde_json::to_value(record).map_err(|e| {
        ConnectorError::permanent(
            PROCESSOR,
            "export",
            format!("could not write a Graph item as JSON: {e}"),
        )
    })
}

impl Microsoft365 {
    /// Everything found for the subject, into the sink, with what she is told and what
    /// only the operator is (the mailboxes that could not be searched, by name).
    pub async fn access_of(
        &self,
        subject: &Identities,
        sink: &mut dyn RecordSink,
    ) -> Result<AccessSummary, ConnectorError> {
        let mut notes = Vec::new();
        if subject.emails.is_empty() {
            notes.push(NO_EMAIL.into());
            return Ok(AccessSummary {
                found: 0,
                notes,
                ..Default::default()
            });
        }
        let (found, reach) = self.export(subject, sink, &mut notes).await?;
        notes.extend(reach.subject_note());
        notes.push(NO_ARCHIVE.into());
        Ok(AccessSummary {
            found,
            notes,
            operator_notes: reach.operator_notes(),
        })
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
        )?;
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
            )?;
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
    async fn export(
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
            // The search returned headers only; each message is read whole, exported, and
            // let go, so a heavy correspondent's mail is never held at once. Up to
            // READS_IN_FLIGHT reads overlap, answered in the search's order (the bundle is
            // the same whatever order Graph answers in).
            let mut reads = futures::stream::iter(messages.into_iter().map(|found| {
                let mailbox = &mailbox;
                async move {
                    let url = self
                        .graph
                        .url(&["users", &mailbox.key, "messages", &found.message.id], &[])?;
                    let read = self.graph.get::<Message>(&mailbox.key, url).await;
                    Ok::<_, ConnectorError>((found, read))
                }
            }))
            .buffered(READS_IN_FLIGHT);
            while let Some(next) = reads.next().await {
                let (found, read) = next?;
                let full: Message = match read {
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

#[cfg(test)]
mod tests {
    use super::*;
    use dsr_connector::Email;

    fn message(from: &str, to: &str) -> Message {
        dsr_connector::decode(json!({
            "id": "m", "parentFolderId": "inbox",
            "from": {"emailAddress": {"name": "Ola", "address": from}},
            "toRecipients": [{"emailAddress": {"address": to}}]
        }))
        .unwrap()
    }

    #[test]
    fn mail_the_subject_wrote_is_what_she_provided() {
        let kari = Identities {
            emails: vec![Email::parse("kari.nordmann@example.no").unwrap()],
            ..Default::default()
        };
        assert!(sent_by_subject(
            &message("KARI.nordmann@example.no", "ola@racom.no"),
            &kari
        ));
        assert!(!sent_by_subject(
            &message("ola@racom.no", "kari.nordmann@example.no"),
            &kari
        ));
    }

    #[test]
    fn an_exported_message_is_graphs_whole_message_and_the_mailbox() {
        let message = message("ola@racom.no", "kari.nordmann@example.no");
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

    #[test]
    fn an_item_json_cannot_hold_fails_the_export_permanently() {
        // A map keyed by pairs: JSON object keys are strings, so serde_json refuses it.
        let unwritable = std::collections::BTreeMap::from([((1u8, 2u8), 3u8)]);
        let err = record_data(&unwritable).unwrap_err();
        assert_eq!(err.code(), "permanent:export", "{err}");
        assert!(!err.is_retryable(), "{err}");
        assert!(
            err.to_string().contains("could not write a Graph item as JSON"),
            "{err}"
        );
    }
}
