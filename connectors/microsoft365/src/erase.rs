//! Erasing the subject's mail and contacts (Art. 17), and proving it by searching again.

use std::collections::HashMap;

use dsr_connector::{ChangeReport, ConnectorError, Evidence, Identities, TaskContext};
use serde::Serialize;
use serde_json::{Value, json};

use crate::Microsoft365;
use crate::access::{Mailbox, contact_claims, message_claims};
use crate::client::needs_permission;
use crate::config::DeleteMode;
use crate::reach::Reach;
use crate::wire::MailFolder;

/// What the search after the deletes still found: the evidence of the erasure.
#[derive(Debug, Serialize)]
struct Verification {
    searched_at: String,
    remaining_outside_deleted_items: u64,
    in_deleted_items: u64,
    contacts_remaining: u64,
    per_mailbox: HashMap<String, u64>,
}

/// What one delete call did.
enum Deleted {
    Now,
    /// 404: already gone (an earlier attempt, or someone else): erased all the same.
    Already,
}

impl Microsoft365 {
    /// Deletes the item at `segments` (a message or a contact, in whichever folder).
    async fn delete_item(
        &self,
        mailbox: &Mailbox,
        segments: &[&str],
        collection: &str,
    ) -> Result<Deleted, ConnectorError> {
        let hard = self.config.delete_mode == DeleteMode::Hard;
        let result = if hard {
            let mut path = segments.to_vec();
            path.push("permanentDelete");
            let url = self.graph.url(&path, &[]);
            self.graph
                .client
                .remove(&mailbox.key, |http| http.post(url.clone()))
                .await
        } else {
            let url = self.graph.url(segments, &[]);
            self.graph
                .client
                .remove(&mailbox.key, |http| http.delete(url.clone()))
                .await
        };
        match result {
            Ok(true) => Ok(Deleted::Now),
            Ok(false) => Ok(Deleted::Already),
            Err(e) => {
                let permission = if collection == "messages" {
                    "Mail.ReadWrite"
                } else {
                    "Contacts.ReadWrite"
                };
                Err(needs_permission(e, permission, &format!("delete {collection}")))
            }
        }
    }

    /// The id of the mailbox's Deleted Items folder (well-known name `deleteditems`).
    async fn deleted_items_folder(&self, mailbox: &Mailbox) -> Result<String, ConnectorError> {
        let url = self.graph.url(
            &["users", &mailbox.key, "mailFolders", "deleteditems"],
            &[("$select", "id")],
        );
        let folder: MailFolder = self.graph.get(&mailbox.key, url).await?;
        Ok(folder.id)
    }

