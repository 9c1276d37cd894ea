//! How Google erases (Art. 17), planned item by item and then executed one call per item.
//!
//! - Google Analytics: one user deletion request per identifier per GA4 property, with
//!   Google's `deletionRequestTime` as evidence (`analytics_user`). Client and user ids go to
//!   the v3 upsert, e-mails and phones (`userProvidedData`) to the Admin API. The same
//!   requests answer an objection (Art. 21): deleting the data is the only opt-out Analytics
//!   offers.
//!   https://developers.google.com/analytics/devguides/config/userdeletion/v3/reference/userDeletion/userDeletionRequest,
//!   https://developers.google.com/analytics/devguides/config/admin/v1/rest/v1alpha/properties/submitUserDeletion
//! - Workspace mail: one item per message, `messages.delete` (hard) or `messages.trash` (soft)
//!   (https://developers.google.com/workspace/gmail/api/reference/rest/v1/users.messages/delete,
//!   …/users.messages/trash); in soft mode a message already in the Trash is kept, since Gmail
//!   empties the Trash itself after 30 days (https://support.google.com/mail/answer/7401). A
//!   message that also names people other than the subject and the mailbox's owner is marked
//!   shared.
//! - Workspace contacts: one `deleteContact` per contact; mutations for one user go one at a
//!   time, as Google requires
//!   (https://developers.google.com/people/api/rest/v1/people/deleteContact). Other contacts
//!   cannot be deleted through the API: they are reported as retained, with the manual step.

use dsr_connector::{
    Action, ConnectorError, Identities, IdentityKind, ItemOutcome, MatchClaim, Plan, PlanItem, Retained,
};
use futures::{StreamExt, TryStreamExt};
use serde_json::{Value, json};

use crate::Google;
use crate::client::{Call, MAILBOXES_IN_FLIGHT};
use crate::config::DeleteMode;
use crate::gmail::{CATEGORY as MAIL, FoundMail};
use crate::people::{Book, CATEGORY as CONTACTS, person_claims};
use crate::wire::{Person, Property, SubmitUserDeletionResponse, UserDeletionRequest};

/// The plan category of an Analytics user deletion.
pub const ANALYTICS: &str = "analytics_user";

/// When Google acts on a deletion request (the subject's note).
const DELETION_POLICY: &str = "Google deletes the data within 72 hours of each deletionRequestTime and then removes it from backups within 63 days (Analytics data deletion policy).";

/// Why a message already in the Trash is left there in soft mode, and the subject's note.
pub const IN_TRASH: &str = "in Gmail's Trash, which Gmail empties after 30 days";
const TRASH_NOTE: &str = "Messages are moved to Gmail's Trash, which Gmail empties after 30 days.";

/// Why other contacts are kept after an erasure, and what the mailbox owner does instead.
pub const OTHER_CONTACTS_KEPT: &str = "Google keeps the addresses Gmail saves from mail as \"other contacts\", and its People API offers no way to delete them (copying one into My Contacts and deleting the copy leaves the original). The owner of each mailbox listed must remove them in Google Contacts > Other contacts.";

/// An e-mail as the Admin API's `userProvidedData` wants it: lowercase, no spaces, and for
/// gmail.com / googlemail.com no dots before the `@`.
pub fn normalise_email(email: &str) -> String {
    let lower: String = email.to_lowercase().chars().filter(|c| !c.is_whitespace()).collect();
    match lower.rsplit_once('@') {
        Some((local, domain)) if domain == "gmail.com" || domain == "googlemail.com" => {
            format!("{}@{domain}", local.replace('.', ""))
        }
        _ => lower,
    }
}

/// A phone as `userProvidedData`: `+` and digits only.
pub fn normalise_phone(phone: &str) -> String {
    format!("+{}", phone.chars().filter(char::is_ascii_digit).collect::<String>())
}

/// One Analytics deletion to submit.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub property: String,
    /// `CLIENT_ID`, `USER_ID` (v3 upsert) or `userProvidedData` (Admin API).
    pub id_type: &'static str,
    /// What the request sends: the identifier as given, or as `userProvidedData` wants it.
    pub value: String,
    /// The subject's identifier the request is made from, and its kind (the item's claim).
    pub identifier: String,
    pub kind: IdentityKind,
}

impl Planned {
    /// The plan item for this request, keyed by the identifier as the subject gave it (what
    /// its claim points at): the form `userProvidedData` wants (a Gmail address without its
    /// dots) is only what the call sends, kept in its target.
    pub fn item(&self) -> PlanItem {
        let target = json!(Call::UserDeletion {
            property: self.property.clone(),
            id_type: self.id_type.to_string(),
            value: self.value.clone(),
        });
        let data = json!({
            "property": self.property,
            "type": self.id_type,
            "identifier": self.identifier,
            "value": self.value,
        });
        let key = format!("{ANALYTICS} {} {} {}", self.property, self.id_type, self.identifier);
        let claim = MatchClaim::new(self.kind, "/identifier");
        // Google acts on it within 72 hours and shows no trace of it: planning again finds
        // the same identifiers, which is not a deletion left undone.
        PlanItem::new(key, ANALYTICS, Action::Delete, target, data, vec![claim]).request()
    }
}

