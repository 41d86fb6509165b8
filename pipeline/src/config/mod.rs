//! pipeline.yaml: loading, environment overrides and validation (DESIGN §5).
//!
//! ```yaml
//! transport: memory://
//! sources:
//!   - name: host
//!     interval: 10
//!     meters: ["*", "!disk.device.*.requests"]
//!     sinks: [local]
//! sinks:
//!   - name: local
//!     publishers: ["file://data/samples.jsonl?max_bytes=10000000&backup_count=5"]
//! ```
//!
//! Each sink may list `transformers` (applied in order, see [`crate::transform`]) and a
//! `batch: {max_events, max_bytes, timeout, buffer_events, request_concurrency}` (see [`crate::sink::BatchConfig`]).
//! `dead_letter_dir` (default `dead-letter` beside this file) keeps what publishers refuse for
//! good.
//!
//! `notifications: {exchanges, topics, meters, events, event_sinks, unmatched_events}` makes the
//! collector consume other services' notifications (see [`Notifications`]).
//!
//! `coordination: {backend_url: redis://..., group, heartbeat, timeout}` lets several central
//! agents share the work (see [`Coordination`]).
//!
//! `management: {listen, token_file, drain_timeout}` configures the management server (see
//! [`Management`]).
//!
//! With a bus transport, `secret_file` names a file holding the shared signing secret (or
//! `HB_SECRET` gives it), and `spool: {dir, max_bytes}` bounds the agent's on-disk spool.
//!
//! Every refusal names the file, line and column, the key and the reason; all of them are
//! reported at once. Environment variables override any key (see [`env`] and
//! [`ENV_OVERRIDES`]).

mod coordination;
pub mod env;
mod error;
mod keys;
pub mod management;
mod notifications;
mod raw;
pub mod seconds;
mod sink;
mod yaml;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use coordination::Coordination;
pub use error::{ConfigError, ConfigErrors, Origin, cut};
use hb_bus::Transport;
use hb_sample::Secret;
pub use management::{Listen, Management, Token};
pub use notifications::{DEFAULT_EXCHANGES, DEFAULT_TOPICS, Notifications, UnmatchedEvents};
pub use raw::position;
use raw::{At, RawConfig, RawSource, RawSpool};
pub use seconds::Seconds;
pub use sink::Sink;
pub use yaml::{MAX_FILE_BYTES, parse_yaml, read_file, yaml_options};

use crate::filter::MeterFilter;

/// Top-level settings that an environment variable of their own overrides: (variable, key).
/// Any key is also set by `HB_<KEY>__<KEY>` (see [`env`]).
pub const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("HB_TRANSPORT", "transport"),
    ("HB_SECRET", "secret_file"),
    (management::LISTEN_VAR, "management.listen"),
    (management::TOKEN_VAR, "management.token_file"),
];

/// Spool bound when `spool.max_bytes` is not given: 100 MB.
pub const DEFAULT_SPOOL_BYTES: u64 = 100_000_000;

/// A validated pipeline configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// The bus.
    pub transport: Transport,
    /// What to poll and where it goes, in file order.
    pub sources: Vec<Source>,
    /// Destinations, in file order.
    pub sinks: Vec<Sink>,
    /// The shared secret envelopes are signed and verified with, if any.
    pub secret: Option<Secret>,
    /// Where the agent keeps envelopes the broker has not confirmed.
    pub spool: SpoolConfig,
    /// Where sinks keep what publishers refused for good (default `dead-letter` beside the
    /// configuration file); see [`crate::dead_letter`].
    pub dead_letter_dir: PathBuf,
    /// How central agents share work, when several run (`coordination:`).
    pub coordination: Option<Coordination>,
    /// Other services' notifications the collector consumes (`notifications:`).
    pub notifications: Option<Notifications>,
    /// The management server (`management:`; its defaults without the section).
    pub management: Management,
    /// The keys environment variables set (see [`env`]).
    pub overrides: Vec<env::Override>,
}

/// `spool:`: the agent's bounded on-disk buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolConfig {
    /// Directory (default `spool` beside the configuration file).
    pub dir: PathBuf,
    /// Bound on the bytes kept; past it the oldest envelopes are dropped.
    pub max_bytes: u64,
}

/// A source: meters polled at an interval, routed to sinks.
#[derive(Debug, Clone)]
pub struct Source {
    /// Unique name.
    pub name: String,
    /// Polling interval.
    pub interval: Duration,
    /// Which meters it selects.
    pub meters: MeterFilter,
    /// Indexes into [`Config::sinks`].
    pub sinks: Vec<usize>,
}

