//! RFC 3339 timestamps in UTC with nanosecond precision, as serde helpers.
//!
//! Written as `2026-11-22T10:00:00.123456789Z` (always nine fraction digits, so that the text
//! of a timestamp is stable and sorts like the time it names); read from any RFC 3339 time and
//! converted to UTC.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serializer};

/// Formats `t` the way hb writes timestamps everywhere.
pub fn format(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// Parses an RFC 3339 timestamp (any offset) into UTC.
pub fn parse(s: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc))
}

/// `#[serde(serialize_with)]` helper.
pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(t))
}

/// `#[serde(deserialize_with)]` helper.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
    parse(&s).map_err(|e| serde::de::Error::custom(format_args!("invalid timestamp `{s}`: {e}")))
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
}
