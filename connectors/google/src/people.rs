//! Google Workspace contacts (People API, domain-wide delegation). The whole list is paged
//! through `people/me/connections`: `searchContacts` is a prefix match capped at 30 results
//! with no paging, too incomplete for a legal request. Mutations for one user go one at a
//! time, as Google requires.

use dsr_connector::http::VendorClient;
use dsr_connector::{
    ConnectorError, FieldChange, Identities, IdentityKind, MatchClaim, Record, RecordSink, RectifyField, TaskContext,
    correct_values,
};
use serde::Serialize;
use serde_json::{Value, json};

use crate::Google;
use crate::client::is_stale;
use crate::wire::{Address, ConnectionList, EmailAddress, OtherContactList, Person, PersonUpdate, PhoneNumber};

pub const SCOPE_CONTACTS: &str = "https://www.googleapis.com/auth/contacts";
/// Read-only: the People API can list "other contacts" but offers no way to delete them.
pub const SCOPE_OTHER_CONTACTS: &str = "https://www.googleapis.com/auth/contacts.other.readonly";
const OTHER_CONTACT_FIELDS: &str = "names,emailAddresses,phoneNumbers,metadata";

/// Why other contacts are kept after an erasure, and what the mailbox owner does instead.
pub const OTHER_CONTACTS_KEPT: &str = "Google keeps the addresses Gmail saves from mail as \"other contacts\", and its People API offers no way to delete them (copying one into My Contacts and deleting the copy leaves the original). The owner of each mailbox listed must remove them in Google Contacts > Other contacts.";
const PERSON_FIELDS: &str = "names,emailAddresses,phoneNumbers,organizations,addresses,metadata";

/// One page of a People list: its people and the next page's token.
trait PeoplePage: serde::de::DeserializeOwned {
    fn into_parts(self) -> (Vec<Person>, Option<String>);
}

impl PeoplePage for ConnectionList {
    fn into_parts(self) -> (Vec<Person>, Option<String>) {
        (self.connections, self.next_page_token)
    }
}

impl PeoplePage for OtherContactList {
    fn into_parts(self) -> (Vec<Person>, Option<String>) {
        (self.other_contacts, self.next_page_token)
    }
}

/// A user's address books: the contacts they keep, and those Gmail saved from mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Book {
    Contacts,
    OtherContacts,
}

impl Book {
    /// The bundle category its entries go in.
    pub fn category(self) -> &'static str {
        match self {
            Book::Contacts => "contacts",
            Book::OtherContacts => "other_contacts",
        }
    }
}

/// A contact as exported: the person as People returns it, and the mailbox it is in.
#[derive(Serialize)]
struct ContactRecord<'a> {
    #[serde(flatten)]
    person: &'a Person,
    mailbox: &'a str,
}

/// Where a contact holds one of the subject's addresses or phone numbers (the core's rule;
/// a phone by Google's `canonicalForm` where it gave one, else as typed).
pub fn person_claims(person: &Person, subject: &Identities) -> Vec<MatchClaim> {
    let emails = person.email_addresses.iter().enumerate().filter_map(|(i, e)| {
        e.value
            .as_deref()
            .filter(|v| subject.owns(IdentityKind::Email, v))
            .map(|_| MatchClaim::email(format!("/emailAddresses/{i}/value")))
    });
    let phones = person.phone_numbers.iter().enumerate().filter_map(|(i, p)| {
        let (field, value) = match (&p.canonical_form, &p.value) {
            (Some(c), _) => ("canonicalForm", c),
            (None, Some(v)) => ("value", v),
            (None, None) => return None,
        };
        subject
            .owns(IdentityKind::Phone, value)
            .then(|| MatchClaim::phone(format!("/phoneNumbers/{i}/{field}")))
    });
    emails.chain(phones).collect()
}