/// Each identifier goes to exactly one API: client and user ids to the v3 upsert (which
/// keys GA4 properties by `propertyId`), e-mails and phones to the Admin API, the only one
/// that takes `userProvidedData`.
pub fn plan_deletions(subject: &Identities, properties: &[String], user_provided: bool) -> Vec<Planned> {
    let mut planned = Vec::new();
    for property in properties {
        let mut push = |id_type, value: String, identifier: &str, kind| {
            planned.push(Planned {
                property: property.clone(),
                id_type,
                value,
                identifier: identifier.to_string(),
                kind,
            })
        };
        for id in &subject.ga_client_ids {
            push("CLIENT_ID", id.clone(), id, IdentityKind::GaClientId);
        }
        for id in &subject.ga_user_ids {
            push("USER_ID", id.clone(), id, IdentityKind::GaUserId);
        }
        if user_provided {
            for email in &subject.emails {
                push(
                    "userProvidedData",
                    normalise_email(email.as_str()),
                    email.as_str(),
                    IdentityKind::Email,
                );
            }
            for phone in &subject.phones {
                push(
                    "userProvidedData",
                    normalise_phone(phone.as_str()),
                    phone.as_str(),
                    IdentityKind::Phone,
                );
            }
        }
    }
    planned
}

/// The `deleteContact` item for one of the subject's contacts in `mailbox`.
fn contact_item(mailbox: &str, person: &Person, subject: &Identities) -> PlanItem {
    let target = Call::DeleteContact {
        mailbox: mailbox.to_string(),
        resource_name: person.resource_name.clone(),
    };
    let key = format!("{CONTACTS} {mailbox}/{}", person.resource_name);
    let claims = person_claims(person, subject);
    PlanItem::new(key, CONTACTS, Action::Delete, json!(target), json!(person), claims)
}

/// The subject's other contacts (found per mailbox), which the API cannot delete: kept, for
/// the mailboxes' owners to remove by hand.
fn other_contacts_kept(found: Vec<(Book, String, Vec<Person>)>) -> Option<Retained> {
    let (mut count, mut mailboxes) = (0, Vec::new());
    for (_, mailbox, people) in found {
        if !people.is_empty() {
            count += people.len() as u64;
            mailboxes.push(mailbox);
        }
    }
    (count > 0).then(|| Retained {
        category: Book::OtherContacts.category().into(),
        count,
        reason: format!("{OTHER_CONTACTS_KEPT} Mailboxes: {}.", mailboxes.join(", ")),
        legal_basis: "not retained by choice: Google's API offers no deletion; awaiting manual removal".into(),
    })
}

/// "1 other participant", "3 other participants".
fn participants(n: usize) -> String {
    if n == 1 {
        "1 other participant".into()
    } else {
        format!("{n} other participants")
    }
}

/// Done, or gone already (404).
fn removed(done: bool, receipt: Value) -> ItemOutcome {
    if done {
        ItemOutcome::Done(receipt)
    } else {
        ItemOutcome::AlreadyGone
    }
}

impl Google {
    /// The erasure: Analytics deletions, then with Workspace her mail and contacts, and the
    /// other contacts the API cannot delete, reported as retained.
    pub async fn plan_erasure(&self, subject: &Identities) -> Result<Plan, ConnectorError> {
        let (mut items, mut notes) = self.plan_user_deletion(subject);
        let mut retained = Vec::new();
        if self.config.workspace.is_some() {
            // Every mailbox's mail and both address books are searched together; the plan
            // lists them in mailbox order as they were found.
            let mailboxes: Vec<&str> = self.config.mailboxes().map(String::as_str).collect();
            let searches = mailboxes
                .iter()
                .map(|mailbox| async move { self.candidate_mail(mailbox, subject).await })
                .collect::<Vec<_>>();
            let (found_mail, books) = futures::future::try_join(
                futures::stream::iter(searches)
                    .buffered(MAILBOXES_IN_FLIGHT)
                    .try_collect::<Vec<_>>(),
                self.find_in_all(&[Book::Contacts, Book::OtherContacts], &mailboxes, subject),
            )
            .await?;
            let mut mail = Vec::new();
            for (mailbox, found) in mailboxes.iter().zip(found_mail) {
                for found in found {
                    mail.push(self.mail_item(mailbox, found, subject));
                }
            }
            if self.config.delete_mode() == DeleteMode::Soft && !mail.is_empty() {
                notes.push(TRASH_NOTE.to_string());
            }
            items.extend(mail);
            let (contacts, other): (Vec<_>, Vec<_>) =
                books.into_iter().partition(|(book, _, _)| *book == Book::Contacts);
            for (_, mailbox, people) in contacts {
                for person in people {
                    items.push(contact_item(&mailbox, &person, subject));
                }
            }
            retained.extend(other_contacts_kept(other));
        }
        Ok(Plan {
            items,
            notes,
            retained,
            ..Default::default()
        })
    }

