//! Google Analytics user deletion (Art. 17, and Art. 21's only available opt-out): one
//! request per identifier per GA4 property, with Google's `deletionRequestTime` as evidence.
//! Planned as one `Delete` item per request (`analytics_user`); each item's call is the
//! request itself, made when the item is executed.

use dsr_connector::{Action, ConnectorError, Identities, IdentityKind, MatchClaim, PlanItem};
use serde_json::{Value, json};

use crate::client::needs_role;
use crate::wire::{SubmitUserDeletionResponse, UserDeletionRequest};
use crate::{Call, Google};

/// The plan category of an Analytics user deletion.
pub const CATEGORY: &str = "analytics_user";

/// When Google acts on a deletion request (the subject's note).
const DELETION_POLICY: &str = "Google deletes the data within 72 hours of each deletionRequestTime and then removes it from backups within 63 days (Analytics data deletion policy).";

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

/// One deletion to submit.
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
        PlanItem::new(
            format!("{CATEGORY} {} {} {}", self.property, self.id_type, self.identifier),
            CATEGORY,
            Action::Delete,
            target,
            data,
            vec![MatchClaim::new(self.kind, "/identifier")],
        )
        // Google acts on it within 72 hours and shows no trace of it: planning again finds
        // the same identifiers, which is not a deletion left undone.
        .request()
    }
}

/// Each identifier goes to exactly one API: client and user ids to the v3 upsert (which
/// keys GA4 properties by `propertyId`), e-mails and phones to the Admin API, the only one
/// that takes `userProvidedData`.
pub fn plan(subject: &Identities, properties: &[String], user_provided: bool) -> Vec<Planned> {
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

impl Google {
    /// Submits one deletion (the call of an `analytics_user` item); returns Google's
    /// `deletionRequestTime`.
    pub(crate) async fn submit(&self, property: &str, id_type: &str, value: &str) -> Result<String, ConnectorError> {
        let role = format!(
            "grant {} the Editor role on GA4 property {property} (Admin > Property access management)",
            self.tokens.account().email,
        );
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
        time.map_err(|e| needs_role(e, &role))
    }

    /// The deletion request for one item, with Google's answer as its receipt. The receipt
    /// names no identifier (the item's key names the one the subject gave): what was sent
    /// may be a normalised form of it that she never gave.
    pub(crate) async fn execute_user_deletion(
        &self,
        property: &str,
        id_type: &str,
        value: &str,
    ) -> Result<Value, ConnectorError> {
        let time = self.submit(property, id_type, value).await?;
        Ok(json!({
            "property": property, "id_type": id_type,
            "deletionRequestTime": time,
        }))
    }

    /// One item per deletion request the subject's identifiers call for, and the notes
    /// that explain them (or why there are none).
    pub fn plan_user_deletion(&self, subject: &Identities) -> (Vec<PlanItem>, Vec<String>) {
        let planned = plan(
            subject,
            &self.config.ga4_property_ids,
            self.config.use_user_provided_data,
        );
        let mut notes = Vec::new();
        if planned.is_empty() {
            notes.push(if self.config.ga4_property_ids.is_empty() {
                "No GA4 property is configured (processors.google.ga4_property_ids).".to_string()
            } else {
                "Google Analytics keys its data on client ids and user ids, not names or e-mail addresses: give --ga-client-id or --ga-user-id (or enable use_user_provided_data).".to_string()
            });
        } else {
            notes.push(DELETION_POLICY.into());
        }
        (planned.iter().map(Planned::item).collect(), notes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsr_connector::{Email, Phone};

    #[test]
    fn user_provided_data_is_normalised_as_google_documents() {
        assert_eq!(normalise_email(" Kari.Nordmann@GMail.com"), "karinordmann@gmail.com");
        assert_eq!(normalise_email("Kari.Nordmann@Example.no"), "kari.nordmann@example.no");
        assert_eq!(normalise_email("a.b@googlemail.com"), "ab@googlemail.com");
        assert_eq!(normalise_phone("+47 912 34 567"), "+4791234567");
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
        assert_eq!(plan(&subject, &properties, false).len(), 4);
        let all = plan(&subject, &properties, true);
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
        let items: Vec<PlanItem> = plan(&subject, &["1".to_string()], true)
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
