//! Connector errors, already classified so the jobs layer can decide what happens next
//! without knowing anything about HTTP (retry decisions stay apart from the transport).

use std::time::Duration;

/// What went wrong at a processor, and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// Temporary: try again later, no sooner than `after` when the vendor said so
    /// (for example a 429 with `Retry-After`).
    #[error("{processor} is temporarily unavailable ({code}): {message}")]
    RetryLater {
        processor: &'static str,
        code: String,
        message: String,
        after: Option<Duration>,
    },
    /// Credentials were refused even after a fresh token: an operator must fix them.
    #[error("{processor} refused our credentials ({code}): {message}")]
    Reauthenticate {
        processor: &'static str,
        code: String,
        message: String,
    },
    /// Retrying will not help (bad request, missing permission, vendor said no).
    #[error("{processor} failed permanently ({code}): {message}")]
    Permanent {
        processor: &'static str,
        code: String,
        message: String,
    },
    /// The processor offers no way to serve this right.
    #[error("{processor} cannot do this: {reason}")]
    NotSupported { processor: &'static str, reason: String },
    /// The records found could not be stored on our side (disk full, permissions).
    #[error(transparent)]
    Sink(#[from] crate::SinkError),
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
    processor: &'static str,
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
    /// A short code without personal data, safe to store in the queue backend.
    pub fn code(&self) -> String {
        match self {
            ConnectorError::RetryLater { code, .. } => format!("retry_later:{code}"),
            ConnectorError::Reauthenticate { code, .. } => format!("reauthenticate:{code}"),
            ConnectorError::Permanent { code, .. } => format!("permanent:{code}"),
            ConnectorError::NotSupported { .. } => "not_supported".to_string(),
            ConnectorError::Sink(_) => "sink".to_string(),
        }
    }

    /// A vendor answer in a shape dsr does not understand: valid JSON whose fields are not
    /// where (or what) the vendor documents. Retrying will not change it, so the task fails
    /// at once, naming the endpoint and the field.
    pub fn unexpected_shape(processor: &'static str, endpoint: &str, error: &DecodeError) -> ConnectorError {
        ConnectorError::Permanent {
            processor,
            code: "unexpected_response".into(),
            message: format!(
                "{processor} answered {endpoint} in a shape dsr does not understand (at `{}`: {}); \
                 the vendor's API changed or dsr misreads it: report it with this message",
                error.path, error.reason
            ),
        }
    }

    /// Whether a later attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ConnectorError::RetryLater { .. } | ConnectorError::Reauthenticate { .. } | ConnectorError::Sink(_)
        )
    }

    /// True for a 404: the item is not (or no longer) there.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ConnectorError::Permanent { code, .. } if code.starts_with("404"))
    }

    /// Adds what to do about a 403 (the permission or role to grant) to its message.
    pub fn explain_forbidden(self, what_to_grant: &str) -> ConnectorError {
        match self {
            ConnectorError::Permanent {
                processor,
                code,
                message,
            } if code.starts_with("403") => ConnectorError::Permanent {
                processor,
                code,
                message: format!("{message}: {what_to_grant}"),
            },
            other => other,
        }
    }

    /// The wait the vendor asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ConnectorError::RetryLater { after, .. } => *after,
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
            processor: "wix",
            code: "400".into(),
            message: "kari@example.no is not valid".into(),
        };
        assert_eq!(err.code(), "permanent:400");
        assert!(!err.is_retryable());
        let err = ConnectorError::RetryLater {
            processor: "google",
            code: "429".into(),
            message: String::new(),
            after: Some(Duration::from_millis(2128)),
        };
        assert!(err.is_retryable());
        assert_eq!(err.retry_after(), Some(Duration::from_millis(2128)));
    }
}
