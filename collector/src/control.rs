//! Changing the running collector (DESIGN §7): one sink reloaded (`POST /plugins/reload`) or
//! given a new configuration (`PUT /plugins/config`), or the whole configuration reloaded
//! (SIGHUP, `POST /config/reload`). Each is validated exactly as at start-up and applied to the
//! pipeline as a difference ([`Pipeline::apply`]); a refusal keeps what runs.
//!
//! A configuration given through the API lives in memory only: it is not written back to
//! pipeline.yaml. A later whole reload applies the file again, and says so (a warning per
//! sink whose API version it replaces).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::future::BoxFuture;
use hb_management::{Changes, Outcome};
use hb_pipeline::config::Sink;
use hb_pipeline::{Applied, Config, Pipeline};
use serde_json::json;

/// Counters of reloads, for `/metrics`.
#[derive(Debug, Default)]
pub struct ReloadStats {
    /// Whole-configuration reloads applied.
    pub config_reloads: AtomicU64,
    /// Whole-configuration reloads refused (invalid, or a sink that could not start).
    pub config_reload_failures: AtomicU64,
    /// Single plugins reloaded or reconfigured.
    pub plugin_reloads: AtomicU64,
    /// Single-plugin reloads or reconfigurations refused or rolled back.
    pub plugin_reload_failures: AtomicU64,
}

/// The version of one sink's configuration (a change that fails changes nothing: the
/// running version stays).
#[derive(Debug, Default, Clone)]
struct Version {
    number: u64,
    /// Set through the API (not what the file says).
    from_api: bool,
}

struct Running {
    config: Config,
    versions: HashMap<String, Version>,
}

/// The collector's running configuration, and the changes made to it.
pub struct Control {
    path: PathBuf,
    pipeline: Arc<Pipeline>,
    running: tokio::sync::Mutex<Running>,
    /// Reload counters.
    pub stats: ReloadStats,
}

impl Control {
    /// Control of `pipeline`, which runs `config`.
    pub fn new(config: Config, pipeline: Arc<Pipeline>) -> Self {
        let versions = config
            .sinks
            .iter()
            .map(|s| (s.name.clone(), Version::default()))
            .collect();
        Self {
            path: config.path.clone(),
            pipeline,
            running: tokio::sync::Mutex::new(Running { config, versions }),
            stats: ReloadStats::default(),
        }
    }

