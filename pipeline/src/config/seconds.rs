//! Durations in configuration files, read one way everywhere: a number of seconds (`10`,
//! `0.5`) or a number with a unit (`500ms`, `10s`, `5m`, `2h`, `7d`), greater than 0 and at
//! most [`MAX`]. The loaders check the range and refuse with the key and position.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

/// The longest duration a configuration may ask for (a year): beyond it a value is a typo,
/// and far enough beyond it one no longer fits a timer.
pub const MAX: Duration = Duration::from_secs(365 * 86_400);

/// What a configuration file says a duration is, before its range is checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Seconds {
    /// A bare number: seconds.
    Number(f64),
    /// A string: a number with a unit (or without, meaning seconds).
    Text(String),
}

const UNITS: [(&str, f64); 5] = [
    ("ms", 0.001),
    ("s", 1.0),
    ("m", 60.0),
    ("h", 3600.0),
    ("d", 86_400.0),
];

const FORMS: &str =
    "a number of seconds (10, 0.5) or a number with a unit (500ms, 10s, 5m, 2h, 7d)";

impl Seconds {
    /// The duration, or why it is refused (the message names the accepted forms and cuts a
    /// long value).
    pub fn duration(&self) -> Result<Duration, String> {
        let seconds = match self {
            Self::Number(n) => Some(*n),
            Self::Text(text) => parse(text),
        };
        match seconds {
            Some(s) if s.is_finite() && s > 0.0 && s <= MAX.as_secs_f64() => {
                Ok(Duration::from_secs_f64(s))
            }
            Some(_) => Err(format!(
                "must be greater than 0 and at most 365 days (got {self})"
            )),
            None => Err(format!("must be {FORMS} (got {self})")),
        }
    }

    /// [`duration`](Self::duration), and a whole number of seconds.
    pub fn whole_seconds(&self) -> Result<Duration, String> {
        let d = self.duration()?;
        if d.subsec_nanos() == 0 {
            Ok(d)
        } else {
            Err(format!("must be a whole number of seconds (got {self})"))
        }
    }
}

fn parse(text: &str) -> Option<f64> {
    let text = text.trim();
    let (number, scale) = UNITS
        .iter()
        .find_map(|(unit, scale)| Some((text.strip_suffix(unit)?, *scale)))
        .unwrap_or((text, 1.0));
    // Digits, a dot and an exponent only: `inf`, `nan` and `+5s` are not durations.
    if number.is_empty()
        || !number
            .chars()
            .all(|c| c.is_ascii_digit() || ".eE-".contains(c))
    {
        return None;
    }
    number.trim().parse::<f64>().ok().map(|n| n * scale)
}

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(n) => write!(f, "{n}"),
            Self::Text(t) => write!(f, "`{}`", crate::config::cut(t)),
        }
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Visitor)
    }
}

struct Visitor;

impl serde::de::Visitor<'_> for Visitor {
    type Value = Seconds;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a duration: {FORMS}")
    }

    fn visit_f64<E>(self, v: f64) -> Result<Seconds, E> {
        Ok(Seconds::Number(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Seconds, E> {
        Ok(Seconds::Number(v as f64))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Seconds, E> {
        Ok(Seconds::Number(v as f64))
    }

    fn visit_str<E>(self, v: &str) -> Result<Seconds, E> {
        Ok(Seconds::Text(v.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Result<Duration, String> {
        Seconds::Text(s.into()).duration()
    }

    #[test]
    fn numbers_are_seconds_and_units_scale() {
        assert_eq!(
            Seconds::Number(10.0).duration(),
            Ok(Duration::from_secs(10))
        );
        assert_eq!(
            Seconds::Number(0.5).duration(),
            Ok(Duration::from_millis(500))
        );
        assert_eq!(text("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(text("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(text("10"), Ok(Duration::from_secs(10)));
        assert_eq!(text("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(text("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(text("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(text("1.5s"), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn out_of_range_and_malformed_values_are_refused_without_panicking() {
        for n in [
            1e20,
            0.0,
            -1.0,
            f64::NAN,
            f64::INFINITY,
            1e300,
            31_536_001.0,
        ] {
            let e = Seconds::Number(n).duration().expect_err("refused");
            assert!(e.contains("at most 365 days"), "{e}");
        }
        for t in ["1e20s", "0s", "-5s", "9999999999d"] {
            assert!(text(t).expect_err(t).contains("at most 365 days"));
        }
        for t in ["ten", "", "s", "5 minutes", "inf", "nan", "5x", "+5s"] {
            let e = text(t).expect_err(t);
            assert!(e.contains("500ms, 10s"), "{t}: {e}");
        }
    }

    #[test]
    fn a_long_value_is_cut_in_the_message() {
        let e = text(&"9".repeat(10_000)).expect_err("refused");
        assert!(e.len() < 300, "{e}");
    }

    #[test]
    fn whole_seconds() {
        assert!(Seconds::Text("10s".into()).whole_seconds().is_ok());
        assert!(Seconds::Number(1.5).whole_seconds().is_err());
    }
}
