//! Errors as RFC 9457 problem documents (`application/problem+json`): a type, a title, the
//! status, what went wrong in words a caller can act on, and the field it concerns, if one.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::CliError;

#[derive(Debug)]
pub struct Problem {
    pub status: StatusCode,
    /// A short, stable name: the last part of the `type` URI.
    pub kind: &'static str,
    pub detail: String,
    pub field: Option<String>,
    pub retry_after: Option<u64>,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &'static str, detail: impl Into<String>) -> Problem {
        Problem {
            status,
            kind,
            detail: detail.into(),
            field: None,
            retry_after: None,
        }
    }

    pub fn field(mut self, field: impl Into<String>) -> Problem {
        self.field = Some(field.into());
        self
    }

    pub fn not_found(what: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not-found", what)
    }
}

/// The command line's exit codes as HTTP: 2 (bad input) → 422 naming the field where the
/// message names a flag; 3 (ledger, queue or storage unreachable) → 503; 1 → 500.
impl From<CliError> for Problem {
    fn from(e: CliError) -> Problem {
        match e {
            CliError::BadInput(message) => {
                let (detail, field) = in_api_words(&message);
                let mut problem = Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-request", detail);
                problem.field = field;
                problem
            }
            CliError::Unreachable(message) => Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message),
            CliError::Failed(e) => {
                tracing::error!(error = %format!("{e:#}"), "an API call failed");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the server failed to answer; its log says why",
                )
            }
        }
    }
}

impl From<dsr_jobs::LedgerError> for Problem {
    fn from(e: dsr_jobs::LedgerError) -> Problem {
        match e {
            dsr_jobs::LedgerError::NotFound(_) => Problem::not_found(e.to_string()),
            dsr_jobs::LedgerError::Refused(m) => Problem::new(StatusCode::CONFLICT, "refused", m),
            // What the database said stays in the log: it may quote a path or a value.
            e @ (dsr_jobs::LedgerError::Unreachable { .. } | dsr_jobs::LedgerError::Query(_)) => {
                tracing::warn!(error = %e, "the ledger failed an API call");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the ledger did not answer; the server's log says why",
                )
            }
            e => CliError::from(e).into(),
        }
    }
}

impl From<dsr_jobs::EngineError> for Problem {
    fn from(e: dsr_jobs::EngineError) -> Problem {
        match e {
            dsr_jobs::EngineError::Ledger(l) => l.into(),
            e => CliError::from(e).into(),
        }
    }
}

/// The request fields by the command-line flags validation messages name.
const FIELDS: [(&str, &str); 10] = [
    ("--ga-client-id", "ga_client_id"),
    ("--ga-user-id", "ga_user_id"),
    ("--dry-run", "dry_run"),
    ("--processor", "processors"),
    ("--email", "email"),
    ("--phone", "phone"),
    ("--name", "name"),
    ("--lang", "lang"),
    ("--set", "set"),
    ("[processors.", "processors"),
];

/// A validation message in the API's words (its field names for the CLI's flags), and the
/// first field it names.
fn in_api_words(message: &str) -> (String, Option<String>) {
    let mut field = None;
    let mut first_at = usize::MAX;
    for (flag, name) in FIELDS {
        if let Some(at) = message.find(flag)
            && at < first_at
        {
            first_at = at;
            field = Some(name.to_string());
        }
    }
    let mut detail = message.to_string();
    for (flag, name) in FIELDS.iter().take(9) {
        detail = detail.replace(flag, name);
    }
    (detail, field)
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = super::openapi::ProblemDoc {
            kind: format!("https://dsr.example/problems/{}", self.kind),
            title: self.status.canonical_reason().unwrap_or("error").to_string(),
            status: self.status.as_u16(),
            detail: self.detail,
            field: self.field,
        };
        let text = serde_json::to_string(&body).unwrap_or_default();
        let mut response = (self.status, text).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_messages_name_the_api_field() {
        let (detail, field) = in_api_words("--set applies only to rectification, not access");
        assert_eq!(detail, "set applies only to rectification, not access");
        assert_eq!(field.as_deref(), Some("set"));
        let (_, field) = in_api_words("no identity to search for: give --email, --phone, --ga-client-id");
        assert_eq!(field.as_deref(), Some("email"), "the first named");
        let (detail, field) = in_api_words("processor wix is not configured: enable [processors.wix] in the config");
        assert_eq!(field, Some("processors".into()));
        assert!(
            detail.contains("[processors.wix]"),
            "config keys stay as written: {detail}"
        );
    }
}
