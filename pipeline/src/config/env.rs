//! `HB_...` environment variables over any key of pipeline.yaml, `__` for nesting, sinks and
//! sources by name: `HB_SINKS__ARCHIVE__BATCH__MAX_EVENTS=1000`, `HB_MANAGEMENT__LISTEN=...`,
//! `HB_DEAD_LETTER_DIR=/var/lib/hb/dead`. A name is written in capitals with `-` and `.` as
//! `_`. Each value is read as YAML of the key's type (`1000`, `2.5`, `[a, b]`, a string), and
//! is validated as the file's values are; a refusal names the variable.
//!
//! Not figment: its values carry no line and column of the file they came from, which every
//! refusal of a file value here names; the overrides are applied to the typed, positioned
//! document instead, and each remembers its key, so that an error at that key names the
//! variable.

use std::path::Path;

use serde::de::DeserializeOwned;

use super::raw::{At, RawBatch, RawConfig, RawManagement, RawSpool};
use super::{ConfigError, Origin, parse_yaml};

/// A key set by an environment variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// The variable.
    pub var: String,
    /// The key it set, as errors name it (`sinks[2].batch.max_events`).
    pub key: String,
}

/// `name` as a variable segment: capitals, `-` and `.` as `_`.
fn segment(name: &str) -> String {
    name.to_ascii_uppercase().replace(['-', '.'], "_")
}

/// Reads `var` as YAML of type `T` into `slot`.
fn set<T: DeserializeOwned>(
    slot: &mut Option<T>,
    var: &str,
    key: &str,
    env: &impl Fn(&str) -> Option<String>,
    done: &mut Vec<Override>,
    errors: &mut Vec<ConfigError>,
) {
    let Some(text) = env(var) else { return };
    match parse_yaml::<T>(&text, Path::new(var)) {
        Ok(value) => *slot = Some(value),
        Err(e) => errors.push(ConfigError {
            origin: Origin::Env(var.into()),
            key: key.into(),
            message: e.message,
        }),
    }
    done.push(Override {
        var: var.into(),
        key: key.into(),
    });
}

/// A section the file may not have, made empty when one of `vars` will set a key of it.
fn section<'s, T: DeserializeOwned>(
    slot: &'s mut Option<At<T>>,
    vars: &[String],
    env: &impl Fn(&str) -> Option<String>,
) -> Option<&'s mut T> {
    if slot.is_none() && vars.iter().any(|v| env(v).is_some()) {
        *slot = parse_yaml::<At<T>>("{}", Path::new("")).ok();
    }
    slot.as_mut().map(|s| &mut s.value)
}

fn vars(prefix: &str, fields: &[&str]) -> Vec<String> {
    fields
        .iter()
        .map(|f| format!("{prefix}{}", segment(f)))
        .collect()
}

