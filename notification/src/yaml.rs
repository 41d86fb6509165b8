//! A YAML document as a tree of values that remember their line and column.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_saphyr::Spanned;

/// Line and column (1-based) of a value in its file, when the parser recorded them.
pub type Position = Option<(u64, u64)>;

/// A YAML value with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The value.
    pub kind: Kind,
    /// Where it is.
    pub at: Position,
}

/// The shapes a YAML value can have.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// `~`, `null` or nothing.
    Null,
    /// `true`, `false`.
    Bool(bool),
    /// A number.
    Number(serde_json::Number),
    /// Text.
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in file order.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The text of a string node.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value under `key` of a mapping node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            Kind::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The node as JSON (mapping keys that are not text become their JSON text).
    pub fn to_json(&self) -> Value {
        match &self.kind {
            Kind::Null => Value::Null,
            Kind::Bool(b) => Value::Bool(*b),
            Kind::Number(n) => Value::Number(n.clone()),
            Kind::Str(s) => Value::String(s.clone()),
            Kind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Kind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.key_text(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// A mapping key as text.
    pub fn key_text(&self) -> String {
        match &self.kind {
            Kind::Str(s) => s.clone(),
            _ => self.to_json().to_string(),
        }
    }

    /// What the node is, for messages: `a string`, `a list`, ...
    pub fn describe(&self) -> &'static str {
        match &self.kind {
            Kind::Null => "null",
            Kind::Bool(_) => "a boolean",
            Kind::Number(_) => "a number",
            Kind::Str(_) => "a string",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }
}

impl From<Spanned<Kind>> for Node {
    fn from(s: Spanned<Kind>) -> Self {
        let loc = s.referenced;
        Self {
            kind: s.value,
            at: (loc.line() > 0).then(|| (loc.line(), loc.column())),
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Spanned::<Kind>::deserialize(d).map(Node::from)
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(KindVisitor)
    }
}

struct KindVisitor;

impl<'de> Visitor<'de> for KindVisitor {
    type Value = Kind;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any yaml value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Kind, E> {
        Ok(Kind::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Kind, E> {
        Ok(Kind::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Kind, D::Error> {
        Kind::deserialize(d)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Kind, E> {
        Ok(Kind::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Kind, E> {
        Ok(Kind::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Kind, E> {
        Ok(Kind::Number(v.into()))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Kind, E> {
        // Beyond 64 bits: keep it as text rather than lose digits.
        Ok(Kind::Str(v.to_string()))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Kind, E> {
        Ok(Kind::Str(v.to_string()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Kind, E> {
        Ok(serde_json::Number::from_f64(v).map_or_else(|| Kind::Str(v.to_string()), Kind::Number))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Kind, E> {
        Ok(Kind::Str(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Kind, E> {
        Ok(Kind::Str(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Kind, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Kind::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Kind, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Node>()? {
            let value = map.next_value::<Node>()?;
            entries.push((key, value));
        }
        Ok(Kind::Map(entries))
    }
}

/// A definition refused while checking it: where, which field, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// Position of the offending key or value.
    pub at: Position,
    /// Dotted field path inside the definition (`volume`, `traits.memory_mb.type`).
    pub field: String,
    /// What is wrong, lowercase, listing the valid choices where there are some.
    pub message: String,
}

impl Refusal {
    /// A refusal of `node` as the value of `field`.
    pub fn new(node: &Node, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            at: node.at,
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The entries of a mapping node whose keys must all be text among `allowed`; refuses another
/// shape (`what` names the expected thing) or an unknown key (listing the allowed ones).
pub fn fields<'a>(
    node: &'a Node,
    field: &str,
    what: &str,
    allowed: &[&str],
) -> Result<Vec<(&'a str, &'a Node)>, Refusal> {
    let Kind::Map(entries) = &node.kind else {
        return Err(Refusal::new(
            node,
            field,
            format!("{what} must be a mapping, got {}", node.describe()),
        ));
    };
    let mut out = Vec::with_capacity(entries.len());
    for (k, v) in entries {
        let name = k.as_str().filter(|n| allowed.contains(n)).ok_or_else(|| {
            Refusal::new(
                k,
                field,
                format!(
                    "unknown field `{}` (available: {})",
                    k.key_text(),
                    allowed.join(", ")
                ),
            )
        })?;
        out.push((name, v));
    }
    Ok(out)
}

/// `parent.child`, or `child` at the top.
pub fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_owned()
    } else {
        format!("{parent}.{child}")
    }
}

/// Why a file could not be read as YAML: the parser's message and where.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    /// Where the parser stopped.
    pub at: Position,
    /// What it said, without its own position suffix.
    pub message: String,
}

/// Parses `text` into a positioned tree.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    // YAML 1.2 booleans only: `n`, `no`, `off` in a map plugin's values stay text.
    // The parser's budget stays, except its aliases-per-anchor heuristic, which refuses
    // legitimate files that reuse one anchor a hundred times.
    let options = serde_saphyr::options! {
        strict_booleans: true,
        budget: serde_saphyr::budget! { enforce_alias_anchor_ratio: false },
    };
    serde_saphyr::from_str_with_options::<Node>(text, options).map_err(|e| {
        let at = e
            .location()
            .filter(|l| l.line() > 0)
            .map(|l| (l.line(), l.column()));
        let message = e.without_snippet().to_string();
        let mut message = match message.rfind(" at line ") {
            Some(i) if at.is_some() => message[..i].to_owned(),
            _ => message,
        };
        // Advice about parser options is not the operator's to follow.
        if let Some(i) = message.find(", set DuplicateKeyPolicy") {
            message.truncate(i);
        }
        SyntaxError { at, message }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_values_keep_their_positions() {
        let text = "metric:\n  - name: memory\n    volume: $.payload.memory_mb\n    n: 1.5\n";
        let doc = parse(text).expect("yaml");
        let list = doc.get("metric").expect("metric");
        let Kind::Seq(items) = &list.kind else {
            panic!("{list:?}")
        };
        let def = &items[0];
        assert_eq!(def.at, Some((2, 5)));
        let volume = def.get("volume").expect("volume");
        assert_eq!(volume.at, Some((3, 13)));
        assert_eq!(volume.as_str(), Some("$.payload.memory_mb"));
        let Kind::Map(entries) = &def.kind else {
            panic!()
        };
        assert_eq!(entries[1].0.at, Some((3, 5)));
        assert_eq!(
            def.get("n").map(Node::to_json),
            Some(serde_json::json!(1.5))
        );
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let err = parse("metric:\n  - name: [unclosed\n").unwrap_err();
        assert!(err.at.is_some(), "{err:?}");
    }
}
