//! Google Workspace contacts (People API, domain-wide delegation). The whole list is paged
//! through `people/me/connections`: `searchContacts` is a prefix match capped at 30 results
//! with no paging, too incomplete for a legal request. Mutations for one user go one at a
//! time, as Google requires. Erasure plans a `deleteContact` per contact, rectification an
//! `updateContact` with the etag the contact was read with (sent again with a fresh etag only
//! while the contact still holds what the plan read)
//! (https://developers.google.com/people/api/rest/v1/people/deleteContact,
//! https://developers.google.com/people/api/rest/v1/people/updateContact).

use dsr_connector::http::VendorClient;
use dsr_connector::{
    Action, ConnectorError, FieldChange, Identities, IdentityKind, ItemOutcome, MatchClaim, Phone, PlanItem, Record,
    RecordSink, RectifyField, TaskContext, correct_values,
};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::client::is_stale;
use crate::wire::{Address, ConnectionList, EmailAddress, OtherContactList, Person, PersonUpdate, PhoneNumber, fields};
use crate::{Call, Google};

pub const SCOPE_CONTACTS: &str = "https://www.googleapis.com/auth/contacts";
/// Read-only: the People API can list "other contacts" but offers no way to delete them.
pub const SCOPE_OTHER_CONTACTS: &str = "https://www.googleapis.com/auth/contacts.other.readonly";
const OTHER_CONTACT_FIELDS: &str = "names,emailAddresses,phoneNumbers,metadata";

/// Why other contacts are kept after an erasure, and what the mailbox owner does instead.
pub const OTHER_CONTACTS_KEPT: &str = "Google keeps the addresses Gmail saves from mail as \"other contacts\", and its People API offers no way to delete them (copying one into My Contacts and deleting the copy leaves the original). The owner of each mailbox listed must remove them in Google Contacts > Other contacts.";
const PERSON_FIELDS: &str = "names,emailAddresses,phoneNumbers,organizations,addresses,metadata";

/// The plan category of a contact (the bundle's too).
pub const CATEGORY: &str = "contacts";
const ALREADY: &str = "already as requested";
const NOTHING_SETTABLE: &str = "none of the fields asked for can be set on a Google contact (see the notes)";

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
                    |e| {
                        e.value
                            .as_deref()
                            .is_some_and(|v| subject.owns_email(v) || v.trim().eq_ignore_ascii_case(change.value.trim()))
                    },
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
                            || is_number(p, &change.value, subject)
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

/// `updateContact` with `updatePersonFields` = `mask`.
async fn send_update(
    client: &VendorClient,
    mailbox: &str,
    url: &str,
    mask: String,
    body: Value,
) -> Result<Person, ConnectorError> {
    client
        .json::<Person>(mailbox, |http| {
            http.patch(url)
                .query(&[("updatePersonFields", mask.as_str())])
                .json(&body)
        })
        .await
}

/// Whether `entry` is the number `requested` (an international number in any region; a
/// national one in the subject's region when the request gives one; else by its digits).
fn is_number(entry: &PhoneNumber, requested: &str, subject: &Identities) -> bool {
    let Some(written) = entry.canonical_form.as_deref().or(entry.value.as_deref()) else {
        return false;
    };
    // The region only reads a national number; an international one is the same anywhere.
    let region = subject
        .phone_region
        .as_deref()
        .or(requested.trim_start().starts_with('+').then_some("US"));
    match region.and_then(|r| Phone::parse(requested, r).ok()) {
        Some(number) => number.matches_in(written, subject.phone_region.as_deref()),
        None => {
            let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
            !digits(requested).is_empty() && digits(requested) == digits(written)
        }
    }
}

/// Whether `person` already holds what `change` asks for, so it needs no update.
fn already_set(person: &Person, change: &FieldChange, subject: &Identities) -> bool {
    let value = change.value.as_str();
    let name = person.names.first();
    let organization = person.organizations.first();
    match change.field {
        RectifyField::GivenName => name.and_then(|n| n.given_name.as_deref()) == Some(value),
        RectifyField::FamilyName => name.and_then(|n| n.family_name.as_deref()) == Some(value),
        // Not settable (Google builds it): a note, never an update.
        RectifyField::DisplayName => false,
        RectifyField::Company => organization.and_then(|o| o.name.as_deref()) == Some(value),
        RectifyField::JobTitle => organization.and_then(|o| o.title.as_deref()) == Some(value),
        RectifyField::Email => {
            let is_new = |v: &str| v.trim().eq_ignore_ascii_case(value.trim());
            let values = || person.email_addresses.iter().filter_map(|e| e.value.as_deref());
            values().any(is_new) && !values().any(|v| subject.owns_email(v) && !is_new(v))
        }
        RectifyField::Phone => {
            let is_new = |p: &PhoneNumber| is_number(p, value, subject);
            let old = |p: &PhoneNumber| {
                p.canonical_form
                    .as_deref()
                    .or(p.value.as_deref())
                    .is_some_and(|v| subject.owns_phone(v))
            };
            person.phone_numbers.iter().any(is_new) && !person.phone_numbers.iter().any(|p| old(p) && !is_new(p))
        }
        RectifyField::Address => {
            person.addresses.len() == 1 && person.addresses[0].formatted_value.as_deref() == Some(value)
        }
    }
}

