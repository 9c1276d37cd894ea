//! Wix's error bodies and JSON calls.

use dsr_connector::ConnectorError;
use dsr_connector::http::{VendorClient, VendorError};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::wire::ErrorBody;

pub const PROCESSOR: &str = "wix";

/// `{"message","details":{"applicationError":{"code","description"}}}` or
/// `{"message","details":{"validationError":{"fieldViolations":[…]}}}`; 5xx often empty.
pub fn describe_error(status: StatusCode, body: &[u8]) -> VendorError {
    let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let application = parsed.details.application_error.unwrap_or_default();
    let code = application
        .code
        .or_else(|| {
            parsed
                .details
                .validation_error
                .as_ref()
                .map(|_| "VALIDATION".to_string())
        })
        .or(parsed.error.clone())
        .unwrap_or_default();
    let mut message = parsed
        .message
        .filter(|m| !m.is_empty())
        .or(application.description)
        .or(parsed.error_description)
        .unwrap_or_default();
    for violation in parsed
        .details
        .validation_error
        .map(|v| v.field_violations)
        .unwrap_or_default()
    {
        message.push_str(&format!(
            " ({}: {}{})",
            violation.field.as_deref().unwrap_or("?"),
            violation.description.as_deref().unwrap_or(""),
            violation.rule_name.map(|r| format!(" [{r}]")).unwrap_or_default()
        ));
    }
    if message.is_empty() {
        message = format!("Wix answered {status} with no explanation");
    }
    VendorError {
        code,
        message,
        ..Default::default()
    }
}

pub struct Wix {
    pub client: VendorClient,
    pub api: String,
}

impl Wix {
    pub async fn post<T: DeserializeOwned>(&self, path: &str, body: &Value) -> Result<T, ConnectorError> {
        let url = format!("{}{path}", self.api);
        self.client.json("site", |http| http.post(&url).json(body)).await
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ConnectorError> {
        let url = format!("{}{path}", self.api);
        self.client.json("site", |http| http.get(&url)).await
    }

    pub async fn patch<T: DeserializeOwned>(&self, path: &str, body: &Value) -> Result<T, ConnectorError> {
        let url = format!("{}{path}", self.api);
        self.client.json("site", |http| http.patch(&url).json(body)).await
    }

    /// Deletes; a 404 means it is gone already (`Ok(false)`).
    pub async fn remove(&self, path: &str) -> Result<bool, ConnectorError> {
        let url = format!("{}{path}", self.api);
        self.client.remove("site", |http| http.delete(&url)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_error_shapes_and_empty_bodies_read_well() {
        let e = describe_error(StatusCode::PRECONDITION_REQUIRED, br#"{"message":"member","details":{"applicationError":{"code":"CONTACT_IS_SITE_MEMBER","description":"x"}}}"#);
        assert_eq!(e.code, "CONTACT_IS_SITE_MEMBER");
        let e = describe_error(StatusCode::BAD_REQUEST, br#"{"message":"bad","details":{"validationError":{"fieldViolations":[{"field":"revision","description":"required"}]}}}"#);
        assert!(e.message.contains("revision: required"), "{}", e.message);
        let e = describe_error(StatusCode::BAD_GATEWAY, b"");
        assert!(e.message.contains("502"));
    }
}