impl Config {
    /// Reads and validates `path`, applying `HB_...` overrides from the process environment;
    /// an `HB_..__..` variable that sets no key is refused (a typo must not pass unnoticed).
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        let config = Self::load_with_env(path, |var| std::env::var(var).ok())?;
        let vars: Vec<String> = std::env::vars_os()
            .filter_map(|(k, _)| k.into_string().ok())
            .collect();
        let unused = env::unused(vars.iter().map(String::as_str), &config.overrides);
        if unused.is_empty() {
            return Ok(config);
        }
        Err(ConfigErrors(
            unused
                .into_iter()
                .map(|var| ConfigError {
                    origin: Origin::Env(var.to_owned()),
                    key: String::new(),
                    message: format!(
                        "sets no key of {}: HB_<KEY>__<KEY>, sinks and sources by name \
                         (HB_SINKS__<NAME>__BATCH__MAX_EVENTS), see the README",
                        path.display()
                    ),
                })
                .collect(),
        ))
    }

    /// Like [`load`](Self::load), with the environment given as a lookup function.
    pub fn load_with_env(
        path: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigErrors> {
        let text = read_file(path).map_err(|message| ConfigError {
            origin: Origin::File {
                path: path.to_owned(),
                position: None,
            },
            key: String::new(),
            message,
        })?;
        Self::parse(&text, path, env)
    }

    /// Validates `text` as if read from `path` (used for messages and relative paths).
    pub fn parse(
        text: &str,
        path: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigErrors> {
        // Unknown keys first, so that they are reported with every other error.
        let mut errors = keys::unknown(text, path);
        let mut raw: RawConfig = match parse_yaml(text, path) {
            Ok(raw) => raw,
            Err(e) => {
                errors.push(e);
                return Err(in_file_order(errors));
            }
        };
        let (overrides, refused) = env::apply(&mut raw, &env);
        errors.extend(refused);
        let mut v = Validator {
            path,
            errors,
            overrides: &overrides,
        };
        let transport = v.transport(raw.transport.as_ref(), &env);
        let base = path.parent().unwrap_or(Path::new(".")).to_owned();
        let sinks = v.sinks(&raw.sinks, &base);
        let sink_index: HashMap<&str, usize> = raw
            .sinks
            .value
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.value.as_str(), i))
            .collect();
        let sources = v.sources(&raw.sources, &sink_index);
        let secret = v.secret(raw.secret_file.as_ref(), &base, &env);
        let spool = v.spool(raw.spool.as_ref(), &base);
        let coordination = raw.coordination.as_ref().and_then(|c| v.coordination(c));
        let notifications = raw
            .notifications
            .as_ref()
            .and_then(|n| v.notifications(n, &base, &sinks, &sink_index));
        let management = v.management(raw.management.as_ref(), &base, &env);
        let dead_letter_dir = crate::publisher::resolve(
            &base,
            raw.dead_letter_dir
                .as_ref()
                .map_or("dead-letter", |d| d.value.as_str()),
        );
        if !v.errors.is_empty() {
            return Err(in_file_order(v.errors));
        }
        Ok(Self {
            overrides,
            path: path.to_owned(),
            transport: transport.unwrap_or(Transport::Memory),
            sources,
            sinks,
            secret,
            spool,
            dead_letter_dir,
            coordination,
            notifications,
            management,
        })
    }
}

/// Errors sorted by position (those of environment variables first).
fn in_file_order(mut errors: Vec<ConfigError>) -> ConfigErrors {
    errors.sort_by_key(|e| match e.origin {
        Origin::File { position, .. } => position.unwrap_or_default(),
        Origin::Env(_) => (0, 0),
    });
    ConfigErrors(errors)
}

/// A transport URL parsed, and refused if this build left its transport out (hb-bus features).
fn parse_built_in(url: &str) -> Result<Transport, String> {
    let transport = Transport::parse(url).map_err(|e| e.to_string())?;
    hb_bus::NotInBuild::check(&transport).map_err(|e| e.to_string())?;
    Ok(transport)
}

struct Validator<'a> {
    path: &'a Path,
    errors: Vec<ConfigError>,
    /// Keys set by environment variables: an error there names the variable.
    overrides: &'a [env::Override],
}

