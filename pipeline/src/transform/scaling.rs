//! What `rate_of_change` and `unit_conversion` share: target naming, `map_from`/`map_to`
//! renames, `scale` and `max`.

use hb_sample::{Sample, SampleType};
use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

use super::expr::{Expr, Scope};
use super::{Counters, ParamError, derive, parse_params};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a map")]
struct Params {
    #[serde(default)]
    target: Target,
    #[serde(default)]
    source: Source,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a map")]
struct Target {
    name: Option<String>,
    unit: Option<String>,
    #[serde(rename = "type")]
    kind: Option<SampleType>,
    scale: Option<Value>,
    max: Option<f64>,
    map_to: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a map")]
struct Source {
    map_from: Option<String>,
}

/// How the output is named.
#[derive(Debug)]
enum Rename {
    /// Keep the input's name.
    Keep,
    /// `target.name`.
    To(String),
    /// `source.map_from` (anchored at both ends) rewritten by `target.map_to`.
    Map { from: Regex, to: String },
}

/// `target.scale`.
#[derive(Debug)]
pub(super) enum Scale {
    /// No scale.
    One,
    /// A number.
    Factor(f64),
    /// An expression over `volume` and `resource_metadata.<key>`.
    Expr(Expr),
}

/// The parsed `target`/`source` parameters.
#[derive(Debug)]
pub(super) struct Scaling {
    rename: Rename,
    unit: Option<String>,
    kind: Option<SampleType>,
    pub(super) scale: Scale,
    max: Option<f64>,
}

impl Scaling {
    pub(super) fn new(parameters: &Value) -> Result<Self, ParamError> {
        let Params { target, source } = parse_params(parameters)?;
        let rename = match (target.name, source.map_from, target.map_to) {
            (Some(_), _, Some(_)) => {
                return Err(ParamError::at(
                    "target.map_to",
                    "target.name and target.map_to are mutually exclusive",
                ));
            }
            (None, Some(from), Some(to)) => {
                let from = Regex::new(&from)
                    .and_then(|_| Regex::new(&format!("^(?:{from})$")))
                    .map_err(|e| ParamError::at("source.map_from", e.to_string()))?;
                let to = replacement(&from, &to).map_err(|m| ParamError::at("target.map_to", m))?;
                Rename::Map { from, to }
            }
            (_, Some(_), None) => {
                return Err(ParamError::at(
                    "target.map_to",
                    "required with source.map_from",
                ));
            }
            (_, None, Some(_)) => {
                return Err(ParamError::at(
                    "source.map_from",
                    "required with target.map_to",
                ));
            }
            (Some(name), None, None) => Rename::To(name),
            (None, None, None) => Rename::Keep,
        };
        let scale = match target.scale {
            None => Scale::One,
            Some(Value::Number(n)) => Scale::Factor(n.as_f64().unwrap_or(f64::NAN)),
            Some(Value::String(s)) => Scale::Expr(
                Expr::parse(&s, Scope::Sample)
                    .map_err(|e| ParamError::at("target.scale", e.to_string()))?,
            ),
            Some(other) => {
                return Err(ParamError::at(
                    "target.scale",
                    format!("expected a number or an expression string, got {other}"),
                ));
            }
        };
        if matches!(scale, Scale::Factor(f) if !f.is_finite()) {
            return Err(ParamError::at("target.scale", "must be a finite number"));
        }
        Ok(Self {
            rename,
            unit: target.unit,
            kind: target.kind,
            scale,
            max: target.max,
        })
    }

    /// The output name for an input named `name`; `None` when `map_from` does not match it
    /// (the sample then passes through unchanged).
    pub(super) fn target_name(&self, name: &str) -> Option<String> {
        match &self.rename {
            Rename::Keep => Some(name.to_owned()),
            Rename::To(to) => Some(to.clone()),
            Rename::Map { from, to } => from
                .is_match(name)
                .then(|| from.replace(name, to.as_str()).into_owned()),
        }
    }

