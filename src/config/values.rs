//! How `dsr.toml` writes what is more than a string or a number: spans of time as humantime
//! strings (`"500ms"`, `"30s"`, `"2h"`, `"7d"`), the time zone, the allowed range of each
//! value, and the old unit-suffixed keys (`task_lease_secs = 3`) that still read, with a
//! warning naming the key that replaces them.

use std::fmt;
use std::time::Duration;

use serde::Deserializer;
use serde::de::{self, Visitor};

use super::ConfigError;

pub(super) const SECOND: Duration = Duration::from_secs(1);
pub(super) const MINUTE: Duration = Duration::from_secs(60);
pub(super) const HOUR: Duration = Duration::from_secs(3600);
pub(super) const DAY: Duration = Duration::from_secs(86_400);

pub(super) const fn millis(n: u64) -> Duration {
    Duration::from_millis(n)
}
pub(super) const fn seconds(n: u64) -> Duration {
    Duration::from_secs(n)
}
pub(super) const fn days(n: u64) -> Duration {
    Duration::from_secs(n * 86_400)
}

/// A span of time as the config writes it, in the largest unit that divides it:
/// `"7d"`, `"2h"`, `"30s"`, `"500ms"` (what `humantime::parse_duration` reads back).
pub fn span_text(span: Duration) -> String {
    let ms = span.as_millis();
    let per = |unit: Duration| unit.as_millis();
    match () {
        _ if ms == 0 => "0s".into(),
        _ if ms.is_multiple_of(per(DAY)) => format!("{}d", ms / per(DAY)),
        _ if ms.is_multiple_of(per(HOUR)) => format!("{}h", ms / per(HOUR)),
        _ if ms.is_multiple_of(per(MINUTE)) => format!("{}m", ms / per(MINUTE)),
        _ if ms.is_multiple_of(per(SECOND)) => format!("{}s", ms / per(SECOND)),
        _ => format!("{ms}ms"),
    }
}

const SPAN_EXAMPLES: &str = "a number and a unit such as \"500ms\", \"30s\", \"5m\", \"2h\" or \"7d\"";

/// Reads a span of time written as a humantime string. A bare number is refused rather than
/// guessed at: `30` could be seconds or milliseconds, which is why the old keys carried
/// their unit in their name.
pub(super) fn span<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    struct Span;
    impl Visitor<'_> for Span {
        type Value = Duration;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "a span of time: {SPAN_EXAMPLES}")
        }
        fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
            humantime::parse_duration(text.trim())
                .map_err(|e| E::custom(format!("`{text}` is not a span of time ({e}): write {SPAN_EXAMPLES}")))
        }
        fn visit_u64<E: de::Error>(self, n: u64) -> Result<Duration, E> {
            Err(E::custom(format!(
                "{n} has no unit: write a span of time with its unit, such as \"{n}s\" or \"{n}ms\""
            )))
        }
        fn visit_i64<E: de::Error>(self, n: i64) -> Result<Duration, E> {
            Err(E::custom(format!(
                "{n} has no unit: write a span of time with its unit, such as \"{n}s\" or \"{n}ms\""
            )))
        }
        fn visit_f64<E: de::Error>(self, n: f64) -> Result<Duration, E> {
            Err(E::custom(format!(
                "{n} has no unit: write a span of time with its unit, such as \"500ms\" or \"30s\""
            )))
        }
    }
    deserializer.deserialize_any(Span)
}

/// Reads an IANA time zone name (chrono-tz is built without its serde feature).
pub(super) fn time_zone<'de, D: Deserializer<'de>>(deserializer: D) -> Result<chrono_tz::Tz, D::Error> {
    struct Zone;
    impl Visitor<'_> for Zone {
        type Value = chrono_tz::Tz;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an IANA time zone such as \"Europe/Oslo\"")
        }
        fn visit_str<E: de::Error>(self, text: &str) -> Result<chrono_tz::Tz, E> {
            text.parse().map_err(|_| {
                E::custom(format!(
                    "`{text}` is not an IANA time zone: write a name from the tz database such as \
                     \"Europe/Oslo\", \"Europe/Stockholm\" or \"UTC\""
                ))
            })
        }
    }
    deserializer.deserialize_str(Zone)
}

/// The allowed spans for one key, both ends included.
pub(super) fn check_span(key: &str, value: Duration, min: Duration, max: Duration) -> Result<(), ConfigError> {
    if (min..=max).contains(&value) {
        return Ok(());
    }
    Err(ConfigError::Invalid(format!(
        "{key} = \"{}\" is out of range: allowed {} to {}",
        span_text(value),
        span_text(min),
        span_text(max)
    )))
}

