//! Google Analytics user deletion (Art. 17, and Art. 21's only available opt-out): one
//! request per identifier per GA4 property, with Google's `deletionRequestTime` as evidence.

use dsr_connector::{ChangeReport, ConnectorError, Evidence, Identities, TaskContext};
use serde_json::json;

use crate::Google;
use crate::client::needs_role;
use crate::wire::{SubmitUserDeletionResponse, UserDeletionRequest};

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
    pub value: String,
}

/// Each identifier goes to exactly one API: client and user ids to the v3 upsert (which
/// keys GA4 properties by `propertyId`), e-mails and phones to the Admin API, the only one
/// that takes `userProvidedData`.
pub fn plan(subject: &Identities, properties: &[String], user_provided: bool) -> Vec<Planned> {
    let mut planned = Vec::new();
    for property in properties {
        let mut push = |id_type, value: String| {
            planned.push(Planned {
                property: property.clone(),
                id_type,
                value,
            })
        };
        for id in &subject.ga_client_ids {
            push("CLIENT_ID", id.clone());
        }
        for id in &subject.ga_user_ids {
            push("USER_ID", id.clone());
        }
        if user_provided {
            for email in &subject.emails {
                push("userProvidedData", normalise_email(email.as_str()));
            }
            for phone in &subject.phones {
                push("userProvidedData", normalise_phone(phone.as_str()));
            }
        }
    }
    planned
}

impl Google {
    /// Submits one deletion; returns Google's `deletionRequestTime`.
    async fn submit(&self, planned: &Planned) -> Result<String, ConnectorError> {
        let role = format!(
            "grant {} the Editor role on GA4 property {} (Admin > Property access management)",
            self.tokens.account().email,
            planned.property
        );
        let time = if planned.id_type == "userProvidedData" {
            let url = format!(
                "{}/properties/{}:submitUserDeletion",
                self.config.analytics_admin_url.trim_end_matches('/'),
                planned.property
            );
            let body = json!({"userProvidedData": planned.value});
            self.admin
                .json::<SubmitUserDeletionResponse>(&planned.property, |http| http.post(&url).json(&body))
                .await
                .map(|answer| answer.deletion_request_time)
        } else {
            let url = format!(
                "{}/userDeletion/userDeletionRequests:upsert",
                self.config.analytics_url.trim_end_matches('/')
            );
            let body = json!({
                "kind": "analytics#userDeletionRequest",
                "id": {"type": planned.id_type, "userId": planned.value},
                "propertyId": planned.property,
            });
            self.deletion
                .json::<UserDeletionRequest>(&planned.property, |http| http.post(&url).json(&body))
                .await
                .map(|answer| answer.deletion_request_time)
        };
        time.map_err(|e| needs_role(e, &role))
    }

    pub async fn delete_user_data(
        &self,
        ctx: &TaskContext,
        subject: &Identities,
    ) -> Result<ChangeReport, ConnectorError> {
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
        }
        let mut submitted = Vec::new();
        for item in &planned {
            if ctx.dry_run {
                continue;
            }
            let time = self.submit(item).await?;
            submitted.push(json!({
                "property": item.property, "id_type": item.id_type, "identifier": item.value,
                "deletionRequestTime": time,
            }));
        }
        if !ctx.dry_run && !submitted.is_empty() {
            notes.push("Google deletes the data within 72 hours of each deletionRequestTime and then removes it from backups within 63 days (Analytics data deletion policy).".into());
        }
        Ok(ChangeReport {
            found: planned.len() as u64,
            changed: submitted.len() as u64,
            retained: vec![],
            evidence: vec![Evidence {
                kind: "analytics_user_deletion".into(),
                detail: json!({"requests": submitted}),
            }],
            notes,
            ..Default::default()
        })
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
}
