//! The central namespace's built-in checks of network targets declared in
//! `namespaces/central/*.yaml`. A target that cannot be reached yields a status sample that
//! says why (metadata `result`, `error`), never a failed pollster.

pub mod http;
pub mod redis;
pub mod tcp;

use std::time::Duration;

use serde_saphyr::Spanned as At;

use crate::namespaces::{DefError, TargetDef};

/// Per-target timeout when a target sets none.
pub const DEFAULT_TARGET_TIMEOUT: Duration = Duration::from_secs(5);

/// A target's name and timeout, validated.
fn name_and_timeout(i: usize, t: &At<TargetDef>) -> Result<(String, Duration), DefError> {
    if t.value.name.is_empty() {
        return Err(DefError::at(
            t,
            format!("targets[{i}].name"),
            "target name must not be empty",
        ));
    }
    let timeout = match t.value.timeout {
        None => DEFAULT_TARGET_TIMEOUT,
        Some(s) if s > 0.0 && s.is_finite() => Duration::from_secs_f64(s),
        Some(s) => {
            let msg = format!("timeout must be a number of seconds greater than 0 (got {s})");
            return Err(DefError::at(t, format!("targets[{i}].timeout"), msg));
        }
    };
    Ok((t.value.name.clone(), timeout))
}

/// The outcome of one check, as it appears in metadata `result`.
fn classify_io(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::TimedOut => "timeout",
        _ => "connection_failed",
    }
}
