//! Plugin definitions (`http_json:`, `nagios:`, `exec:` sections): the common fields, which
//! namespaces a definition belongs to, and the report of a definition that is wrong.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hb_pipeline::config::{ConfigError, Origin, Seconds};
use serde::Deserialize;
use serde_json::Value;
use serde_saphyr::Spanned as At;

use super::{DEFAULT_TIMEOUT, LoadedPollster};
use crate::model::RunState;
use crate::plugins::{self, Context, FieldError};
use crate::pollster::{Kind, Split};

/// One definition as found in a file.
pub struct Entry<'a> {
    /// Section key (`nagios`).
    pub section: &'static str,
    /// Index in the section.
    pub index: usize,
    /// The definition as written.
    pub value: &'a At<Value>,
    /// The file.
    pub file: &'a Path,
    /// The namespace directory holding the file.
    pub directory: &'a str,
}

/// The fields every definition has; the loader takes them out before the plugin sees the rest.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Common {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    timeout: Option<Seconds>,
    #[serde(default)]
    interval: Option<Seconds>,
    #[serde(default)]
    namespaces: Option<Vec<String>>,
}

const COMMON: [&str; 5] = ["name", "description", "timeout", "interval", "namespaces"];

/// Loads `entry` if it belongs to one of `namespaces`: `Ok(None)` when it belongs to none,
/// `Err` (file, line, definition, field) when it is wrong.
pub fn load(
    entry: Entry<'_>,
    namespaces: &[String],
    seen_pollsters: &mut HashMap<String, PathBuf>,
    seen_meters: &mut HashMap<String, String>,
    shared: &plugins::Shared,
) -> Result<Option<LoadedPollster>, ConfigError> {
    let label = entry
        .value
        .value
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let refuse = |e: FieldError| {
        let mut key = format!("{}[{}]", entry.section, entry.index);
        if !e.field.is_empty() {
            key = format!("{key}.{}", e.field);
        }
        let message = match &label {
            Some(name) => format!("definition `{name}`: {}", e.message),
            None => e.message,
        };
        ConfigError {
            origin: Origin::File {
                path: entry.file.to_owned(),
                position: hb_pipeline::config::position(entry.value),
            },
            key,
            message,
        }
    };
    let Value::Object(mut map) = entry.value.value.clone() else {
        return Err(refuse(FieldError::new(
            "",
            "a definition must be a mapping of fields",
        )));
    };
    let common: Map = COMMON
        .iter()
        .filter_map(|k| map.remove(*k).map(|v| ((*k).to_owned(), v)))
        .collect();
    let common: Common = plugins::fields(common).map_err(refuse)?;
    let belongs = common
        .namespaces
        .clone()
        .unwrap_or_else(|| vec![entry.directory.to_owned()]);
    let Some(namespace) = namespaces.iter().find(|n| belongs.contains(n)) else {
        return Ok(None);
    };
    if common.name.is_empty() {
        return Err(refuse(FieldError::new("name", "must not be empty")));
    }
    if let Some(first) = seen_pollsters.get(&common.name) {
        let msg = format!(
            "duplicate pollster name (also declared in {})",
            first.display()
        );
        return Err(refuse(FieldError::new("name", msg)));
    }
    let timeout = seconds(common.timeout, "timeout")
        .map_err(refuse)?
        .unwrap_or(DEFAULT_TIMEOUT);
    let interval = seconds(common.interval, "interval").map_err(refuse)?;
    let plugin = plugins::PLUGINS
        .iter()
        .find(|p| p.section == entry.section)
        .expect("every section of a namespace file has a plugin");
    let context = Context {
        name: &common.name,
        file: entry.file,
        timeout,
        shared,
    };
    let built = (plugin.build)(map, &context).map_err(refuse)?;
    if built.meters.is_empty() {
        return Err(refuse(FieldError::new("", "produces no meters")));
    }
    for m in built.meters.iter().filter(|m| m.family.is_none()) {
        if let Some(other) = seen_meters.get(&m.name) {
            let msg = format!(
                "meter `{}` is already declared by pollster `{other}`",
                m.name
            );
            return Err(refuse(FieldError::new("name", msg)));
        }
    }
    for m in built.meters.iter().filter(|m| m.family.is_none()) {
        seen_meters.insert(m.name.clone(), common.name.clone());
    }
    seen_pollsters.insert(common.name.clone(), entry.file.to_owned());
    Ok(Some(LoadedPollster {
        namespace: namespace.clone(),
        name: common.name,
        kind: Kind::Monitor,
        description: common.description,
        meters: built.meters,
        timeout,
        interval,
        implementation: built.implementation,
        split: Split::Whole,
        source: entry.file.to_owned(),
        state: RunState::default(),
    }))
}

type Map = serde_json::Map<String, Value>;

fn seconds(value: Option<Seconds>, field: &str) -> Result<Option<Duration>, FieldError> {
    value
        .map(|s| s.duration().map_err(|msg| FieldError::new(field, msg)))
        .transpose()
}