    /// Reads and validates the whole configuration again (and the environment), and applies
    /// it as a difference. `why` says what asked (SIGHUP, the API) for the log.
    pub async fn reload_config(&self, why: &str) -> Outcome {
        let mut running = self.running.lock().await;
        let new = match Config::load(&self.path) {
            Ok(new) => new,
            Err(errors) => {
                self.stats
                    .config_reload_failures
                    .fetch_add(1, Ordering::Relaxed);
                for e in &errors.0 {
                    tracing::error!(error = %e, trigger = why, "configuration reload refused; the running configuration stays");
                }
                return Outcome::Invalid(errors.0.iter().map(ToString::to_string).collect());
            }
        };
        let restart = needs_restart(&running.config, &new);
        let new = keeping_the_rest(&running.config, new);
        match self.pipeline.apply(&new, None) {
            Ok(applied) => {
                self.stats.config_reloads.fetch_add(1, Ordering::Relaxed);
                for name in applied.replaced.iter().chain(&applied.removed) {
                    if running.versions.get(name).is_some_and(|v| v.from_api) {
                        tracing::warn!(sink = %name, "the file's configuration replaces the one given through the API");
                    }
                }
                running
                    .versions
                    .retain(|name, _| !applied.removed.contains(name));
                for name in &applied.replaced {
                    let version = running.versions.entry(name.clone()).or_default();
                    version.number += 1;
                    version.from_api = false;
                }
                for name in &applied.added {
                    running.versions.insert(name.clone(), Version::default());
                }
                for setting in &restart {
                    tracing::warn!(setting = %setting, "changed in the file; takes effect at the next restart");
                }
                log_applied(&applied, why);
                running.config = new;
                Outcome::Applied(json!({
                    "message": "configuration reloaded",
                    "added": applied.added,
                    "replaced": applied.replaced,
                    "removed": applied.removed,
                    "unchanged": applied.kept,
                    "restart_needed_for": restart,
                }))
            }
            Err(e) => {
                self.stats
                    .config_reload_failures
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, trigger = why, "configuration reload rolled back; the running configuration stays");
                Outcome::RolledBack(e.to_string())
            }
        }
    }

    /// Reloads one sink: its definition read again from the file, a new instance built,
    /// the old one drained and swapped (even when the definition did not change).
    pub async fn reload_plugin(&self, name: &str) -> Outcome {
        let mut running = self.running.lock().await;
        if let Some(unknown) = self.not_a_sink(&running, name) {
            return unknown;
        }
        let file = match Config::load(&self.path) {
            Ok(file) => file,
            Err(errors) => {
                self.failed();
                return Outcome::Invalid(errors.0.iter().map(ToString::to_string).collect());
            }
        };
        let Some(sink) = file.sinks.into_iter().find(|s| s.name == name) else {
            self.failed();
            return Outcome::Unknown(format!(
                "sink `{name}` is no longer in {}; POST /config/reload removes it",
                self.path.display()
            ));
        };
        self.change(&mut running, sink, false, "reload").await
    }

    /// The effective configuration of a plugin, secrets redacted.
    pub async fn config_of(&self, name: &str) -> Outcome {
        let running = self.running.lock().await;
        if let Some(unknown) = self.not_a_sink(&running, name) {
            return unknown;
        }
        let sink = running.config.sinks.iter().find(|s| s.name == name);
        let version = running.versions.get(name).cloned().unwrap_or_default();
        Outcome::Applied(json!({
            "config": sink.map(Sink::to_json),
            "version": version.number,
            "source": if version.from_api { "api" } else { "file" },
        }))
    }

    /// A new configuration for one sink (`body`: YAML or JSON, the sink's entry of
    /// pipeline.yaml), validated as at start-up and applied by drain and swap.
    pub async fn put_config(&self, name: &str, body: &str) -> Outcome {
        let mut running = self.running.lock().await;
        if let Some(unknown) = self.not_a_sink(&running, name) {
            return unknown;
        }
        let index = running
            .config
            .sinks
            .iter()
            .position(|s| s.name == name)
            .unwrap_or_default();
        let key = format!("sinks[{index}]");
        let sink = match running
            .config
            .parse_sink(body, Path::new("request body"), &key)
        {
            Ok(sink) if sink.name == name => sink,
            Ok(sink) => {
                self.failed();
                return Outcome::Invalid(vec![format!(
                    "request body: {key}.name: `{}` is not `{name}` (a sink is renamed in the file)",
                    sink.name
                )]);
            }
            Err(errors) => {
                self.failed();
                return Outcome::Invalid(errors.0.iter().map(ToString::to_string).collect());
            }
        };
        self.change(&mut running, sink, true, "configuration").await
    }

    /// Applies `sink` in place of the running sink of its name.
    async fn change(
        &self,
        running: &mut Running,
        sink: Sink,
        from_api: bool,
        what: &str,
    ) -> Outcome {
        let name = sink.name.clone();
        let mut config = running.config.clone();
        let Some(slot) = config.sinks.iter_mut().find(|s| s.name == name) else {
            return Outcome::Unknown(format!("no sink `{name}`"));
        };
        *slot = sink;
        // What start-up checks across sinks: an event sink writes events.
        let is_event_sink = config.notifications.as_ref().is_some_and(|n| {
            n.event_sinks
                .iter()
                .any(|&i| config.sinks.get(i).is_some_and(|s| s.name == name))
        });
        if let Some(refusal) = config
            .sinks
            .iter()
            .find(|s| s.name == name)
            .filter(|_| is_event_sink)
            .and_then(Sink::refuses_events)
        {
            self.failed();
            return Outcome::Invalid(vec![format!("notifications.event_sinks: {refusal}")]);
        }
        match self.pipeline.apply(&config, Some(&name)) {
            Ok(_) => {
                self.stats.plugin_reloads.fetch_add(1, Ordering::Relaxed);
                let version = running.versions.entry(name.clone()).or_default();
                version.number += 1;
                version.from_api = from_api;
                let number = version.number;
                running.config = config;
                tracing::info!(sink = %name, version = number, change = what, "sink reloaded: the old instance drains");
                Outcome::Applied(json!({
                    "message": format!("sink {what} applied; the previous instance drains what it holds"),
                    "version": number,
                }))
            }
            Err(e) => {
                self.failed();
                tracing::error!(sink = %name, error = %e, change = what, "sink reload rolled back; the running instance stays");
                Outcome::RolledBack(e.to_string())
            }
        }
    }

    fn failed(&self) {
        self.stats
            .plugin_reload_failures
            .fetch_add(1, Ordering::Relaxed);
    }

    /// `None` when `name` is a running sink; else why it cannot change alone.
    fn not_a_sink(&self, running: &Running, name: &str) -> Option<Outcome> {
        if running.config.sinks.iter().any(|s| s.name == name) {
            return None;
        }
        let mut sinks: Vec<&str> = running
            .config
            .sinks
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        sinks.sort_unstable();
        Some(Outcome::Unknown(match name {
            "consumer" | "meter_definitions" | "event_definitions" => format!(
                "plugin `{name}` changes with the whole configuration only (POST /config/reload, \
                 or a restart for the transport and the notification definitions)"
            ),
            _ => format!(
                "no plugin `{name}` changes alone (sinks: {})",
                sinks.join(", ")
            ),
        }))
    }
}

