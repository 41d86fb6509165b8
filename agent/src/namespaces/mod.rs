//! `namespaces/<namespace>/*.yaml`: which pollsters each namespace runs and the meters they
//! produce, declared as data (name, type, unit, description) in one place.
//!
//! ```yaml
//! pollsters:
//!   - name: memory            # pollster name, matched by --pollster-list
//!     builtin: memory         # implementation (defaults to the name)
//!     description: Memory of the host
//!     timeout: 10             # seconds, optional (default 10, never more than the interval)
//!     meters:
//!       - {name: memory.total, type: gauge, unit: B, description: Physical memory}
//!     targets: [...]          # only for pollsters that check targets (http.response, tcp.connect)
//! http_json: [...]            # declarative pollsters, see crate::plugins
//! nagios: [...]
//! exec: [...]
//! ```
//!
//! A mistake in the built-in `pollsters:` refuses start-up; a wrong plugin definition is
//! reported and skipped (see [`Loaded::skipped`]).

mod definitions;
mod schema;

use schema::NamespaceFile;
pub use schema::{DefError, PollsterDef, RawMeter, TargetDef};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hb_pipeline::config::{ConfigError, ConfigErrors, Origin, parse_yaml};

use crate::model::{LoadedPollster, RunState};
use crate::pollster::{Implementation, MeterDef, Split};
use crate::registry;

/// Run timeout of a pollster that does not set one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// What [`load`] found: the pollsters, and the plugin definitions it had to skip.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Ready to run, in file order.
    pub pollsters: Vec<Arc<LoadedPollster>>,
    /// Each wrong plugin definition: file, line, definition, field and reason.
    pub skipped: Vec<ConfigError>,
}

/// The namespaces present in `dir` (its subdirectories), sorted.
pub fn available(dir: &Path) -> Result<Vec<String>, ConfigError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| file_error(dir, format!("cannot read namespaces directory: {e}")))?;
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
}

