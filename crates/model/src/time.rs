//! Timestamps: microseconds since the Unix epoch, UTC, parsed from the forms event sources really send.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, SecondsFormat, Timelike, Utc};
use serde::{Deserialize, Serialize};

/// A point in time as microseconds since 1970-01-01T00:00:00Z. Ordered, copyable, 8 bytes.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
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
        if let Some(micros) = parse_iso_fast(text.as_bytes()) {
            return Self::checked(micros);
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
        let Some(dt) = DateTime::<Utc>::from_timestamp_micros(self.0) else {
            return self.0.to_string();
        };
        if !(0..=9999).contains(&dt.year()) {
            let format = if self.0 % 1_000_000 == 0 {
                SecondsFormat::Secs
            } else if self.0 % 1_000 == 0 {
                SecondsFormat::Millis
            } else {
                SecondsFormat::Micros
            };
            return dt.to_rfc3339_opts(format, true);
        }
        // Written digit by digit: chrono's general formatter dominated bulk imports.
        let micros = self.0.rem_euclid(1_000_000) as u32;
        let mut out = String::with_capacity(27);
        push_digits(&mut out, dt.year() as u32, 4);
        for (separator, value) in [
            ('-', dt.month()),
            ('-', dt.day()),
            ('T', dt.hour()),
            (':', dt.minute()),
            (':', dt.second()),
        ] {
            out.push(separator);
            push_digits(&mut out, value, 2);
        }
        if micros != 0 {
            out.push('.');
            if micros % 1_000 == 0 {
                push_digits(&mut out, micros / 1_000, 3);
            } else {
                push_digits(&mut out, micros, 6);
            }
        }
        out.push('Z');
        out
    }
}

/// Appends `value` as exactly `width` decimal digits (zero-padded; `width` ≤ 10).
fn push_digits(out: &mut String, mut value: u32, width: usize) {
    let mut text = [b'0'; 10];
    for position in (0..width).rev() {
        text[position] = b'0' + (value % 10) as u8;
        value /= 10;
    }
    out.extend(text[..width].iter().map(|byte| char::from(*byte)));
}

/// The common ISO-8601 forms — `YYYY-MM-DD`, then `T` or a space and `HH:MM[:SS[.fraction]]`, then nothing (UTC),
/// `Z`, or a `±HH:MM` / `±HHMM` offset — read byte by byte; `None` sends anything else to the general parsers.
fn parse_iso_fast(text: &[u8]) -> Option<i64> {
    fn number(bytes: &[u8]) -> Option<u32> {
        bytes.iter().try_fold(0u32, |value, byte| {
            byte.is_ascii_digit()
                .then(|| value * 10 + u32::from(byte - b'0'))
        })
    }
    if text.len() < 10 || text[4] != b'-' || text[7] != b'-' {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(
        number(&text[0..4])? as i32,
        number(&text[5..7])?,
        number(&text[8..10])?,
    )?;
    let mut rest = &text[10..];
    let (mut hour, mut minute, mut second, mut micros) = (0, 0, 0, 0u32);
    if !rest.is_empty() {
        if !(rest[0] == b'T' || rest[0] == b' ') || rest.len() < 6 || rest[3] != b':' {
            return None;
        }
        hour = number(&rest[1..3])?;
        minute = number(&rest[4..6])?;
        rest = &rest[6..];
        if rest.first() == Some(&b':') {
            second = number(rest.get(1..3)?)?;
            rest = &rest[3..];
            if rest.first() == Some(&b'.') {
                let digits = rest[1..]
                    .iter()
                    .take_while(|byte| byte.is_ascii_digit())
                    .count();
                if digits == 0 {
                    return None;
                }
                let kept = &rest[1..1 + digits.min(6)];
                micros = number(kept)? * 10u32.pow(6 - kept.len() as u32);
                rest = &rest[1 + digits..];
            }
        }
    }
    let offset_secs: i64 = match rest {
        [] | [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), zone @ ..] => {
            // `+01:00`, `+0100`, and `+01` as PostgreSQL and DuckDB print it.
            let (hours, minutes) = match zone {
                [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => {
                    (number(&[*h1, *h2])?, number(&[*m1, *m2])?)
                }
                [h1, h2] => (number(&[*h1, *h2])?, 0),
                _ => return None,
            };
            if hours > 23 || minutes > 59 {
                return None;
            }
            let secs = i64::from(hours * 3600 + minutes * 60);
            if *sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        _ => return None,
    };
    let naive = date.and_hms_micro_opt(hour, minute, second, micros)?;
    Some(naive.and_utc().timestamp_micros() - offset_secs * 1_000_000)
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
        // PostgreSQL's and DuckDB's text form: hour-only offset.
        assert_eq!(Timestamp::parse("2010-12-30 13:32:00+00"), Some(expected));
        assert_eq!(Timestamp::parse("2010-12-30 11:32:00-02"), Some(expected));
        assert_eq!(
            Timestamp::parse("2010-12-30 14:32:00.5+01"),
            Some(Timestamp(expected.0 + 500_000))
        );
        assert_eq!(Timestamp::parse("2010-12-30 13:32:00+0"), None);
        assert_eq!(Timestamp::parse("2010-12-30 13:32:00+24:00"), None);
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
    fn the_fast_parser_agrees_with_chrono() {
        for text in [
            "2026-01-02T03:04:05Z",
            "2026-01-02 03:04:05",
            "2026-01-02T03:04:05.1",
            "2026-01-02T03:04:05.123456789+05:30",
            "2026-01-02T03:04:05-0800",
            "2026-01-02T03:04",
            "2026-01-02",
            "2024-02-29T23:59:59.999Z",
        ] {
            let fast = parse_iso_fast(text.as_bytes()).unwrap();
            let general = DateTime::parse_from_rfc3339(text)
                .map(|dt| dt.timestamp_micros())
                .ok()
                .or_else(|| {
                    DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z")
                        .ok()
                        .map(|dt| dt.timestamp_micros())
                })
                .or_else(|| parse_naive(text).map(|naive| naive.and_utc().timestamp_micros()))
                .unwrap();
            assert_eq!(fast, general, "{text}");
        }
        for text in [
            "2026-02-30",
            "2026-01-02T25:00:00Z",
            "2026-01-02T03:04:05.Z",
            "2026-01-02X03:04",
            "2026-1-2",
        ] {
            assert_eq!(parse_iso_fast(text.as_bytes()), None, "{text}");
        }
    }

    #[test]
    fn formats_like_chrono() {
        for micros in [
            0i64,
            1_293_715_920_000_000,
            1_293_715_920_276_000,
            1_293_715_920_000_001,
            4_102_444_799_999_999,
        ] {
            let dt = DateTime::<Utc>::from_timestamp_micros(micros).unwrap();
            let format = if micros % 1_000_000 == 0 {
                SecondsFormat::Secs
            } else if micros % 1_000 == 0 {
                SecondsFormat::Millis
            } else {
                SecondsFormat::Micros
            };
            assert_eq!(
                Timestamp(micros).to_rfc3339(),
                dt.to_rfc3339_opts(format, true)
            );
        }
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
