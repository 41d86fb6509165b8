//! `notifications:`: which notifications the collector consumes and what it makes of them.
//!
//! ```yaml
//! notifications:
//!   exchanges: [nova, cinder, glance, swift, neutron, openstack]  # AMQP topic exchanges
//!   topics: [notifications.info, notifications.error]  # routing keys, Kafka topics, Redis streams
//!   meters: meters.d          # meter definitions (a directory of YAML files)
//!   events: events.d          # event definitions (a directory of YAML files)
//!   event_sinks: [archive]    # sinks events go to (InfluxDB or archive publishers only)
//!   unmatched_events: keep    # keep: a bare event for a notification no definition matches
//! ```
//!
//! Without the section the collector consumes only hb's own samples.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::Sink;
use super::Validator;
use super::raw::{At, RawNotifications};

/// Exchanges consumed when none are configured: where OpenStack's services publish.
pub const DEFAULT_EXCHANGES: [&str; 6] =
    ["nova", "cinder", "glance", "swift", "neutron", "openstack"];
/// Routing keys (topics, streams) consumed when none are configured.
pub const DEFAULT_TOPICS: [&str; 2] = ["notifications.info", "notifications.error"];

/// What to do with a notification that no event definition matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnmatchedEvents {
    /// A bare event with the default traits (Ceilometer's default).
    Keep,
    /// No event.
    Drop,
}

/// A validated `notifications:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notifications {
    /// AMQP topic exchanges to bind to.
    pub exchanges: Vec<String>,
    /// AMQP routing keys; Kafka topic names; Redis stream names.
    pub topics: Vec<String>,
    /// Directory of meter definition files (resolved against the configuration's directory).
    pub meters: PathBuf,
    /// Directory of event definition files.
    pub events: PathBuf,
    /// Indexes into [`super::Config::sinks`] of the sinks events go to.
    pub event_sinks: Vec<usize>,
    /// Notifications no event definition matches.
    pub unmatched_events: UnmatchedEvents,
}

impl Validator<'_> {
    pub(super) fn notifications(
        &mut self,
        n: &At<RawNotifications>,
        base: &Path,
        sinks: &[Sink],
        sink_index: &HashMap<&str, usize>,
    ) -> Option<Notifications> {
        let raw = &n.value;
        let before = self.errors.len();
        let exchanges = self.names(raw.exchanges.as_ref(), "exchanges", &DEFAULT_EXCHANGES);
        let topics = self.names(raw.topics.as_ref(), "topics", &DEFAULT_TOPICS);
        let dir = |d: &Option<At<String>>, default: &str| {
            crate::publisher::resolve(base, d.as_ref().map_or(default, |d| d.value.as_str()))
        };
        let mut event_sinks = Vec::new();
        for (i, name) in raw
            .event_sinks
            .iter()
            .flat_map(|l| l.value.iter())
            .enumerate()
        {
            let key = format!("notifications.event_sinks[{i}]");
            let Some(&index) = sink_index.get(name.value.as_str()) else {
                let mut known: Vec<&str> = sink_index.keys().copied().collect();
                known.sort_unstable();
                let msg = format!(
                    "unknown sink `{}` (defined sinks: {})",
                    name.value,
                    known.join(", ")
                );
                self.refuse(name, key, msg);
                continue;
            };
            if let Some(msg) = sinks.get(index).and_then(Sink::refuses_events) {
                self.refuse(name, key, msg);
            }
            if !event_sinks.contains(&index) {
                event_sinks.push(index);
            }
        }
        let unmatched_events = match raw.unmatched_events.as_ref() {
            None => UnmatchedEvents::Keep,
            Some(u) => match u.value.as_str() {
                "keep" => UnmatchedEvents::Keep,
                "drop" => UnmatchedEvents::Drop,
                other => {
                    let msg = format!("unknown choice `{other}` (available: keep, drop)");
                    self.refuse(u, "notifications.unmatched_events", msg);
                    UnmatchedEvents::Keep
                }
            },
        };
        (self.errors.len() == before).then(|| Notifications {
            exchanges,
            topics,
            meters: dir(&raw.meters, "meters.d"),
            events: dir(&raw.events, "events.d"),
            event_sinks,
            unmatched_events,
        })
    }

    /// A list of names (exchanges, topics): given and non-empty, or the defaults.
    fn names(
        &mut self,
        list: Option<&At<Vec<At<String>>>>,
        key: &str,
        default: &[&str],
    ) -> Vec<String> {
        let Some(list) = list else {
            return default.iter().map(|s| (*s).to_owned()).collect();
        };
        if list.value.is_empty() {
            let msg = format!("needs at least one name (default: {})", default.join(", "));
            self.refuse(list, format!("notifications.{key}"), msg);
        }
        for (i, name) in list.value.iter().enumerate() {
            if name.value.trim().is_empty() || name.value.contains(char::is_whitespace) {
                let msg = format!("`{}` is not a name (empty or with spaces)", name.value);
                self.refuse(name, format!("notifications.{key}[{i}]"), msg);
            }
        }
        list.value.iter().map(|n| n.value.clone()).collect()
    }
}