/// The settings a reload does not apply (they need a restart), by key.
fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut keys = Vec::new();
    if old.transport != new.transport {
        keys.push("transport");
    }
    if old.secret != new.secret {
        keys.push("secret_file");
    }
    // The event sinks are routing, which a reload applies; the rest is the consumer's.
    let consumed = |c: &Config| {
        c.notifications.clone().map(|mut n| {
            n.event_sinks.clear();
            n
        })
    };
    if consumed(old) != consumed(new) {
        keys.push("notifications");
    }
    if old.coordination != new.coordination {
        keys.push("coordination");
    }
    if old.management != new.management {
        keys.push("management");
    }
    if old.dead_letter_dir != new.dead_letter_dir {
        keys.push("dead_letter_dir");
    }
    keys
}

/// `new`, with the settings that need a restart as they run.
fn keeping_the_rest(old: &Config, mut new: Config) -> Config {
    new.transport = old.transport.clone();
    new.secret = old.secret.clone();
    new.coordination = old.coordination.clone();
    new.management = old.management.clone();
    new.dead_letter_dir = old.dead_letter_dir.clone();
    // The event sinks are routing (applied); the definitions are not. Event sinks are
    // indexes into the sinks: those of a section the new file dropped are found again by
    // name, or left out with the sinks they named.
    let event_sinks = match (&old.notifications, &new.notifications) {
        (_, Some(n)) => n.event_sinks.clone(),
        (Some(o), None) => o
            .event_sinks
            .iter()
            .filter_map(|&i| old.sinks.get(i))
            .filter_map(|s| new.sinks.iter().position(|n| n.name == s.name))
            .collect(),
        (None, None) => Vec::new(),
    };
    new.notifications = old.notifications.clone().map(|mut n| {
        n.event_sinks = event_sinks;
        n
    });
    new
}

fn log_applied(applied: &Applied, why: &str) {
    tracing::info!(
        trigger = why,
        added = %applied.added.join(","),
        replaced = %applied.replaced.join(","),
        removed = %applied.removed.join(","),
        unchanged = applied.kept.len(),
        "configuration reloaded"
    );
}

impl Changes for Control {
    fn reload_plugin<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Outcome> {
        Box::pin(Control::reload_plugin(self, name))
    }

    fn config_of<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Outcome> {
        Box::pin(Control::config_of(self, name))
    }

    fn put_config<'a>(&'a self, name: &'a str, body: &'a str) -> BoxFuture<'a, Outcome> {
        Box::pin(Control::put_config(self, name, body))
    }

    fn reload_config<'a>(&'a self, trigger: &'a str) -> BoxFuture<'a, Outcome> {
        Box::pin(Control::reload_config(self, trigger))
    }
}
