//! Connector errors, already classified so the jobs layer can decide what happens next
//! without knowing anything about HTTP (retry decisions stay apart from the transport).

use std::time::Duration;

use crate::Processor;

/// What went wrong at a processor, and what to do about it. `status` is the HTTP status the
/// vendor answered with (none when it never answered: a timeout, a token dsr could not sign);
/// `code` is the vendor's own error code (reduced to a safe token by [`safe_code`]), or dsr's
/// name for the failure when the vendor gave none (`transport`, `unexpected_response`, …;
/// every one is listed in `docs/errors.md`).
///
/// `message` is text dsr wrote; `said` is what the vendor's answer said in its own words (an
/// error body's message, a decoder's complaint quoting the vendor's value). The two are kept
/// apart because only dsr's text may be stored in the ledger or shown to the subject: a
/// vendor's words can quote the query they were sent (the subject's address), a service
/// account's e-mail or a key id. `Display` shows dsr's text only; [`ConnectorError::said`]
/// gives the vendor's words to whoever may keep them (the audit log's scrubbable notes, an
/// operator's terminal).
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// Temporary: try again later, no sooner than `after` when the vendor said so
    /// (for example a 429 with `Retry-After`).
    #[error("{processor} is temporarily unavailable ({}){}", code_text(*.status, .code), after_colon(.message))]
    RetryLater {
        processor: Processor,
        status: Option<u16>,
        code: String,
        message: String,
        said: Option<String>,
        after: Option<Duration>,
    },
    /// The processor took the request and fulfils it in its own time (an OpenDSR processor
    /// reports `pending` or `in_progress`): not a failure; dsr looks again after `after`.
    #[error("{processor} is still fulfilling the request (its status: {status}); dsr looks again in {}s", .after.as_secs())]
    Waiting {
        processor: Processor,
        status: String,
        after: Duration,
    },
    /// Credentials were refused even after a fresh token: an operator must fix them.
    #[error("{processor} refused our credentials ({}){}", code_text(*.status, .code), after_colon(.message))]
    Reauthenticate {
        processor: Processor,
        status: Option<u16>,
        code: String,
        message: String,
        said: Option<String>,
    },
    /// Retrying will not help (bad request, missing permission, vendor said no).
    #[error("{processor} failed permanently ({}){}", code_text(*.status, .code), after_colon(.message))]
    Permanent {
        processor: Processor,
        status: Option<u16>,
        code: String,
        message: String,
        said: Option<String>,
    },
    /// The processor offers no way to serve this right (the reason its capabilities give).
    #[error("{processor} cannot do this: {reason}")]
    NotSupported { processor: Processor, reason: String },
    /// The processor's configuration cannot work: an operator must change it.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The records found could not be stored on our side (disk full, permissions).
    #[error(transparent)]
    Sink(#[from] crate::SinkError),
}

/// A processor's configuration that cannot work, naming the key to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("processors.{processor}{}: {reason}", if .key.is_empty() { String::new() } else { format!(".{}", .key) })]
pub struct ConfigError {
    pub processor: Processor,
    /// The key under `[processors.<name>]`, or empty for the section as a whole.
    pub key: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(processor: Processor, key: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            processor,
            key: key.to_string(),
            reason: reason.into(),
        }
    }
}

/// `: message`, or nothing when dsr has nothing to add to the code.
fn after_colon(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

/// A vendor's error code as dsr keeps it: letters, digits and `_ . -`, at most 64 of them.
/// Codes are stored and shown, so a code that is really a sentence (or quotes the subject's
/// address) is replaced by `unrecognised`; the vendor's words stay in `said`.
pub fn safe_code(code: &str) -> String {
    let code = code.trim();
    if code.len() <= 64
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        code.to_string()
    } else {
        "unrecognised".to_string()
    }
}

/// `403:Forbidden`, `404`, `transport`: the status and the code, whichever are known.
fn code_text(status: Option<u16>, code: &str) -> String {
    match (status, code.is_empty()) {
        (Some(status), true) => status.to_string(),
        (Some(status), false) => format!("{status}:{code}"),
        (None, _) => code.to_string(),
    }
}

/// Where and why a vendor's JSON did not fit the type dsr reads it into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// The field's path, `value[3].saleId`, or `.` for the whole body.
    pub path: String,
    pub reason: String,
}

/// Reads `value` as a `T`, naming the field that does not fit.
pub fn decode<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, DecodeError> {
    serde_path_to_error::deserialize(value).map_err(|e| DecodeError {
        path: e.path().to_string(),
        reason: e.inner().to_string(),
    })
}

