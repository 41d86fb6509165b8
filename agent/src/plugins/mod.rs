//! Pollsters an operator adds without writing Rust, declared in sections of
//! `namespaces/<ns>/*.yaml` beside the built-in `pollsters:` (one module per section):
//!
//! - [`http_json`]: declarative HTTP JSON API pollsters (`http_json:`);
//! - [`nagios`]: commands that follow the Nagios plugin convention (`nagios:`);
//! - [`exec`]: external programs that print samples as JSON lines (`exec:`).
//!
//! Every definition has the common fields `name`, `description`, `timeout` (seconds),
//! `interval` (seconds; otherwise the intervals of the sources that select its meters) and
//! `namespaces` (default: the namespace whose directory holds the file); the loader reads
//! those and hands the rest to the section's builder. A definition that is wrong is reported
//! with its file, line, name and field, and skipped; the others load.

pub mod exec;
pub mod http_json;
pub mod nagios;

use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::pollster::{Implementation, MeterDef};

/// One section of namespace files and the builder of its definitions.
pub struct Plugin {
    /// The section's key in a namespace file.
    pub section: &'static str,
    /// Builds a pollster from a definition's own fields (the common ones removed).
    pub build: fn(Map<String, Value>, &Context<'_>) -> Result<Built, FieldError>,
}

/// Every plugin section, in the order `--list` shows them.
pub const PLUGINS: &[Plugin] = &[
    Plugin {
        section: "http_json",
        build: http_json::build,
    },
    Plugin {
        section: "nagios",
        build: nagios::build,
    },
    Plugin {
        section: "exec",
        build: exec::build,
    },
];

/// What a builder knows about the definition it builds.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The definition's `name`.
    pub name: &'a str,
    /// The namespace file it is in (relative paths in a definition are relative to its
    /// directory).
    pub file: &'a Path,
    /// The run timeout: the runner abandons a run that takes longer (dropping its future), so
    /// a pollster that wants to report the timeout itself must give up a little earlier.
    pub timeout: std::time::Duration,
    /// What the definitions of this load share.
    pub shared: &'a Shared,
}

/// What the definitions of one load share with each other: the listings of `http_json`
/// definitions that read the same request.
#[derive(Debug, Default)]
pub struct Shared {
    /// One listing per cycle for each request several definitions read.
    pub pages: http_json::PageShares,
}

/// A `Shared` of its own for a unit test's definition (leaked: it lives as long as the test).
#[cfg(test)]
pub(crate) fn test_shared() -> &'static Shared {
    Box::leak(Box::default())
}

impl Context<'_> {
    /// `path` as written in the definition, resolved against the file's directory.
    pub fn resolve(&self, path: &str) -> std::path::PathBuf {
        let base = self.file.parent().unwrap_or(Path::new("."));
        base.join(path)
    }
}

/// A definition turned into a pollster.
pub struct Built {
    /// The meters (or families of meters) it produces.
    pub meters: Vec<MeterDef>,
    /// How it runs.
    pub implementation: Implementation,
}

/// Why a definition was refused: the field (a key path inside the definition, empty for the
/// whole definition) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// `command`, `metadata.vhost`, `headers.Authorization`...
    pub field: String,
    /// Lowercase, listing the valid choices where there are some.
    pub message: String,
}

impl FieldError {
    /// A refusal of `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Deserialises a definition's fields into the plugin's own struct (which should
/// `deny_unknown_fields`), naming the field that is wrong.
pub fn fields<T: DeserializeOwned>(map: Map<String, Value>) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(Value::Object(map)).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." { String::new() } else { field };
        FieldError::new(field, e.into_inner().to_string())
    })
}
