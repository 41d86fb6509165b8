//! Event definitions (`events.d/*.yaml`, Ceilometer's event_definitions.yaml): checked when
//! loaded, and the event a definition makes of a notification.

use std::borrow::Cow;

use hb_sample::{Event, Trait, TraitType, TraitValue};
use serde_json::Value;

use crate::convert::{Miss, MissKind};
use crate::meter::event_types;
use crate::notification::{Notification, short};
use crate::path::Memo;
use crate::pattern::EventTypes;
use crate::plugin::Plugin;
use crate::value::{Spec, paths};
use crate::yaml::{Kind, Node, Refusal, fields, join};

/// One checked event definition.
#[derive(Debug)]
pub struct EventDef {
    /// Its patterns, joined, to name it in misses.
    pub label: String,
    /// Which notifications it reads.
    pub event_types: EventTypes,
    /// Its traits and the default ones it does not override, sorted by name.
    traits: Box<[TraitDef]>,
}

/// One trait of a definition.
#[derive(Debug)]
pub struct TraitDef {
    name: String,
    kind: TraitType,
    source: Source,
}

#[derive(Debug)]
enum Source {
    Spec(Spec),
    /// The notification's `publisher_id`.
    Service,
    /// The context's `request_id`.
    RequestId,
    /// The context's project.
    ProjectId,
    /// The context's user.
    UserId,
}

/// The default traits alone, sorted by name: what an unmatched notification's event gets.
pub fn default_traits() -> Box<[TraitDef]> {
    let text = |name: &str, source| TraitDef {
        name: name.to_owned(),
        kind: TraitType::Text,
        source,
    };
    Box::new([
        text("project_id", Source::ProjectId),
        text("request_id", Source::RequestId),
        text("service", Source::Service),
        text("user_id", Source::UserId),
    ])
}

impl EventDef {
    /// Checks one entry of an events file.
    pub fn parse(node: &Node) -> Result<Self, Refusal> {
        let entries = fields(node, "", "an event definition", &["event_type", "traits"])?;
        let get = |k: &str| entries.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
        let event_types = event_types(get("event_type"), node)?;
        let mut traits = Vec::new();
        if let Some(t) = get("traits").filter(|t| t.kind != Kind::Null) {
            let Kind::Map(list) = &t.kind else {
                return Err(Refusal::new(
                    t,
                    "traits",
                    format!(
                        "`traits` must be a mapping of trait name to trait, got {}",
                        t.describe()
                    ),
                ));
            };
            for (k, v) in list {
                let Some(name) = k.as_str().filter(|n| !n.is_empty()) else {
                    return Err(Refusal::new(
                        k,
                        "traits",
                        "trait names must be non-empty text",
                    ));
                };
                traits.push(trait_def(name, v)?);
            }
        }
        for default in default_traits() {
            if !traits.iter().any(|t| t.name == default.name) {
                traits.push(default);
            }
        }
        traits.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Self {
            label: event_types.to_string(),
            event_types,
            traits: traits.into_boxed_slice(),
        })
    }

    /// The event this definition makes of `n`; traits that cannot be converted to their type
    /// are left out and reported in `misses`.
    pub fn build<'a>(
        &'a self,
        n: &'a Notification,
        memo: &Memo<'a>,
        misses: &mut Vec<Miss>,
    ) -> Event {
        build(&self.traits, &self.label, n, memo, misses)
    }

    /// Every path whose findings a [`Memo`] can keep.
    pub fn memo_paths(&mut self) -> impl Iterator<Item = &mut crate::path::Path> {
        self.traits.iter_mut().flat_map(|t| match &mut t.source {
            Source::Spec(spec) => spec.memo_paths().iter_mut(),
            _ => [].iter_mut(),
        })
    }
}

