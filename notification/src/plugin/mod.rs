//! Plugins that compute a value from the values a definition's `fields` found: `timedelta`,
//! `map`, `split` (their parameters are checked in `parse.rs` when definitions load).

mod parse;

use std::collections::HashMap;

use serde_json::Value;

/// The plugins, by name, in the order error messages list them.
pub const PLUGINS: [&str; 3] = ["map", "split", "timedelta"];

/// A plugin with its checked parameters.
#[derive(Debug, Clone)]
pub enum Plugin {
    /// Seconds from the first timestamp to the second, as a float.
    Timedelta,
    /// The value looked up in a table.
    Map {
        /// Keys (lowercased when not case sensitive) to values.
        values: HashMap<String, Value>,
        /// When the key is not in the table.
        default: Option<Value>,
        /// Whether `Active` and `active` are different keys.
        case_sensitive: bool,
    },
    /// One segment of the text split at a separator.
    Split {
        /// Where to split (default `-`).
        separator: String,
        /// Which segment (default 0; negative counts from the end).
        segment: i64,
        /// At most this many splits (default: all).
        max_split: Option<usize>,
    },
}

impl Plugin {
    /// The plugin's value for the (non-null) values the fields found, in order: `Ok(None)` when
    /// there is nothing to compute from, `Err` (a reason) when the values are unusable.
    pub fn apply(&self, values: &[&Value]) -> Result<Option<Value>, String> {
        match self {
            Self::Timedelta => timedelta(values),
            Self::Map {
                values: table,
                default,
                case_sensitive,
            } => {
                let Some(v) = values.first() else {
                    return Ok(None);
                };
                let Some(key) = crate::value::text(v) else {
                    return Err(format!(
                        "map: cannot look up {}",
                        crate::notification::kind(v)
                    ));
                };
                let found = if *case_sensitive {
                    table.get(key.as_ref())
                } else {
                    table.get(&key.to_lowercase())
                };
                Ok(found.or(default.as_ref()).cloned())
            }
            Self::Split {
                separator,
                segment,
                max_split,
            } => {
                let Some(v) = values.first() else {
                    return Ok(None);
                };
                let Some(text) = crate::value::text(v) else {
                    return Err(format!(
                        "split: cannot split {}",
                        crate::notification::kind(v)
                    ));
                };
                let limit = max_split.map_or(usize::MAX, |n| n.saturating_add(1));
                let mut chars = separator.chars();
                let found = match (chars.next(), chars.next()) {
                    (Some(c), None) => nth(|| text.splitn(limit, c), *segment),
                    _ => nth(|| text.splitn(limit, separator.as_str()), *segment),
                };
                Ok(found.map(|s| Value::String(s.to_owned())))
            }
        }
    }
}

/// Segment `segment` (negative: from the end) of what `parts` yields.
fn nth<'t, I: Iterator<Item = &'t str>>(parts: impl Fn() -> I, segment: i64) -> Option<&'t str> {
    let back = usize::try_from(segment.unsigned_abs()).ok()?;
    if segment >= 0 {
        parts().nth(back)
    } else {
        parts()
            .count()
            .checked_sub(back)
            .and_then(|i| parts().nth(i))
    }
}

fn timedelta(values: &[&Value]) -> Result<Option<Value>, String> {
    match values {
        [] | [_] => Ok(None),
        [start, end] => {
            let time = |v: &Value| {
                v.as_str().and_then(crate::time::parse).ok_or_else(|| {
                    format!(
                        "timedelta: {} is not a timestamp",
                        crate::notification::short(v)
                    )
                })
            };
            let (start, end) = (time(start)?, time(end)?);
            let delta = end.signed_duration_since(start);
            let seconds = delta.num_seconds() as f64 + f64::from(delta.subsec_nanos()) / 1e9;
            Ok(Some(Value::from(seconds)))
        }
        more => Err(format!(
            "timedelta needs 2 timestamps, found {}",
            more.len()
        )),
    }
}
