//! The legal deadline (Art. 12(3)): one calendar month from receipt, to the end of that day
//! in the controller's time zone; 31 January gives the last day of February; a deadline on
//! a weekend or a Norwegian public holiday moves to the next working day (EDPB Guidelines
//! 01/2022 on the right of access, §§ 157–159). Extendable by two further months.

use chrono::{DateTime, Datelike, Days, Duration, Months, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

/// Easter Sunday in the Gregorian calendar (anonymous Gregorian algorithm, Meeus/Jones/Butcher).
pub fn easter_sunday(year: i32) -> NaiveDate {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(year, month as u32, day as u32).unwrap_or(NaiveDate::MIN)
}

/// Norway's public holidays (lov om 1. og 17. mai som høgtidsdager; helligdagsloven).
pub fn is_norwegian_holiday(date: NaiveDate) -> bool {
    let fixed = [(1, 1), (5, 1), (5, 17), (12, 25), (12, 26)];
    if fixed.contains(&(date.month(), date.day())) {
        return true;
    }
    let easter = easter_sunday(date.year());
    // Maundy Thursday, Good Friday, Easter Sunday and Monday, Ascension, Whit Sunday and Monday.
    [-3i64, -2, 0, 1, 39, 49, 50]
        .iter()
        .any(|offset| easter + Duration::days(*offset) == date)
}

pub fn is_working_day(date: NaiveDate) -> bool {
    !matches!(date.weekday(), Weekday::Sat | Weekday::Sun) && !is_norwegian_holiday(date)
}

/// The end of the last day to answer a request received at `received`, given `months`
/// (1, or up to 3 with an extension), as a UTC instant.
pub fn due_at(received: DateTime<Utc>, months: u32, zone: Tz) -> DateTime<Utc> {
    let local_day = received.with_timezone(&zone).date_naive();
    // chrono clamps to the month's last day: 31 January + 1 month = 28/29 February.
    let mut day = local_day.checked_add_months(Months::new(months)).unwrap_or(local_day);
    while !is_working_day(day) {
        day = day.checked_add_days(Days::new(1)).unwrap_or(day);
    }
    let end = day.and_time(NaiveTime::from_hms_opt(23, 59, 59).unwrap_or(NaiveTime::MIN));
    zone.from_local_datetime(&end)
        .latest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| Utc.from_utc_datetime(&end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Europe::Oslo;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn due_local(received: &str) -> String {
        due_at(utc(received), 1, Oslo)
            .with_timezone(&Oslo)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    }

    #[test]
    fn easter_dates_are_right() {
        assert_eq!(easter_sunday(2024), NaiveDate::from_ymd_opt(2024, 3, 31).unwrap());
        assert_eq!(easter_sunday(2026), NaiveDate::from_ymd_opt(2026, 4, 5).unwrap());
        assert_eq!(easter_sunday(2027), NaiveDate::from_ymd_opt(2027, 3, 28).unwrap());
    }

    #[test]
    fn one_calendar_month_to_the_end_of_the_day() {
        // Tuesday 10 Nov 2026 → Thursday 10 Dec 2026.
        assert_eq!(due_local("2026-11-10T09:00:00Z"), "2026-12-10 23:59:59");
    }

    #[test]
    fn month_ends_clamp_including_leap_years() {
        // 31 Jan 2028 → 29 Feb 2028 (leap year, a Tuesday).
        assert_eq!(due_local("2028-01-31T10:00:00Z"), "2028-02-29 23:59:59");
        // 31 Jan 2025 → 28 Feb 2025 (a Friday).
        assert_eq!(due_local("2025-01-31T10:00:00Z"), "2025-02-28 23:59:59");
        // 31 Jan 2026 → 28 Feb 2026 is a Saturday → Monday 2 March.
        assert_eq!(due_local("2026-01-31T10:00:00Z"), "2026-03-02 23:59:59");
    }

    #[test]
    fn receipt_is_dated_in_the_controllers_time_zone() {
        // 23:30 in Oslo on 9 Nov is 22:30 UTC: the request was received on the 9th.
        assert_eq!(due_local("2026-11-09T22:30:00Z"), "2026-12-09 23:59:59");
        // 00:30 in Oslo on 10 June (summer time) is still 9 June in UTC: received on the 10th.
        assert_eq!(due_local("2026-06-09T22:30:00Z"), "2026-07-10 23:59:59");
    }

    #[test]
    fn weekends_and_norwegian_holidays_roll_forward() {
        // 29 Feb 2027 does not exist; 28 Feb 2027 + 1 month = Sunday 28 March (Easter Sunday
        // 2027) → Easter Monday 29 March is a holiday → Tuesday 30 March.
        assert_eq!(due_local("2027-02-28T12:00:00Z"), "2027-03-30 23:59:59");
        // 17 April 2027 + 1 month = Monday 17 May, Constitution Day → Tuesday 18 May.
        assert_eq!(due_local("2027-04-17T12:00:00Z"), "2027-05-18 23:59:59");
        // 25 Nov 2026 → Friday 25 Dec → 26 Dec, weekend → Monday 28 Dec.
        assert_eq!(due_local("2026-11-25T12:00:00Z"), "2026-12-28 23:59:59");
    }

    #[test]
    fn extensions_add_whole_months() {
        let due = due_at(utc("2026-11-10T09:00:00Z"), 3, Oslo).with_timezone(&Oslo);
        assert_eq!(due.format("%Y-%m-%d").to_string(), "2027-02-10");
    }
}
