//! Reading definition files: directories of YAML files into [`Definitions`], each wrong
//! definition (or unreadable file) reported with file, line, column, definition and field, and
//! skipped.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::Definitions;
use crate::convert::Unmatched;
use crate::event::{EventDef, default_traits};
use crate::meter::MeterDef;
use crate::yaml::{self, Kind, Node, Position, Refusal};

/// A directory of definitions that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Missing, not a directory, or not readable.
    #[error("cannot read definitions directory {}: {source}", path.display())]
    Directory {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

impl LoadError {
    /// True when the directory does not exist (a caller may accept that of a default one).
    pub fn is_not_found(&self) -> bool {
        match self {
            Self::Directory { source, .. } => source.kind() == io::ErrorKind::NotFound,
        }
    }
}

/// A definition, or a whole file, that was refused and skipped.
#[derive(Debug, Clone, PartialEq)]
pub struct DefinitionError {
    /// The file.
    pub file: PathBuf,
    /// Line and column of the offending value, when known.
    pub position: Position,
    /// Which definition: ``metric[3] `memory` ``, ``event[0] `compute.instance.*` ``; empty for
    /// the file as a whole.
    pub definition: String,
    /// The field inside the definition (`volume`, `traits.memory_mb.type`); may be empty.
    pub field: String,
    /// What is wrong, lowercase, listing the valid choices where there are some.
    pub message: String,
}

impl fmt::Display for DefinitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        f.write_str(": ")?;
        for part in [&self.definition, &self.field] {
            if !part.is_empty() {
                write!(f, "{part}: ")?;
            }
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for DefinitionError {}

/// What loading found: the definitions, and what it had to skip.
#[derive(Debug)]
pub struct Loaded {
    /// Ready to convert notifications.
    pub definitions: Definitions,
    /// Each refused definition or file, in file order.
    pub skipped: Vec<DefinitionError>,
}

impl Definitions {
    /// Loads `meters_dir/*.yaml` and `events_dir/*.yaml`, each in file name order. `None`
    /// loads no definitions of that kind; a directory given but unreadable is a
    /// [`LoadError`] (see [`LoadError::is_not_found`]).
    pub fn load(
        meters_dir: Option<&Path>,
        events_dir: Option<&Path>,
        unmatched: Unmatched,
    ) -> Result<Loaded, LoadError> {
        let meters = read_all(meters_dir)?;
        let events = read_all(events_dir)?;
        let mut skipped = Vec::new();
        let meter_texts = readable(&meters, &mut skipped);
        let event_texts = readable(&events, &mut skipped);
        let mut loaded = Self::parse(&meter_texts, &event_texts, unmatched);
        skipped.append(&mut loaded.skipped);
        loaded.skipped = skipped;
        Ok(loaded)
    }

    /// Builds definitions from file texts, as [`load`](Self::load) does after reading them:
    /// `meter_files` each a mapping with a `metric:` list, `event_files` each a list of event
    /// definitions, both as `(file name for messages, text)` in the order they apply.
    pub fn parse(
        meter_files: &[(&Path, &str)],
        event_files: &[(&Path, &str)],
        unmatched: Unmatched,
    ) -> Loaded {
        let mut skipped = Vec::new();
        let mut meters = Vec::new();
        let mut events = Vec::new();
        for (file, text) in meter_files {
            let Some(doc) = document(file, text, &mut skipped) else {
                continue;
            };
            let list = match &doc.kind {
                Kind::Null => continue,
                Kind::Map(entries) => {
                    let mut list = None;
                    for (k, v) in entries {
                        if k.as_str() == Some("metric") {
                            list = Some(v);
                        } else {
                            let msg =
                                format!("unknown field `{}` (available: metric)", k.key_text());
                            skipped.push(file_error(file, k.at, msg));
                        }
                    }
                    match list {
                        Some(l) => l,
                        None => continue,
                    }
                }
                _ => {
                    let msg = format!(
                        "a meters file must be a mapping with a `metric:` list, got {}",
                        doc.describe()
                    );
                    skipped.push(file_error(file, doc.at, msg));
                    continue;
                }
            };
            for (i, node) in items(file, list, "metric", &mut skipped).iter().enumerate() {
                let label = match node.get("name").and_then(Node::as_str) {
                    Some(name) => format!("metric[{i}] `{name}`"),
                    None => format!("metric[{i}]"),
                };
                match MeterDef::parse(node) {
                    Ok(def) => meters.push(def),
                    Err(r) => skipped.push(refused(file, node, label, r)),
                }
            }
        }
        for (file, text) in event_files {
            let Some(doc) = document(file, text, &mut skipped) else {
                continue;
            };
            for (i, node) in items(file, &doc, "", &mut skipped).iter().enumerate() {
                let patterns = match node.get("event_type").map(|n| &n.kind) {
                    Some(Kind::Str(s)) => Some(s.clone()),
                    Some(Kind::Seq(list)) => Some(
                        list.iter()
                            .map(Node::key_text)
                            .collect::<Vec<_>>()
                            .join(", "),
                    ),
                    _ => None,
                };
                let label = match patterns {
                    Some(p) => format!("event[{i}] `{p}`"),
                    None => format!("event[{i}]"),
                };
                match EventDef::parse(node) {
                    Ok(def) => events.push(def),
                    Err(r) => skipped.push(refused(file, node, label, r)),
                }
            }
        }
        // Equal paths across all definitions share a memo slot: walked once per notification.
        let mut slots = HashMap::new();
        for path in meters.iter_mut().flat_map(MeterDef::memo_paths) {
            path.intern(&mut slots);
        }
        for path in events.iter_mut().flat_map(EventDef::memo_paths) {
            path.intern(&mut slots);
        }
        Loaded {
            definitions: Definitions {
                meters,
                events,
                unmatched,
                default_traits: default_traits(),
                cache: Default::default(),
            },
            skipped,
        }
    }
}

/// A file and its text, or why it cannot be read.
type FileText = (PathBuf, Result<String, io::Error>);

/// The `*.yaml` files of `dir`, sorted by name, with their text or why it cannot be read.
fn read_all(dir: Option<&Path>) -> Result<Vec<FileText>, LoadError> {
    let Some(dir) = dir else {
        return Ok(Vec::new());
    };
    let error = |source| LoadError::Directory {
        path: dir.to_owned(),
        source,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(error)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            p.is_file() && name.ends_with(".yaml") && !name.starts_with('.')
        })
        .collect();
    files.sort();
    Ok(files
        .into_iter()
        .map(|p| {
            let text = read_bounded(&p);
            (p, text)
        })
        .collect())
}

/// The largest definition file read (Ceilometer's own are under 100 KB).
pub const MAX_FILE_BYTES: u64 = 8 << 20;

/// A file's text, refused past [`MAX_FILE_BYTES`] before it is read.
fn read_bounded(path: &Path) -> std::io::Result<String> {
    let len = std::fs::metadata(path)?.len();
    if len > MAX_FILE_BYTES {
        let msg = format!("file of {len} bytes is too large (at most {MAX_FILE_BYTES})");
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, msg));
    }
    std::fs::read_to_string(path)
}

