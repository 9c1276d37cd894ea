//! Erasing the subject's mail and contacts (Art. 17): planned item by item, each item one
//! delete call.
//! - https://learn.microsoft.com/en-us/graph/api/message-delete (to Deleted Items)
//! - https://learn.microsoft.com/en-us/graph/api/message-permanentdelete
//! - https://learn.microsoft.com/en-us/graph/api/contact-delete
//! - https://learn.microsoft.com/en-us/graph/api/contact-permanentdelete
//!
//! Every message the searches returned and every contact the `$filter`s returned is an item,
//! with the claims that make it hers (none for what is not: the engine refuses those). In
//! soft mode a message already in Deleted Items is kept there for the mailbox's retention
//! to purge: deleting it again would take it out of the mailbox's own retention.

use std::collections::BTreeSet;

use dsr_connector::{Action, ConnectorError, DeleteMode, Identities, IdentityKind, ItemOutcome, Plan, PlanItem};
use futures::StreamExt;
use serde_json::json;

use crate::Microsoft365;
use crate::client::needs_permission;
use crate::reach::Reach;
use crate::search::{
    FoundContact, FoundMessage, MAILBOXES_IN_FLIGHT, Mailbox, NO_ARCHIVE, contact_claims, message_claims,
};
use crate::target::{CONTACTS, MESSAGES, Target};
use crate::wire::{MailFolder, Message};

/// Why a message in Deleted Items is not deleted again in soft mode.
pub const IN_DELETED_ITEMS: &str =
    "in the mailbox's Deleted Items, purged by the tenant's retention policy for that folder";

const HARD_NOTE: &str = "Deleted with permanentDelete: the items leave every mailbox view and stay in Recoverable Items \
     until the tenant's deleted-item retention (14 days unless the tenant sets otherwise) ends, or longer under a \
     litigation hold.";
const SOFT_NOTE: &str =
    "Deleted to Deleted Items: the items remain there until the tenant's retention policy purges them.";

/// How many people other than the subject and the mailbox's owner a message names (from,
/// sender, recipients, reply-to), each address once.
pub fn other_participants(message: &Message, subject: &Identities, mailbox: &Mailbox) -> usize {
    message
        .addresses()
        .map(|a| a.trim().to_lowercase())
        .filter(|a| !a.is_empty() && !subject.owns(IdentityKind::Email, a) && !mailbox.is_owner(a))
        .collect::<BTreeSet<_>>()
        .len()
}

/// "1 other participant", "3 other participants": a count, never who.
pub fn participants_text(count: usize) -> String {
    match count {
        1 => "1 other participant".into(),
        n => format!("{n} other participants"),
    }
}

fn message_item(
    mailbox: &Mailbox,
    message: &Message,
    subject: &Identities,
    mode: DeleteMode,
    deleted_items: Option<&str>,
) -> PlanItem {
    let target = Target {
        mailbox: mailbox.key.clone(),
        id: message.id.clone(),
        folder: None,
        mode: Some(mode),
        patch: None,
    };
    let in_deleted_items = deleted_items.is_some_and(|folder| folder == message.parent_folder_id);
    let action = if in_deleted_items { Action::Keep } else { Action::Delete };
    let mut item = PlanItem::new(
        format!("{MESSAGES} {}/{}", mailbox.address, message.id),
        MESSAGES,
        action,
        target.json(),
        json!(message),
        message_claims(message, subject),
    );
    if in_deleted_items {
        item = item.reason(IN_DELETED_ITEMS);
    }
    match other_participants(message, subject, mailbox) {
        0 => item,
        n => item.shared(participants_text(n)),
    }
}

/// A contact's key: the same for erasure and rectification.
pub fn contact_key(found: &FoundContact) -> String {
    format!("{CONTACTS} {}/{}", found.mailbox.address, found.contact.id)
}

pub fn contact_target(found: &FoundContact) -> Target {
    Target {
        mailbox: found.mailbox.key.clone(),
        id: found.contact.id.clone(),
        folder: found.folder.clone(),
        mode: None,
        patch: None,
    }
}

fn contact_item(found: &FoundContact, subject: &Identities, mode: DeleteMode) -> PlanItem {
    let target = Target {
        mode: Some(mode),
        ..contact_target(found)
    };
    PlanItem::new(
        contact_key(found),
        CONTACTS,
        Action::Delete,
        target.json(),
        json!(found.contact),
        contact_claims(&found.contact, subject),
    )
}

/// A mailbox searched for erasure: its messages (hers, and the others the search returned),
/// then its contacts and Deleted Items folder if the messages could be searched, and notes.
type Searched = (
    Mailbox,
    Result<(Vec<FoundMessage>, Vec<Message>), ConnectorError>,
    Option<(
        Result<Vec<FoundContact>, ConnectorError>,
        Result<Option<String>, ConnectorError>,
    )>,
    Vec<String>,
);

impl Microsoft365 {
    /// One mailbox's search for erasure: the messages (the first call, which says whether the
    /// mailbox can be searched), and if it can, the contacts and, in soft mode with messages
    /// found, the Deleted Items folder, asked together.
    async fn search_for_erasure(&self, mailbox: Mailbox, subject: &Identities, mode: DeleteMode) -> Searched {
        let mut notes = Vec::new();
        let first = self.search_results(&mailbox, subject, &mut notes).await;
        let rest = match &first {
            Ok((messages, _)) => {
                let deleted_items = async {
                    if mode == DeleteMode::Soft && !messages.is_empty() {
                        self.deleted_items_folder(&mailbox).await.map(Some)
                    } else {
                        Ok(None)
                    }
                };
                Some(futures::join!(self.search_contacts(&mailbox, subject), deleted_items))
            }
            Err(_) => None,
        };
        (mailbox, first, rest, notes)
    }

