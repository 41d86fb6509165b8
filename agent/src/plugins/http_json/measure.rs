//! From one entry of a response to measurements: the value (mapped, defaulted, skipped), the
//! resource, owners and metadata, and for `prefix.{field}` names one measurement per match.

use std::collections::BTreeMap;

use hb_sample::SampleType;
use serde_json::Value;

use super::ops::to_number;
use super::path::{Expr, scalar_text};
use crate::plugins::FieldError;
use crate::pollster::Measurement;

/// A meter name: fixed, or with `{field}` placeholders filled from each match's parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeterName {
    /// One meter.
    Fixed(String),
    /// A family: literal parts and placeholders.
    Family(Vec<Part>),
}

/// A piece of a family name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Written as is.
    Text(String),
    /// `{field}`: a field of the object that holds the matched value.
    Field(String),
}

impl MeterName {
    /// Parses a definition name: `{field}` placeholders make it a family.
    pub fn parse(name: &str) -> Result<Self, FieldError> {
        let refuse = |m: &str| FieldError::new("name", m);
        let mut parts = Vec::new();
        let mut rest = name;
        while let Some(open) = rest.find(['{', '}']) {
            if rest[open..].starts_with('}') {
                return Err(refuse(
                    "`}` without `{`; placeholders are written `{field}`",
                ));
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| refuse("`{` without `}`; placeholders are written `{field}`"))?;
            let field = &after[..close];
            let valid = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
            if field.is_empty() || !field.chars().all(valid) {
                return Err(refuse(
                    "a placeholder names a field with letters, digits, `_` or `-`: `{field}`",
                ));
            }
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            parts.push(Part::Field(field.to_owned()));
            rest = &after[close + 1..];
        }
        if parts.is_empty() {
            return Ok(Self::Fixed(name.to_owned()));
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Self::Family(parts))
    }

    /// The name as `--list` shows it: placeholders as `*`.
    pub fn pattern(&self) -> String {
        match self {
            Self::Fixed(n) => n.clone(),
            Self::Family(parts) => parts
                .iter()
                .map(|p| match p {
                    Part::Text(t) => glob::Pattern::escape(t),
                    Part::Field(_) => "*".to_owned(),
                })
                .collect(),
        }
    }
}

/// A value of `skip_values`.
#[derive(Debug, Clone, PartialEq)]
pub enum Skip {
    /// Compared with the volume, after mapping.
    Number(f64),
    /// Compared with the raw value's text, before mapping.
    Text(String),
}

/// How a definition reads an entry.
#[derive(Debug)]
pub struct Extract {
    /// Meter name.
    pub meter: MeterName,
    /// Sample type, carried by family measurements.
    pub kind: SampleType,
    /// Unit, carried by family measurements.
    pub unit: String,
    /// The value.
    pub value: Expr,
    /// Parts of the resource id, joined with `/`.
    pub resource_id: Vec<Expr>,
    /// Owning project.
    pub project_id: Option<Expr>,
    /// Owning user.
    pub user_id: Option<Expr>,
    /// Metadata, by name.
    pub metadata: BTreeMap<String, Expr>,
    /// Raw value text → volume.
    pub value_mapping: Option<BTreeMap<String, f64>>,
    /// The volume when there is no value, it is not mapped, or not a number.
    pub default_value: Option<f64>,
    /// Values for which nothing is emitted.
    pub skip_values: Vec<Skip>,
}

/// What happened to the entries of one run, reported once at its end.
#[derive(Debug, Default)]
pub struct Tally {
    /// Entries read.
    pub entries: usize,
    /// Measurements made.
    pub measurements: usize,
    /// Entries or matches without a value.
    pub no_value: usize,
    /// Entries without a resource id.
    pub no_resource: usize,
    /// Matches whose parent lacks a `{field}` of the name.
    pub no_field: usize,
    /// Values in `skip_values`.
    pub skipped: usize,
    /// Values that were not numbers (and not mapped, no default).
    pub not_numeric: usize,
    /// The first of those: resource and value.
    pub first_not_numeric: Option<(String, String)>,
    /// Pages where `entries` matched nothing.
    pub pages_without_entries: usize,
}

enum Outcome {
    Volume(f64),
    Nothing,
    Skipped,
    NotNumeric(String),
}

