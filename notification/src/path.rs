//! JSON paths (RFC 9535), parsed once; the common `$.a.b[0]` shape walked directly, and what
//! each such path found remembered for the rest of the notification.

use std::cell::Cell;
use std::collections::HashMap;

use serde_json::Value;
use serde_json_path::JsonPath;

/// An RFC 9535 JSON path, with a direct walk for the common `$.a.b[0]` shape.
#[derive(Debug, Clone)]
pub struct Path {
    text: Box<str>,
    compiled: JsonPath,
    /// Where a [`Memo`] keeps what a simple path found; shared by equal paths.
    slot: Option<u32>,
    /// Set when the path is only names and indexes: walked without building node lists.
    simple: Option<Box<[Step]>>,
}

#[derive(Debug, Clone)]
enum Step {
    Name(Box<str>),
    Index(i64),
}

impl Path {
    /// Parses `text`, which must start with `$`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if !text.starts_with('$') {
            return Err(format!(
                "`{text}` is not a json path: a path starts with `$`"
            ));
        }
        let compiled = JsonPath::parse(text).map_err(|e| {
            let hint = if text.contains(".[") {
                " (rfc 9535 has no dot before a bracket: `$.a[*]`, not `$.a.[*]`)"
            } else {
                ""
            };
            format!("invalid json path `{text}`: {e}{hint}")
        })?;
        Ok(Self {
            simple: simple(text),
            text: text.into(),
            compiled,
            slot: None,
        })
    }

    /// Gives a simple path the memo slot of the equal paths seen before it, or a new one.
    pub fn intern(&mut self, slots: &mut HashMap<Box<str>, u32>) {
        if self.simple.is_some() {
            let next = u32::try_from(slots.len()).unwrap_or(u32::MAX);
            self.slot =
                Some(*slots.entry(self.text.clone()).or_insert(next)).filter(|s| *s != u32::MAX);
        }
    }

    /// The first non-null value the path finds in `doc`, remembered in `memo`.
    pub fn first<'a>(&self, doc: &'a Value, memo: &Memo<'a>) -> Option<&'a Value> {
        match &self.simple {
            Some(steps) => {
                if let Some(slot) = self.slot
                    && let Some(found) = memo.get(slot)
                {
                    return found;
                }
                let found = walk(steps, doc).filter(|v| !v.is_null());
                if let Some(slot) = self.slot {
                    memo.put(slot, found);
                }
                found
            }
            None => self
                .compiled
                .query(doc)
                .all()
                .into_iter()
                .find(|v| !v.is_null()),
        }
    }

    /// Every value the path finds in `doc`, nulls included, appended to `out`.
    pub fn all<'a>(&self, doc: &'a Value, out: &mut Vec<&'a Value>) {
        match &self.simple {
            Some(steps) => out.extend(walk(steps, doc)),
            None => out.extend(self.compiled.query(doc).all()),
        }
    }
}

/// The steps of a path made only of `.name` and `[index]` segments.
fn simple(text: &str) -> Option<Box<[Step]>> {
    let mut rest = text.strip_prefix('$')?;
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(r.len());
            let name = &r[..end];
            if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
                return None;
            }
            steps.push(Step::Name(name.into()));
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            steps.push(Step::Index(r[..end].parse().ok()?));
            rest = &r[end + 1..];
        } else {
            return None;
        }
    }
    Some(steps.into_boxed_slice())
}

fn walk<'a>(steps: &[Step], doc: &'a Value) -> Option<&'a Value> {
    let mut node = doc;
    for step in steps {
        node = match (step, node) {
            (Step::Name(n), Value::Object(m)) => m.get(n.as_ref())?,
            (Step::Index(i), Value::Array(a)) => {
                let i = if *i < 0 {
                    a.len()
                        .checked_sub(usize::try_from(i.unsigned_abs()).ok()?)?
                } else {
                    usize::try_from(*i).ok()?
                };
                a.get(i)?
            }
            _ => return None,
        };
    }
    Some(node)
}

/// What the simple paths of all definitions found in one notification, by slot: a path that
/// many definitions share is walked once. A small table on the stack (open addressing, a few
/// probes); a path that finds no room is simply walked again.
pub struct Memo<'a> {
    entries: [Cell<Entry<'a>>; MEMO_ENTRIES],
}

const MEMO_ENTRIES: usize = 64;
const MEMO_PROBES: usize = 8;

