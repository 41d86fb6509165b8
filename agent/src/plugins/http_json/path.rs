//! Path expressions: an RFC 9535 JSONPath followed by value operations (see [`super::ops`]).

use std::fmt;

use serde_json::Value;
use serde_json_path::JsonPath;
use serde_json_path::{NormalizedPath, PathElement};

use super::grammar;
use super::ops::Op;

/// A parsed `"$.path | op | op"` expression.
#[derive(Clone)]
pub struct Expr {
    text: String,
    path: JsonPath,
    ops: Vec<Op>,
}

impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Expr({:?})", self.text)
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// One node a multi-valued expression matched.
#[derive(Debug)]
pub struct Found<'a> {
    /// The node after the operations (`None`: they yielded nothing).
    pub value: Option<Value>,
    /// The object or list that holds the node (`None` for the document itself).
    pub parent: Option<&'a Value>,
}

impl Expr {
    /// Parses `text`: a JSONPath starting with `$`, then optionally `| op | op ...`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let ops_start = split(text);
        let path_text = text[..ops_start].trim();
        if !path_text.starts_with('$') {
            return Err(format!(
                "`{text}` is not a path: a path starts with `$` (the entry, or the response \
                 for `entries` and `next`), e.g. `$.name`"
            ));
        }
        let path = JsonPath::parse(path_text)
            .map_err(|e| format!("invalid JSONPath `{path_text}`: {e}"))?;
        let ops = grammar::parse(text, ops_start)
            .map_err(|e| format!("in the operations of `{text}`: {e}"))?;
        Ok(Self {
            text: text.to_owned(),
            path,
            ops,
        })
    }

    /// True when operations follow the path.
    pub fn has_ops(&self) -> bool {
        !self.ops.is_empty()
    }

    /// The nodes the path matches in `doc`, operations not applied.
    pub fn nodes<'a>(&self, doc: &'a Value) -> Vec<&'a Value> {
        self.path.query(doc).all()
    }

    /// The first node the path matches, through the operations (`None` when the path
    /// matches nothing or the operations yield nothing).
    pub fn first(&self, doc: &Value) -> Option<Value> {
        let node = self.path.query(doc).first().cloned();
        self.apply(node)
    }

    /// Every node the path matches, through the operations, each with its parent.
    pub fn all<'a>(&self, doc: &'a Value) -> Vec<Found<'a>> {
        self.path
            .query_located(doc)
            .into_iter()
            .map(|located| Found {
                value: self.apply(Some(located.node().clone())),
                parent: parent(doc, located.location()),
            })
            .collect()
    }

    fn apply(&self, value: Option<Value>) -> Option<Value> {
        // Not try_fold: `default` turns "no value" into a value.
        let mut value = value;
        for op in &self.ops {
            value = op.apply(value);
        }
        value
    }
}

/// The node that holds the node at `location` in `doc`.
fn parent<'a>(doc: &'a Value, location: &NormalizedPath<'_>) -> Option<&'a Value> {
    let up = location.len().checked_sub(1)?;
    location
        .iter()
        .take(up)
        .try_fold(doc, |node, element| match element {
            PathElement::Name(name) => node.get(*name),
            PathElement::Index(i) => node.get(*i),
        })
}

/// Where the operations start in `text`: at the first `|` outside quotes and brackets (or
/// at the end). A `|` of a JSONPath (`||` in a filter, a quoted name) is always inside
/// brackets or quotes.
fn split(text: &str) -> usize {
    let mut depth = 0usize;
    let mut quote = None;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match quote {
            Some(_) if escaped => escaped = false,
            Some(_) if c == '\\' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '\'' | '"' => quote = Some(c),
                '[' | '(' => depth += 1,
                ']' | ')' => depth = depth.saturating_sub(1),
                '|' if depth == 0 => return i,
                _ => {}
            },
        }
    }
    text.len()
}

/// The text of a scalar: a string as is, a number or boolean as JSON writes it; `None` for
/// null, lists and objects.
pub fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn expr(text: &str) -> Expr {
        Expr::parse(text).expect(text)
    }

    #[test]
    fn a_path_alone_or_with_operations() {
        let doc = json!({"name": "vh/q1", "stats": {"rate": 2.5}, "tags": ["a|b", "c"]});
        assert_eq!(expr("$.name").first(&doc), Some(json!("vh/q1")));
        assert_eq!(
            expr(" $.name | split('/') | index(-1) ").first(&doc),
            Some(json!("q1"))
        );
        assert_eq!(expr("$.stats.rate | mul(2)").first(&doc), Some(json!(5)));
        assert_eq!(expr("$.missing").first(&doc), None);
        assert_eq!(expr("$.missing | default(0)").first(&doc), Some(json!(0)));
        assert_eq!(
            expr("$['na|me'] | default('x')").first(&doc),
            Some(json!("x"))
        );
        assert_eq!(
            expr("$.tags[?@ == 'a|b' || @ == 'z'] | split('|') | index(1)").first(&doc),
            Some(json!("b"))
        );
        assert!(!expr("$.tags[0]").has_ops());
        assert_eq!(expr("$.tags[*]").nodes(&doc), [&json!("a|b"), &json!("c")]);
    }

    #[test]
    fn all_matches_come_with_their_parent() {
        let doc = json!({"disks": [{"dev": "sda", "used": 1}, {"dev": "sdb", "used": 2}]});
        let found = expr("$.disks[*].used | mul(10)").all(&doc);
        let got: Vec<_> = found
            .iter()
            .map(|f| {
                (
                    f.value.clone(),
                    f.parent.and_then(|p| p.get("dev")).cloned(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (Some(json!(10)), Some(json!("sda"))),
                (Some(json!(20)), Some(json!("sdb")))
            ]
        );
        assert!(expr("$").all(&doc)[0].parent.is_none());
        let nested = json!({"a": {"b": [[7]]}});
        let found = expr("$.a.b[0][0]").all(&nested);
        assert_eq!(found[0].parent, Some(&json!([7])));
    }

    #[test]
    fn bad_expressions_are_explained() {
        let err = |t: &str| Expr::parse(t).expect_err(t);
        assert!(err("name").contains("a path starts with `$`"));
        assert!(err("$.a[").starts_with("invalid JSONPath `$.a[`"));
        assert!(err("$.a | nope").contains("unknown operation"));
        assert!(err("").contains("is not a path"));
        assert!(err("$.v | split('/') | index(x)").ends_with("at position 25, found `x`"),);
    }

    #[test]
    fn scalars_as_text() {
        assert_eq!(scalar_text(&json!("x")).as_deref(), Some("x"));
        assert_eq!(scalar_text(&json!(3)).as_deref(), Some("3"));
        assert_eq!(scalar_text(&json!(1.5)).as_deref(), Some("1.5"));
        assert_eq!(scalar_text(&json!(false)).as_deref(), Some("false"));
        assert_eq!(scalar_text(&json!(null)), None);
        assert_eq!(scalar_text(&json!([1])), None);
    }
}