impl Extract {
    /// Reads one entry into `out`.
    pub fn entry(&self, entry: &Value, out: &mut Vec<Measurement>, tally: &mut Tally) {
        tally.entries += 1;
        let Some(resource_id) = self.resource(entry) else {
            tally.no_resource += 1;
            return;
        };
        match &self.meter {
            MeterName::Fixed(name) => {
                let raw = self.value.first(entry);
                if let Some(volume) = self.volume(raw.as_ref(), &resource_id, tally) {
                    let m = Measurement::new(name.clone(), volume, resource_id);
                    out.push(self.annotate(m, entry));
                    tally.measurements += 1;
                }
            }
            MeterName::Family(parts) => {
                for found in self.value.all(entry) {
                    let Some(name) = fill(parts, found.parent) else {
                        tally.no_field += 1;
                        continue;
                    };
                    if let Some(volume) = self.volume(found.value.as_ref(), &resource_id, tally) {
                        let m = Measurement::typed(
                            name,
                            self.kind,
                            self.unit.clone(),
                            volume,
                            resource_id.clone(),
                        );
                        out.push(self.annotate(m, entry));
                        tally.measurements += 1;
                    }
                }
            }
        }
    }

    fn resource(&self, entry: &Value) -> Option<String> {
        let parts: Option<Vec<String>> = self
            .resource_id
            .iter()
            .map(|e| e.first(entry).as_ref().and_then(scalar_text))
            .collect();
        let id = parts?.join("/");
        (!id.is_empty()).then_some(id)
    }

    fn annotate(&self, mut m: Measurement, entry: &Value) -> Measurement {
        let text = |e: &Option<Expr>| e.as_ref()?.first(entry).as_ref().and_then(scalar_text);
        m.project_id = text(&self.project_id);
        m.user_id = text(&self.user_id);
        for (key, expr) in &self.metadata {
            match expr.first(entry) {
                None | Some(Value::Null) => {}
                Some(v) => {
                    m.metadata.insert(key.clone(), v);
                }
            }
        }
        m
    }

    fn volume(&self, raw: Option<&Value>, resource: &str, tally: &mut Tally) -> Option<f64> {
        match self.outcome(raw) {
            Outcome::Volume(v) => return Some(v),
            Outcome::Nothing => tally.no_value += 1,
            Outcome::Skipped => tally.skipped += 1,
            Outcome::NotNumeric(value) => {
                tally.not_numeric += 1;
                if tally.first_not_numeric.is_none() {
                    tally.first_not_numeric = Some((resource.to_owned(), value));
                }
            }
        }
        None
    }

    fn outcome(&self, raw: Option<&Value>) -> Outcome {
        let raw = raw.filter(|v| !v.is_null());
        let text = raw.and_then(scalar_text);
        let skipped_text = |t: &String| {
            self.skip_values
                .iter()
                .any(|s| matches!(s, Skip::Text(x) if x == t))
        };
        if text.as_ref().is_some_and(skipped_text) {
            return Outcome::Skipped;
        }
        let number = || raw.and_then(to_number);
        let volume = match &self.value_mapping {
            // Mapped; else the default; else a number passes through.
            Some(map) => text
                .as_ref()
                .and_then(|t| map.get(t).copied())
                .or(self.default_value)
                .or_else(number),
            None => number().or(self.default_value),
        };
        match (volume, raw) {
            (Some(v), _) if self.skip_values.contains(&Skip::Number(v)) => Outcome::Skipped,
            (Some(v), _) => Outcome::Volume(v),
            (None, None) => Outcome::Nothing,
            (None, Some(v)) => Outcome::NotNumeric(shorten(v)),
        }
    }
}

/// The meter name for a match whose parent is `parent`; `None` when a field is missing, not
/// a scalar, or empty.
fn fill(parts: &[Part], parent: Option<&Value>) -> Option<String> {
    let mut name = String::new();
    for part in parts {
        match part {
            Part::Text(t) => name.push_str(t),
            Part::Field(f) => {
                let value = scalar_text(parent?.get(f)?)?;
                if value.is_empty() {
                    return None;
                }
                name.push_str(&value);
            }
        }
    }
    Some(name)
}

/// A value for a log line: at most 80 characters.
fn shorten(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(80) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}
