//! Finding the subject's persons and exporting each with its consents, newsletter
//! subscriptions and related records (Art. 15).

use std::collections::BTreeSet;

use dsr_connector::http::odata_literal;
use dsr_connector::{ConnectorError, Identities, IdentityKind, MatchClaim, Record, RecordSink};
use futures::{StreamExt, TryStreamExt};
use serde_json::{Value, json};

use crate::SuperOffice;
use crate::client::PROCESSOR;
use crate::config::{RELATED, SALE_COLUMNS};
use crate::wire::{ArchiveRow, ConsentInfo, PersonEntity};

/// Persons read at once, each with what is listed under it. SuperOffice documents no limit on
/// concurrent requests; the client's per-tenant limiter (`TENANT_LIMITS` in `lib.rs`) keeps
/// the calls of all of them together within the four dsr allows itself. Answers are taken in
/// the search's order, so the bundle is the same whatever order SuperOffice answers in.
pub(crate) const PERSONS_IN_FLIGHT: usize = 4;

/// Everything found under one of her persons: (category, field, item, given by her).
type FoundUnder = Vec<(String, &'static str, Value, bool)>;

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
        let pointers: Vec<String> = (0..self.entity.emails().len())
            .map(|i| format!("/Emails/{i}/Value"))
            .collect();
        subject.claims_at(&self.raw, IdentityKind::Email, &pointers)
    }

    /// The subject's address this person was matched by: what records found under the
    /// person carry as their claim (`found_via`).
    pub fn found_via(&self, subject: &Identities) -> Option<String> {
        self.entity
            .emails()
            .iter()
            .filter_map(|e| e.value.clone())
            .find(|v| subject.owns(IdentityKind::Email, v))
    }
}

/// A record found under a person, as exports and plan items carry it: the person, the
/// subject's address the person was found by (`null` for a person holding none of hers, whose
/// records the engine then refuses) and the record itself under `field`.
pub fn found_under(person: i64, email: Option<&str>, field: &str, item: Value) -> Value {
    json!({"PersonId": person, "found_via": {"person": person, "email": email}, field: item})
}

/// The claim every record found under a person carries: the address it was found by.
pub fn found_via_claims() -> Vec<MatchClaim> {
    vec![MatchClaim::email("/found_via/email")]
}

/// A consent as SuperOffice holds it and the fields dsr reads.
pub struct Consent {
    pub raw: Value,
    pub info: ConsentInfo,
}

impl SuperOffice {
    /// Ids of persons with one of the subject's e-mail addresses (the Person archive lists a
    /// person once per matching address).
    /// The searches for her addresses overlap; each one's pages follow one another.
    pub async fn find_persons(&self, subject: &Identities) -> Result<Vec<i64>, ConnectorError> {
        let top = self.tenant.page_size.to_string();
        let searches = subject.emails.iter().map(|email| {
            let top = &top;
            async move {
                let filter = format!("email/emailAddress eq {}", odata_literal(email.as_str()));
                self.tenant
                    .archive(
                        "Person",
                        &[("$filter", &filter), ("$select", "personId"), ("$top", top)],
                    )
                    .await
            }
        });
        let found = futures::future::try_join_all(searches).await?;
        let ids: BTreeSet<i64> = found
            .iter()
            .flatten()
            .filter_map(|r| r.number("personId").or(r.id()))
            .collect();
        Ok(ids.into_iter().collect())
    }

    /// Every person the search returned, read whole: the subject's and any look-alike the
    /// archive's filter let through (a plan lists each with its claims; the engine refuses
    /// those that are not hers). A person gone between the search and the read is skipped.
    /// Up to [`PERSONS_IN_FLIGHT`] reads overlap, kept in the search's order.
    pub async fn found_persons(&self, subject: &Identities) -> Result<Vec<Person>, ConnectorError> {
        let ids = self.find_persons(subject).await?;
        let reads = futures::stream::iter(ids.into_iter().map(|id| async move {
            match self.person(id).await {
                Ok(person) => Ok(Some(person)),
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(e),
            }
        }))
        .buffered(PERSONS_IN_FLIGHT);
        let persons: Vec<Option<Person>> = reads.try_collect().await?;
        Ok(persons.into_iter().flatten().collect())
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

    /// The rows of each related archive of `id`, read together, in [`RELATED`]'s order.
    pub async fn related_all(&self, id: i64) -> Result<Vec<Vec<ArchiveRow>>, ConnectorError> {
        futures::future::try_join_all(RELATED.map(|kind| self.related(id, kind))).await
    }

    /// One person the search returned, read whole, and when it holds her address, everything
    /// listed under it: its consents and related archives are read together.
    async fn person_and_records(
        &self,
        id: i64,
        subject: &Identities,
    ) -> Result<(Person, Option<(String, FoundUnder)>), ConnectorError> {
        let person = self.person(id).await?;
        // A person the search returned who does not hold her address: handed to the engine
        // as it is (and dropped there, counted), with nothing read under it.
        let Some(email) = person.found_via(subject) else {
            return Ok((person, None));
        };
        let (consents, related) = futures::future::try_join(self.consents(id), self.related_all(id)).await?;
        let mut found: FoundUnder = Vec::new();
        for consent in consents {
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
        for (kind, rows) in RELATED.iter().zip(related) {
            for row in rows {
                // Listed under her person but naming another as its own: not hers (a sale she
                // is a stakeholder in is hers to see, not to delete).
                if *kind != "Sales" && row.number("personId").is_some_and(|owner| owner != id) {
                    continue;
                }
                found.push((kind.to_lowercase(), "record", json!(row), false));
            }
        }
        Ok((person, Some((email, found))))
    }

    /// Her persons and what is listed under each, into `sink` in the search's order. Up to
    /// [`PERSONS_IN_FLIGHT`] persons are read at once; each one's records are held only until
    /// the sink has them.
    pub async fn export(&self, subject: &Identities, sink: &mut dyn RecordSink) -> Result<u64, ConnectorError> {
        let mut count = 0;
        let ids = self.find_persons(subject).await?;
        // Every call is made inside these futures, none in the loop below: the loop awaits only
        // the sink, so a read waiting for its place at the tenant never waits on the loop.
        let mut reads = futures::stream::iter(ids.into_iter().map(|id| async move {
            let read = self.person_and_records(id, subject).await?;
            Ok::<_, ConnectorError>((id, read))
        }))
        .buffered(PERSONS_IN_FLIGHT);
        while let Some((id, (person, found))) = reads.try_next().await? {
            let key = Some(id.to_string());
            if let Some((email, found)) = found {
                for (category, field, item, provided_by_subject) in found {
                    let data = found_under(id, Some(&email), field, item);
                    sink.accept(Record {
                        category,
                        id: key.clone(),
                        provided_by_subject,
                        data,
                        claims: found_via_claims(),
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