#[derive(Clone, Copy)]
struct Entry<'a> {
    /// The path's slot, `u32::MAX` when the entry is free.
    slot: u32,
    found: Option<&'a Value>,
}

const FREE: Entry<'static> = Entry {
    slot: u32::MAX,
    found: None,
};

impl<'a> Memo<'a> {
    /// An empty memo.
    pub fn new() -> Self {
        Self {
            entries: [const { Cell::new(FREE) }; MEMO_ENTRIES],
        }
    }

    /// What the path of `slot` found, if it was asked before: `Some(found)`.
    fn get(&self, slot: u32) -> Option<Option<&'a Value>> {
        for i in 0..MEMO_PROBES {
            let e = self.entries[(slot as usize + i) % MEMO_ENTRIES].get();
            if e.slot == slot {
                return Some(e.found);
            }
            if e.slot == u32::MAX {
                return None;
            }
        }
        None
    }

    fn put(&self, slot: u32, found: Option<&'a Value>) {
        for i in 0..MEMO_PROBES {
            let cell = &self.entries[(slot as usize + i) % MEMO_ENTRIES];
            if cell.get().slot == u32::MAX {
                cell.set(Entry { slot, found });
                return;
            }
        }
    }
}

impl Default for Memo<'_> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn simple_paths_walk_like_the_full_evaluator() {
        let doc = json!({"a": {"b": [10, 20, {"c": null}], "d": "x"}, "n": null});
        for text in [
            "$",
            "$.a",
            "$.a.b",
            "$.a.b[0]",
            "$.a.b[-1]",
            "$.a.b[-4]",
            "$.a.b[7]",
            "$.a.b[2].c",
            "$.a.d",
            "$.a.d.e",
            "$.n",
            "$.missing",
            "$.a.b[1]",
        ] {
            let p = Path::parse(text).expect(text);
            assert!(p.simple.is_some(), "{text} should be simple");
            let mut fast = Vec::new();
            p.all(&doc, &mut fast);
            let full: Vec<&Value> = p.compiled.query(&doc).all();
            assert_eq!(fast, full, "{text}");
            let first = full.iter().copied().find(|v| !v.is_null());
            assert_eq!(p.first(&doc, &Memo::new()), first, "{text}");
        }
        for text in ["$.a.*", "$..b", "$.a['d']", "$.a.b[0:2]", "$.a.b[?@ > 1]"] {
            assert!(Path::parse(text).expect(text).simple.is_none(), "{text}");
        }
    }

    #[test]
    fn paths_are_refused_with_the_reason() {
        assert_eq!(
            Path::parse("payload.x").unwrap_err(),
            "`payload.x` is not a json path: a path starts with `$`"
        );
        let err = Path::parse("$.payload[").unwrap_err();
        assert!(
            err.starts_with("invalid json path `$.payload[`: at position"),
            "{err}"
        );
    }

    #[test]
    fn equal_paths_share_a_slot_and_are_walked_once() {
        let mut slots = HashMap::new();
        let mut a = Path::parse("$.payload.id").expect("valid");
        let mut b = Path::parse("$.payload.id").expect("valid");
        let mut c = Path::parse("$.payload.name").expect("valid");
        let mut d = Path::parse("$.payload.*").expect("valid");
        for p in [&mut a, &mut b, &mut c, &mut d] {
            p.intern(&mut slots);
        }
        assert_eq!(
            (a.slot, b.slot, c.slot, d.slot),
            (Some(0), Some(0), Some(1), None)
        );
        let doc = json!({"payload": {"id": "x", "name": "n"}});
        let other = json!({"payload": {"id": "y"}});
        let memo = Memo::new();
        assert_eq!(a.first(&doc, &memo), Some(&json!("x")));
        // Remembered: the slot answers, whatever document is asked.
        assert_eq!(b.first(&other, &memo), Some(&json!("x")));
        assert_eq!(c.first(&other, &memo), None);
        assert_eq!(c.first(&doc, &memo), None);
        // A full table still answers right, walking again.
        let full = Memo::new();
        let many: Vec<Path> = (0..200)
            .map(|i| {
                let mut p = Path::parse(&format!("$.k{i}")).expect("valid");
                p.intern(&mut slots);
                p
            })
            .collect();
        let doc = json!({"k7": 7, "k150": 150});
        for _ in 0..2 {
            for (i, p) in many.iter().enumerate() {
                let want = (i == 7 || i == 150).then(|| json!(i));
                assert_eq!(p.first(&doc, &full), want.as_ref(), "k{i}");
            }
        }
    }
}