/// Reads a vendor's JSON `value` (already received from `endpoint`) as a `T`; a value of
/// another shape is the task's permanent failure, naming the endpoint and field.
pub fn decode_answer<T: serde::de::DeserializeOwned>(
    processor: Processor,
    endpoint: &str,
    value: serde_json::Value,
) -> Result<T, ConnectorError> {
    decode(value).map_err(|e| ConnectorError::unexpected_shape(processor, endpoint, &e))
}

/// Reads a JSON body as a `T`. `Ok(Err(_))` is JSON of another shape (a vendor's change);
/// `Err(_)` is no JSON at all (a proxy's error page, a cut-off answer), which may pass.
pub(crate) fn decode_body<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
) -> Result<Result<T, DecodeError>, serde_json::Error> {
    let value: serde_json::Value = serde_json::from_slice(bytes)?;
    Ok(decode(value))
}

impl ConnectorError {
    /// Temporary, with dsr's own code (the vendor did not answer, or not usefully).
    pub fn retry_later(processor: Processor, code: &str, message: impl Into<String>) -> ConnectorError {
        ConnectorError::RetryLater {
            processor,
            status: None,
            code: code.to_string(),
            message: message.into(),
            after: None,
            said: None,
        }
    }

    /// Refused credentials, with dsr's own code.
    pub fn reauthenticate(processor: Processor, code: &str, message: impl Into<String>) -> ConnectorError {
        ConnectorError::Reauthenticate {
            processor,
            status: None,
            code: code.to_string(),
            message: message.into(),
            said: None,
        }
    }

    /// A failure retrying cannot mend, with dsr's own code.
    pub fn permanent(processor: Processor, code: &str, message: impl Into<String>) -> ConnectorError {
        ConnectorError::Permanent {
            processor,
            status: None,
            code: code.to_string(),
            message: message.into(),
            said: None,
        }
    }

    /// The vendor's record no longer holds what the plan read (`what`): the stored plan is
    /// not carried out, and the operator plans again.
    pub fn changed_since_plan(processor: Processor, call: crate::ItemCall<'_>, what: &str) -> ConnectorError {
        ConnectorError::permanent(
            processor,
            "changed_since_plan",
            format!(
                "plan item `{}`: {what} since the plan was made, so the planned change was not sent; \
                 run `dsr retry {} --processor {processor}` to plan again",
                call.item.key, call.ctx.request_id
            ),
        )
    }

    /// A plan item this connector cannot have made (`why`): never retried.
    pub fn foreign_item(processor: Processor, item: &crate::PlanItem, why: &str) -> ConnectorError {
        ConnectorError::permanent(processor, "plan_item", format!("plan item `{}`: {why}", item.key))
    }

    /// A short code without personal data, safe to store in the queue backend:
    /// `permanent:403:Forbidden`, `retry_later:transport`, `config`.
    pub fn code(&self) -> String {
        match self {
            ConnectorError::RetryLater { status, code, .. } => format!("retry_later:{}", code_text(*status, code)),
            ConnectorError::Reauthenticate { status, code, .. } => {
                format!("reauthenticate:{}", code_text(*status, code))
            }
            ConnectorError::Permanent { status, code, .. } => format!("permanent:{}", code_text(*status, code)),
            ConnectorError::Waiting { status, .. } => format!("waiting:{}", safe_code(status)),
            ConnectorError::NotSupported { .. } => "not_supported".to_string(),
            ConnectorError::Config(_) => "config".to_string(),
            ConnectorError::Sink(_) => "sink".to_string(),
        }
    }

