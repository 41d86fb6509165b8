//! Reading configuration files: bounded in size, parsed with one set of YAML parser options,
//! errors positioned (file, line, column, key path).

use std::path::Path;

use super::{ConfigError, Origin};

/// The largest configuration or definition file read: a hundred times a large real one.
pub const MAX_FILE_BYTES: u64 = 8 << 20;

/// Reads a configuration file of at most [`MAX_FILE_BYTES`]; the error is the message
/// (`cannot read: ...`, or how large the file is).
pub fn read_file(path: &Path) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let len = file.metadata().map_or(0, |m| m.len());
    if len > MAX_FILE_BYTES {
        return Err(format!(
            "file of {len} bytes is too large for a configuration (at most {MAX_FILE_BYTES})"
        ));
    }
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut std::io::Read::take(file, MAX_FILE_BYTES + 1),
        &mut text,
    )
    .map_err(|e| format!("cannot read: {e}"))?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "file is too large for a configuration (at most {MAX_FILE_BYTES} bytes)"
        ));
    }
    Ok(text)
}

/// How configuration YAML is parsed: the parser's budget (nesting, events, aliases) stays,
/// except its aliases-per-anchor heuristic, which refuses legitimate files that reuse one
/// anchor a hundred times (the total of replayed events is still bounded).
pub fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            enforce_alias_anchor_ratio: false,
            max_reader_input_bytes: Some(MAX_FILE_BYTES as usize),
        },
    }
}

/// Deserialises YAML, turning parser errors into a [`ConfigError`] with position and key path.
pub fn parse_yaml<T: serde::de::DeserializeOwned>(
    text: &str,
    path: &Path,
) -> Result<T, ConfigError> {
    let mut key = String::new();
    serde_saphyr::with_deserializer_from_str_with_options(text, yaml_options(), |de| {
        serde_path_to_error::deserialize(de).map_err(|e| {
            key = key_path(&e.path().to_string());
            e.into_inner()
        })
    })
    .map_err(|e| {
        let position = e
            .location()
            .filter(|l| l.line() > 0)
            .map(|l| (l.line(), l.column()));
        let message = e.without_snippet().to_string();
        let mut message = match message.rfind(" at line ") {
            Some(i) if position.is_some() => message[..i].to_owned(),
            _ => message,
        };
        // Advice about parser options is not the operator's to follow.
        if let Some(i) = message.find(", set DuplicateKeyPolicy") {
            message.truncate(i);
        }
        ConfigError {
            origin: Origin::File {
                path: path.to_owned(),
                position,
            },
            key,
            message,
        }
    })
}

/// `sources[0].interval.value` → `sources[0].interval` (drops the span wrapper's field).
fn key_path(path: &str) -> String {
    let key = path.replace(".value", "");
    if key == "." { String::new() } else { key }
}