/// The allowed counts for one key, both ends included.
pub(super) fn check_count<T>(key: &str, value: T, min: T, max: T) -> Result<(), ConfigError>
where
    T: PartialOrd + fmt::Display,
{
    if min <= value && value <= max {
        return Ok(());
    }
    Err(ConfigError::Invalid(format!(
        "{key} = {value} is out of range: allowed {min} to {max}"
    )))
}

/// The unit an old key's name carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unit {
    Millis,
    Secs,
    Days,
}

impl Unit {
    fn span(self, n: u64) -> Duration {
        match self {
            Unit::Millis => Duration::from_millis(n),
            Unit::Secs => Duration::from_secs(n),
            // Saturates: an absurd count of days is then refused by the key's range.
            Unit::Days => Duration::from_secs(n.saturating_mul(86_400)),
        }
    }
}

/// One old key and the key that replaces it: `[worker] task_lease_secs` → `task_lease`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Renamed {
    pub section: &'static str,
    pub old: &'static str,
    pub new: &'static str,
    pub unit: Unit,
}

impl Renamed {
    pub(super) const fn new(section: &'static str, old: &'static str, new: &'static str, unit: Unit) -> Renamed {
        Renamed {
            section,
            old,
            new,
            unit,
        }
    }

    /// Moves an old key's value into its replacement, noting the deprecation. `new_is_set`:
    /// the replacement is written too (in the file or a variable), which is refused rather
    /// than one of them silently winning.
    pub(super) fn adopt(
        &self,
        old_value: Option<u64>,
        new_is_set: bool,
        target: &mut Duration,
        deprecations: &mut Vec<String>,
    ) -> Result<(), ConfigError> {
        let Some(n) = old_value else {
            return Ok(());
        };
        let Renamed { section, old, new, .. } = self;
        if new_is_set {
            return Err(ConfigError::Invalid(format!(
                "[{section}] {old} and {new} are both set and mean the same: keep {new} and remove {old}"
            )));
        }
        *target = self.unit.span(n);
        deprecations.push(format!(
            "[{section}] {old} is deprecated: write {new} = \"{}\"",
            span_text(*target)
        ));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_are_written_in_their_largest_whole_unit() {
        for (span, text) in [
            (Duration::ZERO, "0s"),
            (millis(50), "50ms"),
            (millis(1500), "1500ms"),
            (seconds(3), "3s"),
            (seconds(90), "90s"),
            (seconds(300), "5m"),
            (seconds(3600), "1h"),
            (days(7), "7d"),
        ] {
            assert_eq!(span_text(span), text);
            assert_eq!(humantime::parse_duration(text).unwrap(), span, "{text} reads back");
        }
    }

    #[test]
    fn old_units_convert() {
        assert_eq!(Unit::Millis.span(250), millis(250));
        assert_eq!(Unit::Secs.span(120), seconds(120));
        assert_eq!(Unit::Days.span(30), days(30));
        assert_eq!(Unit::Days.span(u64::MAX), Duration::from_secs(u64::MAX));
    }

    #[test]
    fn an_old_key_warns_and_both_keys_are_refused() {
        let rename = Renamed::new("worker", "task_lease_secs", "task_lease", Unit::Secs);
        let mut target = seconds(120);
        let mut warnings = Vec::new();
        rename.adopt(None, false, &mut target, &mut warnings).unwrap();
        assert_eq!((target, warnings.len()), (seconds(120), 0), "nothing to adopt");
        rename.adopt(Some(3), false, &mut target, &mut warnings).unwrap();
        assert_eq!(target, seconds(3));
        assert_eq!(
            warnings,
            ["[worker] task_lease_secs is deprecated: write task_lease = \"3s\""]
        );
        let err = rename
            .adopt(Some(3), true, &mut target, &mut warnings)
            .unwrap_err()
            .to_string();
        assert!(err.contains("task_lease_secs") && err.contains("task_lease "), "{err}");
    }

    #[test]
    fn ranges_name_the_key_the_value_and_the_bounds() {
        let err = check_span("worker.task_lease", Duration::ZERO, SECOND, DAY)
            .unwrap_err()
            .to_string();
        assert!(err.contains("worker.task_lease = \"0s\""), "{err}");
        assert!(err.contains("allowed 1s to 1d"), "{err}");
        assert!(check_span("worker.task_lease", SECOND, SECOND, DAY).is_ok());
        assert!(check_span("worker.task_lease", DAY, SECOND, DAY).is_ok());
        let err = check_count("worker.concurrency", 300, 1, 256).unwrap_err().to_string();
        assert!(
            err.contains("worker.concurrency = 300 is out of range: allowed 1 to 256"),
            "{err}"
        );
    }
}
