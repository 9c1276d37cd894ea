//! Google's error bodies and quotas for the shared HTTP client, the clients per scope and
//! impersonated user, and the one call a plan item stands for (`Call`).
//! Errors: https://cloud.google.com/apis/design/errors#http_mapping and the classic `errors[]`
//! of https://developers.google.com/workspace/gmail/api/guides/handle-errors.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use dsr_connector::http::{Limits, RetryHint, VendorClient, VendorError};
use dsr_connector::{ConnectorError, PlanItem, Processor, decode};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Google;
use crate::wire::ErrorBody;

/// Workspace mailboxes (and address books) searched at once: each user has a quota of its
/// own, but the project's quota is shared by all (Gmail: 1,200,000 units per minute per
/// project, https://developers.google.com/workspace/gmail/api/reference/quota), and a
/// domain of hundreds of users must not open hundreds of searches at once.
pub const MAILBOXES_IN_FLIGHT: usize = 4;

pub const PROCESSOR: Processor = Processor::Google;

/// A guard against a listing that does not end: Gmail lists up to 500 message ids a page and
/// People up to 1,000 contacts, so 1,000 pages are 500,000 mails or a million contacts.
pub(crate) const MAX_PAGES: usize = 1000;

/// BigQuery pages of one visitor's Analytics events, 500 rows each: up to 5 million events.
pub(crate) const MAX_ROW_PAGES: usize = 10_000;

/// What dsr allows itself per Workspace user in Gmail. Gmail allows 15,000 quota units per
/// user per minute, and the costliest call dsr makes, `messages.delete`, costs 10
/// (`messages.list`, `.get` and `.trash` cost 5):
/// https://developers.google.com/workspace/gmail/api/reference/quota. So at most 1,500 calls a
/// minute per user (the window Google counts in; the limiter sends a burst of 37, then one
/// every 42 ms, so no minute holds more). Google answers 429 for "a per-user
/// concurrent request limit" without giving its number
/// (https://developers.google.com/workspace/gmail/api/guides/handle-errors): ten in flight is
/// chosen, conservatively.
pub const GMAIL_LIMITS: Limits = Limits {
    requests: 1_500,
    per: Duration::from_secs(60),
    concurrent: 10,
};

/// What dsr allows itself per Workspace user in the People API. Google publishes its People
/// quotas only in each project's Cloud console, where reads default to 90 per minute per user
/// (the console's "Read requests per minute per user"; reported in
/// https://github.com/MrCaspan/GAS-Gmail-Signature-Templator/pull/1); held within 90 a minute
/// (a burst of two, then one every 0.7 s). No concurrency limit is documented; two in flight (a user's two address
/// books, listed together) is chosen, and writes for one user go one at a time anyway, as
/// deleteContact asks (https://developers.google.com/people/api/rest/v1/people/deleteContact).
pub const PEOPLE_LIMITS: Limits = Limits {
    requests: 90,
    per: Duration::from_secs(60),
    concurrent: 2,
};

/// The one call a plan item stands for: its `target`, as `execute` reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "call")]
pub enum Call {
    /// Analytics user deletion: the v3 upsert (`CLIENT_ID`, `USER_ID`) or the Admin API's
    /// `submitUserDeletion` (`userProvidedData`).
    #[serde(rename = "userDeletion")]
    UserDeletion {
        property: String,
        id_type: String,
        value: String,
    },
    #[serde(rename = "messages.delete")]
    DeleteMessage { mailbox: String, id: String },
    #[serde(rename = "messages.trash")]
    TrashMessage { mailbox: String, id: String },
    #[serde(rename = "people.deleteContact", rename_all = "camelCase")]
    DeleteContact { mailbox: String, resource_name: String },
    /// The body carries the etag and sources the contact was read with.
    #[serde(rename = "people.updateContact")]
    UpdateContact(PlannedUpdate),
}