    pub async fn erase_subject(&self, ctx: &TaskContext, subject: &Identities) -> Result<ChangeReport, ConnectorError> {
        let mut notes = Vec::new();
        let mut found = 0u64;
        let mut changed = 0u64;
        let mut erased: Vec<Value> = Vec::new();
        let mut reach = Reach::new(self.config.all_mailboxes());
        for mailbox in &self.mailboxes().await? {
            let first = self.search_results(mailbox, subject, &mut notes).await;
            let Some((messages, others)) = reach.admit(mailbox, first)? else {
                continue;
            };
            let all_contacts = self.search_contacts(mailbox, subject).await?;
            // What the searches returned that is not hers: shown to the engine, refused, listed.
            if !ctx.dry_run {
                for other in &others {
                    ctx.permit(subject, &format!("messages {}", other.id), &json!(other), &[]);
                }
                for c in all_contacts
                    .iter()
                    .filter(|c| contact_claims(&c.contact, subject).is_empty())
                {
                    ctx.permit(subject, &format!("contacts {}", c.contact.id), &json!(c.contact), &[]);
                }
            }
            let contacts: Vec<_> = all_contacts
                .into_iter()
                .filter(|c| !contact_claims(&c.contact, subject).is_empty())
                .collect();
            found += (messages.len() + contacts.len()) as u64;
            if ctx.dry_run {
                continue;
            }
            let items = messages
                .iter()
                .map(|m| {
                    let guard = (json!(m.message), message_claims(&m.message, subject));
                    (
                        "messages",
                        vec!["users", &mailbox.key, "messages", &m.message.id],
                        &m.message.id,
                        guard,
                    )
                })
                .chain(contacts.iter().map(|c| {
                    let guard = (json!(c.contact), contact_claims(&c.contact, subject));
                    ("contacts", c.segments(), &c.contact.id, guard)
                }));
            for (collection, segments, id, (data, claims)) in items {
                // The engine's rule, item by item: what is not the subject's is not touched.
                if !ctx.permit(subject, &format!("{collection} {id}"), &data, &claims) {
                    continue;
                }
                let outcome = self.delete_item(mailbox, &segments, collection).await?;
                changed += 1;
                erased.push(json!({
                    "mailbox": mailbox.address, "collection": collection, "id": id,
                    "result": match outcome { Deleted::Now => "deleted", Deleted::Already => "already_gone" },
                }));
            }
        }
        reach.finish()?;
        let mailboxes = reach.searched.clone();
        let mut evidence = vec![Evidence {
            kind: "graph_deletions".into(),
            detail: json!({"mode": self.mode_name(), "items": erased}),
        }];
        if !ctx.dry_run {
            let verification = self.verify_erasure(&mailboxes, subject).await?;
            let outside = verification.remaining_outside_deleted_items;
            evidence.push(Evidence {
                kind: "verification_search".into(),
                detail: json!(verification),
            });
            if outside > 0 {
                return Err(ConnectorError::RetryLater {
                    processor: crate::client::PROCESSOR,
                    code: "verification".into(),
                    message: format!("{outside} items still found after erasure; erasing again"),
                    after: None,
                });
            }
            notes.push(match self.config.delete_mode {
                DeleteMode::Hard => "Deleted with permanentDelete: the items left every mailbox view and sit in Recoverable Items until the tenant's deleted-item retention (14 days unless the tenant sets otherwise) ends, or longer under a litigation hold.".to_string(),
                DeleteMode::Soft => format!(
                    "Deleted to Deleted Items: {} item(s) remain there until the tenant's retention policy purges them.",
                    verification.in_deleted_items
                ),
            });
        }
        notes.extend(reach.subject_note());
        notes.push(crate::access::NO_ARCHIVE.into());
        Ok(ChangeReport {
            found,
            changed,
            retained: vec![],
            evidence,
            notes,
            operator_notes: reach.operator_notes(),
        })
    }

    fn mode_name(&self) -> &'static str {
        match self.config.delete_mode {
            DeleteMode::Hard => "hard",
            DeleteMode::Soft => "soft",
        }
    }

    /// Searches again after the deletes and counts what remains, in and outside Deleted Items.
    async fn verify_erasure(
        &self,
        mailboxes: &[Mailbox],
        subject: &Identities,
    ) -> Result<Verification, ConnectorError> {
        let mut in_deleted = 0u64;
        let mut outside = 0u64;
        let mut contacts = 0u64;
        let mut per_mailbox = HashMap::new();
        let mut notes = Vec::new();
        for mailbox in mailboxes {
            let messages = self.find_messages(mailbox, subject, &mut notes).await?;
            let remaining_contacts = self.find_contacts(mailbox, subject).await?.len() as u64;
            let deleted_folder = if messages.is_empty() {
                String::new()
            } else {
                self.deleted_items_folder(mailbox).await?
            };
            let here_deleted = messages
                .iter()
                .filter(|m| m.message.parent_folder_id == deleted_folder)
                .count() as u64;
            in_deleted += here_deleted;
            outside += messages.len() as u64 - here_deleted + remaining_contacts;
            contacts += remaining_contacts;
            per_mailbox.insert(mailbox.address.clone(), messages.len() as u64 + remaining_contacts);
        }
        Ok(Verification {
            searched_at: crate::access::graph_time(chrono::Utc::now()),
            remaining_outside_deleted_items: outside,
            in_deleted_items: in_deleted,
            contacts_remaining: contacts,
            per_mailbox,
        })
    }
}
