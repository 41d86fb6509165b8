//! Meter definitions (`meters.d/*.yaml`, Ceilometer's meters.yaml), checked when loaded.

use hb_sample::SampleType;

use crate::pattern::EventTypes;
use crate::value::Spec;
use crate::yaml::{Kind, Node, Refusal, fields, join};

/// The `source` of every sample made from a notification.
pub const SOURCE: &str = "notification";

/// The fields of a meter definition, in the order messages list them: the first
/// [`REQUIRED`] are required.
pub const FIELDS: [&str; 11] = [
    "name",
    "event_type",
    "type",
    "unit",
    "volume",
    "resource_id",
    "project_id",
    "user_id",
    "timestamp",
    "metadata",
    "lookup",
];

/// How many of [`FIELDS`], from the first, every definition must have.
const REQUIRED: usize = 6;

/// The fields a `lookup` may name, in [`Field`] order.
pub const LOOKUP: [&str; 7] = [
    "name",
    "unit",
    "volume",
    "resource_id",
    "project_id",
    "user_id",
    "timestamp",
];

/// A sample field whose value a definition specifies; indexes [`MeterDef::specs`].
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Name = 0,
    Unit = 1,
    Volume = 2,
    ResourceId = 3,
    ProjectId = 4,
    UserId = 5,
    Timestamp = 6,
}

impl Field {
    /// The field's name.
    pub fn as_str(self) -> &'static str {
        LOOKUP[self as usize]
    }
}

/// One checked meter definition.
#[derive(Debug)]
pub struct MeterDef {
    /// The `name` as written (a meter name, or the path that finds it).
    pub label: String,
    /// Which notifications it reads.
    pub event_types: EventTypes,
    /// Gauge, delta or cumulative.
    pub kind: SampleType,
    /// The value of each [`Field`], when set.
    pub specs: [Option<Spec>; 7],
    /// Metadata entries.
    pub metadata: Box<[(String, Spec)]>,
    /// Bit `f` set when field `f` is evaluated as a parallel list.
    pub lookup: u8,
}

impl MeterDef {
    /// Checks one entry of a `metric:` list.
    pub fn parse(node: &Node) -> Result<Self, Refusal> {
        let entries = fields(node, "", "a meter definition", &FIELDS)?;
        let get = |k: &str| entries.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
        for required in &FIELDS[..REQUIRED] {
            if get(required).is_none() {
                return Err(Refusal::new(
                    node,
                    "",
                    format!("missing required field `{required}`"),
                ));
            }
        }
        let mut specs: [Option<Spec>; 7] = Default::default();
        for (i, f) in LOOKUP.iter().enumerate() {
            if let Some(v) = get(f) {
                specs[i] = Some(Spec::parse(v, f)?);
            }
        }
        let event_types = event_types(get("event_type"), node)?;
        let type_node = get("type").unwrap_or(node);
        let kind = type_node
            .as_str()
            .and_then(|t| t.parse::<SampleType>().ok())
            .ok_or_else(|| {
                Refusal::new(
                    type_node,
                    "type",
                    format!(
                        "unknown type `{}` (available: gauge, delta, cumulative)",
                        type_node.key_text()
                    ),
                )
            })?;
        let metadata = match get("metadata") {
            None => Box::default(),
            Some(m) => metadata_entries(m)?
                .into_iter()
                .map(|(k, v)| Ok((k.to_owned(), Spec::parse(v, &join("metadata", k))?)))
                .collect::<Result<_, Refusal>>()?,
        };
        let lookup = match get("lookup") {
            None => 0,
            Some(l) => lookup(l, &specs)?,
        };
        let label = match get("name").map(|n| &n.kind) {
            Some(Kind::Str(s)) => s.clone(),
            Some(_) | None => get("name").map(Node::key_text).unwrap_or_default(),
        };
        Ok(Self {
            label,
            event_types,
            kind,
            specs,
            metadata,
            lookup,
        })
    }

    /// Every path whose findings a [`Memo`](crate::path::Memo) can keep.
    pub fn memo_paths(&mut self) -> impl Iterator<Item = &mut crate::path::Path> {
        self.specs
            .iter_mut()
            .flatten()
            .chain(self.metadata.iter_mut().map(|(_, s)| s))
            .flat_map(|s| s.memo_paths().iter_mut())
    }
}

/// A mapping's entries for `metadata` (any text key).
fn metadata_entries(node: &Node) -> Result<Vec<(&str, &Node)>, Refusal> {
    let Kind::Map(entries) = &node.kind else {
        return Err(Refusal::new(
            node,
            "metadata",
            format!(
                "`metadata` must be a mapping of name to value, got {}",
                node.describe()
            ),
        ));
    };
    entries
        .iter()
        .map(|(k, v)| match k.as_str() {
            Some(name) if !name.is_empty() => Ok((name, v)),
            _ => Err(Refusal::new(
                k,
                "metadata",
                "metadata names must be non-empty text",
            )),
        })
        .collect()
}

/// `event_type:` of a meter or event definition: one pattern or a list.
pub fn event_types(node: Option<&Node>, definition: &Node) -> Result<EventTypes, Refusal> {
    let Some(node) = node else {
        return Err(Refusal::new(
            definition,
            "",
            "missing required field `event_type`",
        ));
    };
    let texts: Vec<&str> = match &node.kind {
        Kind::Str(s) => vec![s.as_str()],
        Kind::Seq(items) => items
            .iter()
            .map(|i| {
                i.as_str().ok_or_else(|| {
                    Refusal::new(
                        i,
                        "event_type",
                        format!("a pattern must be text, got {}", i.describe()),
                    )
                })
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(Refusal::new(
                node,
                "event_type",
                format!(
                    "`event_type` must be a pattern or a list of patterns, got {}",
                    node.describe()
                ),
            ));
        }
    };
    EventTypes::new(&texts).map_err(|e| Refusal::new(node, "event_type", e.to_string()))
}

/// The `lookup:` bit set: each named field must be set, as a path or list of paths.
fn lookup(node: &Node, specs: &[Option<Spec>; 7]) -> Result<u8, Refusal> {
    let items: Vec<&Node> = match &node.kind {
        Kind::Seq(items) => items.iter().collect(),
        _ => vec![node],
    };
    let mut bits = 0u8;
    for item in items {
        let name = item.key_text();
        let Some(i) = LOOKUP.iter().position(|f| *f == name) else {
            return Err(Refusal::new(
                item,
                "lookup",
                format!(
                    "unknown field `{name}` in lookup (available: {})",
                    LOOKUP.join(", ")
                ),
            ));
        };
        match &specs[i] {
            None => {
                return Err(Refusal::new(
                    item,
                    "lookup",
                    format!("`{name}` is in lookup but not set"),
                ));
            }
            Some(Spec::Paths(_)) => bits |= 1 << i,
            Some(_) => {
                return Err(Refusal::new(
                    item,
                    "lookup",
                    format!(
                        "`{name}` is in lookup, so it must be a json path or a list of json paths"
                    ),
                ));
            }
        }
    }
    Ok(bits)
}
