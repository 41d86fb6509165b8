//! Plugins as the management API sees them: every unit that loads and runs (a pollster, a
//! sink, the bus consumer, a set of definitions) has a name, a kind, a lifecycle [`State`]
//! and a [`Health`] record; the [`Plugins`] registry answers `/plugins/status`,
//! `/plugins/list` and `/plugins/health` in the shapes of `hkp-plugin-core`.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Map, Value, json};

/// Where a plugin is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Being built and started.
    Loading,
    /// Running normally.
    Active,
    /// Draining its in-flight work before a new instance takes over.
    Reloading,
    /// Draining before it stops for good.
    Unloading,
    /// Could not start, or stopped on an error; the others keep running.
    Failed,
    /// Configured off.
    Disabled,
}

impl State {
    /// The state as written in JSON and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Loading => "loading",
            Self::Active => "active",
            Self::Reloading => "reloading",
            Self::Unloading => "unloading",
            Self::Failed => "failed",
            Self::Disabled => "disabled",
        }
    }
}

/// What a plugin is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A pollster of the agent (built-in, http_json, nagios or exec).
    Pollster,
    /// A sink of the pipeline: its transformers and publishers.
    Sink,
    /// The bus consumer of the collector.
    Consumer,
    /// The notification meter definitions.
    MeterDefinitions,
    /// The notification event definitions.
    EventDefinitions,
}

/// A plugin's health: healthy or not, and the checks that say why (`active_requests`,
/// `consecutive_failures`, `last_error`, `last_success`, `buffer_fill`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    /// Whether the plugin does its work now.
    pub healthy: bool,
    /// Named observations, as JSON values.
    pub checks: Map<String, Value>,
}

impl Health {
    /// Healthy, with `checks`.
    pub fn healthy(checks: Map<String, Value>) -> Self {
        Self {
            healthy: true,
            checks,
        }
    }
}

/// What the registry needs of a plugin; its owner keeps the state and the figures.
pub trait Plugin: Send + Sync + 'static {
    /// Unique among the process's plugins.
    fn name(&self) -> &str;
    /// What it is.
    fn kind(&self) -> Kind;
    /// Where it is in its lifecycle.
    fn state(&self) -> State;
    /// Its health now (called on every request: cheap, no I/O).
    fn health(&self) -> Health;
}

/// Plugins that come and go with reloads (the sinks of a pipeline), listed anew per request.
pub type Group = Box<dyn Fn() -> Vec<Arc<dyn Plugin>> + Send + Sync>;

/// Every plugin of the process.
pub struct Plugins {
    plugins: RwLock<Vec<Arc<dyn Plugin>>>,
    groups: RwLock<Vec<Group>>,
    started: Instant,
}

