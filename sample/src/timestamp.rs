//! RFC 3339 timestamps in UTC with nanosecond precision, as serde helpers.
//!
//! Written as `2026-11-22T10:00:00.123456789Z` (always nine fraction digits, so that the text
//! of a timestamp is stable and sorts like the time it names); read from any RFC 3339 time and
//! converted to UTC.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserializer, Serializer};

/// Formats `t` the way hb writes timestamps everywhere.
pub fn format(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// Parses an RFC 3339 timestamp (any offset) into UTC.
///
/// The shape hb writes (`YYYY-MM-DDTHH:MM:SS[.f…]Z`, up to nine fraction digits) is read by
/// hand; anything else (another offset, a leap second, lowercase `t`/`z`, an error to
/// explain) goes through chrono, which gives the same result for what both accept.
pub fn parse(s: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    match parse_utc(s.as_bytes()) {
        Some(t) => Ok(t),
        None => DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)),
    }
}

/// The fast path of [`parse`]: `None` when `s` is not exactly a valid UTC time of hb's shape.
fn parse_utc(s: &[u8]) -> Option<DateTime<Utc>> {
    let [
        y0,
        y1,
        y2,
        y3,
        b'-',
        m0,
        m1,
        b'-',
        d0,
        d1,
        b'T',
        h0,
        h1,
        b':',
        i0,
        i1,
        b':',
        s0,
        s1,
        rest @ ..,
    ] = s
    else {
        return None;
    };
    let digit = |b: u8| {
        let v = b.wrapping_sub(b'0');
        (v < 10).then_some(u32::from(v))
    };
    let two = |a: u8, b: u8| Some(digit(a)? * 10 + digit(b)?);
    let nanos = match rest {
        [b'Z'] => 0,
        [b'.', fraction @ .., b'Z'] if (1..=9).contains(&fraction.len()) => {
            let mut n = 0;
            for &b in fraction {
                n = n * 10 + digit(b)?;
            }
            n * 10u32.pow(9 - fraction.len() as u32)
        }
        _ => return None,
    };
    let year = two(*y0, *y1)? * 100 + two(*y2, *y3)?;
    let date = chrono::NaiveDate::from_ymd_opt(year as i32, two(*m0, *m1)?, two(*d0, *d1)?)?;
    let second = two(*s0, *s1)?;
    // A leap second (`:60`) is left to chrono.
    if second > 59 {
        return None;
    }
    let time = chrono::NaiveTime::from_hms_nano_opt(two(*h0, *h1)?, two(*i0, *i1)?, second, nanos)?;
    Some(date.and_time(time).and_utc())
}

/// `#[serde(serialize_with)]` helper.
pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(t))
}

/// `#[serde(deserialize_with)]` helper. Reads the text where the deserializer has it (no
/// copy when it can lend it).
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    d.deserialize_str(TimestampVisitor)
}

struct TimestampVisitor;

impl serde::de::Visitor<'_> for TimestampVisitor {
    type Value = DateTime<Utc>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an RFC 3339 timestamp")
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
        parse(s).map_err(|e| E::custom(format_args!("invalid timestamp `{s}`: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nanoseconds_survive_a_round_trip() {
        let t = parse("2026-11-22T10:00:00.123456789Z").expect("valid");
        assert_eq!(format(&t), "2026-11-22T10:00:00.123456789Z");
        let shifted = parse("2026-11-22T12:00:00.5+02:00").expect("valid");
        assert_eq!(format(&shifted), "2026-11-22T10:00:00.500000000Z");
    }

    #[test]
    fn the_fast_path_agrees_with_chrono() {
        for text in [
            "2026-11-22T10:00:00.123456789Z",
            "2026-11-22T10:00:00Z",
            "2026-11-22T23:59:59.5Z",
            "2026-11-22T10:00:00.000001Z",
            "2024-02-29T00:00:00.000000000Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999999Z",
        ] {
            let chrono = DateTime::parse_from_rfc3339(text)
                .expect(text)
                .with_timezone(&Utc);
            assert_eq!(parse_utc(text.as_bytes()), Some(chrono), "{text}");
            assert_eq!(parse(text).expect(text), chrono, "{text}");
        }
    }

    #[test]
    fn other_shapes_go_to_chrono() {
        for text in [
            "2026-11-22T12:00:00.5+02:00",
            "2026-11-22t10:00:00z",
            "2026-11-22 10:00:00Z",
            "2016-12-31T23:59:60Z",
            "2026-11-22T10:00:00.1234567891Z",
        ] {
            assert_eq!(parse_utc(text.as_bytes()), None, "{text}");
            let chrono = DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc));
            assert_eq!(parse(text).ok(), chrono.ok(), "{text}");
        }
        // chrono reads the leap second as the last nanoseconds of the minute.
        assert!(parse("2016-12-31T23:59:60Z").is_ok());
    }

    #[test]
    fn invalid_times_are_refused() {
        for text in [
            "2026-02-30T10:00:00Z",
            "2025-02-29T10:00:00.000000000Z",
            "2026-13-01T10:00:00Z",
            "2026-00-10T10:00:00Z",
            "2026-04-31T10:00:00Z",
            "2026-11-22T24:00:00Z",
            "2026-11-22T10:60:00Z",
            "2026-11-22T10:00:61Z",
            "2026-11-22T10:00:00.Z",
            "2026-11-22T10:00:00.12a456789Z",
            "2026-11-2aT10:00:00Z",
            "+026-11-22T10:00:00Z",
            "2026-11-22T10:00:00",
            "2026-11-22T10:00Z",
            "2026-11-22",
            "",
        ] {
            assert_eq!(parse_utc(text.as_bytes()), None, "{text}");
            assert!(parse(text).is_err(), "{text}");
        }
    }
}
