//! What a failed attempt makes of a task: not applicable, failed for good with what the
//! operator must do, or tried again after a backoff that respects the vendor's Retry-After.

use std::time::Duration;

use chrono::{DateTime, Utc};
use dsr_connector::ConnectorError;

use crate::ledger::{Claim, TaskResult};

/// How many attempts a task gets, and how long it waits between them.
#[derive(Debug, Clone, Copy)]
pub struct Retries {
    pub max_attempts: u32,
    pub base: Duration,
    pub max: Duration,
}

impl Retries {
    pub fn of(settings: &crate::engine::Settings) -> Retries {
        Retries {
            max_attempts: settings.max_attempts,
            base: settings.backoff_base,
            max: settings.backoff_max,
        }
    }
}

/// What a vendor's error makes of the task: not applicable, failed for good (with what the
/// operator must do), or tried again later.
pub fn classify(retries: Retries, now: DateTime<Utc>, claim: Claim, error: ConnectorError) -> TaskResult {
    match &error {
        ConnectorError::NotSupported { reason, .. } => TaskResult::NotApplicable { reason: reason.clone() },
        ConnectorError::Permanent { .. } => TaskResult::Failed {
            error: error.to_string(),
        },
        // The processor's section cannot work as written: retrying the same config cannot help.
        ConnectorError::Config(_) => TaskResult::Failed {
            error: format!("{error}; correct the config, then run `dsr retry`"),
        },
        // Refused even with a fresh token: retrying cannot help until an operator fixes the
        // credentials or permissions; then `dsr retry` sends the task back.
        ConnectorError::Reauthenticate { .. } => TaskResult::Failed {
            error: format!("{error}; fix the credentials in the config, then run `dsr retry`"),
        },
        ConnectorError::RetryLater { .. } | ConnectorError::Sink(_) => {
            retry_later(retries, now, claim, error.to_string(), error.retry_after())
        }
    }
}

/// Retrying with backoff (never sooner than the vendor's Retry-After), or failed once the
/// attempts are used up.
pub fn retry_later(
    retries: Retries,
    now: DateTime<Utc>,
    claim: Claim,
    error: String,
    after: Option<Duration>,
) -> TaskResult {
    if claim.attempt >= retries.max_attempts {
        return TaskResult::Failed {
            error: format!("gave up after {} attempts; last error: {error}", claim.attempt),
        };
    }
    let wait = crate::backoff::delay(claim.attempt, retries.base, retries.max, after);
    TaskResult::Retrying {
        error,
        next_retry_at: now + chrono::Duration::from_std(wait).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RETRIES: Retries = Retries {
        max_attempts: 3,
        base: Duration::from_secs(1),
        max: Duration::from_secs(60),
    };

    fn claim(attempt: u32) -> Claim {
        Claim {
            attempt,
            budget_used: attempt,
        }
    }

    #[test]
    fn vendor_errors_become_the_task_result_an_operator_can_act_on() {
        let now = Utc::now();
        let processor = dsr_connector::Processor::Wix;
        let r = classify(
            RETRIES,
            now,
            claim(1),
            ConnectorError::NotSupported {
                processor,
                reason: "no API".into(),
            },
        );
        assert!(matches!(r, TaskResult::NotApplicable { reason } if reason == "no API"));
        let r = classify(
            RETRIES,
            now,
            claim(1),
            ConnectorError::Reauthenticate {
                processor,
                status: Some(401),
                code: String::new(),
                message: "invalid key".into(),
            },
        );
        assert!(
            matches!(&r, TaskResult::Failed { error } if error.contains("fix the credentials")),
            "{r:?}"
        );
        let r = classify(
            RETRIES,
            now,
            claim(1),
            ConnectorError::Permanent {
                processor,
                status: Some(400),
                code: String::new(),
                message: "bad".into(),
            },
        );
        assert!(matches!(r, TaskResult::Failed { .. }));
        let r = classify(
            RETRIES,
            now,
            claim(1),
            dsr_connector::ConfigError::new(processor, "site_id", "is empty").into(),
        );
        assert!(
            matches!(&r, TaskResult::Failed { error } if error.starts_with("processors.wix.site_id: is empty; correct the config")),
            "{r:?}"
        );
        let throttled = || ConnectorError::RetryLater {
            processor,
            status: Some(429),
            code: String::new(),
            message: "slow down".into(),
            after: Some(Duration::from_secs(30)),
        };
        match classify(RETRIES, now, claim(1), throttled()) {
            TaskResult::Retrying { next_retry_at, .. } => {
                assert!(
                    next_retry_at >= now + chrono::Duration::seconds(30),
                    "never before Retry-After"
                )
            }
            other => panic!("{other:?}"),
        }
        match classify(RETRIES, now, claim(3), throttled()) {
            TaskResult::Failed { error } => assert!(error.starts_with("gave up after 3 attempts"), "{error}"),
            other => panic!("{other:?}"),
        }
    }
}
