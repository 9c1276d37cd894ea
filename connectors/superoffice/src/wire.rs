//! SuperOffice's answers as its reference names them: what dsr reads is typed, the rest of a
//! record is kept whole for the subject's export.
//!
//! - tenant state: https://docs.superoffice.com/en/developer-portal/getting-started/tenant-status/index.html

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `GET {environment}/api/state/{tenant}`: where the tenant's web API lives now, and until
/// when that answer holds (load balancing moves tenants between hosts).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TenantState {
    /// `Running`, `Offline`, `Updating`, …
    pub state: String,
    pub is_running: Option<bool>,
    pub valid_until: Option<DateTime<Utc>>,
    /// The web API root, `https://sod2.superoffice.com/Cust12345/api`.
    pub api: Option<String>,
}

impl TenantState {
    pub fn running(&self) -> bool {
        self.is_running.unwrap_or(self.state == "Running")
    }
}

/// A slim archive value: SuperOffice's reference examples send numbers, its filter guide
/// strings (display values); both are read.
fn id_of(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn flag_of(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "ja" => Some(true),
            "false" | "0" | "no" | "nei" => Some(false),
            _ => None,
        },
        Value::Number(n) => n.as_i64().map(|n| n != 0),
        _ => None,
    }
}

/// One row of an archive (`GET Person?$filter=…`, `GET Person/{id}/Sales` …): the primary key,
/// the entity, and the provider's lower-camel columns.
/// https://docs.superoffice.com/en/api/reference/restful/rest/Person/v1PersonEntity_Sales.html
#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ArchiveRow {
    pub primary_key: Value,
    pub entity_name: String,
    #[serde(flatten)]
    pub columns: Map<String, Value>,
}

impl ArchiveRow {
    /// The row's record id (the primary key, a number or its display string).
    pub fn id(&self) -> Option<i64> {
        id_of(&self.primary_key)
    }

    /// A numeric column (`personId`, `saleId`), from a raw or a display value.
    pub fn number(&self, column: &str) -> Option<i64> {
        self.columns.get(column).and_then(id_of)
    }

    pub fn flag(&self, column: &str) -> Option<bool> {
        self.columns.get(column).and_then(flag_of)
    }
}

/// `GET Person/{id}/Consent`: one purpose's consent, flat as the reference gives it. The
/// list also holds withdrawn consents: their legal base is `WITHDRAWN`.
/// https://docs.superoffice.com/en/api/reference/restful/rest/Person/v1PersonEntity_GetConsentInfos.html
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConsentInfo {
    pub consent_purpose_key: String,
    pub legal_base_key: Option<String>,
    pub consent_source_key: Option<String>,
    pub updated: Option<String>,
}

/// The legal base SuperOffice gives a withdrawn consent ("To remove a consent, mark its
/// legalbase as 'WITHDRAWN'", PersonEntity.Consents).
pub const WITHDRAWN: &str = "WITHDRAWN";

impl ConsentInfo {
    /// In force unless its legal base says it was withdrawn.
    /// A consent without a legal base is taken as in force: never report a withdrawal that
    /// SuperOffice does not show.
    pub fn in_force(&self) -> bool {
        self.legal_base_key
            .as_deref()
            .is_none_or(|key| !key.trim().eq_ignore_ascii_case(WITHDRAWN))
    }
}

/// An e-mail address on a person (`Emails[]`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EntityElement {
    pub value: Option<String>,
}

/// A mailing list the person can be on: subscribed while `Selected`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ShipmentType {
    pub id: i64,
    pub name: Option<String>,
    #[serde(default)]
    pub selected: bool,
}

/// `GET Person/{id}`: the parts of PersonEntity dsr decides on; the bundle keeps the whole.
/// https://docs.superoffice.com/en/api/reference/restful/rest/Person/v1PersonEntity_GetPersonEntity.html
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PersonEntity {
    pub person_id: i64,
    /// Left out (or `null`) when the person has none.
    emails: Option<Vec<EntityElement>>,
    shipment_types: Option<Vec<ShipmentType>>,
}

impl PersonEntity {
    pub fn emails(&self) -> &[EntityElement] {
        self.emails.as_deref().unwrap_or_default()
    }

    pub fn shipment_types(&self) -> &[ShipmentType] {
        self.shipment_types.as_deref().unwrap_or_default()
    }
}

/// `POST /Login/api/PartnerSystemUser/Authenticate`.
/// https://docs.superoffice.com/en/api/authentication/online/auth-application/get-system-user-ticket.html
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AuthenticateAnswer {
    pub is_successful: bool,
    pub error_message: Option<String>,
    pub token: Option<String>,
}

/// A REST error: `{"Error": true, "ErrorType", "ErrorMessage", "ErrorSource"}`.
/// https://docs.superoffice.com/en/api/web-services/endpoints/rest-webapi/index.html (Errors)
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ErrorBody {
    pub error_type: Option<String>,
    pub error_message: Option<String>,
    /// Some answers carry the text in `Message` instead.
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn archive_rows_read_raw_and_display_values() {
        let row: ArchiveRow = dsr_connector::decode(json!({"PrimaryKey": "702", "EntityName": "sale", "personId": "103", "isStakeholderSale": "True", "saleId": 702})).unwrap();
        assert_eq!(row.id(), Some(702));
        assert_eq!(row.number("personId"), Some(103));
        assert_eq!(row.flag("isStakeholderSale"), Some(true));
        let err = dsr_connector::decode::<ArchiveRow>(json!({"primaryKey": 1, "EntityName": "sale"})).unwrap_err();
        assert!(err.reason.contains("PrimaryKey"), "{err:?}");
    }

    #[test]
    fn a_withdrawn_consent_is_not_in_force() {
        let c: ConsentInfo =
            dsr_connector::decode(json!({"ConsentPurposeKey": "EMARKETING", "LegalBaseKey": "WITHDRAWN"})).unwrap();
        assert!(!c.in_force());
        let c: ConsentInfo =
            dsr_connector::decode(json!({"ConsentPurposeKey": "EMARKETING", "LegalBaseKey": "61A"})).unwrap();
        assert!(c.in_force());
        let err = dsr_connector::decode::<ConsentInfo>(json!({"ConsentPurpose": {"Key": "EMARKETING"}})).unwrap_err();
        assert!(
            err.reason.contains("ConsentPurposeKey"),
            "the nested shape is refused by name: {err:?}"
        );
    }
}