    /// The HTTP status the vendor answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ConnectorError::RetryLater { status, .. }
            | ConnectorError::Reauthenticate { status, .. }
            | ConnectorError::Permanent { status, .. } => *status,
            _ => None,
        }
    }

    /// The vendor's (or dsr's) code, without the class and status.
    pub fn vendor_code(&self) -> Option<&str> {
        match self {
            ConnectorError::RetryLater { code, .. }
            | ConnectorError::Reauthenticate { code, .. }
            | ConnectorError::Permanent { code, .. } => Some(code),
            _ => None,
        }
    }

    /// A vendor answer in a shape dsr does not understand: valid JSON whose fields are not
    /// where (or what) the vendor documents. Retrying will not change it, so the task fails
    /// at once, naming the endpoint and the field.
    pub fn unexpected_shape(processor: Processor, endpoint: &str, error: &DecodeError) -> ConnectorError {
        // serde's reason may quote the vendor's value ("invalid type: string \"kari@…\""),
        // which is the vendor's words; only "missing field `x`" names nothing but dsr's type.
        let (ours, theirs) = match error.reason.starts_with("missing field ") {
            true => (format!(": {}", error.reason), String::new()),
            false => (String::new(), error.reason.clone()),
        };
        ConnectorError::permanent(
            processor,
            "unexpected_response",
            format!(
                "{processor} answered {endpoint} in a shape dsr does not understand (at `{}`{ours}); \
                 the vendor's API changed or dsr misreads it: report it with this message",
                error.path
            ),
        )
        .with_said(theirs)
    }

    /// Whether a later attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ConnectorError::RetryLater { .. }
                | ConnectorError::Waiting { .. }
                | ConnectorError::Reauthenticate { .. }
                | ConnectorError::Sink(_)
        )
    }

    /// True for a 404: the item is not (or no longer) there.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ConnectorError::Permanent { status: Some(404), .. })
    }

    /// Adds what to do about a 403 (the permission or role to grant) to its message.
    pub fn explain_forbidden(self, what_to_grant: &str) -> ConnectorError {
        match self {
            ConnectorError::Permanent {
                processor,
                status: Some(403),
                code,
                message,
                said,
            } => ConnectorError::Permanent {
                processor,
                status: Some(403),
                code,
                message: match message.is_empty() {
                    true => what_to_grant.to_string(),
                    false => format!("{message}: {what_to_grant}"),
                },
                said,
            },
            other => other,
        }
    }

    /// What the vendor's answer said in its own words, if it said anything: for an
    /// operator's eyes and the audit log's scrubbable notes, never for stored errors.
    pub fn said(&self) -> Option<&str> {
        match self {
            ConnectorError::RetryLater { said, .. }
            | ConnectorError::Reauthenticate { said, .. }
            | ConnectorError::Permanent { said, .. } => said.as_deref(),
            _ => None,
        }
    }

    /// The same error, with the vendor's words (empty words are none).
    pub fn with_said(mut self, words: impl Into<String>) -> ConnectorError {
        let words = words.into();
        if let ConnectorError::RetryLater { said, .. }
        | ConnectorError::Reauthenticate { said, .. }
        | ConnectorError::Permanent { said, .. } = &mut self
        {
            *said = (!words.trim().is_empty()).then_some(words);
        }
        self
    }

    /// The wait the vendor asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ConnectorError::RetryLater { after, .. } => *after,
            ConnectorError::Waiting { after, .. } => Some(*after),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_carry_no_message_text() {
        let err = ConnectorError::Permanent {
            processor: Processor::Wix,
            status: Some(400),
            code: String::new(),
            message: "kari@example.no is not valid".into(),
            said: None,
        };
        assert_eq!(err.code(), "permanent:400");
        assert!(!err.is_retryable());
        let err = ConnectorError::RetryLater {
            processor: Processor::Google,
            status: Some(429),
            code: "rateLimitExceeded".into(),
            message: String::new(),
            after: Some(Duration::from_millis(2128)),
            said: None,
        };
        assert_eq!(err.code(), "retry_later:429:rateLimitExceeded");
        assert_eq!(err.status(), Some(429));
        assert!(err.is_retryable());
        assert_eq!(err.retry_after(), Some(Duration::from_millis(2128)));
    }

    #[test]
    fn not_found_and_forbidden_are_read_from_the_status() {
        let gone = ConnectorError::Permanent {
            processor: Processor::Wix,
            status: Some(404),
            code: "CONTACT_NOT_FOUND".into(),
            message: String::new(),
            said: None,
        };
        assert!(gone.is_not_found());
        assert!(!ConnectorError::permanent(Processor::Wix, "404_lookalike", "").is_not_found());
        let forbidden = ConnectorError::Permanent {
            processor: Processor::Microsoft365,
            status: Some(403),
            code: "ErrorAccessDenied".into(),
            message: "Access is denied".into(),
            said: None,
        }
        .explain_forbidden("grant Mail.ReadWrite");
        assert!(
            forbidden
                .to_string()
                .ends_with("Access is denied: grant Mail.ReadWrite"),
            "{forbidden}"
        );
        assert_eq!(forbidden.code(), "permanent:403:ErrorAccessDenied");
    }

    #[test]
    fn records_that_cannot_be_stored_are_retried() {
        let err: ConnectorError = crate::SinkError("No space left on device (os error 28)".into()).into();
        assert_eq!(err.code(), "sink");
        assert!(err.is_retryable());
    }

    #[test]
    fn a_bad_config_names_its_key() {
        let err: ConnectorError = ConfigError::new(Processor::Wix, "site_id", "is empty").into();
        assert_eq!(err.to_string(), "processors.wix.site_id: is empty");
        assert_eq!(err.code(), "config");
        assert!(!err.is_retryable());
        let whole = ConfigError::new(Processor::Superoffice, "", "no credentials");
        assert_eq!(whole.to_string(), "processors.superoffice: no credentials");
    }
}
