//! Value specifications: how a definition says where a value comes from (a JSON path, a list
//! of paths, a literal, or a plugin over fields), parsed once, evaluated per notification.

use std::borrow::Cow;

use crate::path::{Memo, Path};
use crate::plugin::Plugin;
use crate::yaml::{Kind, Node, Refusal, fields, join};
use serde_json::Value;

/// Where a value comes from.
#[derive(Debug, Clone)]
pub enum Spec {
    /// Always this value.
    Literal(Value),
    /// The first of these paths that finds a non-null value.
    Paths(Box<[Path]>),
    /// A plugin over every non-null value the fields find, in order.
    Plugin {
        /// The fields.
        fields: Box<[Path]>,
        /// The plugin.
        plugin: Plugin,
    },
}

impl Spec {
    /// Reads a meter field: `$...` is a path, another scalar a literal, a list of strings a
    /// list of paths, `{fields, plugin}` a plugin (or paths, without `plugin`).
    pub fn parse(node: &Node, field: &str) -> Result<Self, Refusal> {
        match &node.kind {
            Kind::Str(s) if s.starts_with('$') => {
                let path = Path::parse(s).map_err(|m| Refusal::new(node, field, m))?;
                Ok(Self::Paths(Box::new([path])))
            }
            Kind::Str(_) | Kind::Number(_) | Kind::Bool(_) | Kind::Null => {
                Ok(Self::Literal(node.to_json()))
            }
            Kind::Seq(_) => Ok(Self::Paths(paths(node, field, false)?)),
            Kind::Map(_) => Self::parse_fields(node, field),
        }
    }

    /// Reads `{fields: path | [paths], plugin: ...}` (plugin optional). Paths in `fields` may
    /// leave out the leading `$.` (`payload.instance_id`).
    pub fn parse_fields(node: &Node, field: &str) -> Result<Self, Refusal> {
        let mut found = None;
        let mut plugin = None;
        for (k, v) in fields(node, field, "a value", &["fields", "plugin"])? {
            match k {
                "fields" => found = Some(paths(v, &join(field, "fields"), true)?),
                _ => plugin = Some(Plugin::parse(v, &join(field, "plugin"))?),
            }
        }
        Self::assemble(node, field, found, plugin)
    }

    /// Builds a spec from `fields` and an optional plugin, refusing a missing `fields`.
    pub fn assemble(
        node: &Node,
        field: &str,
        fields: Option<Box<[Path]>>,
        plugin: Option<Plugin>,
    ) -> Result<Self, Refusal> {
        let fields = fields.ok_or_else(|| Refusal::new(node, field, "missing `fields`"))?;
        Ok(match plugin {
            Some(plugin) => Self::Plugin { fields, plugin },
            None => Self::Paths(fields),
        })
    }

    /// The value for `doc`: `Ok(None)` when nothing is found, `Err` when a plugin cannot use
    /// what it found.
    pub fn eval<'a>(
        &'a self,
        doc: &'a Value,
        memo: &Memo<'a>,
    ) -> Result<Option<Cow<'a, Value>>, String> {
        match self {
            Self::Literal(v) => Ok(Some(Cow::Borrowed(v))),
            Self::Paths(paths) => Ok(paths
                .iter()
                .find_map(|p| p.first(doc, memo))
                .map(Cow::Borrowed)),
            Self::Plugin { fields, plugin } => {
                let mut found = Vec::new();
                for p in fields.iter() {
                    p.all(doc, &mut found);
                }
                found.retain(|v| !v.is_null());
                Ok(plugin.apply(&found)?.map(Cow::Owned))
            }
        }
    }

    /// The paths whose findings a [`Memo`] can keep (not those feeding a plugin).
    pub fn memo_paths(&mut self) -> &mut [Path] {
        match self {
            Self::Paths(paths) => paths,
            Self::Literal(_) | Self::Plugin { .. } => &mut [],
        }
    }

    /// Every value of the first path that finds any (nulls kept, for parallel lists); `None`
    /// for a spec that is not paths.
    pub fn eval_all<'a>(&'a self, doc: &'a Value) -> Option<Vec<&'a Value>> {
        let Self::Paths(paths) = self else {
            return None;
        };
        let mut out = Vec::new();
        for p in paths.iter() {
            p.all(doc, &mut out);
            if !out.is_empty() {
                break;
            }
        }
        Some(out)
    }
}

/// A path or list of paths; `bare` lets a path leave out its leading `$.`.
pub fn paths(node: &Node, field: &str, bare: bool) -> Result<Box<[Path]>, Refusal> {
    let one = |n: &Node| -> Result<Path, Refusal> {
        let Some(text) = n.as_str() else {
            return Err(Refusal::new(
                n,
                field,
                format!("a json path must be a string, got {}", n.describe()),
            ));
        };
        let result = if bare && !text.starts_with('$') {
            Path::parse(&format!("$.{text}"))
        } else {
            Path::parse(text)
        };
        result.map_err(|m| Refusal::new(n, field, m))
    };
    match &node.kind {
        Kind::Seq(items) if items.is_empty() => {
            Err(Refusal::new(node, field, "an empty list of json paths"))
        }
        Kind::Seq(items) => items.iter().map(one).collect(),
        _ => Ok(Box::new([one(node)?])),
    }
}

/// A scalar as text: strings as they are, numbers and booleans as JSON writes them.
pub fn text(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        _ => None,
    }
}

/// A number, or text holding one; finite only.
pub fn number(v: &Value) -> Option<f64> {
    let n = match v {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    n.is_finite().then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_from_numbers_and_numeric_text() {
        assert_eq!(number(&json!(2048)), Some(2048.0));
        assert_eq!(number(&json!(" 1.5 ")), Some(1.5));
        assert_eq!(number(&json!("1e400")), None);
        assert_eq!(number(&json!("abc")), None);
        assert_eq!(number(&json!(true)), None);
        assert_eq!(number(&json!(null)), None);
    }
}
