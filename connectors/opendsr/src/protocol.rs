//! The documents of OpenDSR 2.0 (https://github.com/opengdpr/OpenDSR, `specification.md` at
//! commit 6c080e2), with the field names and values the specification gives: discovery (§6),
//! the request (§7.1), its creation answer (§7.3), errors (§7.5–7.6), status (§8.3), the
//! status callback (§8.6) and the cancellation answer (§9.2).
//!
//! Times are RFC 3339 strings in UTC to the second, as in the specification's examples.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// The version dsr implements, as `api_version` gives it.
pub const API_VERSION: &str = "2.0";
/// The major version every route starts with (§3.4: `https://…/v1/discovery`).
pub const MAJOR_PATH: &str = "v1";

/// The signature of a response or callback body (§8.3, §8.6), and its OpenGDPR name, which
/// §10.1 says parties must still honour.
pub const SIGNATURE_HEADER: &str = "x-opendsr-signature";
pub const LEGACY_SIGNATURE_HEADER: &str = "x-opengdpr-signature";
/// The domain the signing certificate is issued for.
pub const DOMAIN_HEADER: &str = "x-opendsr-processor-domain";
pub const LEGACY_DOMAIN_HEADER: &str = "x-opengdpr-processor-domain";

/// A request type (§6.2). Rectification and objection are outside OpenDSR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestType {
    Access,
    Portability,
    Erasure,
}

impl RequestType {
    pub const ALL: [RequestType; 3] = [RequestType::Access, RequestType::Portability, RequestType::Erasure];

    pub fn as_str(self) -> &'static str {
        match self {
            RequestType::Access => "access",
            RequestType::Portability => "portability",
            RequestType::Erasure => "erasure",
        }
    }

    pub fn parse(text: &str) -> Option<RequestType> {
        RequestType::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

/// A request's status (§8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    InProgress,
    Completed,
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 4] = [
        Status::Pending,
        Status::InProgress,
        Status::Completed,
        Status::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::InProgress => "in_progress",
            Status::Completed => "completed",
            Status::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Completed and cancelled requests change no more.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Completed | Status::Cancelled)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The identity types of §5.1.
pub const IDENTITY_TYPES: [&str; 11] = [
    "controller_customer_id",
    "android_advertising_id",
    "android_id",
    "email",
    "fire_advertising_id",
    "ios_advertising_id",
    "ios_vendor_id",
    "microsoft_advertising_id",
    "microsoft_publisher_id",
    "roku_publisher_id",
    "roku_advertising_id",
];

/// The identity formats of §5.2.
pub const IDENTITY_FORMATS: [&str; 4] = ["raw", "sha1", "md5", "sha256"];

/// An identity object (§5.3). Its value is the subject's: `Debug` leaves it out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub identity_type: String,
    pub identity_value: String,
    pub identity_format: String,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("identity_type", &self.identity_type)
            .field("identity_format", &self.identity_format)
            .finish_non_exhaustive()
    }
}

/// A pair of identity type and format a processor takes (discovery, §6.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentitySupport {
    pub identity_type: String,
    pub identity_format: String,
}

/// The discovery document (§6.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Discovery {
    pub api_version: String,
    pub supported_identities: Vec<IdentitySupport>,
    pub supported_subject_request_types: Vec<RequestType>,
    /// Where the certificate that signs callbacks and responses is downloaded (PEM).
    pub processor_certificate: String,
}

/// A request as a controller submits it (§7.1.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubjectRequest {
    pub regulation: String,
    pub subject_request_id: String,
    pub subject_request_type: RequestType,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_identities: Vec<Identity>,
    pub submitted_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub status_callback_urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The answer to a request created (§7.3). The signature travels in the signature header:
/// the body cannot carry a signature of itself (§7.3 lists `processor_signature` among the
/// body's properties, but its example, §7.4, and §8.3 put it in the header).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Created {
    pub controller_id: String,
    pub expected_completion_time: String,
    pub received_time: String,
    /// The request's body, base64: controllers must not log or store it (§7.3).
    pub encoded_request: String,
    pub subject_request_id: String,
}

