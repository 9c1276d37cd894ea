//! Exporting what was found for the subject (Art. 15): each message read whole with its
//! file attachments streamed byte for byte, each contact as Graph holds it, and the mailbox
//! each is in. Mailboxes, reads, attachment listings and downloads overlap within Graph's
//! limits (see `export`); the bundle lists them in the searches' order.
//! - https://learn.microsoft.com/en-us/graph/throttling-limits#outlook-service-limits
//! - https://learn.microsoft.com/en-us/graph/api/message-get
//! - https://learn.microsoft.com/en-us/graph/api/message-list-attachments
//! - https://learn.microsoft.com/en-us/graph/api/attachment-get (`$value`: the file's bytes)

use std::sync::Arc;

use dsr_connector::{AccessSummary, ConnectorError, FileMeta, Identities, IdentityKind, Record, RecordSink, SlotFile};
use futures::channel::oneshot;
use futures::future::BoxFuture;
use futures::future::ready;
use futures::stream::{FuturesOrdered, FuturesUnordered};
use futures::{Future, FutureExt, StreamExt, TryFutureExt, TryStreamExt};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::Microsoft365;
use crate::client::{PROCESSOR, needs_permission};
use crate::reach::Reach;
use crate::search::{
    FoundContact, FoundMessage, MAILBOXES_IN_FLIGHT, Mailbox, NO_ARCHIVE, NO_EMAIL, contact_claims, message_claims,
};
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

/// Messages read (and their attachments listed) at once, over the mailboxes in flight: four
/// per mailbox. The client's limiter keeps each mailbox at Graph's four concurrent requests
/// whatever is sent (reads, listings and downloads queue there together).
const READS_IN_FLIGHT: usize = 4 * MAILBOXES_IN_FLIGHT;

/// Whole messages held at once: read, their files downloading, not yet in the sink. At least
/// READS_IN_FLIGHT, so the earliest message waiting for room always finds it (see `export`).
const MESSAGES_HELD: usize = 2 * READS_IN_FLIGHT;

/// An attachment's name as the bundle gives it.
fn file_name(attachment: &Attachment) -> String {
    attachment.name.clone().unwrap_or_else(|| "attachment".into())
}

fn media_type(attachment: &Attachment) -> String {
    attachment
        .content_type
        .clone()
        .unwrap_or_else(|| "application/octet-stream".into())
}

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

/// A mailbox's contacts, searched beside the reads of its messages.
type ContactsFound = oneshot::Receiver<Result<Vec<FoundContact>, ConnectorError>>;

/// What a mailbox's search found, in the order the bundle lists it: what is not hers, her
/// messages (headers only), and at the end her contacts, searched meanwhile.
enum Found {
    Others(Vec<Message>),
    Message(Box<FoundMessage>),
    End(ContactsFound),
}

/// An item whose calls are answered: a message read whole with its attachments listed, or
/// `Gone` (deleted since the search).
enum Read {
    Others(Vec<Message>),
    Message(Box<ReadMessage>),
    Gone,
    End(ContactsFound),
}

/// A message read whole with its attachments listed, holding its room among MESSAGES_HELD.
struct ReadMessage {
    found: FoundMessage,
    listed: Vec<Attachment>,
    room: Option<OwnedSemaphorePermit>,
}

/// A read message whose file attachments are stored, by their place in `listed`.
struct Stored {
    found: FoundMessage,
    listed: Vec<Attachment>,
    files: Vec<(usize, SlotFile)>,
    _room: Option<OwnedSemaphorePermit>,
}

/// An item ready for the sink, in the bundle's order.
enum Done {
    Others(Vec<Message>),
    Message(Box<Stored>),
    Gone,
    Contacts(Vec<FoundContact>),
}

