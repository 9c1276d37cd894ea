//! Finding the subject's persons and exporting each with its consents, newsletter
//! subscriptions and related records (Art. 15).

use std::collections::BTreeSet;

use dsr_connector::{ConnectorError, Identities, Record, RecordSink};
use serde_json::{Value, json};

use crate::SuperOffice;
use crate::client::odata_literal;
use crate::config::RELATED;

impl SuperOffice {
    /// Ids of persons with one of the subject's e-mail addresses.
    pub async fn find_persons(&self, subject: &Identities) -> Result<Vec<i64>, ConnectorError> {
        let mut ids = BTreeSet::new();
        let top = self.tenant.page_size.to_string();
        for email in &subject.emails {
            let filter = format!("email/emailAddress eq {}", odata_literal(email.as_str()));
            let rows = self
                .tenant
                .all(
                    "Person",
                    &[("$filter", &filter), ("$select", "personId"), ("$top", &top)],
                )
                .await?;
            ids.extend(
                rows.iter()
                    .filter_map(|r| r["personId"].as_i64().or(r["PrimaryKey"].as_i64())),
            );
        }
        Ok(ids.into_iter().collect())
    }

    pub async fn person(&self, id: i64) -> Result<Value, ConnectorError> {
        self.tenant.get(&format!("Person/{id}")).await
    }

    pub async fn consents(&self, id: i64) -> Result<Vec<Value>, ConnectorError> {
        self.tenant.get(&format!("Person/{id}/Consent")).await
    }

    pub async fn related(&self, id: i64, kind: &str) -> Result<Vec<Value>, ConnectorError> {
        self.tenant.get(&format!("Person/{id}/{kind}")).await
    }

    pub async fn export(&self, subject: &Identities, sink: &mut dyn RecordSink) -> Result<u64, ConnectorError> {
        let mut count = 0;
        for id in self.find_persons(subject).await? {
            let person = self.person(id).await?;
            let key = Some(id.to_string());
            for consent in self.consents(id).await? {
                let data = json!({"PersonId": id, "consent": consent});
                sink.accept(Record {
                    category: "consents".into(),
                    id: key.clone(),
                    provided_by_subject: true,
                    data,
                })
                .await?;
                count += 1;
            }
            for shipment in person["ShipmentTypes"].as_array().into_iter().flatten() {
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
                for item in self.related(id, kind).await? {
                    let data = json!({"PersonId": id, "record": item});
                    let category = kind.to_lowercase();
                    sink.accept(Record {
                        category,
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
                data: person,
            })
            .await?;
            count += 1;
        }
        Ok(count)
    }
}