/// Loads the pollsters of `namespaces`: the built-in declarations of their directories
/// (refusing the whole set if any is wrong) and every plugin definition, in any namespace
/// directory, that belongs to one of them (skipping, and reporting, those that are wrong).
pub fn load(dir: &Path, namespaces: &[String]) -> Result<Loaded, ConfigErrors> {
    let mut errors = Vec::new();
    let mut loaded = Loaded::default();
    let mut seen_pollsters: HashMap<String, PathBuf> = HashMap::new();
    let mut seen_meters: HashMap<String, String> = HashMap::new();
    let shared = crate::plugins::Shared::default();
    let mut dirs = available(dir).map_err(ConfigErrors::from)?;
    // Requested namespaces first, in the order asked, so their pollsters come first.
    dirs.sort_by_key(|d| namespaces.iter().position(|n| n == d).unwrap_or(usize::MAX));
    for ns_dir in &dirs {
        let requested = namespaces.contains(ns_dir);
        for path in yaml_files(&dir.join(ns_dir)).map_err(ConfigErrors::from)? {
            let file: NamespaceFile = match hb_pipeline::config::read_file(&path)
                .map_err(|message| file_error(&path, message))
                .and_then(|text| parse_yaml(&text, &path))
            {
                Ok(f) => f,
                Err(e) if requested => {
                    errors.push(e);
                    continue;
                }
                Err(e) => {
                    // Not ours to refuse: another namespace's file. Its definitions cannot be
                    // read, so say so in case one of them was meant for us.
                    loaded.skipped.push(e);
                    continue;
                }
            };
            if requested {
                builtins(
                    ns_dir,
                    &path,
                    &file,
                    &mut seen_pollsters,
                    &mut seen_meters,
                    &mut loaded.pollsters,
                    &mut errors,
                );
            }
            for (section, entries) in file.sections() {
                for (i, entry) in entries.iter().enumerate() {
                    let found = definitions::load(
                        definitions::Entry {
                            section,
                            index: i,
                            value: entry,
                            file: &path,
                            directory: ns_dir,
                        },
                        namespaces,
                        &mut seen_pollsters,
                        &mut seen_meters,
                        &shared,
                    );
                    match found {
                        Ok(Some(p)) => loaded.pollsters.push(Arc::new(p)),
                        Ok(None) => {}
                        Err(e) => loaded.skipped.push(e),
                    }
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(loaded)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// The built-in declarations (`pollsters:`) of one file of a requested namespace.
fn builtins(
    namespace: &str,
    path: &Path,
    file: &NamespaceFile,
    seen_pollsters: &mut HashMap<String, PathBuf>,
    seen_meters: &mut HashMap<String, String>,
    loaded: &mut Vec<Arc<LoadedPollster>>,
    errors: &mut Vec<ConfigError>,
) {
    for (i, def) in file.pollsters.iter().enumerate() {
        let refuse = |e: DefError| ConfigError {
            origin: Origin::File {
                path: path.to_owned(),
                position: e.position,
            },
            key: format!(
                "pollsters[{i}]{}{}",
                if e.field.is_empty() { "" } else { "." },
                e.field
            ),
            message: e.message,
        };
        let name = &def.name.value;
        if let Some(first) = seen_pollsters.get(name) {
            let msg = format!(
                "duplicate pollster `{name}` (also declared in {})",
                first.display()
            );
            errors.push(refuse(DefError::at(&def.name, "name", msg)));
            continue;
        }
        seen_pollsters.insert(name.clone(), path.to_owned());
        match build(namespace, def, seen_meters) {
            Ok(p) => loaded.push(Arc::new(LoadedPollster {
                source: path.to_owned(),
                ..p
            })),
            Err(e) => errors.push(refuse(e)),
        }
    }
}

fn build(
    namespace: &str,
    def: &PollsterDef,
    seen_meters: &mut HashMap<String, String>,
) -> Result<LoadedPollster, DefError> {
    let name = &def.name.value;
    let builtin_at = def.builtin.as_ref().unwrap_or(&def.name);
    let builtin = registry::find(&builtin_at.value).ok_or_else(|| {
        let msg = format!(
            "unknown builtin pollster `{}` (available: {})",
            builtin_at.value,
            registry::names().join(", ")
        );
        DefError::at(
            builtin_at,
            if def.builtin.is_some() {
                "builtin"
            } else {
                "name"
            },
            msg,
        )
    })?;
    let timeout = match &def.timeout {
        None => DEFAULT_TIMEOUT,
        Some(t) => t
            .value
            .duration()
            .map_err(|msg| DefError::at(t, "timeout", format!("timeout {msg}")))?,
    };
    if def.meters.value.is_empty() {
        return Err(DefError::at(
            &def.meters,
            "meters",
            format!("pollster `{name}` declares no meters"),
        ));
    }
    let mut meters = Vec::new();
    for (j, m) in def.meters.value.iter().enumerate() {
        if m.unit.value.is_empty() {
            return Err(DefError::at(
                &m.unit,
                format!("meters[{j}].unit"),
                "unit must not be empty",
            ));
        }
        if let Some(other) = seen_meters.insert(m.name.value.clone(), name.clone()) {
            let msg = format!(
                "meter `{}` is already declared by pollster `{other}`",
                m.name.value
            );
            return Err(DefError::at(&m.name, format!("meters[{j}].name"), msg));
        }
        meters.push(
            MeterDef::new(m.name.value.clone(), m.kind, m.unit.value.clone())
                .describe(m.description.clone()),
        );
    }
    let implementation = (builtin.build)(def)?;
    let split = match implementation {
        Implementation::Host(_) => Split::Local,
        Implementation::Net(_) => Split::Targets,
    };
    Ok(LoadedPollster {
        namespace: namespace.to_owned(),
        name: name.clone(),
        kind: builtin.kind,
        description: def.description.clone(),
        meters,
        timeout,
        interval: None,
        implementation,
        split,
        source: PathBuf::new(),
        state: RunState::default(),
    })
}

fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| file_error(dir, format!("cannot read namespace directory: {e}")))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    Ok(files)
}

pub(crate) fn file_error(path: &Path, message: String) -> ConfigError {
    ConfigError {
        origin: Origin::File {
            path: path.to_owned(),
            position: None,
        },
        key: String::new(),
        message,
    }
}
