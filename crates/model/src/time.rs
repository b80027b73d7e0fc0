//! Timestamps: microseconds since the Unix epoch, UTC, parsed from the forms event sources really send.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// A point in time as microseconds since 1970-01-01T00:00:00Z. Ordered, copyable, 8 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(pub i64);

/// Earliest accepted instant (1970-01-01).
const MIN_MICROS: i64 = 0;
/// Latest accepted instant (2100-01-01).
const MAX_MICROS: i64 = 4_102_444_800_000_000;

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Timestamp {
        Timestamp(Utc::now().timestamp_micros())
    }

    /// Microseconds since the epoch.
    pub fn micros(self) -> i64 {
        self.0
    }

    /// From whole seconds since the epoch.
    pub fn from_secs(secs: i64) -> Timestamp {
        Timestamp(secs * 1_000_000)
    }

    /// Parses RFC 3339 / ISO-8601 (`2026-01-02T03:04:05.123Z`, `+01:00` offsets, a space instead of `T`),
    /// naive date-times (taken as UTC), plain dates, and epoch numbers (seconds, or milliseconds when > 1e11).
    /// Returns `None` for anything else or for instants outside 1970–2100.
    pub fn parse(text: &str) -> Option<Timestamp> {
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        let micros = if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
            dt.timestamp_micros()
        } else if let Ok(dt) = DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%:z") {
            dt.timestamp_micros()
        } else if let Ok(dt) = DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z") {
            dt.timestamp_micros()
        } else if let Ok(dt) = DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%z") {
            dt.timestamp_micros()
        } else if let Some(naive) = parse_naive(text) {
            naive.and_utc().timestamp_micros()
        } else if let Ok(number) = text.parse::<f64>() {
            Self::from_epoch_number(number)?.0
        } else {
            return None;
        };
        Self::checked(micros)
    }

    /// An epoch number: seconds, or milliseconds when it is larger than 1e11 (after 1973 in ms, year 5138 in s).
    pub fn from_epoch_number(number: f64) -> Option<Timestamp> {
        if !number.is_finite() {
            return None;
        }
        let micros = if number.abs() > 1e11 {
            number * 1e3
        } else {
            number * 1e6
        };
        Self::checked(micros as i64)
    }

    fn checked(micros: i64) -> Option<Timestamp> {
        (MIN_MICROS..MAX_MICROS)
            .contains(&micros)
            .then_some(Timestamp(micros))
    }

    /// RFC 3339 with millisecond precision when the instant has sub-second digits, `Z` suffix.
    pub fn to_rfc3339(self) -> String {
        match DateTime::<Utc>::from_timestamp_micros(self.0) {
            Some(dt) => {
                let format = if self.0 % 1_000_000 == 0 {
                    SecondsFormat::Secs
                } else if self.0 % 1_000 == 0 {
                    SecondsFormat::Millis
                } else {
                    SecondsFormat::Micros
                };
                dt.to_rfc3339_opts(format, true)
            }
            None => self.0.to_string(),
        }
    }
}

fn parse_naive(text: &str) -> Option<NaiveDateTime> {
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y/%m/%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
        "%Y/%m/%d %H:%M",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return Some(naive);
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_sources_send() {
        let expected = Timestamp::parse("2010-12-30T13:32:00Z").unwrap();
        assert_eq!(
            Timestamp::parse("2010-12-30 14:32:00+01:00"),
            Some(expected)
        );
        assert_eq!(
            Timestamp::parse("2010-12-30T14:32:00.000+01:00"),
            Some(expected)
        );
        assert_eq!(Timestamp::parse("2010-12-30 13:32:00"), Some(expected));
        assert_eq!(Timestamp::parse("1293715920"), Some(expected));
        assert_eq!(Timestamp::parse("1293715920000"), Some(expected));
        assert_eq!(
            Timestamp::parse("2011-10-11 13:45:40.276000+02:00")
                .unwrap()
                .micros()
                % 1_000_000,
            276_000
        );
    }

    #[test]
    fn rejects_garbage_and_out_of_range() {
        assert_eq!(Timestamp::parse("yesterday"), None);
        assert_eq!(Timestamp::parse(""), None);
        assert_eq!(Timestamp::parse("2300-01-01T00:00:00Z"), None);
        assert_eq!(Timestamp::parse("1969-12-31T23:59:59Z"), None);
    }

    #[test]
    fn round_trips_through_rfc3339() {
        for text in [
            "2026-01-02T03:04:05Z",
            "2026-01-02T03:04:05.123Z",
            "2026-01-02T03:04:05.123456Z",
        ] {
            assert_eq!(Timestamp::parse(text).unwrap().to_rfc3339(), text);
        }
    }
}