/// A request's status (§8.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusDoc {
    pub controller_id: String,
    pub expected_completion_time: String,
    pub subject_request_id: String,
    pub request_status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results_count: Option<u64>,
}

/// A status callback's body (§8.6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Callback {
    pub controller_id: String,
    pub expected_completion_time: String,
    pub status_callback_url: String,
    pub subject_request_id: String,
    pub request_status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results_count: Option<u64>,
}

/// The answer to a cancellation (§9.2); the signature is in the header, as for [`Created`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CancelDoc {
    pub controller_id: String,
    pub subject_request_id: String,
    pub received_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
}

/// An error answer (§7.5): `{"error": {"code", "message", "errors": [...]}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorObject,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorObject {
    pub code: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ErrorDetail>,
}

/// One thing wrong (§7.6). Never the subject's identity (§7.6: no sensitive information).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub domain: String,
    pub reason: String,
    pub message: String,
}

impl ErrorBody {
    /// A 400 for `details`, the first one's message as the summary.
    pub fn validation(details: Vec<ErrorDetail>) -> ErrorBody {
        ErrorBody {
            error: ErrorObject {
                code: 400,
                message: details.first().map(|d| d.message.clone()),
                errors: details,
            },
        }
    }
}

impl ErrorDetail {
    pub fn new(domain: &str, reason: &str, message: impl Into<String>) -> ErrorDetail {
        ErrorDetail {
            domain: domain.into(),
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// A time as OpenDSR documents carry it.
pub fn time_text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Reads an RFC 3339 time.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.with_timezone(&Utc))
}

/// Whether `id` is what §1.1 asks of identifiers: a lowercase UUID of version 4.
pub fn is_lowercase_uuid_v4(id: &str) -> bool {
    id.len() == 36
        && id == id.to_ascii_lowercase()
        && uuid::Uuid::try_parse(id).is_ok_and(|u| u.get_version_num() == 4 && u.hyphenated().to_string() == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification's own examples, as `fixtures/samples/opendsr/` keeps them, read
    /// into these types and written back with the same fields.
    fn sample(name: &str) -> serde_json::Value {
        let path = format!("{}/../../fixtures/samples/opendsr/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn round_trips<T: serde::de::DeserializeOwned + Serialize>(name: &str) {
        let value = sample(name);
        let read: T = serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(serde_json::to_value(&read).unwrap(), value, "{name}");
    }

    #[test]
    fn the_specifications_examples_read_and_write_unchanged() {
        round_trips::<Discovery>("discovery.json");
        round_trips::<Created>("created.json");
        round_trips::<StatusDoc>("status.json");
        round_trips::<Callback>("callback.json");
        round_trips::<CancelDoc>("cancelled.json");
        round_trips::<ErrorBody>("error.json");
        round_trips::<SubjectRequest>("request.json");
    }

    #[test]
    fn identifiers_must_be_lowercase_uuid_v4() {
        assert!(is_lowercase_uuid_v4("a7551968-d5d6-44b2-9831-815ac9017798"));
        assert!(!is_lowercase_uuid_v4("A7551968-D5D6-44B2-9831-815AC9017798"));
        assert!(
            !is_lowercase_uuid_v4("a7551968-d5d6-14b2-9831-815ac9017798"),
            "version 1"
        );
        assert!(!is_lowercase_uuid_v4("a7551968d5d644b29831815ac9017798"), "no hyphens");
        assert!(!is_lowercase_uuid_v4("not-a-uuid"));
    }

    #[test]
    fn an_identity_value_stays_out_of_debug() {
        let identity = Identity {
            identity_type: "email".into(),
            identity_value: "kari@example.no".into(),
            identity_format: "raw".into(),
        };
        let shown = format!("{identity:?}");
        assert!(shown.contains("email") && !shown.contains("kari"), "{shown}");
    }
}
