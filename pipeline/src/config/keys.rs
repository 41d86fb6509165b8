//! Unknown keys of pipeline.yaml, every one of them. The typed structures of [`super::raw`]
//! ignore keys they do not know (a `deny_unknown_fields` would stop deserialisation at the first
//! and hide every other error), and this pass over the document's keys reports each unknown
//! one with its position, next to the errors of validation.

use std::fmt;
use std::path::Path;

use serde::de::{
    self, Deserialize, DeserializeOwned, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};

use super::raw::{
    At, RawBatch, RawConfig, RawCoordination, RawManagement, RawNotifications, RawSink, RawSource,
    RawSpool, position,
};
use super::{ConfigError, Origin};

/// An `unknown field` error for every key of `text` that pipeline.yaml does not define. A text
/// that is not YAML gives none: the typed pass reports it.
pub fn unknown(text: &str, path: &Path) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    if let Ok(node) = serde_saphyr::from_str_with_options::<Node>(text, super::yaml_options()) {
        check(&node, Shape::Config, "", path, &mut errors);
    }
    errors
}

/// Like [`unknown`], for one sink given alone (`PUT /plugins/config`), its keys under `prefix`.
pub fn unknown_in_sink(text: &str, path: &Path, prefix: &str) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    if let Ok(node) = serde_saphyr::from_str_with_options::<Node>(text, super::yaml_options()) {
        check(&node, Shape::Sink, prefix, path, &mut errors);
    }
    errors
}

/// The part of the document a mapping is, and so which keys it may hold.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Config,
    Spool,
    Coordination,
    Management,
    Notifications,
    Source,
    Sink,
    Batch,
}

impl Shape {
    /// The keys, as the typed structure declares them (no list to keep in step by hand).
    fn fields(self) -> &'static [&'static str] {
        match self {
            Self::Config => fields::<RawConfig>(),
            Self::Spool => fields::<RawSpool>(),
            Self::Coordination => fields::<RawCoordination>(),
            Self::Management => fields::<RawManagement>(),
            Self::Notifications => fields::<RawNotifications>(),
            Self::Source => fields::<RawSource>(),
            Self::Sink => fields::<RawSink>(),
            Self::Batch => fields::<RawBatch>(),
        }
    }

    /// What the value of `key` is: a mapping of a shape, or a list of such mappings.
    fn child(self, key: &str) -> Option<(Shape, bool)> {
        match (self, key) {
            (Self::Config, "spool") => Some((Self::Spool, false)),
            (Self::Config, "coordination") => Some((Self::Coordination, false)),
            (Self::Config, "management") => Some((Self::Management, false)),
            (Self::Config, "notifications") => Some((Self::Notifications, false)),
            (Self::Config, "sources") => Some((Self::Source, true)),
            (Self::Config, "sinks") => Some((Self::Sink, true)),
            (Self::Sink, "batch") => Some((Self::Batch, false)),
            _ => None,
        }
    }
}

fn check(node: &Node, shape: Shape, prefix: &str, path: &Path, errors: &mut Vec<ConfigError>) {
    // Anything but a mapping is a type error, which the typed pass reports.
    let Node::Map(entries) = node else { return };
    let fields = shape.fields();
    for (key, value) in entries {
        let name = key.value.as_str();
        let dotted = if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}.{name}")
        };
        if !fields.contains(&name) {
            errors.push(ConfigError {
                origin: Origin::File {
                    path: path.to_owned(),
                    position: position(key),
                },
                key: dotted,
                message: format!(
                    "unknown field `{name}`, expected one of {}",
                    fields.join(", ")
                ),
            });
            continue;
        }
        match (shape.child(name), value) {
            (Some((child, false)), _) => check(value, child, &dotted, path, errors),
            (Some((child, true)), Node::Seq(items)) => {
                for (i, item) in items.iter().enumerate() {
                    check(item, child, &format!("{dotted}[{i}]"), path, errors);
                }
            }
            _ => {}
        }
    }
}

/// The field names a derived `Deserialize` passes to `deserialize_struct`.
fn fields<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Introspect<'a>(&'a mut &'static [&'static str]);

    impl<'de> Deserializer<'de> for Introspect<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("fields recorded"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Introspect(&mut fields));
    fields
}

/// The document's shape: mappings with the position of each key, lists, and the rest.
#[derive(Debug)]
enum Node {
    Map(Vec<(At<String>, Node)>),
    Seq(Vec<Node>),
    Scalar,
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_i128<E>(self, _: i128) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_u128<E>(self, _: u128) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_str<E>(self, _: &str) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_bytes<E>(self, _: &[u8]) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Node, A::Error> {
        // A tagged value (`!tag x`): its content is not configuration keys.
        let (IgnoredAny, variant) = data.variant::<IgnoredAny>()?;
        de::VariantAccess::newtype_variant::<IgnoredAny>(variant)?;
        Ok(Node::Scalar)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<At<KeyText>>()? {
            let value = map.next_value()?;
            let key = At {
                value: key.value.0,
                referenced: key.referenced,
                defined: key.defined,
            };
            entries.push((key, value));
        }
        Ok(Node::Map(entries))
    }
}

/// A mapping key as text, whatever scalar it is (`1:` and `true:` are keys too).
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = KeyText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E>(self, v: &str) -> Result<KeyText, E> {
                Ok(KeyText(v.to_owned()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_unit<E>(self) -> Result<KeyText, E> {
                Ok(KeyText("null".to_owned()))
            }
        }
        deserializer.deserialize_any(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fields_are_those_the_structures_declare() {
        assert_eq!(
            fields::<RawSource>(),
            ["name", "interval", "meters", "sinks"]
        );
        assert!(fields::<RawConfig>().contains(&"notifications"));
    }

    #[test]
    fn every_unknown_key_is_reported_where_it_is() {
        let text = "bogus: 1\nsources:\n  - {name: a, nam: b}\nsinks:\n  - name: s\n    batch: {max_event: 1}\nspool: {size: 3}\n";
        let errors = unknown(text, Path::new("p.yaml"));
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(shown.len(), 4, "{shown:#?}");
        assert!(
            shown[0].starts_with(
                "p.yaml:1:1: bogus: unknown field `bogus`, expected one of transport,"
            ),
            "{shown:#?}"
        );
        assert_eq!(
            shown[1],
            "p.yaml:3:15: sources[0].nam: unknown field `nam`, expected one of name, interval, meters, sinks"
        );
        assert!(
            shown[2]
                .starts_with("p.yaml:6:13: sinks[0].batch.max_event: unknown field `max_event`"),
            "{shown:#?}"
        );
        assert!(
            shown[3].starts_with("p.yaml:7:9: spool.size: unknown field `size`"),
            "{shown:#?}"
        );
    }
}