/// The person field a rectifiable field is kept in.
fn person_field(field: RectifyField) -> &'static str {
    match field {
        RectifyField::GivenName | RectifyField::FamilyName | RectifyField::DisplayName => "names",
        RectifyField::Company | RectifyField::JobTitle => "organizations",
        RectifyField::Email => "emailAddresses",
        RectifyField::Phone => "phoneNumbers",
        RectifyField::Address => "addresses",
    }
}

/// The current values of the person fields `changes` concern, by Google's field names.
fn current_values(person: &Person, changes: &[FieldChange]) -> Value {
    let all = fields(person);
    let mut values = Map::new();
    for change in changes {
        let name = person_field(change.field);
        values.insert(name.into(), all.get(name).cloned().unwrap_or(Value::Null));
    }
    Value::Object(values)
}

/// Before and after of each field `update` replaces on `person`.
fn before_after(update: &PersonUpdate, person: &Person) -> (Value, Value) {
    let (mut before, mut after) = (Map::new(), Map::new());
    for (field, was, will) in update.changes(person, update) {
        before.insert(field.into(), was);
        after.insert(field.into(), will);
    }
    (Value::Object(before), Value::Object(after))
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

    /// One `deleteContact` item per contact of the subject's in each mailbox.
    pub async fn plan_contact_deletion(&self, subject: &Identities) -> Result<Vec<PlanItem>, ConnectorError> {
        let mut items = Vec::new();
        for mailbox in self.config.workspace.iter().flat_map(|w| &w.mailboxes) {
            for person in self.find_contacts(mailbox, subject).await? {
                let target = Call::DeleteContact {
                    mailbox: mailbox.clone(),
                    resource_name: person.resource_name.clone(),
                };
                items.push(PlanItem::new(
                    format!("{CATEGORY} {mailbox}/{}", person.resource_name),
                    CATEGORY,
                    Action::Delete,
                    json!(target),
                    json!(person),
                    person_claims(&person, subject),
                ));
            }
        }
        Ok(items)
    }

    /// `deleteContact`; a contact gone meanwhile (404) is gone all the same: `Ok(false)`.
    pub(crate) async fn delete_contact(&self, mailbox: &str, resource_name: &str) -> Result<bool, ConnectorError> {
        let url = self.people_url(&format!("{resource_name}:deleteContact"));
        self.people(mailbox).remove(mailbox, |http| http.delete(&url)).await
    }

    /// One item per contact of the subject's in each mailbox: `Patch` with the fields'
    /// values before and after, or `Keep` with their current values when nothing differs.
    /// Also the notes on fields Google does not let dsr set.
    pub async fn plan_rectification(
        &self,
        subject: &Identities,
        changes: &[FieldChange],
    ) -> Result<(Vec<PlanItem>, Vec<String>), ConnectorError> {
        let (mut items, mut notes) = (Vec::new(), Vec::<String>::new());
        for mailbox in self.config.workspace.iter().flat_map(|w| &w.mailboxes) {
            for person in self.find_contacts(mailbox, subject).await? {
                let pending: Vec<FieldChange> = changes
                    .iter()
                    .filter(|c| !already_set(&person, c, subject))
                    .cloned()
                    .collect();
                let (update, skipped) = changes_for(&person, &pending, subject);
                for note in skipped {
                    if !notes.contains(&note) {
                        notes.push(note);
                    }
                }
                let key = format!("{CATEGORY} {mailbox}/{}", person.resource_name);
                let claims = person_claims(&person, subject);
                let item = if update.mask().is_empty() {
                    let reason = if pending.is_empty() { ALREADY } else { NOTHING_SETTABLE };
                    PlanItem::new(key, CATEGORY, Action::Keep, Value::Null, json!(person), claims)
                        .before(current_values(&person, changes))
                        .reason(reason)
                } else {
                    let (before, after) = before_after(&update, &person);
                    let target = Call::UpdateContact {
                        mailbox: mailbox.clone(),
                        resource_name: person.resource_name.clone(),
                        update_person_fields: update.mask().iter().map(|f| f.to_string()).collect(),
                        body: json!(update.for_person(&person)),
                    };
                    PlanItem::new(key, CATEGORY, Action::Patch, json!(target), json!(person), claims)
                        .before(before)
                        .after(after)
                };
                items.push(item);
            }
        }
        Ok((items, notes))
    }

    /// `updateContact` with the body and etag the item was planned with. When Google refuses
    /// it because the contact changed since (a stale etag), the contact is read again:
    /// already as the item asks, done; still holding what the plan read (`before`) in every
    /// field the update replaces, and still hers, the same planned body once more with the
    /// fresh etag and source etags (only they differ); otherwise changed since the plan: an
    /// error naming `dsr retry`, nothing sent. `call` is the item's planned call: the
    /// mailbox, the contact's resourceName, `updatePersonFields` and the body.
    pub(crate) async fn update_contact(
        &self,
        ctx: &TaskContext,
        subject: &Identities,
        changes: &[FieldChange],
        item: &PlanItem,
        call: (&str, &str, &[String], &Value),
    ) -> Result<ItemOutcome, ConnectorError> {
        let (mailbox, resource_name, mask, body) = call;
        let client = self.people(mailbox);
        let url = self.people_url(&format!("{resource_name}:updateContact"));
        let send = |body: Value| send_update(&client, mailbox, &url, mask.join(","), body);
        let updated = match send(body.clone()).await {
            // Changed since it was read: read it again.
            Err(e) if is_stale(&e) => {
                let url = self.people_url(resource_name);
                let fresh: Person = match client
                    .json(mailbox, |http| http.get(&url).query(&[("personFields", PERSON_FIELDS)]))
                    .await
                {
                    Ok(fresh) => fresh,
                    Err(e) if e.is_not_found() => return Ok(ItemOutcome::AlreadyGone),
                    Err(e) => return Err(e),
                };
                // Already so (someone made the same correction, or this item's call was made
                // once before and re-delivered): no second change.
                let pending: Vec<FieldChange> = changes
                    .iter()
                    .filter(|c| !already_set(&fresh, c, subject))
                    .cloned()
                    .collect();
                if changes_for(&fresh, &pending, subject).0.mask().is_empty() {
                    return Ok(ItemOutcome::Done(
                        json!({"resourceName": resource_name, "unchanged": true, "already_as_requested": true}),
                    ));
                }
                let all = fields(&fresh);
                let now: Map<String, Value> = mask
                    .iter()
                    .map(|f| (f.clone(), all.get(f).cloned().unwrap_or(Value::Null)))
                    .collect();
                if person_claims(&fresh, subject).is_empty() {
                    return Err(changed_since_plan(
                        ctx,
                        item,
                        "no longer holds the subject's address or number",
                    ));
                }
                if item.before.as_ref().and_then(Value::as_object) != Some(&now) {
                    return Err(changed_since_plan(ctx, item, "the fields it corrects were changed"));
                }
                // The planned body; only the versions it carries are the fresh contact's.
                // (`metadata.sources[].etag` is a version too: updateContact refuses a stale one.)
                let mut body = body.clone();
                if let Some(fields) = body.as_object_mut() {
                    fields.insert("etag".into(), json!(fresh.etag));
                    match &fresh.metadata {
                        Some(metadata) => fields.insert("metadata".into(), metadata.clone()),
                        None => fields.remove("metadata"),
                    };
                }
                send(body).await?
            }
            other => other?,
        };
        let now = fields(&updated);
        let after: Map<String, Value> = mask
            .iter()
            .map(|f| (f.clone(), now.get(f).cloned().unwrap_or(Value::Null)))
            .collect();
        Ok(ItemOutcome::Done(
            json!({"resourceName": resource_name, "etag": updated.etag, "fields": after}),
        ))
    }
}

/// The contact no longer holds what the plan read: the stored plan is not carried out, and the
/// operator plans again.
fn changed_since_plan(ctx: &TaskContext, item: &PlanItem, what: &str) -> ConnectorError {
    ConnectorError::Permanent {
        processor: crate::client::PROCESSOR,
        code: "changed_since_plan".into(),
        message: format!(
            "plan item `{}`: the contact changed since the plan was made (stale etag) and {what}, so the planned \
             change was not sent; run `dsr retry {} --processor {}` to plan again",
            item.key,
            ctx.request_id,
            crate::client::PROCESSOR
        ),
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