    /// The id of the mailbox's Deleted Items folder (well-known name `deleteditems`).
    async fn deleted_items_folder(&self, mailbox: &Mailbox) -> Result<String, ConnectorError> {
        let url = self.graph.url(
            &["users", &mailbox.key, "mailFolders", "deleteditems"],
            &[("$select", "id")],
        )?;
        let folder: MailFolder = self.graph.get(&mailbox.key, url).await?;
        Ok(folder.id)
    }

    /// Every message and contact the searches return, mailbox by mailbox, as delete items.
    /// Up to MAILBOXES_IN_FLIGHT mailboxes are searched at once; the plan lists them in
    /// order, whatever order Graph answers in.
    pub async fn plan_erasure(&self, subject: &Identities) -> Result<Plan, ConnectorError> {
        let mode = self.config.delete_mode;
        let mut plan = Plan::default();
        let mut reach = Reach::new(self.config.all_mailboxes());
        let searched = futures::stream::iter(self.mailboxes().await?)
            .map(|mailbox| self.search_for_erasure(mailbox, subject, mode))
            .buffered(MAILBOXES_IN_FLIGHT);
        let mut searched = std::pin::pin!(searched);
        while let Some((mailbox, first, rest, notes)) = searched.next().await {
            plan.notes.extend(notes);
            let Some((messages, others)) = reach.admit(&mailbox, first)? else {
                continue;
            };
            let Some((contacts, deleted_items)) = rest else {
                continue;
            };
            let (contacts, deleted_items) = (contacts?, deleted_items?);
            // Hers and, with no claim, what the search returned that is not: the engine refuses those.
            for message in messages.iter().map(|m| &m.message).chain(&others) {
                plan.items
                    .push(message_item(&mailbox, message, subject, mode, deleted_items.as_deref()));
            }
            plan.items
                .extend(contacts.iter().map(|c| contact_item(c, subject, mode)));
        }
        reach.finish()?;
        plan.notes.push(
            match mode {
                DeleteMode::Hard => HARD_NOTE,
                DeleteMode::Soft => SOFT_NOTE,
            }
            .into(),
        );
        plan.notes.extend(reach.subject_note());
        plan.notes.push(NO_ARCHIVE.into());
        plan.operator_notes = reach.operator_notes();
        Ok(plan)
    }

    /// Deletes one planned message or contact: `permanentDelete` (hard) or `DELETE` (soft),
    /// as the plan said; a 404 is gone already.
    pub async fn execute_erasure(&self, item: &PlanItem) -> Result<ItemOutcome, ConnectorError> {
        let target = Target::of(item, Action::Delete)?;
        let mode = target.mode.unwrap_or(self.config.delete_mode);
        let mut path = target.segments(item)?;
        let result = match mode {
            DeleteMode::Hard => {
                path.push("permanentDelete");
                let url = self.graph.url(&path, &[])?;
                self.graph
                    .client
                    .remove(&target.mailbox, |http| http.post(url.clone()))
                    .await
            }
            DeleteMode::Soft => {
                let url = self.graph.url(&path, &[])?;
                self.graph
                    .client
                    .remove(&target.mailbox, |http| http.delete(url.clone()))
                    .await
            }
        };
        let permission = if item.category == MESSAGES {
            "Mail.ReadWrite"
        } else {
            "Contacts.ReadWrite"
        };
        match result {
            Ok(true) => Ok(ItemOutcome::Done(json!({
                "id": target.id,
                "mode": mode,
                "deleted_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            }))),
            Ok(false) => Ok(ItemOutcome::AlreadyGone),
            Err(e) => Err(needs_permission(e, permission, &format!("delete {}", item.category))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsr_connector::Email;

    #[test]
    fn others_are_counted_once_without_the_subject_or_the_owner() {
        let message: Message = dsr_connector::decode(json!({
            "id": "m", "parentFolderId": "inbox",
            "from": {"emailAddress": {"name": "Ola", "address": "ola@racom.no"}},
            "sender": {"emailAddress": {"name": "Ola", "address": "OLA@racom.no"}},
            "toRecipients": [{"emailAddress": {"address": "Kari@example.no"}}, {"emailAddress": {"address": "per@x.no"}}],
            "ccRecipients": [{"emailAddress": {"address": "per@x.no"}}],
            "bccRecipients": [],
            "replyTo": [{"emailAddress": {"address": "svar@x.no"}}]
        }))
        .unwrap();
        let kari = Identities {
            emails: vec![Email::parse("kari@example.no").unwrap()],
            ..Default::default()
        };
        let mailbox = |address: &str, aliases: &[&str]| Mailbox {
            key: "u".into(),
            address: address.into(),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
        };
        assert_eq!(other_participants(&message, &kari, &mailbox("ola@racom.no", &[])), 2);
        assert_eq!(other_participants(&message, &kari, &mailbox("salg@racom.no", &[])), 3);
        assert_eq!(
            other_participants(&message, &kari, &mailbox("post@racom.no", &["ola@racom.no"])),
            2
        );
        assert_eq!(participants_text(1), "1 other participant");
        assert_eq!(participants_text(3), "3 other participants");
    }
}
