//! Wix's error bodies and JSON calls.

use std::time::Duration;

use dsr_connector::http::{Limits, VendorClient, VendorError};
use dsr_connector::{ConnectorError, Processor};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub const PROCESSOR: Processor = Processor::Wix;

/// Reads Wix's error bodies, as https://dev.wix.com/docs/api-reference/articles/work-with-wix-apis/troubleshooting/about-errors
/// shows them: `{"message","details":{"applicationError":{"code","description"}}}`, or
/// `{"message","details":{"validationError":{"fieldViolations":[{"field","description","ruleName"}]}}}`
/// (the code is the first violated rule's name, such as
/// `OWNER_OR_CONTRIBUTOR_MEMBER_DELETE_FORBIDDEN`, else `VALIDATION`), and the token endpoint's
/// `{"error","error_description"}`. 5xx answers are often empty.
pub fn describe_error(status: StatusCode, body: &[u8]) -> VendorError {
    let body: Value = serde_json::from_slice(body).unwrap_or_default();
    let text = |at: &str| body.pointer(at).and_then(Value::as_str).filter(|t| !t.is_empty());
    let violations = body
        .pointer("/details/validationError/fieldViolations")
        .and_then(Value::as_array);
    let rule = violations.map(|all| all.iter().find_map(|v| v["ruleName"].as_str()).unwrap_or("VALIDATION"));
    let code = text("/details/applicationError/code").or(rule).or(text("/error"));
    let mut message = text("/message")
        .or(text("/details/applicationError/description"))
        .or(text("/error_description"))
        .unwrap_or_default()
        .to_string();
    for violation in violations.into_iter().flatten() {
        let field = violation["field"].as_str().unwrap_or("?");
        let description = violation["description"].as_str().unwrap_or("");
        let rule = violation["ruleName"]
            .as_str()
            .map(|r| format!(" [{r}]"))
            .unwrap_or_default();
        message.push_str(&format!(" ({field}: {description}{rule})"));
    }
    if message.is_empty() {
        message = format!("Wix answered {status} with no explanation");
    }
    VendorError {
        code: code.unwrap_or_default().to_string(),
        message,
        ..Default::default()
    }
}

/// What dsr allows itself per site: Wix allows an app "up to 200 requests per minute, per
/// instance" (https://dev.wix.com/docs/rest/articles/get-started/rate-limits; an instance is
/// one site's installation of the app, so per site), held within 200 a minute (a burst of five, then one every 0.32 s).
/// Wix documents no limit on requests in flight; four is chosen, conservatively (what
/// Microsoft documents for one mailbox).
pub const SITE_LIMITS: Limits = Limits {
    requests: 200,
    per: Duration::from_secs(60),
    concurrent: 4,
};

/// The site's API: every call carries the site id (a default header) and the current token,
/// and is limited under the site id.
pub struct Wix {
    pub client: VendorClient,
    pub api: String,
    pub site: String,
}

impl Wix {
    pub async fn post<T: DeserializeOwned>(&self, path: &str, body: &Value) -> Result<T, ConnectorError> {
        let url = format!("{}{path}", self.api);
        self.client.json(&self.site, |http| http.post(&url).json(body)).await
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ConnectorError> {
        let url = format!("{}{path}", self.api);
        self.client.json(&self.site, |http| http.get(&url)).await
    }

    pub async fn patch<T: DeserializeOwned>(&self, path: &str, body: &Value) -> Result<T, ConnectorError> {
        let url = format!("{}{path}", self.api);
        self.client.json(&self.site, |http| http.patch(&url).json(body)).await
    }

    /// Deletes; a 404 means it is gone already (`Ok(false)`).
    pub async fn remove(&self, path: &str) -> Result<bool, ConnectorError> {
        let url = format!("{}{path}", self.api);
        self.client.remove(&self.site, |http| http.delete(&url)).await
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
        assert_eq!(e.code, "VALIDATION");
        let e = describe_error(StatusCode::BAD_REQUEST, br#"{"message":"no","details":{"validationError":{"fieldViolations":[{"field":"id","ruleName":"OWNER_OR_CONTRIBUTOR_MEMBER_DELETE_FORBIDDEN"}]}}}"#);
        assert_eq!(e.code, "OWNER_OR_CONTRIBUTOR_MEMBER_DELETE_FORBIDDEN");
        let e = describe_error(
            StatusCode::UNAUTHORIZED,
            br#"{"error":"invalid_client","error_description":"wrong secret"}"#,
        );
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            ("invalid_client", "wrong secret")
        );
        let e = describe_error(StatusCode::BAD_GATEWAY, b"");
        assert!(e.message.contains("502"));
    }
}
