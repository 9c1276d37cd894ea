//! Finding the subject's persons and exporting each with its consents, newsletter
//! subscriptions and related records (Art. 15).

use std::collections::BTreeSet;

use dsr_connector::{ConnectorError, Identities, Record, RecordSink};
use serde_json::{Value, json};

use crate::SuperOffice;
use crate::client::{PROCESSOR, odata_literal};
use crate::config::{RELATED, SALE_COLUMNS};
use crate::wire::{ArchiveRow, ConsentInfo, PersonEntity};

/// Reads `value` as a `T`, or fails naming the endpoint and the field.
pub fn typed<T: serde::de::DeserializeOwned>(value: &Value, endpoint: &str) -> Result<T, ConnectorError> {
    dsr_connector::decode(value.clone()).map_err(|e| ConnectorError::unexpected_shape(PROCESSOR, endpoint, &e))
}

/// A person as SuperOffice holds it (kept whole for the bundle) and the fields dsr reads.
pub struct Person {
    pub raw: Value,
    pub entity: PersonEntity,
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
        for id in self.find_persons(subject).await? {
            let person = self.person(id).await?;
            let key = Some(id.to_string());
            for consent in self.consents(id).await? {
                let data = json!({"PersonId": id, "consent": consent.raw});
                sink.accept(Record {
                    category: "consents".into(),
                    id: key.clone(),
                    provided_by_subject: true,
                    data,
                })
                .await?;
                count += 1;
            }
            for shipment in person.raw["ShipmentTypes"].as_array().into_iter().flatten() {
                let data = json!({"PersonId": id, "subscription": shipment});
                sink.accept(Record {
                    category: "newsletter_subscriptions".into(),
                    id: key.clone(),
                    provided_by_subject: true,
                    data,
                })
                .await?;
                count += 1;
            }
            for kind in RELATED {
                for row in self.related(id, kind).await? {
                    let data = json!({"PersonId": id, "record": row});
                    sink.accept(Record {
                        category: kind.to_lowercase(),
                        id: key.clone(),
                        provided_by_subject: false,
                        data,
                    })
                    .await?;
                    count += 1;
                }
            }
            // Name, addresses and phone numbers are what the subject gave the company.
            sink.accept(Record {
                category: "persons".into(),
                id: key,
                provided_by_subject: true,
                data: person.raw,
            })
            .await?;
            count += 1;
        }
        Ok(count)
    }
}
