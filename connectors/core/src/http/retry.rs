//! Classifies a vendor's failure into what the jobs layer should do next. Only the decision
//! lives here; the transport that acts on it is elsewhere.

use std::time::{Duration, SystemTime};

use reqwest::StatusCode;

use crate::{ConnectorError, Processor};

/// Reads `Retry-After`: delay-seconds (Microsoft Graph sends fractions such as "2.128") or
/// an HTTP-date (RFC 9110 §10.2.3). Nonsense gives `None`; a date in the past gives zero.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && (0.0..1e9).contains(&secs)).then(|| Duration::from_secs_f64(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// What a failed response means. `code` and `message` come from the vendor's error body:
/// the code is kept as a safe token, the message as the vendor's words (`said`), never as
/// dsr's own text.
pub fn classify(
    processor: Processor,
    status: StatusCode,
    retry_after: Option<Duration>,
    code: String,
    message: String,
) -> ConnectorError {
    let http = Some(status.as_u16());
    let code = if code.is_empty() {
        code
    } else {
        crate::error::safe_code(&code)
    };
    let said = (!message.trim().is_empty()).then_some(message);
    let message = String::new();
    match status {
        StatusCode::UNAUTHORIZED => ConnectorError::Reauthenticate {
            processor,
            status: http,
            code,
            message,
            said,
        },
        s if s == StatusCode::TOO_MANY_REQUESTS || s == StatusCode::REQUEST_TIMEOUT || s.is_server_error() => {
            ConnectorError::RetryLater {
                processor,
                status: http,
                code,
                message,
                after: retry_after,
                said,
            }
        }
        _ => ConnectorError::Permanent {
            processor,
            status: http,
            code,
            message,
            said,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_fractions_dates_and_refuses_nonsense() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("2.128", now), Some(Duration::from_millis(2128)));
        assert_eq!(parse_retry_after(" 120 ", now), Some(Duration::from_secs(120)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(30)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        for bad in ["", "soon", "-1", "NaN", "inf"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad}");
        }
    }

    #[test]
    fn statuses_map_to_what_to_do_next() {
        let c = |s: u16| {
            classify(
                Processor::Wix,
                StatusCode::from_u16(s).unwrap(),
                None,
                String::new(),
                String::new(),
            )
        };
        assert!(matches!(c(401), ConnectorError::Reauthenticate { .. }));
        assert!(matches!(c(429), ConnectorError::RetryLater { .. }));
        assert!(matches!(c(503), ConnectorError::RetryLater { .. }));
        assert!(matches!(c(500), ConnectorError::RetryLater { .. }));
        assert!(matches!(c(403), ConnectorError::Permanent { .. }));
        assert!(matches!(c(400), ConnectorError::Permanent { .. }));
        let e = classify(
            Processor::Microsoft365,
            StatusCode::TOO_MANY_REQUESTS,
            Some(Duration::from_secs(2)),
            "TooManyRequests".into(),
            "slow down".into(),
        );
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
        assert_eq!(e.code(), "retry_later:429:TooManyRequests");
    }
}
