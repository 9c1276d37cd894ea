//! Google Workspace contacts (People API, domain-wide delegation). The whole list is paged
//! through `people/me/connections`: `searchContacts` is a prefix match capped at 30 results
//! with no paging, too incomplete for a legal request. Mutations for one user go one at a
//! time, as Google requires.

use dsr_connector::http::VendorClient;
use dsr_connector::{ConnectorError, FieldChange, Identities, Record, RecordSink, RectifyField};
use serde_json::{Map, Value, json};

use crate::Google;

pub const SCOPE_CONTACTS: &str = "https://www.googleapis.com/auth/contacts";
const PERSON_FIELDS: &str = "names,emailAddresses,phoneNumbers,organizations,addresses,metadata";

/// Whether a contact holds one of the subject's addresses or phone numbers exactly.
pub fn names_subject(person: &Value, subject: &Identities) -> bool {
    let emails = person["emailAddresses"].as_array().into_iter().flatten();
    let phones = person["phoneNumbers"].as_array().into_iter().flatten();
    emails.clone().any(|e| {
        e["value"]
            .as_str()
            .is_some_and(|v| subject.emails.iter().any(|s| s.matches(v)))
    }) || phones.clone().any(|p| {
        p["canonicalForm"]
            .as_str()
            .is_some_and(|c| subject.phones.iter().any(|s| s.as_str() == c))
    })
}