/// The event of `n` with `traits` (sorted by name); `label` names the definition in misses.
pub fn build<'a>(
    traits: &'a [TraitDef],
    label: &str,
    n: &'a Notification,
    memo: &Memo<'a>,
    misses: &mut Vec<Miss>,
) -> Event {
    let doc = n.document();
    let mut out = Vec::with_capacity(traits.len());
    for t in traits {
        let text = |s: Option<&str>| Ok(s.map(|s| Cow::Owned(Value::String(s.to_owned()))));
        let found = match &t.source {
            Source::Spec(spec) => spec.eval(doc, memo),
            Source::Service => text(n.publisher_id()),
            Source::RequestId => text(n.request_id()),
            Source::ProjectId => text(n.project_id()),
            Source::UserId => text(n.user_id()),
        };
        let converted = found.and_then(|v| match v {
            Some(v) => convert(t.kind, v),
            None => Ok(None),
        });
        match converted {
            Ok(Some(value)) => out.push(Trait {
                name: t.name.clone(),
                value,
            }),
            Ok(None) => {}
            Err(reason) => misses.push(Miss {
                kind: MissKind::Event,
                definition: label.to_owned(),
                field: join("traits", &t.name),
                message_id: n.message_id().to_owned(),
                reason,
            }),
        }
    }
    Event {
        message_id: n.message_id().to_owned(),
        event_type: n.event_type().to_owned(),
        generated: n.timestamp(),
        traits: out,
    }
}

fn trait_def(name: &str, node: &Node) -> Result<TraitDef, Refusal> {
    let field = join("traits", name);
    if !matches!(node.kind, Kind::Map(_)) {
        return Err(Refusal::new(
            node,
            field,
            format!(
                "a trait must be a mapping with `fields` and optionally `type` and `plugin`, got {}",
                node.describe()
            ),
        ));
    }
    let entries = fields(node, &field, "a trait", &["fields", "type", "plugin"])?;
    let mut found = None;
    let mut plugin: Option<Plugin> = None;
    let mut kind = TraitType::Text;
    for (k, v) in entries {
        match k {
            "fields" => found = Some(paths(v, &join(&field, "fields"), true)?),
            "plugin" => plugin = Some(Plugin::parse(v, &join(&field, "plugin"))?),
            _ => {
                kind = v
                    .as_str()
                    .and_then(|t| TraitType::ALL.into_iter().find(|k| k.as_str() == t))
                    .ok_or_else(|| {
                        Refusal::new(
                            v,
                            join(&field, "type"),
                            format!(
                                "unknown type `{}` (available: text, int, float, datetime)",
                                v.key_text()
                            ),
                        )
                    })?;
            }
        }
    }
    let spec = Spec::assemble(node, &field, found, plugin)?;
    Ok(TraitDef {
        name: name.to_owned(),
        kind,
        source: Source::Spec(spec),
    })
}

/// `v` as a trait of type `kind`: `Ok(None)` for empty text of a non-text trait (OpenStack
/// writes `""` for "not yet"), `Err` when it cannot be converted.
fn convert(kind: TraitType, v: Cow<'_, Value>) -> Result<Option<TraitValue>, String> {
    if kind != TraitType::Text && v.as_str().is_some_and(|s| s.trim().is_empty()) {
        return Ok(None);
    }
    let wrong = |v: &Value| format!("{} is not {}", short(v), article(kind));
    Ok(Some(match kind {
        TraitType::Text => TraitValue::Text(match v {
            Cow::Owned(Value::String(s)) => s,
            Cow::Borrowed(Value::String(s)) => s.clone(),
            other => other.to_string(),
        }),
        TraitType::Int => TraitValue::Int(match v.as_ref() {
            Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => i,
                // Whole part of a float, as Ceilometer's int() does.
                (None, Some(f)) if f.is_finite() && f.abs() < 9.0e18 => f.trunc() as i64,
                _ => return Err(wrong(&v)),
            },
            Value::String(s) => s.trim().parse().map_err(|_| wrong(&v))?,
            other => return Err(wrong(other)),
        }),
        TraitType::Float => TraitValue::Float(crate::value::number(&v).ok_or_else(|| wrong(&v))?),
        TraitType::Datetime => TraitValue::Datetime(
            v.as_str()
                .and_then(crate::time::parse)
                .ok_or_else(|| wrong(&v))?,
        ),
    }))
}

fn article(kind: TraitType) -> &'static str {
    match kind {
        TraitType::Text => "text",
        TraitType::Int => "an int",
        TraitType::Float => "a float",
        TraitType::Datetime => "a datetime",
    }
}
