//! Wix's error bodies and JSON calls.

use dsr_connector::ConnectorError;
use dsr_connector::http::{VendorClient, VendorError};
use reqwest::StatusCode;
use serde_json::Value;

pub const PROCESSOR: &str = "wix";

/// `{"message","details":{"applicationError":{"code","description"}}}` or
/// `{"message","details":{"validationError":{"fieldViolations":[…]}}}`; 5xx often empty.
pub fn describe_error(status: StatusCode, body: &[u8]) -> VendorError {
    let parsed: Value = serde_json::from_slice(body).unwrap_or_default();
    let details = &parsed["details"];
    let code = details["applicationError"]["code"]
        .as_str()
        .map(String::from)
        .or_else(|| details.get("validationError").map(|_| "VALIDATION".to_string()))
        .unwrap_or_default();
    let mut message = parsed["message"].as_str().unwrap_or_default().to_string();
    for violation in details["validationError"]["fieldViolations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        message.push_str(&format!(
            " ({}: {})",
            violation["field"].as_str().unwrap_or("?"),
            violation["description"].as_str().unwrap_or("")
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
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ConnectorError> {
        let url = format!("{}{path}", self.api);
        self.client.json("site", |http| http.post(&url).json(body)).await
    }

    pub async fn get(&self, path: &str) -> Result<Value, ConnectorError> {
        let url = format!("{}{path}", self.api);
        self.client.json("site", |http| http.get(&url)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Result<Value, ConnectorError> {
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
