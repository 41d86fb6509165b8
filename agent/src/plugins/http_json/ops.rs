//! The value operations that may follow a path (`| split('/') | index(-1)`): what each does
//! (their grammar is in [`super::grammar`]).
//!
//! An operation never fails loudly: given a value it does not apply to (a number to
//! `lowercase`, an index out of range, a division giving a non-finite number), it yields
//! nothing, as a path that matches nothing does; `default(..)` then supplies a value.

use serde_json::{Number, Value};

/// One operation of a pipeline.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// A string split on a non-empty separator, into a list of strings.
    Split(String),
    /// The element of a list at an index; negative counts from the end (`-1` is the last).
    Index(i64),
    /// A string without leading and trailing whitespace.
    Trim,
    /// A string in lowercase.
    Lowercase,
    /// A string in uppercase.
    Uppercase,
    /// Every occurrence of a non-empty string replaced by another.
    Replace(String, String),
    /// A number plus a constant.
    Add(f64),
    /// A number minus a constant.
    Sub(f64),
    /// A number times a constant.
    Mul(f64),
    /// A number divided by a non-zero constant.
    Div(f64),
    /// A number from a numeric string (surrounding whitespace allowed), `true`/`false` (1/0)
    /// or a number.
    ToNumber,
    /// The number of elements of a list or object, or characters of a string.
    Length,
    /// The constant when there is no value (or it is `null`); otherwise the value unchanged.
    Default(Value),
}

impl Op {
    /// Applies the operation; `None` is "no value".
    pub fn apply(&self, value: Option<Value>) -> Option<Value> {
        if let Self::Default(constant) = self {
            return match value {
                None | Some(Value::Null) => Some(constant.clone()),
                some => some,
            };
        }
        let value = value?;
        match (self, value) {
            (Self::Split(sep), Value::String(s)) => Some(Value::Array(
                s.split(sep.as_str()).map(Value::from).collect(),
            )),
            (Self::Index(i), Value::Array(mut items)) => {
                let len = i64::try_from(items.len()).ok()?;
                let at = if *i < 0 { len.checked_add(*i)? } else { *i };
                if at < 0 || at >= len {
                    return None;
                }
                Some(items.swap_remove(usize::try_from(at).ok()?))
            }
            (Self::Trim, Value::String(s)) => Some(Value::from(s.trim())),
            (Self::Lowercase, Value::String(s)) => Some(Value::from(s.to_lowercase())),
            (Self::Uppercase, Value::String(s)) => Some(Value::from(s.to_uppercase())),
            (Self::Replace(from, to), Value::String(s)) => Some(Value::from(s.replace(from, to))),
            (Self::Add(n), Value::Number(x)) => number(x.as_f64()? + n),
            (Self::Sub(n), Value::Number(x)) => number(x.as_f64()? - n),
            (Self::Mul(n), Value::Number(x)) => number(x.as_f64()? * n),
            (Self::Div(n), Value::Number(x)) => number(x.as_f64()? / n),
            (Self::ToNumber, v) => number(to_number(&v)?),
            (Self::Length, Value::Array(a)) => Some(Value::from(a.len())),
            (Self::Length, Value::Object(o)) => Some(Value::from(o.len())),
            (Self::Length, Value::String(s)) => Some(Value::from(s.chars().count())),
            _ => None,
        }
    }
}

/// A JSON number for `x`: an integer when `x` is a whole number that fits exactly, `None`
/// when `x` is not finite.
pub fn number(x: f64) -> Option<Value> {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if x.fract() == 0.0 && x.abs() < EXACT {
        #[allow(clippy::cast_possible_truncation)]
        return Some(Value::from(x as i64));
    }
    Number::from_f64(x).map(Value::Number)
}

/// The number a value stands for: a number, a numeric string (surrounding whitespace
/// allowed), `true` (1) or `false` (0); `None` for anything else or a non-finite result.
pub fn to_number(value: &Value) -> Option<f64> {
    let x = match value {
        Value::Number(n) => n.as_f64()?,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    x.is_finite().then_some(x)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::plugins::http_json::grammar::parse;

    fn run(ops: &str, v: Value) -> Option<Value> {
        // Not try_fold: `default` turns "no value" into a value.
        let mut value = Some(v);
        for op in parse(ops, 0).expect("valid") {
            value = op.apply(value);
        }
        value
    }

    #[test]
    fn string_operations_chain() {
        let v = json!(" Vhost/Queue.A ");
        assert_eq!(
            run("| trim | split('/') | index(-1)", v.clone()),
            Some(json!("Queue.A"))
        );
        assert_eq!(
            run("|lowercase|split(\"/\")|index(0)", v.clone()),
            Some(json!(" vhost"))
        );
        assert_eq!(
            run("| uppercase | trim", v.clone()),
            Some(json!("VHOST/QUEUE.A"))
        );
        assert_eq!(
            run("| replace('.', '_') | trim", v.clone()),
            Some(json!("Vhost/Queue_A"))
        );
        assert_eq!(run("| split('/') | length", v), Some(json!(2)));
        assert_eq!(
            run("| split(', ') | index(1)", json!("a, b")),
            Some(json!("b"))
        );
    }

    #[test]
    fn arithmetic_keeps_whole_numbers_whole() {
        assert_eq!(run("| div(1024)", json!(2048)), Some(json!(2)));
        assert_eq!(
            run("| mul(0.5) | add(1) | sub(0.25)", json!(3)),
            Some(json!(2.25))
        );
        assert_eq!(
            run("| to_number | mul(100)", json!(" 0.5 ")),
            Some(json!(50))
        );
        assert_eq!(run("| to_number", json!(true)), Some(json!(1)));
        assert_eq!(run("| mul(1e308) | mul(10)", json!(10)), None);
    }

    #[test]
    fn inapplicable_operations_yield_nothing_and_default_fills_in() {
        assert_eq!(run("| lowercase", json!(3)), None);
        assert_eq!(run("| index(5)", json!([1])), None);
        assert_eq!(run("| index(-2)", json!([1])), None);
        assert_eq!(run("| to_number", json!("n/a")), None);
        assert_eq!(
            run("| to_number | default(0)", json!("n/a")),
            Some(json!(0))
        );
        assert_eq!(run("| default('x')", json!(null)), Some(json!("x")));
        assert_eq!(run("| default(null)", json!(7)), Some(json!(7)));
        assert_eq!(run("| default(true)", json!(null)), Some(json!(true)));
        let escaped = parse(r#"| replace('it\'s', "a\"b\\c\n")"#, 0).expect("valid");
        assert_eq!(escaped, [Op::Replace("it's".into(), "a\"b\\c\n".into())]);
    }
}
