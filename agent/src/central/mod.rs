//! The central namespace's built-in checks of network targets declared in
//! `namespaces/central/*.yaml`. A target that cannot be reached yields a status sample that
//! says why (metadata `result`, `error`), never a failed pollster.

pub mod http;
pub mod redis;
pub mod tcp;

use std::future::Future;
use std::time::Duration;

use futures_util::future::join_all;
use serde_saphyr::Spanned as At;

use crate::coordination::Share;
use crate::namespaces::{DefError, TargetDef};
use crate::pollster::Measurement;

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
    let timeout = match &t.value.timeout {
        None => DEFAULT_TARGET_TIMEOUT,
        Some(s) => s.duration().map_err(|msg| {
            DefError::at(t, format!("targets[{i}].timeout"), format!("timeout {msg}"))
        })?,
    };
    Ok((t.value.name.clone(), timeout))
}

/// Which field locates a kind of target.
#[derive(Debug, Clone, Copy)]
enum Locator {
    /// `url:`.
    Url,
    /// `address:`.
    Address,
}

impl Locator {
    fn field(self) -> &'static str {
        match self {
            Self::Url => "url",
            Self::Address => "address",
        }
    }
}

/// A target's name, timeout and location: the `wants` field, which must be there, while the
/// other one must not. `pollster` and `form` (what the location looks like, e.g.
/// `redis://host:port`; may be empty) make the messages.
fn locate<'t>(
    i: usize,
    t: &'t At<TargetDef>,
    pollster: &str,
    wants: Locator,
    form: &str,
) -> Result<(String, Duration, &'t str), DefError> {
    let (name, timeout) = name_and_timeout(i, t)?;
    let (wanted, given_other, other) = match wants {
        Locator::Url => (&t.value.url, t.value.address.is_some(), Locator::Address),
        Locator::Address => (&t.value.address, t.value.url.is_some(), Locator::Url),
    };
    let spelled = if form.is_empty() {
        wants.field().to_owned()
    } else {
        format!("{}: {form}", wants.field())
    };
    if given_other {
        return Err(DefError::at(
            t,
            format!("targets[{i}].{}", other.field()),
            format!(
                "{pollster} targets take `{spelled}`, not `{}`",
                other.field()
            ),
        ));
    }
    match wanted {
        Some(value) => Ok((name, timeout, value.as_str())),
        None => Err(DefError::at(
            t,
            format!("targets[{i}].{}", wants.field()),
            format!("missing `{spelled}`"),
        )),
    }
}

/// Checks, concurrently, the targets this agent owns (all of them without coordination):
/// their measurements, in target order.
async fn check_owned<'a, T, F>(
    targets: &'a [T],
    share: &Share,
    key: impl Fn(&T) -> &str,
    check: impl FnMut(&'a T) -> F,
) -> Vec<Measurement>
where
    F: Future<Output = Vec<Measurement>>,
{
    let mine = targets.iter().filter(|t| share.owns(key(t)));
    join_all(mine.map(check))
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// The outcome of one check, as it appears in metadata `result`.
fn classify_io(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::TimedOut => "timeout",
        _ => "connection_failed",
    }
}