impl Default for Plugins {
    fn default() -> Self {
        Self {
            plugins: RwLock::default(),
            groups: RwLock::default(),
            started: Instant::now(),
        }
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A duration as Go writes one (`2h15m30s`), as `hkp-plugin-core` reports its uptime.
fn go_duration(seconds: u64) -> String {
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

impl Plugins {
    /// Adds `plugin` (after any plugin of the same name, which it does not replace).
    pub fn add(&self, plugin: Arc<dyn Plugin>) {
        self.plugins
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(plugin);
    }

    /// Adds a group of plugins, listed after those added one by one.
    pub fn add_group(&self, group: Group) {
        self.groups
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(group);
    }

    /// Every plugin now: those added one by one, then each group's.
    pub fn all(&self) -> Vec<Arc<dyn Plugin>> {
        let mut all = self
            .plugins
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for group in self
            .groups
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            all.extend(group());
        }
        all
    }

    /// The plugin called `name`, if there is one now.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Plugin>> {
        self.all().into_iter().find(|p| p.name() == name)
    }

    /// Seconds since the registry was made (the process started).
    pub fn uptime_seconds(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// `GET /plugins/status`.
    pub fn status(&self) -> Value {
        let all = self.all();
        let healths: Vec<Health> = all.iter().map(|p| p.health()).collect();
        let healthy = healths.iter().filter(|h| h.healthy).count();
        let states: Map<String, Value> = all
            .iter()
            .map(|p| (p.name().to_owned(), p.state().as_str().into()))
            .collect();
        let active_requests: u64 = healths
            .iter()
            .filter_map(|h| h.checks.get("active_requests").and_then(Value::as_u64))
            .sum();
        let uptime = self.uptime_seconds();
        json!({
            "plugin_system": {
                "enabled": true,
                "total_plugins": all.len(),
                "active_plugins": all.iter().filter(|p| p.state() == State::Active).count(),
                "active_requests": active_requests,
                "plugin_states": states,
            },
            "health_status": {
                "healthy_count": healthy,
                "unhealthy_count": all.len() - healthy,
                "total_count": all.len(),
                "overall_status": overall(healthy == all.len()),
            },
            "uptime": go_duration(uptime),
            "uptime_seconds": uptime,
            "timestamp": now(),
        })
    }

    /// `GET /plugins/list`.
    pub fn list(&self) -> Value {
        let plugins: Vec<Value> = self
            .all()
            .iter()
            .map(|p| {
                json!({
                    "name": p.name(),
                    "kind": p.kind(),
                    "status": p.state(),
                    "health": health_json(p.as_ref()),
                })
            })
            .collect();
        json!({
            "total_count": plugins.len(),
            "plugins": plugins,
            "timestamp": now(),
        })
    }

    /// `GET /plugins/health`, and whether every plugin is healthy.
    pub fn health(&self) -> (bool, Value) {
        let all = self.all();
        let mut healthy = true;
        let plugins: Map<String, Value> = all
            .iter()
            .map(|p| {
                let health = health_json(p.as_ref());
                healthy &= health["status"] == "healthy";
                (p.name().to_owned(), health)
            })
            .collect();
        let body = json!({
            "overall_status": overall(healthy),
            "plugins": plugins,
            "timestamp": now(),
        });
        (healthy, body)
    }

    /// The plugins that are not healthy, with their last error when they have one (for
    /// `/readyz`). Pollsters do not count (a pollster whose target is down measures that,
    /// the process still does its work), nor does the consumer (the binary's probe says why
    /// it is not connected).
    pub fn unhealthy(&self) -> Vec<String> {
        self.all()
            .iter()
            .filter(|p| !matches!(p.kind(), Kind::Pollster | Kind::Consumer))
            .filter_map(|p| {
                let health = p.health();
                (!health.healthy).then(|| match health.checks.get("last_error") {
                    Some(Value::String(e)) => {
                        format!("{} `{}`: {e}", kind_word(p.kind()), p.name())
                    }
                    _ => format!("{} `{}` is unhealthy", kind_word(p.kind()), p.name()),
                })
            })
            .collect()
    }
}

fn kind_word(kind: Kind) -> &'static str {
    match kind {
        Kind::Pollster => "pollster",
        Kind::Sink => "sink",
        Kind::Consumer => "consumer",
        Kind::MeterDefinitions => "meter definitions",
        Kind::EventDefinitions => "event definitions",
    }
}

fn overall(healthy: bool) -> &'static str {
    if healthy { "healthy" } else { "unhealthy" }
}

fn health_json(plugin: &dyn Plugin) -> Value {
    let health = plugin.health();
    json!({
        "status": overall(health.healthy),
        "state": plugin.state(),
        "last_check": now(),
        "checks": health.checks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(&'static str, State, bool, u64);

    impl Plugin for Fixed {
        fn name(&self) -> &str {
            self.0
        }
        fn kind(&self) -> Kind {
            Kind::Sink
        }
        fn state(&self) -> State {
            self.1
        }
        fn health(&self) -> Health {
            let mut checks = Map::new();
            checks.insert("active_requests".into(), self.3.into());
            if !self.2 {
                checks.insert("last_error".into(), "connection refused".into());
            }
            Health {
                healthy: self.2,
                checks,
            }
        }
    }

    #[test]
    fn status_list_and_health_in_the_management_shapes() {
        let plugins = Plugins::default();
        plugins.add(Arc::new(Fixed("influx", State::Active, true, 2)));
        plugins.add(Arc::new(Fixed("archive", State::Failed, false, 1)));
        let status = plugins.status();
        assert_eq!(status["plugin_system"]["total_plugins"], 2);
        assert_eq!(status["plugin_system"]["active_plugins"], 1);
        assert_eq!(status["plugin_system"]["active_requests"], 3);
        assert_eq!(
            status["plugin_system"]["plugin_states"]["archive"],
            "failed"
        );
        assert_eq!(status["health_status"]["unhealthy_count"], 1);
        assert_eq!(status["health_status"]["overall_status"], "unhealthy");
        assert!(
            status["timestamp"]
                .as_u64()
                .is_some_and(|t| t > 1_700_000_000)
        );
        let list = plugins.list();
        assert_eq!(list["total_count"], 2);
        assert_eq!(list["plugins"][0]["name"], "influx");
        assert_eq!(list["plugins"][0]["kind"], "sink");
        assert_eq!(list["plugins"][0]["health"]["state"], "active");
        assert_eq!(list["plugins"][0]["health"]["checks"]["active_requests"], 2);
        let (healthy, health) = plugins.health();
        assert!(!healthy);
        assert_eq!(health["plugins"]["archive"]["status"], "unhealthy");
        assert_eq!(plugins.unhealthy(), ["sink `archive`: connection refused"]);
    }

    #[test]
    fn uptime_as_go_writes_durations() {
        assert_eq!(go_duration(5), "5s");
        assert_eq!(go_duration(65), "1m5s");
        assert_eq!(go_duration(2 * 3600 + 15 * 60 + 30), "2h15m30s");
    }
}
