//! Something that happened, with typed traits: what an event definition makes of a
//! notification (DESIGN §7), as Ceilometer's event model (message id, type, generated, traits).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One event: the notification it came from, its type, when it happened, and its traits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The notification's `message_id`: lets consumers de-duplicate after a redelivery.
    pub message_id: String,
    /// Dotted event type, e.g. `compute.instance.create.end`.
    pub event_type: String,
    /// When it happened (the notification's timestamp).
    #[serde(with = "crate::timestamp")]
    pub generated: DateTime<Utc>,
    /// Named, typed values, sorted by name.
    pub traits: Vec<Trait>,
}

/// A named, typed value of an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trait {
    /// The trait's name (`instance_id`, `memory_mb`, `service`, ...).
    pub name: String,
    /// Its value, with its type.
    #[serde(flatten)]
    pub value: TraitValue,
}

/// A trait's value; on the wire `{"type": "int", "value": 512}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "Typed", try_from = "Typed")]
pub enum TraitValue {
    /// Text.
    Text(String),
    /// A whole number.
    Int(i64),
    /// A finite floating-point number.
    Float(f64),
    /// A point in time.
    Datetime(DateTime<Utc>),
}

/// A trait value as it travels: its type and a JSON value (a datetime as RFC 3339 text).
#[derive(Serialize, Deserialize)]
struct Typed {
    #[serde(rename = "type")]
    kind: TraitType,
    value: serde_json::Value,
}

impl From<TraitValue> for Typed {
    fn from(v: TraitValue) -> Self {
        let kind = v.kind();
        let value = match v {
            TraitValue::Text(s) => s.into(),
            TraitValue::Int(i) => i.into(),
            TraitValue::Float(f) => f.into(),
            TraitValue::Datetime(t) => crate::timestamp::format(&t).into(),
        };
        Self { kind, value }
    }
}

impl TryFrom<Typed> for TraitValue {
    type Error = String;

    fn try_from(t: Typed) -> Result<Self, String> {
        let wrong = || format!("a {} trait with value {}", t.kind.as_str(), t.value);
        Ok(match t.kind {
            TraitType::Text => Self::Text(t.value.as_str().ok_or_else(wrong)?.to_owned()),
            TraitType::Int => Self::Int(t.value.as_i64().ok_or_else(wrong)?),
            TraitType::Float => Self::Float(t.value.as_f64().ok_or_else(wrong)?),
            TraitType::Datetime => {
                let text = t.value.as_str().ok_or_else(wrong)?;
                Self::Datetime(crate::timestamp::parse(text).map_err(|_| wrong())?)
            }
        })
    }
}

/// The types a trait can have, as written in event definitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TraitType {
    /// [`TraitValue::Text`].
    Text,
    /// [`TraitValue::Int`].
    Int,
    /// [`TraitValue::Float`].
    Float,
    /// [`TraitValue::Datetime`].
    Datetime,
}

impl TraitType {
    /// Every type, in the order they are documented.
    pub const ALL: [TraitType; 4] = [Self::Text, Self::Int, Self::Float, Self::Datetime];

    /// The lowercase name used in definitions and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Int => "int",
            Self::Float => "float",
            Self::Datetime => "datetime",
        }
    }
}

impl TraitValue {
    /// The value's type.
    pub fn kind(&self) -> TraitType {
        match self {
            Self::Text(_) => TraitType::Text,
            Self::Int(_) => TraitType::Int,
            Self::Float(_) => TraitType::Float,
            Self::Datetime(_) => TraitType::Datetime,
        }
    }
}

impl Event {
    /// The trait called `name`, if the event has one.
    pub fn get(&self, name: &str) -> Option<&TraitValue> {
        self.traits
            .binary_search_by(|t| t.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.traits[i].value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traits_travel_with_their_type() {
        let at = crate::timestamp::parse("2026-11-22T10:00:00Z").expect("valid");
        let event = Event {
            message_id: "m-1".into(),
            event_type: "compute.instance.create.end".into(),
            generated: at,
            traits: vec![
                Trait {
                    name: "launched_at".into(),
                    value: TraitValue::Datetime(at),
                },
                Trait {
                    name: "memory_mb".into(),
                    value: TraitValue::Int(512),
                },
            ],
        };
        let json = serde_json::to_string(&event).expect("encodes");
        assert!(
            json.contains(r#"{"name":"memory_mb","type":"int","value":512}"#),
            "{json}"
        );
        let back: Event = serde_json::from_str(&json).expect("decodes");
        assert_eq!(back, event);
        assert_eq!(back.get("memory_mb"), Some(&TraitValue::Int(512)));
        assert_eq!(back.get("absent"), None);
    }
}