/// The fields to change on one person (each replaced whole, as `updatePersonFields` does);
/// unsupported fields noted.
pub fn changes_for(person: &Person, changes: &[FieldChange], subject: &Identities) -> (PersonUpdate, Vec<String>) {
    let mut update = PersonUpdate::default();
    let mut notes = Vec::new();
    // Names and organizations: the first entry is corrected, its other fields kept.
    let mut name = person.names.first().cloned();
    let mut organization = person.organizations.first().cloned();
    for change in changes {
        let value = Some(change.value.clone());
        match change.field {
            RectifyField::GivenName => name.get_or_insert_with(Default::default).given_name = value,
            RectifyField::FamilyName => name.get_or_insert_with(Default::default).family_name = value,
            RectifyField::DisplayName => notes.push(
                "display_name: Google builds a contact's display name from its name fields; set given_name and family_name".into(),
            ),
            RectifyField::Company => organization.get_or_insert_with(Default::default).name = value,
            RectifyField::JobTitle => organization.get_or_insert_with(Default::default).title = value,
            // One rule for every processor: the entries that are the subject's are
            // corrected, the record's other entries stay (dsr_connector::correct_values).
            RectifyField::Email => {
                let list = correct_values(
                    &person.email_addresses,
                    |e| e.value.as_deref().is_some_and(|v| subject.owns_email(v)),
                    |e| EmailAddress {
                        value: value.clone(),
                        ..e.clone()
                    },
                    || EmailAddress {
                        value: value.clone(),
                        ..Default::default()
                    },
                );
                update.email_addresses = Some(list);
            }
            RectifyField::Phone => {
                let list = correct_values(
                    &person.phone_numbers,
                    |p| {
                        p.canonical_form
                            .as_deref()
                            .or(p.value.as_deref())
                            .is_some_and(|v| subject.owns_phone(v))
                    },
                    |p| PhoneNumber {
                        value: value.clone(),
                        canonical_form: None,
                        ..p.clone()
                    },
                    || PhoneNumber {
                        value: value.clone(),
                        kind: Some("mobile".into()),
                        ..Default::default()
                    },
                );
                update.phone_numbers = Some(list);
            }
            RectifyField::Address => {
                update.addresses = Some(vec![Address {
                    formatted_value: value,
                    kind: Some("home".into()),
                    ..Default::default()
                }]);
            }
        }
    }
    if name.as_ref() != person.names.first() {
        update.names = name.map(|n| vec![n]);
    }
    if organization.as_ref() != person.organizations.first() {
        update.organizations = organization.map(|o| vec![o]);
    }
    (update, notes)
}

/// Before and after per field an update replaces.
fn field_changes(update: &PersonUpdate, before: &impl Serialize, after: &impl Serialize) -> Vec<Value> {
    update
        .changes(before, after)
        .into_iter()
        .map(|(field, before, after)| json!({"field": field, "before": before, "after": after}))
        .collect()
}

impl Google {
    fn people(&self, mailbox: &str) -> VendorClient {
        self.client_for(&[SCOPE_CONTACTS], Some(mailbox))
    }

    fn people_url(&self, path: &str) -> String {
        format!("{}/{path}", self.config.people_url.trim_end_matches('/'))
    }

    /// The subject's contacts in `mailbox`'s address book.
    pub async fn find_contacts(&self, mailbox: &str, subject: &Identities) -> Result<Vec<Person>, ConnectorError> {
        let client = self.people(mailbox);
        let url = self.people_url("people/me/connections");
        self.matching::<ConnectionList>(&client, mailbox, &url, ("personFields", PERSON_FIELDS), subject)
            .await
    }

    /// The subject's "other contacts" in `mailbox` (addresses Workspace saved from mail).
    pub async fn find_other_contacts(
        &self,
        mailbox: &str,
        subject: &Identities,
    ) -> Result<Vec<Person>, ConnectorError> {
        let client = self.client_for(&[SCOPE_OTHER_CONTACTS], Some(mailbox));
        let url = self.people_url("otherContacts");
        self.matching::<OtherContactList>(&client, mailbox, &url, ("readMask", OTHER_CONTACT_FIELDS), subject)
            .await
    }