/// A mailbox whose mail was searched: what the search (its first call) said, and notes.
type Searched = (
    Mailbox,
    Result<(Vec<FoundMessage>, Vec<Message>), ConnectorError>,
    Vec<String>,
);

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

    /// Searches one mailbox for the subject's mail.
    async fn search_mailbox(&self, mailbox: Mailbox, subject: &Identities) -> Searched {
        let mut notes = Vec::new();
        let first = self.search_results(&mailbox, subject, &mut notes).await;
        (mailbox, first, notes)
    }

    /// Reads a message whole and lists its attachments, once there is room to hold it.
    async fn read_message(&self, found: FoundMessage, room: Arc<Semaphore>) -> Result<Read, ConnectorError> {
        // Taken before any call: a message waiting for room holds no place at the limiter.
        let room = room.acquire_owned().await.ok();
        let key = &found.mailbox.key;
        let url = self.graph.url(&["users", key, "messages", &found.message.id], &[])?;
        let message: Message = match self.graph.get(key, url).await {
            Ok(m) => m,
            Err(e) if e.is_not_found() => return Ok(Read::Gone),
            Err(e) => return Err(needs_permission(e, "Mail.ReadWrite", "read mail")),
        };
        let listed = if message.has_attachments == Some(true) {
            let url = self.graph.url(
                &["users", key, "messages", &message.id, "attachments"],
                &[("$select", "id,name,contentType,size,isInline")],
            )?;
            self.graph.all(key, url).await?
        } else {
            Vec::new()
        };
        Ok(Read::Message(Box::new(ReadMessage {
            found: FoundMessage {
                mailbox: found.mailbox,
                message,
            },
            listed,
            room,
        })))
    }

    /// Names a read message's files in the sink now, in the order Graph listed them, and
    /// returns the downloads into them, to run beside every other call.
    fn download_files(
        &self,
        read: ReadMessage,
        sink: &mut dyn RecordSink,
    ) -> Result<impl Future<Output = Result<Box<Stored>, ConnectorError>> + Send + '_, ConnectorError> {
        let ReadMessage { found, listed, room } = read;
        let mut downloads = Vec::new();
        for (at, attachment) in listed.iter().enumerate().filter(|(_, a)| a.is_file()) {
            let key = found.mailbox.key.clone();
            let url = self.graph.url(
                &[
                    "users",
                    &key,
                    "messages",
                    &found.message.id,
                    "attachments",
                    &attachment.id,
                    "$value",
                ],
                &[],
            )?;
            let slot = sink.reserve(FileMeta {
                folder: "attachments".into(),
                name: file_name(attachment),
                media_type: media_type(attachment),
            });
            downloads.push(async move {
                // Graph counts the request until its body is sent: the place in flight is
                // kept until the file is stored, so at most four bodies stream per mailbox.
                let (response, _place) = self.graph.client.send_held(&key, |http| http.get(url.clone())).await?;
                let body = response.bytes_stream().map_err(std::io::Error::other).boxed();
                Ok::<_, ConnectorError>((at, slot.store(body).await?))
            });
        }
        Ok(async move {
            let files = futures::future::try_join_all(downloads).await?;
            Ok(Box::new(Stored {
                found,
                listed,
                files,
                _room: room,
            }))
        })
    }

    /// Lists a message's stored files with it and accepts the record.
    async fn accept_message(
        &self,
        stored: Stored,
        subject: &Identities,
        sink: &mut dyn RecordSink,
    ) -> Result<(), ConnectorError> {
        let Stored {
            found, listed, files, ..
        } = stored;
        let mut files = files.into_iter().peekable();
        let mut attachments = Vec::new();
        for (at, attachment) in listed.iter().enumerate() {
            let name = file_name(attachment);
            let Some((_, file)) = files.next_if(|(i, _)| *i == at) else {
                // An attached Outlook item or a link to a cloud file: its metadata is what
                // this mailbox holds.
                attachments.push(
                    json!({"name": name, "type": attachment.odata_type, "note": "not a file: listed, not exported"}),
                );
                continue;
            };
            let stored = sink.keep(file).await?;
            attachments.push(json!({
                "name": name, "contentType": media_type(attachment), "size": attachment.size,
                "isInline": attachment.is_inline, "file": stored.path, "bytes": stored.bytes, "sha256": stored.sha256,
            }));
        }
        let data = record_data(&MailRecord {
            message: &found.message,
            mailbox: &found.mailbox.address,
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
        Ok(())
    }

    /// Writes an item into the sink; returns how many of the subject's records it held.
    async fn accept_done(
        &self,
        done: Done,
        subject: &Identities,
        sink: &mut dyn RecordSink,
    ) -> Result<u64, ConnectorError> {
        match done {
            Done::Others(others) => {
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
                Ok(0)
            }
            Done::Message(stored) => {
                self.accept_message(*stored, subject, sink).await?;
                Ok(1)
            }
            Done::Gone => Ok(0),
            Done::Contacts(contacts) => {
                let mut count = 0;
                for found in contacts {
                    let data = record_data(&ContactRecord {
                        contact: &found.contact,
                        mailbox: &found.mailbox.address,
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
                Ok(count)
            }
        }
    }

    /// Exports everything found for the subject into the sink; returns how many records and
    /// which mailboxes were searched or skipped.
    ///
    /// Four kinds of work go on at once, each polled by this one loop: mailbox searches (up to
    /// MAILBOXES_IN_FLIGHT mailboxes searched or being read), contacts searches, message reads
    /// (READS_IN_FLIGHT, in the searches' order) and attachment downloads. The loop itself
    /// only names files and writes records into the sink, in the order the searches listed
    /// them, so the bundle is the same whatever order Graph answers in. No future that may
    /// hold a place at the limiter waits unpolled while another needs one: searches, reads,
    /// contacts searches and downloads are always polled (a search is started only when there
    /// is room for its mailbox), and a message waits for room among MESSAGES_HELD before its
    /// first call. A download keeps its place until its file is stored (Graph counts a
    /// request until its body is sent), so at most four bodies stream per mailbox.
    async fn export(
        &self,
        subject: &Identities,
        sink: &mut dyn RecordSink,
        notes: &mut Vec<String>,
    ) -> Result<(u64, Reach), ConnectorError> {
        let mut count = 0;
        let mut reach = Reach::new(self.config.all_mailboxes());
        // Searches start only while fewer than MAILBOXES_IN_FLIGHT mailboxes are searched or
        // open, and are always polled: a search started and then left unpolled would hold
        // its place at the limiter (and, with several workers, in Redis) until it timed out.
        let mut to_search: std::collections::VecDeque<_> = self.mailboxes().await?.into();
        let mut searching = FuturesOrdered::new();
        let (found, to_read) = futures::channel::mpsc::unbounded::<Found>();
        let mut found = Some(found);
        let room = Arc::new(Semaphore::new(MESSAGES_HELD));
        let reads = to_read
            .map(|found| {
                let room = room.clone();
                async move {
                    match found {
                        Found::Others(others) => Ok(Read::Others(others)),
                        Found::Message(m) => self.read_message(*m, room).await,
                        Found::End(contacts) => Ok(Read::End(contacts)),
                    }
                }
            })
            .buffered(READS_IN_FLIGHT);
        let mut reads = std::pin::pin!(reads);
        let mut contacts_searches = FuturesUnordered::new();
        let mut downloads: FuturesOrdered<BoxFuture<'_, Result<Done, ConnectorError>>> = FuturesOrdered::new();
        // Mailboxes admitted whose messages are not all read yet.
        let mut open = 0;
        let mut read_all = false;
        loop {
            while open + searching.len() < MAILBOXES_IN_FLIGHT
                && let Some(mailbox) = to_search.pop_front()
            {
                searching.push_back(self.search_mailbox(mailbox, subject));
            }
            if to_search.is_empty() && searching.is_empty() {
                // The reads end once they have read what was sent.
                found = None;
            }
            tokio::select! {
                Some((mailbox, first, found_notes)) = searching.next(), if !searching.is_empty() => {
                    notes.extend(found_notes);
                    let Some((messages, others)) = reach.admit(&mailbox, first)? else {
                        continue;
                    };
                    let (contacts, contacts_found) = oneshot::channel();
                    contacts_searches.push(async move {
                        // Nobody waits for it only when the export has failed already.
                        let _ = contacts.send(self.search_contacts(&mailbox, subject).await);
                    });
                    // What the search returned that is not hers goes to the engine as the
                    // search gave it (headers only, never fetched whole): refused, counted.
                    let items = std::iter::once(Found::Others(others))
                        .chain(messages.into_iter().map(|m| Found::Message(Box::new(m))))
                        .chain([Found::End(contacts_found)]);
                    if let Some(found) = &found {
                        items.for_each(|item| drop(found.unbounded_send(item)));
                    }
                    open += 1;
                }
                next = reads.next(), if !read_all => match next {
                    None => read_all = true,
                    Some(read) => downloads.push_back(match read? {
                        Read::Message(read) => self.download_files(*read, sink)?.map_ok(Done::Message).boxed(),
                        Read::Others(others) => ready(Ok(Done::Others(others))).boxed(),
                        Read::Gone => ready(Ok(Done::Gone)).boxed(),
                        Read::End(contacts) => {
                            open -= 1;
                            async move {
                                match contacts.await {
                                    Ok(found) => found.map(Done::Contacts),
                                    Err(_) => Err(ConnectorError::permanent(
                                        PROCESSOR,
                                        "export",
                                        "a contacts search was dropped before it answered",
                                    )),
                                }
                            }
                            .boxed()
                        }
                    }),
                },
                Some(()) = contacts_searches.next(), if !contacts_searches.is_empty() => {}
                Some(done) = downloads.next(), if !downloads.is_empty() => {
                    count += self.accept_done(done?, subject, sink).await?;
                }
                else => break,
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