/// An `updateContact` as planned: the mailbox, the contact, `updatePersonFields` and the body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedUpdate {
    pub mailbox: String,
    pub resource_name: String,
    pub update_person_fields: Vec<String>,
    pub body: Value,
}

impl Call {
    /// The call `item` was planned with; a target no Google call fits is dsr's own fault.
    pub fn of(item: &PlanItem) -> Result<Call, ConnectorError> {
        decode(item.target.clone()).map_err(|e| {
            let reason = format!("at `{}`: {}", e.path, e.reason);
            ConnectorError::permanent(
                PROCESSOR,
                "plan_item",
                format!("plan item {} is no Google call ({reason})", item.key),
            )
        })
    }
}

impl Google {
    /// A client with a token for `scopes`, acting as `subject_user` when given.
    pub(crate) fn client_for(&self, scopes: &[&str], subject_user: Option<&str>) -> VendorClient {
        VendorClient::new(PROCESSOR, self.http.clone(), describe_error)
            .with_tokens(self.tokens.cache(scopes, subject_user))
    }

    /// A 403 at a Workspace endpoint usually means domain-wide delegation is not set up.
    pub(crate) fn delegation_hint(&self, error: ConnectorError) -> ConnectorError {
        // The service account is named by its config key, not its address: this text is
        // stored and shown, and stored text carries no addresses.
        error.explain_forbidden(
            "in the Workspace admin console (Security > API controls > Domain-wide delegation) allow the client id \
             of the service account in processors.google.service_account_key (`client_id` in its key file) the \
             Gmail and contacts scopes",
        )
    }

    /// What to grant on a GA4 property, for a 403 there.
    pub(crate) fn property_role(&self, property: &str) -> String {
        format!(
            "grant the service account in processors.google.service_account_key (`client_email` in its key file) \
             the Editor role on GA4 property {property} (Admin > Property access management)"
        )
    }
}

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
    error.status() == Some(400) && matches!(error.vendor_code(), Some("failedPrecondition" | "FAILED_PRECONDITION"))
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
        let answered = |status: StatusCode, body: &[u8]| {
            let e = describe_error(status, body);
            dsr_connector::http::classify(PROCESSOR, status, None, e.code, e.message)
        };
        let stale = |body: &[u8]| is_stale(&answered(StatusCode::BAD_REQUEST, body));
        assert!(stale(
            br#"{"error":{"code":400,"message":"stale","errors":[{"reason":"failedPrecondition"}],"status":"FAILED_PRECONDITION"}}"#
        ));
        assert!(stale(
            br#"{"error":{"code":400,"message":"stale","status":"FAILED_PRECONDITION"}}"#
        ));
        assert!(!stale(
            br#"{"error":{"code":400,"message":"bad","status":"INVALID_ARGUMENT"}}"#
        ));
        let conflict = br#"{"error":{"code":409,"message":"stale","status":"FAILED_PRECONDITION"}}"#;
        assert!(!is_stale(&answered(StatusCode::CONFLICT, conflict)), "only a 400");
    }

    #[test]
    fn daily_quotas_reset_at_pacific_midnight() {
        // 07:30 UTC on 27 Nov 2026 is 23:30 the day before in California (PST, UTC-8).
        let now = Utc.with_ymd_and_hms(2026, 11, 27, 7, 30, 0).unwrap();
        assert_eq!(until_quota_reset(now), Duration::from_secs(31 * 60));
    }

    #[test]
    fn a_target_that_is_no_google_call_is_named() {
        let item = PlanItem::new(
            "mail x",
            "mail",
            dsr_connector::Action::Delete,
            serde_json::json!({"call": "messages.batchDelete", "ids": ["1"]}),
            Value::Null,
            vec![],
        );
        let err = Call::of(&item).unwrap_err();
        assert_eq!(err.code(), "permanent:plan_item");
        assert!(err.to_string().contains("plan item mail x"), "{err}");
    }
}
