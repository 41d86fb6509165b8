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
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hb_pipeline::config::{ConfigError, ConfigErrors, Origin, parse_yaml};
use hb_sample::SampleType;
use serde::Deserialize;
use serde_saphyr::Spanned as At;

use crate::pollster::{Implementation, Kind, MeterDef};
use crate::registry;
use crate::runner::RunState;

/// Run timeout of a pollster that does not set one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NamespaceFile {
    pollsters: Vec<PollsterDef>,
}

/// One pollster declaration, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollsterDef {
    /// Pollster name.
    pub name: At<String>,
    /// Implementation name; defaults to `name`.
    #[serde(default)]
    pub builtin: Option<At<String>>,
    /// One line for `--list`.
    #[serde(default)]
    pub description: String,
    /// Run timeout in seconds.
    #[serde(default)]
    pub timeout: Option<At<f64>>,
    /// Meters it produces.
    pub meters: At<Vec<RawMeter>>,
    /// Targets, for pollsters that check them.
    #[serde(default)]
    pub targets: Option<At<Vec<At<TargetDef>>>>,
}

/// A meter declaration, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMeter {
    name: At<String>,
    #[serde(rename = "type")]
    kind: SampleType,
    unit: At<String>,
    #[serde(default)]
    description: String,
}

/// A target of a checking pollster, as written; each pollster says which fields it needs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetDef {
    /// Short name, reported in metadata.
    pub name: String,
    /// For HTTP checks.
    #[serde(default)]
    pub url: Option<String>,
    /// `host:port`, for TCP checks.
    #[serde(default)]
    pub address: Option<String>,
    /// Per-target timeout in seconds.
    #[serde(default)]
    pub timeout: Option<f64>,
}

/// A refusal from a pollster's builder: the field and the reason, positioned by the loader.
#[derive(Debug)]
pub struct DefError {
    /// Line and column, when known.
    pub position: Option<(u64, u64)>,
    /// Key under the pollster (`targets[0].url`).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl DefError {
    /// A refusal at `at`.
    pub fn at<T>(at: &At<T>, field: impl Into<String>, message: impl Into<String>) -> Self {
        let loc = at.referenced;
        let position = (loc.line() > 0).then(|| (loc.line(), loc.column()));
        Self {
            position,
            field: field.into(),
            message: message.into(),
        }
    }
}

impl PollsterDef {
    /// Refuses `targets` on a pollster that takes none.
    pub fn no_targets(&self) -> Result<(), DefError> {
        match &self.targets {
            Some(t) => Err(DefError::at(
                t,
                "targets",
                format!("pollster `{}` takes no targets", self.name.value),
            )),
            None => Ok(()),
        }
    }

    /// The targets of a checking pollster; at least one is required.
    pub fn targets(&self) -> Result<&[At<TargetDef>], DefError> {
        match &self.targets {
            Some(t) if !t.value.is_empty() => Ok(&t.value),
            Some(t) => Err(DefError::at(t, "targets", "at least one target is needed")),
            None => Err(DefError::at(
                &self.name,
                "targets",
                "at least one target is needed",
            )),
        }
    }
}

/// A pollster ready to run.
#[derive(Debug)]
pub struct LoadedPollster {
    /// Namespace that declared it.
    pub namespace: String,
    /// Unique name.
    pub name: String,
    /// Info or monitor.
    pub kind: Kind,
    /// One line for `--list`.
    pub description: String,
    /// Declared meters.
    pub meters: Vec<MeterDef>,
    /// Run timeout.
    pub timeout: Duration,
    /// How it runs.
    pub implementation: Implementation,
    /// In-flight and failure bookkeeping.
    pub state: RunState,
}

impl LoadedPollster {
    /// The declaration of `meter`, if this pollster declares it.
    pub fn meter(&self, meter: &str) -> Option<&MeterDef> {
        self.meters.iter().find(|m| m.name == meter)
    }
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

/// Loads the pollsters of `namespaces`, refusing the whole set if any declaration is wrong.
pub fn load(dir: &Path, namespaces: &[String]) -> Result<Vec<Arc<LoadedPollster>>, ConfigErrors> {
    let mut errors = Vec::new();
    let mut loaded: Vec<Arc<LoadedPollster>> = Vec::new();
    let mut seen_pollsters: HashMap<String, PathBuf> = HashMap::new();
    let mut seen_meters: HashMap<String, String> = HashMap::new();
    for namespace in namespaces {
        for path in yaml_files(&dir.join(namespace)).map_err(ConfigErrors::from)? {
            let file: NamespaceFile = match std::fs::read_to_string(&path)
                .map_err(|e| file_error(&path, format!("cannot read: {e}")))
                .and_then(|text| parse_yaml(&text, &path))
            {
                Ok(f) => f,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            for (i, def) in file.pollsters.iter().enumerate() {
                let refuse = |e: DefError| ConfigError {
                    origin: Origin::File {
                        path: path.clone(),
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
                seen_pollsters.insert(name.clone(), path.clone());
                match build(namespace, def, &mut seen_meters) {
                    Ok(p) => loaded.push(Arc::new(p)),
                    Err(e) => errors.push(refuse(e)),
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
        Some(t) if t.value > 0.0 && t.value.is_finite() => Duration::from_secs_f64(t.value),
        Some(t) => {
            return Err(DefError::at(
                t,
                "timeout",
                format!(
                    "timeout must be a number of seconds greater than 0 (got {})",
                    t.value
                ),
            ));
        }
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
        meters.push(MeterDef {
            name: m.name.value.clone(),
            kind: m.kind,
            unit: m.unit.value.clone(),
            description: m.description.clone(),
        });
    }
    let implementation = (builtin.build)(def)?;
    Ok(LoadedPollster {
        namespace: namespace.to_owned(),
        name: name.clone(),
        kind: builtin.kind,
        description: def.description.clone(),
        meters,
        timeout,
        implementation,
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

fn file_error(path: &Path, message: String) -> ConfigError {
    ConfigError {
        origin: Origin::File {
            path: path.to_owned(),
            position: None,
        },
        key: String::new(),
        message,
    }
}
