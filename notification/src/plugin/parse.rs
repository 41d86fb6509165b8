//! Reading a plugin and checking its parameters when definitions load.

use std::collections::HashMap;

use super::{PLUGINS, Plugin};
use crate::yaml::{Kind, Node, Refusal, fields, join};

impl Plugin {
    /// Reads `plugin: NAME` or `plugin: {name: NAME, parameters: {...}}`.
    pub fn parse(node: &Node, field: &str) -> Result<Self, Refusal> {
        let (name_node, parameters) = match &node.kind {
            Kind::Str(_) => (node, None),
            Kind::Map(_) => {
                let mut name = None;
                let mut parameters = None;
                for (k, v) in fields(node, field, "a plugin", &["name", "parameters"])? {
                    match k {
                        "name" => name = Some(v),
                        _ => parameters = Some(v),
                    }
                }
                let name = name.ok_or_else(|| {
                    Refusal::new(node, field, "missing `name` of the plugin".to_owned())
                })?;
                (name, parameters)
            }
            _ => {
                return Err(Refusal::new(
                    node,
                    field,
                    format!(
                        "a plugin is a name or a mapping with `name` and `parameters`, got {}",
                        node.describe()
                    ),
                ));
            }
        };
        let name = match name_node.as_str() {
            Some(n) if PLUGINS.contains(&n) => n,
            _ => {
                return Err(Refusal::new(
                    name_node,
                    field,
                    format!(
                        "unknown plugin `{}` (available: {})",
                        name_node.key_text(),
                        PLUGINS.join(", ")
                    ),
                ));
            }
        };
        let params_field = join(field, "parameters");
        let allowed: &[&str] = match name {
            "map" => &["values", "default", "case_sensitive"],
            "split" => &["separator", "segment", "max_split"],
            _ => &[],
        };
        let params: Vec<(&str, &Node)> = match parameters {
            None => Vec::new(),
            Some(p) if p.kind == Kind::Null => Vec::new(),
            Some(p) if allowed.is_empty() => match &p.kind {
                Kind::Map(e) if e.is_empty() => Vec::new(),
                _ => {
                    return Err(Refusal::new(
                        p,
                        params_field,
                        format!("plugin `{name}` takes no parameters"),
                    ));
                }
            },
            Some(p) => fields(
                p,
                &params_field,
                &format!("parameters of plugin `{name}`"),
                allowed,
            )?,
        };
        let param = |key: &str| params.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        match name {
            "map" => map(
                node,
                &params_field,
                param("values"),
                param("default"),
                param("case_sensitive"),
            ),
            "split" => split(
                &params_field,
                param("separator"),
                param("segment"),
                param("max_split"),
            ),
            _ => Ok(Self::Timedelta),
        }
    }
}

fn map(
    plugin: &Node,
    field: &str,
    values: Option<&Node>,
    default: Option<&Node>,
    case_sensitive: Option<&Node>,
) -> Result<Plugin, Refusal> {
    let case_sensitive = match case_sensitive {
        None => true,
        Some(n) => match n.kind {
            Kind::Bool(b) => b,
            _ => {
                return Err(Refusal::new(
                    n,
                    join(field, "case_sensitive"),
                    format!(
                        "`case_sensitive` must be true or false, got {}",
                        n.describe()
                    ),
                ));
            }
        },
    };
    let values = values.ok_or_else(|| {
        Refusal::new(
            plugin,
            field,
            "plugin `map` needs `values` (a mapping of value to result)",
        )
    })?;
    let values_field = join(field, "values");
    let Kind::Map(entries) = &values.kind else {
        return Err(Refusal::new(
            values,
            values_field,
            format!(
                "`values` must be a mapping of value to result, got {}",
                values.describe()
            ),
        ));
    };
    let mut table = HashMap::with_capacity(entries.len());
    for (k, v) in entries {
        let mut key = k.key_text();
        if !case_sensitive {
            key = key.to_lowercase();
        }
        if table.insert(key, v.to_json()).is_some() {
            return Err(Refusal::new(
                k,
                values_field,
                format!(
                    "key `{}` is given twice (keys are compared ignoring case)",
                    k.key_text()
                ),
            ));
        }
    }
    Ok(Plugin::Map {
        values: table,
        default: default.map(Node::to_json),
        case_sensitive,
    })
}

fn split(
    field: &str,
    separator: Option<&Node>,
    segment: Option<&Node>,
    max_split: Option<&Node>,
) -> Result<Plugin, Refusal> {
    let separator = match separator {
        None => "-".to_owned(),
        Some(n) => match n.as_str() {
            Some(s) if !s.is_empty() => s.to_owned(),
            _ => {
                return Err(Refusal::new(
                    n,
                    join(field, "separator"),
                    format!("`separator` must be non-empty text, got {}", n.describe()),
                ));
            }
        },
    };
    let integer = |n: &Node, name: &str| {
        match &n.kind {
            Kind::Number(x) => x.as_i64().ok_or(()),
            _ => Err(()),
        }
        .map_err(|()| {
            Refusal::new(
                n,
                join(field, name),
                format!("`{name}` must be an integer, got {}", describe_value(n)),
            )
        })
    };
    let segment = segment
        .map(|n| integer(n, "segment"))
        .transpose()?
        .unwrap_or(0);
    let max_split = match max_split {
        None => None,
        Some(n) => {
            let v = integer(n, "max_split")?;
            Some(usize::try_from(v).map_err(|_| {
                Refusal::new(
                    n,
                    join(field, "max_split"),
                    format!("`max_split` must be 0 or more, got {v}"),
                )
            })?)
        }
    };
    Ok(Plugin::Split {
        separator,
        segment,
        max_split,
    })
}

/// A node for a message: its kind, and the value when it is a short scalar.
fn describe_value(n: &Node) -> String {
    match &n.kind {
        Kind::Str(_) | Kind::Number(_) | Kind::Bool(_) => {
            format!(
                "{} ({})",
                n.describe(),
                crate::notification::short(&n.to_json())
            )
        }
        _ => n.describe().to_owned(),
    }
}
