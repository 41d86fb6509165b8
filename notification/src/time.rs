//! Timestamps as OpenStack services write them, read into UTC.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// Parses a timestamp: RFC 3339 (`2026-11-22T10:00:00Z`, `+01:00`), the same with a space
/// instead of `T` or an offset without colon (`+0000`, as CADF writes it), or a time without a
/// zone (`2026-11-22 10:00:00.123456`, `2026-11-22T10:00:00.000000`), which is UTC.
pub fn parse(text: &str) -> Option<DateTime<Utc>> {
    let t = text.trim();
    // The shortest accepted form is `YYYY-MM-DD HH:MM:SS`; anything shorter is not a time,
    // and anything much longer is not one either (bounds chrono's work on garbage).
    if t.len() < 19 || t.len() > 40 || !t.is_ascii() {
        return None;
    }
    if let Some(d) = fast(t.as_bytes()) {
        return Some(d);
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Some(d.with_timezone(&Utc));
    }
    if let Ok(d) = DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f%#z")
        .or_else(|_| DateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f%#z"))
    {
        return Some(d.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f"))
        .ok()
        .map(|n| n.and_utc())
}

/// The shapes OpenStack writes, read by hand: `YYYY-MM-DD`, `T` or space, `HH:MM:SS`, an
/// optional fraction of up to nine digits, then nothing (UTC), `Z`, `±HH:MM` or `±HHMM`.
/// `None` for anything else (chrono then decides).
fn fast(s: &[u8]) -> Option<DateTime<Utc>> {
    let digit = |i: usize| -> Option<u32> {
        let d = s.get(i)?.wrapping_sub(b'0');
        (d < 10).then_some(u32::from(d))
    };
    let two = |i: usize| Some(digit(i)? * 10 + digit(i + 1)?);
    let sep = |i: usize, c: u8| s.get(i) == Some(&c);
    if !(sep(4, b'-')
        && sep(7, b'-')
        && (sep(10, b'T') || sep(10, b' '))
        && sep(13, b':')
        && sep(16, b':'))
    {
        return None;
    }
    let year = i32::try_from(two(0)? * 100 + two(2)?).ok()?;
    let date = NaiveDate::from_ymd_opt(year, two(5)?, two(8)?)?;
    let (hour, minute, second) = (two(11)?, two(14)?, two(17)?);
    let mut i = 19;
    let mut nanos = 0u32;
    if sep(i, b'.') {
        i += 1;
        let start = i;
        while let Some(d) = digit(i) {
            if i - start < 9 {
                nanos = nanos * 10 + d;
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n..9 {
            nanos *= 10;
        }
    }
    let offset_seconds: i64 = match &s[i..] {
        [] | [b'Z'] => 0,
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (h, m) = match rest {
                [_, _, b':', _, _] => (two(i + 1)?, two(i + 4)?),
                [_, _, _, _] => (two(i + 1)?, two(i + 3)?),
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            let secs = i64::from(h * 3600 + m * 60);
            if *sign == b'-' { -secs } else { secs }
        }
        _ => return None,
    };
    let local = date.and_hms_nano_opt(hour, minute, second, nanos)?;
    Some(local.and_utc() - chrono::TimeDelta::seconds(offset_seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openstack_shapes_are_read_as_utc() {
        let want = "2026-11-22T10:00:00.123456Z";
        for text in [
            "2026-11-22 10:00:00.123456",
            "2026-11-22T10:00:00.123456",
            "2026-11-22T10:00:00.123456Z",
            "2026-11-22 10:00:00.123456Z",
            "2026-11-22T10:00:00.123456+00:00",
            "2026-11-22 10:00:00.123456+00:00",
            "2026-11-22T11:00:00.123456+0100",
            "2026-11-22T11:00:00.123456+01:00",
            " 2026-11-22 10:00:00.123456 ",
            "2026-11-22T09:00:00.123456-01:00",
            "2026-11-22 10:00:00.1234560000Z",
        ] {
            let got = parse(text).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
            assert_eq!(got.as_deref(), Some(want), "{text}");
        }
        let whole = parse("2026-11-22 09:59:40+00:00").expect("no fraction");
        assert_eq!(whole.to_rfc3339(), "2026-11-22T09:59:40+00:00");
        assert!(parse("2026-11-22 10:00:00").is_some());
        // Leap seconds and other rarities still go through chrono.
        assert!(parse("2026-12-31T23:59:60Z").is_some());
    }

    #[test]
    fn garbage_is_not_a_time() {
        for text in [
            "",
            "yesterday",
            "2026-11-22",
            "2026-13-22 10:00:00",
            "1732269600",
            "é",
        ] {
            assert_eq!(parse(text), None, "{text}");
        }
    }
}