    /// One item per message Gmail's search returned, hers or not (the engine's check refuses
    /// those whose headers do not name her): `messages.delete`, or `messages.trash` in soft
    /// mode, where a message already in the Trash is kept.
    fn mail_item(&self, mailbox: &str, mail: FoundMail, subject: &Identities) -> PlanItem {
        let (owner, id) = (mailbox.to_string(), mail.id.clone());
        let mode = self.config.delete_mode();
        let target = match mode {
            DeleteMode::Hard => Call::DeleteMessage { mailbox: owner, id },
            DeleteMode::Soft => Call::TrashMessage { mailbox: owner, id },
        };
        let keep = mode == DeleteMode::Soft && mail.in_trash();
        let action = if keep { Action::Keep } else { Action::Delete };
        let key = format!("{MAIL} {mailbox}/{}", mail.id);
        let claims = mail.meta.claims(subject);
        let mut item = PlanItem::new(key, MAIL, action, json!(target), json!(mail.meta), claims);
        if keep {
            item = item.reason(IN_TRASH);
        }
        match mail.meta.other_participants(subject, mailbox) {
            0 => item,
            others => item.shared(participants(others)),
        }
    }

    /// An objection: Analytics has no consent to withdraw, so the deletion requests are the
    /// only opt-out; Workspace holds no consent at all.
    pub fn plan_objection(&self, subject: &Identities) -> Plan {
        let (items, mut notes) = self.plan_user_deletion(subject);
        notes.insert(0, "Analytics has no consent to withdraw or opt-out to set for a past visitor: the only objection it offers is deleting the data kept under the visitor's identifiers, which was done.".into());
        if self.config.workspace.is_some() {
            notes.push(
                "Workspace mail and contacts hold no consent or marketing subscription: nothing to withdraw there."
                    .into(),
            );
        }
        Plan {
            items,
            notes,
            ..Default::default()
        }
    }

    /// One item per deletion request the subject's identifiers call for, and the notes
    /// that explain them (or why there are none).
    fn plan_user_deletion(&self, subject: &Identities) -> (Vec<PlanItem>, Vec<String>) {
        let properties = &self.config.ga4_property_ids;
        let planned = plan_deletions(subject, properties, self.config.use_user_provided_data);
        let note = if !planned.is_empty() {
            DELETION_POLICY
        } else if properties.is_empty() {
            "No GA4 property is configured (processors.google.ga4_property_ids)."
        } else {
            "Google Analytics keys its data on client ids and user ids, not names or e-mail addresses: give --ga-client-id or --ga-user-id (or enable use_user_provided_data)."
        };
        (planned.iter().map(Planned::item).collect(), vec![note.to_string()])
    }

    /// An `analytics_user` item's request, with Google's answer as its receipt. The receipt
    /// names no identifier (the item's key names the one the subject gave): what was sent
    /// may be a normalised form of it that she never gave.
    pub(crate) async fn delete_user(
        &self,
        property: &str,
        id_type: &str,
        value: &str,
    ) -> Result<ItemOutcome, ConnectorError> {
        let time = self.submit_user_deletion(property, id_type, value).await?;
        Ok(ItemOutcome::Done(json!({
            "property": property, "id_type": id_type,
            "deletionRequestTime": time,
        })))
    }

    /// `messages.delete` (hard) or `messages.trash` (soft) of one message; a message gone
    /// meanwhile (404) is gone all the same.
    pub(crate) async fn delete_message(
        &self,
        mailbox: &str,
        id: &str,
        mode: DeleteMode,
    ) -> Result<ItemOutcome, ConnectorError> {
        let client = self.gmail_for(mailbox, mode);
        let url = self.messages_url(mailbox, Some(id))?;
        let (done, receipt) = match mode {
            DeleteMode::Hard => (client.remove(mailbox, |http| http.delete(&url)).await?, "deleted"),
            DeleteMode::Soft => {
                let url = format!("{url}/trash");
                (client.remove(mailbox, |http| http.post(&url)).await?, "trashed")
            }
        };
        Ok(removed(done, json!({"mailbox": mailbox, "id": id, receipt: true})))
    }

