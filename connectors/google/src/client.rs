//! Google's error bodies and quotas, for the shared HTTP client.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use dsr_connector::ConnectorError;
use dsr_connector::http::{RetryHint, VendorError};
use reqwest::StatusCode;

use crate::wire::ErrorBody;

pub const PROCESSOR: &str = "google";

/// Until Google's daily quotas reset: midnight Pacific Time.
pub fn until_quota_reset(now: chrono::DateTime<Utc>) -> Duration {
    let pacific = now.with_timezone(&chrono_tz::America::Los_Angeles);
    let next_midnight = pacific
        .date_naive()
        .succ_opt()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .and_then(|t| chrono_tz::America::Los_Angeles.from_local_datetime(&t).earliest());
    next_midnight
        .map(|t| (t.with_timezone(&Utc) - now).to_std().unwrap_or_default() + Duration::from_secs(60))
        .unwrap_or(Duration::from_secs(24 * 3600))
}

/// Both of Google's error shapes: the classic `errors[].reason` of the v3 APIs and the newer
/// `status` of the Google Cloud APIs. Rate limits come as 403 or 429 with no Retry-After.
pub fn describe_error(_status: StatusCode, body: &[u8]) -> VendorError {
    let error = serde_json::from_slice::<ErrorBody>(body).ok().map(|b| b.error);
    let code = error
        .as_ref()
        .and_then(|e| {
            e.errors
                .first()
                .and_then(|r| r.reason.clone())
                .or_else(|| e.status.clone())
        })
        .unwrap_or_default();
    let message = error
        .and_then(|e| e.message)
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect());
    let retry = match code.as_str() {
        "rateLimitExceeded" | "userRateLimitExceeded" | "RESOURCE_EXHAUSTED" | "quotaExceeded" | "backendError" => {
            RetryHint::Later(None)
        }
        "dailyLimitExceeded" => RetryHint::Later(Some(until_quota_reset(Utc::now()))),
        _ => RetryHint::ByStatus,
    };
    VendorError { code, message, retry }
}

/// Whether Google refused a change because the item changed since it was read: a 400 with
/// reason `failedPrecondition` (the People API's words) or, where no classic reason is
/// sent, the status `FAILED_PRECONDITION`.
pub fn is_stale(error: &ConnectorError) -> bool {
    matches!(error, ConnectorError::Permanent { code, .. }
        if code.ends_with(":failedPrecondition") || code.ends_with(":FAILED_PRECONDITION"))
}

/// A 403 names the role or scope that is missing.
pub fn needs_role(error: ConnectorError, role: &str) -> ConnectorError {
    error.explain_forbidden(role)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_error_shapes_and_their_retry_hints_are_read() {
        let classic = br#"{"error":{"code":403,"message":"User Rate Limit Exceeded","errors":[{"domain":"usageLimits","reason":"userRateLimitExceeded","message":"User Rate Limit Exceeded"}]}}"#;
        let e = describe_error(StatusCode::FORBIDDEN, classic);
        assert_eq!(e.code, "userRateLimitExceeded");
        assert_eq!(e.retry, RetryHint::Later(None));
        let newer =
            br#"{"error":{"code":403,"message":"The caller does not have permission","status":"PERMISSION_DENIED"}}"#;
        let e = describe_error(StatusCode::FORBIDDEN, newer);
        assert_eq!((e.code.as_str(), e.retry), ("PERMISSION_DENIED", RetryHint::ByStatus));
        let daily =
            br#"{"error":{"code":403,"message":"Daily Limit Exceeded","errors":[{"reason":"dailyLimitExceeded"}]}}"#;
        assert!(matches!(
            describe_error(StatusCode::FORBIDDEN, daily).retry,
            RetryHint::Later(Some(_))
        ));
        let e = describe_error(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>");
        assert_eq!((e.code.as_str(), e.message.as_str()), ("", "<html>bad gateway</html>"));
    }

    #[test]
    fn a_stale_etag_is_known_by_its_reason_or_its_status() {
        let stale = |body: &[u8]| {
            let e = describe_error(StatusCode::BAD_REQUEST, body);
            dsr_connector::http::classify(PROCESSOR, StatusCode::BAD_REQUEST, None, e.code, e.message)
        };
        let both = br#"{"error":{"code":400,"message":"stale","errors":[{"reason":"failedPrecondition"}],"status":"FAILED_PRECONDITION"}}"#;
        assert!(is_stale(&stale(both)));
        let status_only = br#"{"error":{"code":400,"message":"stale","status":"FAILED_PRECONDITION"}}"#;
        assert!(is_stale(&stale(status_only)));
        let other = br#"{"error":{"code":400,"message":"bad","status":"INVALID_ARGUMENT"}}"#;
        assert!(!is_stale(&stale(other)));
    }

    #[test]
    fn daily_quotas_reset_at_pacific_midnight() {
        // 07:30 UTC on 27 Nov 2026 is 23:30 the day before in California (PST, UTC-8).
        let now = Utc.with_ymd_and_hms(2026, 11, 27, 7, 30, 0).unwrap();
        assert_eq!(until_quota_reset(now), Duration::from_secs(31 * 60));
    }
}
