//! Google Workspace contacts (People API, domain-wide delegation): finding the subject's
//! entries in a user's address books, which access, erasure and rectification all start from.
//! The whole list is paged through `people/me/connections`: `searchContacts` is a prefix match
//! capped at 30 results with no paging, too incomplete for a legal request. "Other contacts"
//! (addresses Gmail saved from mail) are listed the same way, with their own read-only scope.
//! https://developers.google.com/people/api/rest/v1/people.connections/list,
//! https://developers.google.com/people/api/rest/v1/otherContacts/list

use dsr_connector::http::{PageGuard, VendorClient, path_segment};
use dsr_connector::{ConnectorError, Identities, IdentityKind, MatchClaim};
use futures::{StreamExt, TryStreamExt};

use crate::Google;
use crate::client::{MAX_PAGES, PROCESSOR};
use crate::wire::{ConnectionList, OtherContactList, Person};

pub const SCOPE_CONTACTS: &str = "https://www.googleapis.com/auth/contacts";
/// Read-only: the People API can list "other contacts" but offers no way to delete them.
pub const SCOPE_OTHER_CONTACTS: &str = "https://www.googleapis.com/auth/contacts.other.readonly";
const OTHER_CONTACT_FIELDS: &str = "names,emailAddresses,phoneNumbers,metadata";
/// The person fields read, and read again before a retried update (`people.get`).
pub const PERSON_FIELDS: &str = "names,emailAddresses,phoneNumbers,organizations,addresses,metadata";

/// The plan and bundle category of a contact.
pub const CATEGORY: &str = "contacts";

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
            Book::Contacts => CATEGORY,
            Book::OtherContacts => "other_contacts",
        }
    }
}

/// One page of a People list: its people and the next page's token.
trait PeoplePage: serde::de::DeserializeOwned {
    /// The list method, for errors.
    const METHOD: &'static str;
    fn into_parts(self) -> (Vec<Person>, Option<String>);
}

impl PeoplePage for ConnectionList {
    const METHOD: &'static str = "people.connections.list";
    fn into_parts(self) -> (Vec<Person>, Option<String>) {
        (self.connections, self.next_page_token)
    }
}

impl PeoplePage for OtherContactList {
    const METHOD: &'static str = "otherContacts.list";
    fn into_parts(self) -> (Vec<Person>, Option<String>) {
        (self.other_contacts, self.next_page_token)
    }
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

impl Google {
    /// Contacts of `mailbox`, read and changed with the contacts scope.
    pub(crate) fn people(&self, mailbox: &str) -> VendorClient {
        self.client_for(&[SCOPE_CONTACTS], Some(mailbox))
            .with_limiter(self.people_limits.clone())
    }

    /// `people/{id}` with the id one encoded path segment: a contact's resource name is
    /// vendor data and must not move a call elsewhere on the host.
    pub(crate) fn contact_url(&self, resource_name: &str, method: &str) -> Result<String, ConnectorError> {
        let id = resource_name.strip_prefix("people/").ok_or_else(|| {
            ConnectorError::permanent(
                PROCESSOR,
                "unexpected_response",
                "Google named a contact whose resource name does not start with `people/`; nothing was sent",
            )
        })?;
        Ok(self.people_url(&format!("people/{}{method}", path_segment(PROCESSOR, id)?)))
    }

    pub(crate) fn people_url(&self, path: &str) -> String {
        format!("{}/{path}", self.config.people_url.trim_end_matches('/'))
    }

    /// The subject's entries in one address book of `mailbox`.
    pub(crate) async fn find_in(
        &self,
        book: Book,
        mailbox: &str,
        subject: &Identities,
    ) -> Result<Vec<Person>, ConnectorError> {
        match book {
            Book::Contacts => {
                let url = self.people_url("people/me/connections");
                let mask = ("personFields", PERSON_FIELDS);
                matching::<ConnectionList>(&self.people(mailbox), mailbox, &url, mask, subject).await
            }
            Book::OtherContacts => {
                let client = self
                    .client_for(&[SCOPE_OTHER_CONTACTS], Some(mailbox))
                    .with_limiter(self.people_limits.clone());
                let url = self.people_url("otherContacts");
                let mask = ("readMask", OTHER_CONTACT_FIELDS);
                matching::<OtherContactList>(&client, mailbox, &url, mask, subject).await
            }
        }
    }

    /// The subject's entries in each of `books` of each of `mailboxes`, listed together (each
    /// list's pages follow one another); in the order asked, books first.
    pub(crate) async fn find_in_all(
        &self,
        books: &[Book],
        mailboxes: &[&str],
        subject: &Identities,
    ) -> Result<Vec<(Book, String, Vec<Person>)>, ConnectorError> {
        let lists: Vec<_> = books
            .iter()
            .flat_map(|book| {
                mailboxes.iter().map(move |mailbox| async move {
                    let found = self.find_in(*book, mailbox, subject).await?;
                    Ok::<_, ConnectorError>((*book, mailbox.to_string(), found))
                })
            })
            .collect();
        futures::stream::iter(lists)
            .buffered(crate::client::MAILBOXES_IN_FLIGHT * books.len().max(1))
            .try_collect()
            .await
    }

    /// The subject's contacts in `mailbox`'s address book.
    pub(crate) async fn find_contacts(
        &self,
        mailbox: &str,
        subject: &Identities,
    ) -> Result<Vec<Person>, ConnectorError> {
        self.find_in(Book::Contacts, mailbox, subject).await
    }

    /// One contact as it is now (`people.get`), or `None` when it is gone.
    /// https://developers.google.com/people/api/rest/v1/people/get
    pub(crate) async fn read_contact(
        &self,
        mailbox: &str,
        resource_name: &str,
    ) -> Result<Option<Person>, ConnectorError> {
        let url = self.contact_url(resource_name, "")?;
        let read = self
            .people(mailbox)
            .json(mailbox, |http| http.get(&url).query(&[("personFields", PERSON_FIELDS)]))
            .await;
        match read {
            Ok(person) => Ok(Some(person)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Every page of a People list at `url`, keeping the entries that are the subject's.
async fn matching<P: PeoplePage>(
    client: &VendorClient,
    mailbox: &str,
    url: &str,
    (mask, fields): (&str, &str),
    subject: &Identities,
) -> Result<Vec<Person>, ConnectorError> {
    let mut found = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = PageGuard::new(PROCESSOR, P::METHOD, MAX_PAGES);
    loop {
        let mut query = vec![(mask, fields), ("pageSize", "1000")];
        query.extend(token.as_deref().map(|t| ("pageToken", t)));
        let page: P = client.json(mailbox, |http| http.get(url).query(&query)).await?;
        let (people, next) = page.into_parts();
        token = pages.next(people.len(), next)?;
        found.extend(people.into_iter().filter(|p| !person_claims(p, subject).is_empty()));
        if token.is_none() {
            return Ok(found);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsr_connector::{Email, Phone, decode};
    use serde_json::{Value, json};

    #[test]
    fn contacts_match_by_exact_address_or_canonical_phone() {
        let subject = Identities {
            emails: vec![Email::parse("kari.nordmann@example.no").unwrap()],
            phones: vec![Phone::parse("912 34 567", "NO").unwrap()],
            ..Default::default()
        };
        let claims = |mut person: Value| {
            person["resourceName"] = json!("people/c1");
            person["etag"] = json!("%E1");
            person_claims(&decode(person).unwrap(), &subject)
        };
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
}