    /// `deleteContact`; a contact gone meanwhile (404) is gone all the same.
    pub(crate) async fn delete_contact(
        &self,
        mailbox: &str,
        resource_name: &str,
    ) -> Result<ItemOutcome, ConnectorError> {
        let url = self.contact_url(resource_name, ":deleteContact")?;
        let done = self.people(mailbox).remove(mailbox, |http| http.delete(&url)).await?;
        Ok(removed(
            done,
            json!({"mailbox": mailbox, "resourceName": resource_name, "deleted": true}),
        ))
    }

    /// Whether the service account reaches `property` through the Admin API
    /// (`properties.get`, the role deletions there need).
    pub(crate) async fn read_property(&self, property: &str) -> Result<(), ConnectorError> {
        let url = format!(
            "{}/properties/{property}",
            self.config.analytics_admin_url.trim_end_matches('/')
        );
        self.admin
            .json::<Property>(property, |http| http.get(&url))
            .await
            .map(drop)
            .map_err(|e| e.explain_forbidden(&self.property_role(property)))
    }

    /// Submits one Analytics deletion; returns Google's `deletionRequestTime`.
    async fn submit_user_deletion(&self, property: &str, id_type: &str, value: &str) -> Result<String, ConnectorError> {
        let time = if id_type == "userProvidedData" {
            let url = format!(
                "{}/properties/{property}:submitUserDeletion",
                self.config.analytics_admin_url.trim_end_matches('/'),
            );
            let body = json!({"userProvidedData": value});
            self.admin
                .json::<SubmitUserDeletionResponse>(property, |http| http.post(&url).json(&body))
                .await
                .map(|answer| answer.deletion_request_time)
        } else {
            let url = format!(
                "{}/userDeletion/userDeletionRequests:upsert",
                self.config.analytics_url.trim_end_matches('/')
            );
            let body = json!({
                "kind": "analytics#userDeletionRequest",
                "id": {"type": id_type, "userId": value},
                "propertyId": property,
            });
            self.deletion
                .json::<UserDeletionRequest>(property, |http| http.post(&url).json(&body))
                .await
                .map(|answer| answer.deletion_request_time)
        };
        time.map_err(|e| e.explain_forbidden(&self.property_role(property)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsr_connector::{Email, Phone};

    #[test]
    fn user_provided_data_is_normalised_as_google_documents() {
        let cases = [
            (normalise_email(" Kari.Nordmann@GMail.com"), "karinordmann@gmail.com"),
            (normalise_email("Kari.Nordmann@Example.no"), "kari.nordmann@example.no"),
            (normalise_email("a.b@googlemail.com"), "ab@googlemail.com"),
            (normalise_phone("+47 912 34 567"), "+4791234567"),
        ];
        for (sent, documented) in cases {
            assert_eq!(sent, documented);
        }
    }

    #[test]
    fn each_identifier_goes_to_one_api_per_property() {
        let subject = Identities {
            emails: vec![Email::parse("kari@example.no").unwrap()],
            phones: vec![Phone::parse("91234567", "NO").unwrap()],
            ga_client_ids: vec!["1.2".into()],
            ga_user_ids: vec!["u".into()],
            ..Default::default()
        };
        let properties = vec!["1".to_string(), "2".to_string()];
        assert_eq!(plan_deletions(&subject, &properties, false).len(), 4);
        let all = plan_deletions(&subject, &properties, true);
        assert_eq!(all.len(), 8);
        assert_eq!(all.iter().filter(|p| p.id_type == "userProvidedData").count(), 4);
    }

    #[test]
    fn each_request_claims_the_subjects_own_identifier() {
        let subject = Identities {
            emails: vec![Email::parse("Kari.Nordmann@gmail.com").unwrap()],
            ga_client_ids: vec!["1.2".into()],
            ..Default::default()
        };
        let items: Vec<PlanItem> = plan_deletions(&subject, &["1".to_string()], true)
            .iter()
            .map(Planned::item)
            .collect();
        assert_eq!(items.len(), 2);
        for item in &items {
            assert!(
                dsr_connector::check_claims(&subject, &item.data, &item.claims).is_ok(),
                "{item:?}"
            );
        }
        assert_eq!(
            items[1].key, "analytics_user 1 userProvidedData kari.nordmann@gmail.com",
            "keyed by what she gave, not the normalised form"
        );
        assert_eq!(items[1].data["identifier"], "kari.nordmann@gmail.com");
        assert_eq!(
            items[1].target["value"], "karinordmann@gmail.com",
            "the call sends what userProvidedData wants"
        );
        let other = Identities {
            ga_client_ids: vec!["1.3".into()],
            ..Default::default()
        };
        assert!(dsr_connector::check_claims(&other, &items[0].data, &items[0].claims).is_err());
    }
}