/// The texts of the files that could be read; the others reported.
fn readable<'a>(
    files: &'a [FileText],
    skipped: &mut Vec<DefinitionError>,
) -> Vec<(&'a Path, &'a str)> {
    let mut ok = Vec::with_capacity(files.len());
    for (path, text) in files {
        match text {
            Ok(t) => ok.push((path.as_path(), t.as_str())),
            Err(e) => skipped.push(file_error(path, None, format!("cannot read: {e}"))),
        }
    }
    ok
}

/// The file as a positioned tree, or a report that it is not YAML.
fn document(file: &Path, text: &str, skipped: &mut Vec<DefinitionError>) -> Option<Node> {
    match yaml::parse(text) {
        Ok(doc) => Some(doc),
        Err(e) => {
            skipped.push(file_error(
                file,
                e.at,
                format!("not valid yaml: {}", e.message),
            ));
            None
        }
    }
}

/// The entries of a list of definitions (`key` names it in messages; empty for the top).
fn items<'a>(
    file: &Path,
    list: &'a Node,
    key: &str,
    skipped: &mut Vec<DefinitionError>,
) -> &'a [Node] {
    match &list.kind {
        Kind::Seq(items) => items,
        Kind::Null => &[],
        _ => {
            let msg = if key.is_empty() {
                format!(
                    "an events file must be a list of event definitions, got {}",
                    list.describe()
                )
            } else {
                format!(
                    "`{key}` must be a list of definitions, got {}",
                    list.describe()
                )
            };
            skipped.push(file_error(file, list.at, msg));
            &[]
        }
    }
}

fn refused(file: &Path, node: &Node, definition: String, r: Refusal) -> DefinitionError {
    DefinitionError {
        file: file.to_owned(),
        position: r.at.or(node.at),
        definition,
        field: r.field,
        message: r.message,
    }
}

fn file_error(file: &Path, position: Position, message: String) -> DefinitionError {
    DefinitionError {
        file: file.to_owned(),
        position,
        definition: String::new(),
        field: String::new(),
        message,
    }
}