/// The fields to change on one person and the mask naming them; unsupported fields noted.
pub fn changes_for(person: &Value, changes: &[FieldChange], subject: &Identities) -> (Map<String, Value>, Vec<String>) {
    let mut body = Map::new();
    let mut notes = Vec::new();
    let mut name = person["names"][0].clone();
    let mut organization = person["organizations"][0].clone();
    for change in changes {
        let value = json!(change.value);
        match change.field {
            RectifyField::GivenName => name["givenName"] = value,
            RectifyField::FamilyName => name["familyName"] = value,
            RectifyField::DisplayName => notes.push(
                "display_name: Google builds a contact's display name from its name fields; set given_name and family_name".into(),
            ),
            RectifyField::Company => organization["name"] = value,
            RectifyField::JobTitle => organization["title"] = value,
            RectifyField::Email => {
                let list = subject.replace_address(&person["emailAddresses"], "value", &change.value);
                body.insert("emailAddresses".into(), Value::Array(list));
            }
            RectifyField::Phone => {
                let mut list: Vec<Value> = person["phoneNumbers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| p["type"] != "mobile")
                    .cloned()
                    .collect();
                list.insert(0, json!({"value": change.value, "type": "mobile"}));
                body.insert("phoneNumbers".into(), Value::Array(list));
            }
            RectifyField::Address => {
                body.insert("addresses".into(), json!([{"formattedValue": change.value, "type": "home"}]));
            }
        }
    }
    if name != person["names"][0] {
        body.insert("names".into(), json!([name]));
    }
    if organization != person["organizations"][0] {
        body.insert("organizations".into(), json!([organization]));
    }
    (body, notes)
}

impl Google {
    fn people(&self, mailbox: &str) -> VendorClient {
        self.client_for(&[SCOPE_CONTACTS], Some(mailbox))
    }

    fn people_url(&self, path: &str) -> String {
        format!("{}/{path}", self.config.people_url.trim_end_matches('/'))
    }

    /// The subject's contacts in `mailbox`'s address book.
    pub async fn find_contacts(&self, mailbox: &str, subject: &Identities) -> Result<Vec<Value>, ConnectorError> {
        let client = self.people(mailbox);
        let url = self.people_url("people/me/connections");
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![
                ("personFields", PERSON_FIELDS.to_string()),
                ("pageSize", "1000".to_string()),
            ];
            if let Some(t) = &token {
                query.push(("pageToken", t.clone()));
            }
            let page: Value = client.json(mailbox, |http| http.get(&url).query(&query)).await?;
            found.extend(
                page["connections"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| names_subject(p, subject))
                    .cloned(),
            );
            token = page["nextPageToken"].as_str().map(String::from);
            if token.is_none() {
                return Ok(found);
            }
        }
    }

    pub async fn export_contacts(
        &self,
        subject: &Identities,
        sink: &mut dyn RecordSink,
    ) -> Result<u64, ConnectorError> {
        let Some(workspace) = &self.config.workspace else {
            return Ok(0);
        };
        let mut count = 0;
        for mailbox in &workspace.mailboxes {
            for mut person in self.find_contacts(mailbox, subject).await? {
                person["mailbox"] = json!(mailbox);
                let id = person["resourceName"].as_str().map(String::from);
                sink.accept(Record {
                    category: "contacts".into(),
                    id,
                    provided_by_subject: false,
                    data: person,
                })
                .await?;
                count += 1;
            }
        }
        Ok(count)
    }

    pub async fn erase_contacts(
        &self,
        subject: &Identities,
        dry_run: bool,
    ) -> Result<(u64, u64, Vec<Value>), ConnectorError> {
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
                let resource = person["resourceName"].as_str().unwrap_or_default();
                let url = self.people_url(&format!("{resource}:deleteContact"));
                client.remove(mailbox, |http| http.delete(&url)).await?;
                changed += 1;
                evidence.push(json!({"mailbox": mailbox, "contact": resource}));
            }
        }
        Ok((found, changed, evidence))
    }

    async fn update_contact(
        &self,
        client: &VendorClient,
        mailbox: &str,
        person: &Value,
        body: &Map<String, Value>,
    ) -> Result<Value, ConnectorError> {
        let resource = person["resourceName"].as_str().unwrap_or_default();
        let mask: Vec<&str> = body.keys().map(String::as_str).collect();
        let url = self.people_url(&format!("{resource}:updateContact"));
        let mut payload = Value::Object(body.clone());
        payload["etag"] = person["etag"].clone();
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
        subject: &Identities,
        changes: &[FieldChange],
        dry_run: bool,
    ) -> Result<(u64, u64, Vec<Value>, Vec<String>), ConnectorError> {
        let Some(workspace) = &self.config.workspace else {
            return Ok((0, 0, vec![], vec![]));
        };
        let (mut found, mut changed) = (0, 0);
        let (mut evidence, mut notes) = (Vec::new(), Vec::new());
        for mailbox in &workspace.mailboxes {
            let client = self.people(mailbox);
            for person in self.find_contacts(mailbox, subject).await? {
                found += 1;
                let (body, skipped) = changes_for(&person, changes, subject);
                notes.extend(skipped.into_iter().filter(|n| !notes.contains(n)).collect::<Vec<_>>());
                if body.is_empty() || dry_run {
                    evidence.push(json!({"mailbox": mailbox, "contact": person["resourceName"], "would_change": body}));
                    continue;
                }
                let updated = match self.update_contact(&client, mailbox, &person, &body).await {
                    // Changed since we read it: read it again and try once more.
                    Err(ConnectorError::Permanent { code, .. }) if code.contains("FAILED_PRECONDITION") => {
                        let resource = person["resourceName"].as_str().unwrap_or_default();
                        let url = self.people_url(resource);
                        let fresh: Value = client
                            .json(mailbox, |http| http.get(&url).query(&[("personFields", PERSON_FIELDS)]))
                            .await?;
                        let (body, _) = changes_for(&fresh, changes, subject);
                        self.update_contact(&client, mailbox, &fresh, &body).await?
                    }
                    other => other?,
                };
                let fields: Vec<Value> = body
                    .keys()
                    .map(|k| json!({"field": k, "before": person[k.as_str()], "after": updated[k.as_str()]}))
                    .collect();
                changed += 1;
                evidence.push(json!({"mailbox": mailbox, "contact": person["resourceName"], "fields": fields}));
            }
        }
        Ok((found, changed, evidence, notes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsr_connector::{Email, Phone};

    #[test]
    fn contacts_match_by_exact_address_or_canonical_phone() {
        let subject = Identities {
            emails: vec![Email::parse("kari.nordmann@example.no").unwrap()],
            phones: vec![Phone::parse("912 34 567", "NO").unwrap()],
            ..Default::default()
        };
        assert!(names_subject(
            &json!({"emailAddresses": [{"value": "KARI.NORDMANN@example.no"}]}),
            &subject
        ));
        assert!(!names_subject(
            &json!({"emailAddresses": [{"value": "annkari.nordmann@example.no"}]}),
            &subject
        ));
        assert!(names_subject(
            &json!({"phoneNumbers": [{"value": "912 34 567", "canonicalForm": "+4791234567"}]}),
            &subject
        ));
    }

    #[test]
    fn only_the_named_fields_change() {
        let person = json!({"names": [{"givenName": "Kari", "familyName": "Nordmann"}], "organizations": [{"name": "A", "title": "B"}]});
        let changes = vec![FieldChange {
            field: RectifyField::FamilyName,
            value: "Hansen".into(),
        }];
        let (body, _) = changes_for(&person, &changes, &Identities::default());
        assert_eq!(body.len(), 1);
        assert_eq!(body["names"][0], json!({"givenName": "Kari", "familyName": "Hansen"}));
    }
}