/// Applies every override `env` has for `raw`; what was set, and the values refused.
pub(super) fn apply(
    raw: &mut RawConfig,
    env: &impl Fn(&str) -> Option<String>,
) -> (Vec<Override>, Vec<ConfigError>) {
    let (mut done, mut errors) = (Vec::new(), Vec::new());
    let (d, e) = (&mut done, &mut errors);
    set(
        &mut raw.secret_file,
        "HB_SECRET_FILE",
        "secret_file",
        env,
        d,
        e,
    );
    set(
        &mut raw.dead_letter_dir,
        "HB_DEAD_LETTER_DIR",
        "dead_letter_dir",
        env,
        d,
        e,
    );
    let spool_vars = vars("HB_SPOOL__", &["dir", "max_bytes"]);
    if let Some(spool) = section::<RawSpool>(&mut raw.spool, &spool_vars, env) {
        set(&mut spool.dir, "HB_SPOOL__DIR", "spool.dir", env, d, e);
        set(
            &mut spool.max_bytes,
            "HB_SPOOL__MAX_BYTES",
            "spool.max_bytes",
            env,
            d,
            e,
        );
    }
    let management_vars = vars(
        "HB_MANAGEMENT__",
        &["listen", "token_file", "drain_timeout"],
    );
    if let Some(m) = section::<RawManagement>(&mut raw.management, &management_vars, env) {
        set(
            &mut m.listen,
            "HB_MANAGEMENT__LISTEN",
            "management.listen",
            env,
            d,
            e,
        );
        let (var, key) = ("HB_MANAGEMENT__TOKEN_FILE", "management.token_file");
        set(&mut m.token_file, var, key, env, d, e);
        let (var, key) = ("HB_MANAGEMENT__DRAIN_TIMEOUT", "management.drain_timeout");
        set(&mut m.drain_timeout, var, key, env, d, e);
    }
    if let Some(n) = raw.notifications.as_mut().map(|n| &mut n.value) {
        let keys = [
            ("EXCHANGES", "exchanges"),
            ("TOPICS", "topics"),
            ("EVENT_SINKS", "event_sinks"),
        ];
        for ((var, key), slot) in
            keys.iter()
                .zip([&mut n.exchanges, &mut n.topics, &mut n.event_sinks])
        {
            let var = format!("HB_NOTIFICATIONS__{var}");
            set(slot, &var, &format!("notifications.{key}"), env, d, e);
        }
        for (var, key, slot) in [
            ("METERS", "meters", &mut n.meters),
            ("EVENTS", "events", &mut n.events),
            (
                "UNMATCHED_EVENTS",
                "unmatched_events",
                &mut n.unmatched_events,
            ),
        ] {
            let var = format!("HB_NOTIFICATIONS__{var}");
            set(slot, &var, &format!("notifications.{key}"), env, d, e);
        }
    }
    if let Some(c) = raw.coordination.as_mut().map(|c| &mut c.value) {
        let mut url = Some(c.backend_url.clone());
        let key = "coordination.backend_url";
        set(&mut url, "HB_COORDINATION__BACKEND_URL", key, env, d, e);
        if let Some(url) = url {
            c.backend_url = url;
        }
        set(
            &mut c.group,
            "HB_COORDINATION__GROUP",
            "coordination.group",
            env,
            d,
            e,
        );
        let key = "coordination.heartbeat";
        set(
            &mut c.heartbeat,
            "HB_COORDINATION__HEARTBEAT",
            key,
            env,
            d,
            e,
        );
        set(
            &mut c.timeout,
            "HB_COORDINATION__TIMEOUT",
            "coordination.timeout",
            env,
            d,
            e,
        );
    }
    for (i, source) in raw.sources.value.iter_mut().enumerate() {
        let var = |field: &str| format!("HB_SOURCES__{}__{field}", segment(&source.name.value));
        let key = |field: &str| format!("sources[{i}].{field}");
        let mut interval = Some(source.interval.clone());
        set(&mut interval, &var("INTERVAL"), &key("interval"), env, d, e);
        let mut meters = Some(source.meters.clone());
        set(&mut meters, &var("METERS"), &key("meters"), env, d, e);
        let mut sinks = Some(source.sinks.clone());
        set(&mut sinks, &var("SINKS"), &key("sinks"), env, d, e);
        (source.interval, source.meters, source.sinks) = (
            interval.unwrap_or_else(|| source.interval.clone()),
            meters.unwrap_or_else(|| source.meters.clone()),
            sinks.unwrap_or_else(|| source.sinks.clone()),
        );
    }
    for (i, sink) in raw.sinks.value.iter_mut().enumerate() {
        let var = |field: &str| format!("HB_SINKS__{}__{field}", segment(&sink.name.value));
        let key = |field: &str| format!("sinks[{i}].{field}");
        let mut publishers = Some(sink.publishers.clone());
        set(
            &mut publishers,
            &var("PUBLISHERS"),
            &key("publishers"),
            env,
            d,
            e,
        );
        if let Some(publishers) = publishers {
            sink.publishers = publishers;
        }
        let fields = [
            "max_events",
            "max_bytes",
            "timeout",
            "buffer_events",
            "request_concurrency",
        ];
        let batch_vars = vars(&var("BATCH__"), &fields);
        let Some(b) = section::<RawBatch>(&mut sink.batch, &batch_vars, env) else {
            continue;
        };
        let batch = |field: &str| {
            (
                var(&format!("BATCH__{}", segment(field))),
                key(&format!("batch.{field}")),
            )
        };
        let (v, k) = batch("max_events");
        set(&mut b.max_events, &v, &k, env, d, e);
        let (v, k) = batch("max_bytes");
        set(&mut b.max_bytes, &v, &k, env, d, e);
        let (v, k) = batch("timeout");
        set(&mut b.timeout, &v, &k, env, d, e);
        let (v, k) = batch("buffer_events");
        set(&mut b.buffer_events, &v, &k, env, d, e);
        let (v, k) = batch("request_concurrency");
        set(&mut b.request_concurrency, &v, &k, env, d, e);
    }
    (done, errors)
}

/// The variable that set `key` or a key under it, if one did.
pub(super) fn origin_of<'o>(overrides: &'o [Override], key: &str) -> Option<&'o str> {
    overrides
        .iter()
        .find(|o| {
            key.strip_prefix(o.key.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
        })
        .map(|o| o.var.as_str())
}

/// The sections whose variables are overrides (`HB_SINKS__...`); others, such as a
/// password variable a publisher URL names (`password_env=HB_INFLUX__PW`), are not.
const SECTIONS: &[&str] = &[
    "HB_SINKS__",
    "HB_SOURCES__",
    "HB_MANAGEMENT__",
    "HB_SPOOL__",
    "HB_COORDINATION__",
    "HB_NOTIFICATIONS__",
];

/// The variables among `vars` that address a section of pipeline.yaml (`HB_SINKS__...`) and
/// set nothing: a typo must not pass for a setting.
pub fn unused<'v>(vars: impl Iterator<Item = &'v str>, overrides: &[Override]) -> Vec<&'v str> {
    vars.filter(|v| SECTIONS.iter().any(|s| v.starts_with(s)))
        .filter(|v| !overrides.iter().any(|o| o.var == *v))
        .collect()
}