impl Validator<'_> {
    fn refuse<T>(&mut self, at: &At<T>, key: impl Into<String>, message: impl Into<String>) {
        let key = key.into();
        let origin = match env::origin_of(self.overrides, &key) {
            Some(var) => Origin::Env(var.to_owned()),
            None => Origin::File {
                path: self.path.to_owned(),
                position: position(at),
            },
        };
        self.errors.push(ConfigError {
            origin,
            key,
            message: message.into(),
        });
    }

    fn transport(
        &mut self,
        file: Option<&At<String>>,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Option<Transport> {
        if let Some(url) = env("HB_TRANSPORT") {
            return parse_built_in(&url)
                .map_err(|e| {
                    let origin = Origin::Env("HB_TRANSPORT".into());
                    self.errors.push(ConfigError {
                        origin,
                        key: String::new(),
                        message: e,
                    })
                })
                .ok();
        }
        let url = file?;
        parse_built_in(&url.value)
            .map_err(|e| self.refuse(url, "transport", e))
            .ok()
    }

    fn secret(
        &mut self,
        file: Option<&At<String>>,
        base: &Path,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Option<Secret> {
        if let Some(value) = env("HB_SECRET") {
            if value.is_empty() {
                self.errors.push(ConfigError {
                    origin: Origin::Env("HB_SECRET".into()),
                    key: String::new(),
                    message: "the secret must not be empty".into(),
                });
                return None;
            }
            return Some(Secret::new(value));
        }
        let file = file?;
        let path = crate::publisher::resolve(base, &file.value);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let key = bytes.trim_ascii_end();
                if key.is_empty() {
                    let msg = format!("{} is empty", path.display());
                    self.refuse(file, "secret_file", msg);
                    return None;
                }
                Some(Secret::new(key))
            }
            Err(e) => {
                let msg = format!("cannot read {}: {e}", path.display());
                self.refuse(file, "secret_file", msg);
                None
            }
        }
    }

    fn spool(&mut self, spool: Option<&At<RawSpool>>, base: &Path) -> SpoolConfig {
        let dir = spool.and_then(|s| s.value.dir.as_ref());
        let max_bytes = spool.and_then(|s| s.value.max_bytes.as_ref());
        if let Some(dir) = dir.filter(|d| d.value.is_empty()) {
            self.refuse(dir, "spool.dir", "must not be empty");
        }
        if let Some(max) = max_bytes.filter(|m| m.value < 65_536) {
            let msg = format!("must be at least 65536 (got {})", max.value);
            self.refuse(max, "spool.max_bytes", msg);
        }
        SpoolConfig {
            dir: crate::publisher::resolve(base, dir.map_or("spool", |d| d.value.as_str())),
            max_bytes: max_bytes.map_or(DEFAULT_SPOOL_BYTES, |m| m.value),
        }
    }

    fn sources(
        &mut self,
        sources: &At<Vec<RawSource>>,
        sink_index: &HashMap<&str, usize>,
    ) -> Vec<Source> {
        if sources.value.is_empty() {
            self.refuse(sources, "sources", "at least one source is needed");
        }
        let mut seen: HashMap<&str, u64> = HashMap::new();
        let mut out = Vec::new();
        for (i, source) in sources.value.iter().enumerate() {
            let key = format!("sources[{i}]");
            self.unique(&mut seen, &source.name, &format!("{key}.name"), "source");
            let interval = source.interval.value.whole_seconds();
            if let Err(msg) = &interval {
                self.refuse(&source.interval, format!("{key}.interval"), msg.as_str());
            }
            let patterns: Vec<&str> = source
                .meters
                .value
                .iter()
                .map(|m| m.value.as_str())
                .collect();
            let meters = match MeterFilter::new(&patterns) {
                Ok(filter) => Some(filter),
                Err((Some(j), e)) => {
                    self.refuse(
                        &source.meters.value[j],
                        format!("{key}.meters[{j}]"),
                        e.to_string(),
                    );
                    None
                }
                Err((None, e)) => {
                    self.refuse(&source.meters, format!("{key}.meters"), e.to_string());
                    None
                }
            };
            if source.sinks.value.is_empty() {
                self.refuse(
                    &source.sinks,
                    format!("{key}.sinks"),
                    "a source needs at least one sink",
                );
            }
            let mut sinks = Vec::new();
            for (j, name) in source.sinks.value.iter().enumerate() {
                match sink_index.get(name.value.as_str()) {
                    Some(&index) => sinks.push(index),
                    None => {
                        let mut defined: Vec<&str> = sink_index.keys().copied().collect();
                        defined.sort_unstable();
                        let msg = format!(
                            "unknown sink `{}` (defined sinks: {})",
                            name.value,
                            defined.join(", ")
                        );
                        self.refuse(name, format!("{key}.sinks[{j}]"), msg);
                    }
                }
            }
            if let (Some(meters), Ok(interval)) = (meters, interval) {
                out.push(Source {
                    name: source.name.value.clone(),
                    interval,
                    meters,
                    sinks,
                });
            }
        }
        out
    }

    fn unique<'r>(
        &mut self,
        seen: &mut HashMap<&'r str, u64>,
        name: &'r At<String>,
        key: &str,
        what: &str,
    ) {
        if name.value.is_empty() {
            self.refuse(name, key, format!("{what} name must not be empty"));
        } else if let Some(line) = seen.get(name.value.as_str()) {
            let msg = format!(
                "duplicate {what} name `{}` (first defined on line {line})",
                name.value
            );
            self.refuse(name, key, msg);
        } else {
            seen.insert(&name.value, name.referenced.line());
        }
    }
}