    /// Caps `volume` by `max` and appends the derived sample (type `default_kind` unless the
    /// target names one) to `out`.
    pub(super) fn emit(
        &self,
        input: Sample,
        name: String,
        volume: f64,
        default_kind: SampleType,
        counters: &mut Counters,
        out: &mut Vec<Sample>,
    ) {
        let volume = self.max.map_or(volume, |max| volume.min(max));
        let kind = self.kind.unwrap_or(default_kind);
        out.extend(derive(
            input,
            name,
            kind,
            self.unit.as_deref(),
            volume,
            counters,
        ));
    }
}

/// `map_to` in the `regex` crate's replacement syntax: Ceilometer's `\1` becomes `${1}`, and
/// every `$1`, `${1}`, `$name` must name a group of `from` (so that `$1kilobytes`, which the
/// crate reads as a group named `1kilobytes`, is refused rather than replaced by nothing).
fn replacement(from: &Regex, map_to: &str) -> Result<String, String> {
    let mut out = String::with_capacity(map_to.len());
    let mut rest = map_to;
    while let Some(i) = rest.find(['\\', '$']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i + 1..];
        let (reference, len) = if rest[i..].starts_with('\\') {
            let digits = tail.len() - tail.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            if digits == 0 {
                out.push('\\');
                rest = tail;
                continue;
            }
            (&tail[..digits], digits)
        } else if let Some(braced) = tail.strip_prefix('{')
            && let Some(end) = braced.find('}')
        {
            (&braced[..end], end + 2)
        } else {
            let n = tail.len()
                - tail
                    .trim_start_matches(|c: char| c.is_ascii_alphanumeric() || c == '_')
                    .len();
            if n == 0 {
                // `$$` (a literal `$`) or a lone `$`: leave it to the crate.
                let n = usize::from(tail.starts_with('$'));
                out.push_str(&rest[i..=i + n]);
                rest = &tail[n..];
                continue;
            }
            (&tail[..n], n)
        };
        let known = match reference.parse::<usize>() {
            Ok(index) => index < from.captures_len(),
            Err(_) => from.capture_names().flatten().any(|n| n == reference),
        };
        if !known {
            return Err(format!(
                "`{}` refers to no group of source.map_from (it has {}; write `${{1}}x` to follow \
                 a group number by letters)",
                &rest[i..=i + len],
                match from.captures_len() - 1 {
                    1 => "1 group".to_owned(),
                    n => format!("{n} groups"),
                }
            ));
        }
        out.push_str(&format!("${{{reference}}}"));
        rest = &tail[len..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_to_references_are_checked_and_ceilometer_spelling_accepted() {
        let re = Regex::new(r"^(?:disk\.(?P<op>read|write)\.bytes)$").unwrap();
        for (map_to, want) in [
            ("disk.$1.kilobytes", Ok("disk.${1}.kilobytes")),
            (r"disk.\1.kilobytes", Ok("disk.${1}.kilobytes")),
            ("disk.${op}kb", Ok("disk.${op}kb")),
            ("disk.$op.kb", Ok("disk.${op}.kb")),
            ("cost$$.x$", Ok("cost$$.x$")),
            (r"a\b", Ok(r"a\b")),
            ("disk.$0", Ok("disk.${0}")),
            (
                "disk.$1kilobytes",
                Err("`$1kilobytes` refers to no group of source.map_from"),
            ),
            (r"disk.\2", Err(r"`\2` refers to no group")),
            (
                "disk.${nope}",
                Err("`${nope}` refers to no group of source.map_from (it has 1 group;"),
            ),
        ] {
            match (replacement(&re, map_to), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{map_to}"),
                (Err(got), Err(want)) => assert!(got.starts_with(want), "{map_to}: {got}"),
                (got, want) => panic!("{map_to}: got {got:?}, want {want:?}"),
            }
        }
    }
}
