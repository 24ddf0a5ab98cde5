//! A calendar date (UTC), to pick the price row in effect on the day of a request.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// A day in the proleptic Gregorian calendar. Ordered by time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PriceDate {
    year: u16,
    month: u8,
    day: u8,
}

impl PriceDate {
    /// The date `year-month-day`, unchecked (for the built-in table, written by hand).
    pub const fn new(year: u16, month: u8, day: u8) -> Self {
        Self { year, month, day }
    }

    /// Parse `YYYY-MM-DD`, refusing impossible dates.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.trim().splitn(3, '-');
        let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
        if y.len() != 4 || m.len() != 2 || d.len() != 2 {
            return None;
        }
        let (year, month, day) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
        (1..=12).contains(&month).then_some(())?;
        (1..=days_in_month(year, month))
            .contains(&day)
            .then_some(())?;
        Some(Self { year, month, day })
    }

    /// Today in UTC, by the system clock.
    pub fn today() -> Self {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self::from_unix_days(i64::try_from(secs / 86_400).unwrap_or(i64::MAX))
    }

    /// The date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`).
    pub fn from_unix_days(days: i64) -> Self {
        let z = days.clamp(-700_000, 20_000_000) + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        Self {
            year: u16::try_from(year.clamp(0, 9999)).unwrap_or(9999),
            month: u8::try_from(month).unwrap_or(1),
            day: u8::try_from(day).unwrap_or(1),
        }
    }
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        _ => 31,
    }
}

impl fmt::Display for PriceDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_dates_only_and_orders_them() {
        let d = PriceDate::parse("2026-10-07").unwrap();
        assert_eq!(d, PriceDate::new(2026, 10, 7));
        assert_eq!(d.to_string(), "2026-10-07");
        assert!(PriceDate::parse("2026-10-06").unwrap() < d);
        assert!(PriceDate::parse("2027-01-01").unwrap() > d);
        for bad in [
            "2026-13-01",
            "2026-02-30",
            "2025-02-29",
            "26-10-07",
            "2026/10/07",
            "",
        ] {
            assert_eq!(PriceDate::parse(bad), None, "{bad}");
        }
        assert!(PriceDate::parse("2024-02-29").is_some());
    }

    #[test]
    fn unix_days_convert_to_calendar_dates() {
        assert_eq!(PriceDate::from_unix_days(0), PriceDate::new(1970, 1, 1));
        assert_eq!(
            PriceDate::from_unix_days(20_368),
            PriceDate::new(2025, 10, 7)
        );
        assert_eq!(
            PriceDate::from_unix_days(20_733),
            PriceDate::new(2026, 10, 7)
        );
        assert_eq!(
            PriceDate::from_unix_days(11_016),
            PriceDate::new(2000, 2, 29)
        );
        assert!(PriceDate::today() >= PriceDate::new(2026, 1, 1));
    }
}