    /// Every page of a People list at `url`, keeping the entries that are the subject's.
    async fn matching<P: PeoplePage>(
        &self,
        client: &VendorClient,
        mailbox: &str,
        url: &str,
        fields: (&str, &str),
        subject: &Identities,
    ) -> Result<Vec<Person>, ConnectorError> {
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![(fields.0, fields.1.to_string()), ("pageSize", "1000".to_string())];
            if let Some(t) = &token {
                query.push(("pageToken", t.clone()));
            }
            let page: P = client.json(mailbox, |http| http.get(url).query(&query)).await?;
            let (people, next) = page.into_parts();
            found.extend(people.into_iter().filter(|p| !person_claims(p, subject).is_empty()));
            token = next;
            if token.is_none() {
                return Ok(found);
            }
        }
    }

    /// Other contacts cannot be deleted through the API: how many there are, per mailbox, to
    /// report as retained with the manual step.
    pub async fn count_other_contacts(&self, subject: &Identities) -> Result<Vec<(String, u64)>, ConnectorError> {
        let mut counts = Vec::new();
        for mailbox in self.config.workspace.iter().flat_map(|w| &w.mailboxes) {
            let n = self.find_other_contacts(mailbox, subject).await?.len() as u64;
            if n > 0 {
                counts.push((mailbox.clone(), n));
            }
        }
        Ok(counts)
    }

    /// Exports the subject's entries in one address book of every mailbox; returns how many.
    pub async fn export_book(
        &self,
        book: Book,
        subject: &Identities,
        sink: &mut dyn RecordSink,
    ) -> Result<u64, ConnectorError> {
        let Some(workspace) = &self.config.workspace else {
            return Ok(0);
        };
        let mut count = 0;
        for mailbox in &workspace.mailboxes {
            let people = match book {
                Book::Contacts => self.find_contacts(mailbox, subject).await?,
                Book::OtherContacts => self.find_other_contacts(mailbox, subject).await?,
            };
            for person in people {
                let data = json!(ContactRecord {
                    person: &person,
                    mailbox,
                });
                sink.accept(Record {
                    category: book.category().into(),
                    claims: person_claims(&person, subject),
                    id: Some(person.resource_name),
                    provided_by_subject: false,
                    data,
                })
                .await?;
                count += 1;
            }
        }
        Ok(count)
    }

    pub async fn erase_contacts(
        &self,
        ctx: &TaskContext,
        subject: &Identities,
    ) -> Result<(u64, u64, Vec<Value>), ConnectorError> {
        let dry_run = ctx.dry_run;
        let Some(workspace) = &self.config.workspace else {
            return Ok((0, 0, vec![]));
        };
        let (mut found, mut changed) = (0, 0);
        let mut evidence = Vec::new();
        for mailbox in &workspace.mailboxes {
            let people = self.find_contacts(mailbox, subject).await?;
            found += people.len() as u64;
            if dry_run {
                continue;
            }
            let client = self.people(mailbox);
            for person in people {
                if !ctx.permit(
                    subject,
                    &format!("contact {}", person.resource_name),
                    &json!(person),
                    &person_claims(&person, subject),
                ) {
                    continue;
                }
                let resource = person.resource_name;
                let url = self.people_url(&format!("{resource}:deleteContact"));
                client.remove(mailbox, |http| http.delete(&url)).await?;
                changed += 1;
                evidence.push(json!({"mailbox": mailbox, "contact": resource}));
            }
        }
        Ok((found, changed, evidence))
    }

    /// Sends `update` for `person`, with the etag and sources it was read with.
    async fn update_contact(
        &self,
        client: &VendorClient,
        mailbox: &str,
        person: &Person,
        update: &PersonUpdate,
    ) -> Result<Person, ConnectorError> {
        let mask = update.mask();
        let url = self.people_url(&format!("{}:updateContact", person.resource_name));
        let payload = update.for_person(person);
        client
            .json(mailbox, |http| {
                http.patch(&url)
                    .query(&[("updatePersonFields", mask.join(","))])
                    .json(&payload)
            })
            .await
    }

    /// Applies `changes` to the subject's contacts; returns (found, changed, evidence, notes).
    pub async fn rectify_contacts(
        &self,
        ctx: &TaskContext,
        subject: &Identities,
        changes: &[FieldChange],
    ) -> Result<(u64, u64, Vec<Value>, Vec<String>), ConnectorError> {
        let dry_run = ctx.dry_run;
        let Some(workspace) = &self.config.workspace else {
            return Ok((0, 0, vec![], vec![]));
        };
        let (mut found, mut changed) = (0, 0);
        let (mut evidence, mut notes) = (Vec::new(), Vec::new());
        for mailbox in &workspace.mailboxes {
            let client = self.people(mailbox);
            for person in self.find_contacts(mailbox, subject).await? {
                found += 1;
                let claims = person_claims(&person, subject);
                if !dry_run
                    && !ctx.permit(
                        subject,
                        &format!("contact {}", person.resource_name),
                        &json!(person),
                        &claims,
                    )
                {
                    continue;
                }
                let (update, skipped) = changes_for(&person, changes, subject);
                notes.extend(skipped.into_iter().filter(|n| !notes.contains(n)).collect::<Vec<_>>());
                if update.mask().is_empty() || dry_run {
                    evidence.push(json!({"mailbox": mailbox, "contact": person.resource_name, "would_change": update}));
                    continue;
                }
                let (updated, update) = match self.update_contact(&client, mailbox, &person, &update).await {
                    // Changed since we read it: read it again and try once more.
                    Err(e) if is_stale(&e) => {
                        let url = self.people_url(&person.resource_name);
                        let fresh: Person = client
                            .json(mailbox, |http| http.get(&url).query(&[("personFields", PERSON_FIELDS)]))
                            .await?;
                        // Read again: it must still be hers before it is patched.
                        let claims = person_claims(&fresh, subject);
                        if !ctx.permit(
                            subject,
                            &format!("contact {}", fresh.resource_name),
                            &json!(fresh),
                            &claims,
                        ) {
                            continue;
                        }
                        let (update, _) = changes_for(&fresh, changes, subject);
                        (self.update_contact(&client, mailbox, &fresh, &update).await?, update)
                    }
                    other => (other?, update),
                };
                changed += 1;
                evidence.push(json!({"mailbox": mailbox, "contact": person.resource_name,
                    "fields": field_changes(&update, &person, &updated)}));
            }
        }
        Ok((found, changed, evidence, notes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsr_connector::{Email, Phone, decode};

    fn person(fields: Value) -> Person {
        let mut body = json!({"resourceName": "people/c1", "etag": "%E1"});
        body.as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        decode(body).unwrap()
    }

    #[test]
    fn contacts_match_by_exact_address_or_canonical_phone() {
        let subject = Identities {
            emails: vec![Email::parse("kari.nordmann@example.no").unwrap()],
            phones: vec![Phone::parse("912 34 567", "NO").unwrap()],
            ..Default::default()
        };
        let claims = |p: Value| person_claims(&person(p), &subject);
        assert_eq!(
            claims(json!({"emailAddresses": [{"value": "per@x.no"}, {"value": "KARI.NORDMANN@example.no"}]})),
            [MatchClaim::email("/emailAddresses/1/value")]
        );
        assert!(claims(json!({"emailAddresses": [{"value": "annkari.nordmann@example.no"}]})).is_empty());
        assert_eq!(
            claims(json!({"phoneNumbers": [{"value": "912 34 567", "canonicalForm": "+4791234567"}]})),
            [MatchClaim::phone("/phoneNumbers/0/canonicalForm")]
        );
        assert_eq!(
            claims(json!({"phoneNumbers": [{"value": "+47 912 34 567"}]})),
            [MatchClaim::phone("/phoneNumbers/0/value")],
            "without Google's canonical form, the number as typed"
        );
        assert!(
            claims(json!({"phoneNumbers": [{"value": "+47 22 00 00 00", "canonicalForm": "+4722000000"}]})).is_empty()
        );
    }

    #[test]
    fn only_the_named_fields_change() {
        let person = person(json!({"names": [{"givenName": "Kari", "familyName": "Nordmann"}],
            "organizations": [{"name": "A", "title": "B"}]}));
        let changes = vec![FieldChange {
            field: RectifyField::FamilyName,
            value: "Hansen".into(),
        }];
        let (update, _) = changes_for(&person, &changes, &Identities::default());
        assert_eq!(update.mask(), ["names"]);
        assert_eq!(
            serde_json::to_value(&update).unwrap(),
            json!({"names": [{"givenName": "Kari", "familyName": "Hansen"}]})
        );
    }

    #[test]
    fn addresses_and_phones_are_replaced_keeping_the_other_entries() {
        let person = person(json!({
            "emailAddresses": [{"value": "kari@example.no", "type": "home"}, {"value": "kari@jobb.no", "type": "work"}],
            "phoneNumbers": [{"value": "22 33 44 55", "type": "work"}, {"value": "912 34 567", "type": "mobile"}]}));
        let subject = Identities {
            emails: vec![Email::parse("kari@example.no").unwrap()],
            phones: vec![Phone::parse("912 34 567", "NO").unwrap()],
            ..Default::default()
        };
        let changes = [
            FieldChange {
                field: RectifyField::Email,
                value: "kari.hansen@example.no".into(),
            },
            FieldChange {
                field: RectifyField::Phone,
                value: "+47 987 65 432".into(),
            },
        ];
        let (update, _) = changes_for(&person, &changes, &subject);
        assert_eq!(update.mask(), ["emailAddresses", "phoneNumbers"]);
        assert_eq!(
            serde_json::to_value(&update).unwrap(),
            json!({
                "emailAddresses": [{"value": "kari.hansen@example.no", "type": "home"}, {"value": "kari@jobb.no", "type": "work"}],
                "phoneNumbers": [{"value": "22 33 44 55", "type": "work"}, {"value": "+47 987 65 432", "type": "mobile"}]}),
            "her number is replaced in place; the office number stays"
        );
    }
}
