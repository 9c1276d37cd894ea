//! Finding the subject's persons and exporting each with its consents, newsletter
//! subscriptions and related records (Art. 15).

use std::collections::BTreeSet;

use dsr_connector::{ConnectorError, Identities, IdentityKind, MatchClaim, Record, RecordSink, TaskContext};
use serde_json::{Value, json};

use crate::SuperOffice;
use crate::client::{PROCESSOR, odata_literal};
use crate::config::{RELATED, SALE_COLUMNS};
use crate::wire::{ArchiveRow, ConsentInfo, PersonEntity};

/// Reads `value` as a `T`, or fails naming the endpoint and the field.
pub fn typed<T: serde::de::DeserializeOwned>(value: &Value, endpoint: &str) -> Result<T, ConnectorError> {
    dsr_connector::decode_answer(PROCESSOR, endpoint, value.clone())
}

/// A person as SuperOffice holds it (kept whole for the bundle) and the fields dsr reads.
pub struct Person {
    pub raw: Value,
    pub entity: PersonEntity,
}

impl Person {
    /// Where the person holds one of the subject's addresses (the core's rule: the Person
    /// archive's `$filter` may be ignored or fold look-alikes together).
    pub fn claims(&self, subject: &Identities) -> Vec<MatchClaim> {
        let pointers: Vec<String> = (0..self.entity.emails.len())
            .map(|i| format!("/Emails/{i}/Value"))
            .collect();
        subject.claims_at(&self.raw, IdentityKind::Email, &pointers)
    }

    /// The subject's address this person was matched by: what records found under the
    /// person carry as their claim (`found_via`).
    pub fn found_via(&self, subject: &Identities) -> Option<String> {
        self.entity
            .emails
            .iter()
            .filter_map(|e| e.value.clone())
            .find(|v| subject.owns(IdentityKind::Email, v))
    }
}

/// The claim a record found under one of the subject's persons carries.
fn via(id: i64, email: &str) -> Value {
    json!({"person": id, "email": email})
}

/// A consent as SuperOffice holds it and the fields dsr reads.
pub struct Consent {
    pub raw: Value,
    pub info: ConsentInfo,
}

impl SuperOffice {
    /// Ids of persons with one of the subject's e-mail addresses (the Person archive lists a
    /// person once per matching address).
    pub async fn find_persons(&self, subject: &Identities) -> Result<Vec<i64>, ConnectorError> {
        let mut ids = BTreeSet::new();
        let top = self.tenant.page_size.to_string();
        for email in &subject.emails {
            let filter = format!("email/emailAddress eq {}", odata_literal(email.as_str()));
            let rows = self
                .tenant
                .archive(
                    "Person",
                    &[("$filter", &filter), ("$select", "personId"), ("$top", &top)],
                )
                .await?;
            ids.extend(rows.iter().filter_map(|r| r.number("personId").or(r.id())));
        }
        Ok(ids.into_iter().collect())
    }

    /// The persons the search returned that hold one of the subject's addresses, each passed
    /// through the engine's guard before anything is changed under it.
    pub async fn own_persons(&self, ctx: &TaskContext, subject: &Identities) -> Result<Vec<Person>, ConnectorError> {
        let mut own = Vec::new();
        for id in self.find_persons(subject).await? {
            // Gone between the search and the read (another request, someone else): nothing to do.
            let person = match self.person(id).await {
                Ok(person) => person,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            };
            if ctx.permit(subject, &format!("person {id}"), &person.raw, &person.claims(subject)) {
                own.push(person);
            }
        }
        Ok(own)
    }

    /// How many persons the search returns that hold one of the subject's addresses: the
    /// verification after an erasure counts these, not look-alikes.
    pub async fn count_own_persons(&self, subject: &Identities) -> Result<usize, ConnectorError> {
        let mut n = 0;
        for id in self.find_persons(subject).await? {
            match self.person(id).await {
                Ok(p) if !p.claims(subject).is_empty() => n += 1,
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    pub async fn person(&self, id: i64) -> Result<Person, ConnectorError> {
        let raw: Value = self.tenant.get(&format!("Person/{id}")).await?;
        let entity = typed(&raw, "Person/{id}")?;
        Ok(Person { raw, entity })
    }

    /// Every consent SuperOffice lists for the person, withdrawn ones included.
    pub async fn consents(&self, id: i64) -> Result<Vec<Consent>, ConnectorError> {
        let list: Vec<Value> = self.tenant.get(&format!("Person/{id}/Consent")).await?;
        list.into_iter()
            .map(|raw| {
                let info = typed(&raw, "Person/{id}/Consent")?;
                Ok(Consent { raw, info })
            })
            .collect()
    }

    /// The rows of one related archive (`Appointments`, `Documents`, `Sales`, `Tickets`).
    pub async fn related(&self, id: i64, kind: &str) -> Result<Vec<ArchiveRow>, ConnectorError> {
        // Sales: the columns that tell the sale's own person from a stakeholder.
        let query: &[(&str, &str)] = if kind == "Sales" {
            &[("$select", SALE_COLUMNS)]
        } else {
            &[]
        };
        self.tenant.archive(&format!("Person/{id}/{kind}"), query).await
    }

    pub async fn export(&self, subject: &Identities, sink: &mut dyn RecordSink) -> Result<u64, ConnectorError> {
        let mut count = 0;
        let claim = || vec![MatchClaim::email("/found_via/email")];
        for id in self.find_persons(subject).await? {
            let person = self.person(id).await?;
            let key = Some(id.to_string());
            // A person the search returned who does not hold her address: handed to the
            // engine as it is (and dropped there, counted), with nothing found under it.
            if let Some(email) = person.found_via(subject) {
                // Everything found under her person: (category, field, item, given by her).
                let mut found: Vec<(String, &str, Value, bool)> = Vec::new();
                for consent in self.consents(id).await? {
                    found.push(("consents".into(), "consent", consent.raw, true));
                }
                for shipment in person.raw["ShipmentTypes"].as_array().into_iter().flatten() {
                    found.push((
                        "newsletter_subscriptions".into(),
                        "subscription",
                        shipment.clone(),
                        true,
                    ));
                }
                for kind in RELATED {
                    for row in self.related(id, kind).await? {
                        // Listed under her person but naming another as its own: not hers
                        // (a sale she is a stakeholder in is hers to see, not to delete).
                        if kind != "Sales" && row.number("personId").is_some_and(|owner| owner != id) {
                            continue;
                        }
                        found.push((kind.to_lowercase(), "record", json!(row), false));
                    }
                }
                for (category, field, item, provided_by_subject) in found {
                    let data = json!({"PersonId": id, "found_via": via(id, &email), field: item});
                    sink.accept(Record {
                        category,
                        id: key.clone(),
                        provided_by_subject,
                        data,
                        claims: claim(),
                    })
                    .await?;
                    count += 1;
                }
            }
            // Name, addresses and phone numbers are what the subject gave the company.
            let claims = person.claims(subject);
            sink.accept(Record {
                category: "persons".into(),
                id: key,
                provided_by_subject: true,
                data: person.raw,
                claims,
            })
            .await?;
            count += 1;
        }
        Ok(count)
    }
}
