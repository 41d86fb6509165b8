//! The collector's management server: its plugins (the bus consumer, each sink, the
//! notification meter and event definitions), its metrics (the consumer's counters, which the
//! progress lines print too, and the sinks'), and readiness (connected to the bus, no sink
//! failing).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hb_management::{
    Changes, CounterOf, Families, Health, Kind, Metrics, Plugin, Plugins, Probe, Server, State,
};
use hb_pipeline::{Config, Pipeline};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::control::{Control, ReloadStats};
use crate::notify::Notifier;
use crate::stats::Stats;

/// The collector's port on 127.0.0.1 when `management.listen` is not given.
pub const DEFAULT_PORT: u16 = 8042;

/// Every counter of the consumer.
const COUNTERS: &[CounterOf<Stats>] = &[
    (
        "hb_collector_messages_received_total",
        "Messages received from the bus, redeliveries included.",
        |s| &s.messages,
    ),
    (
        "hb_collector_messages_acknowledged_total",
        "Messages acknowledged to the bus (every sink had their samples and events).",
        |s| &s.acked,
    ),
    (
        "hb_collector_samples_total",
        "Samples handed to the pipeline (from envelopes and notifications).",
        |s| &s.samples,
    ),
    (
        "hb_collector_samples_unrouted_total",
        "Samples no source selects.",
        |s| &s.unrouted,
    ),
    (
        "hb_collector_heartbeats_total",
        "Agent heartbeats received.",
        |s| &s.heartbeats,
    ),
    (
        "hb_collector_signature_failures_total",
        "Envelopes dropped for a missing or wrong signature.",
        |s| &s.refused,
    ),
    (
        "hb_collector_replays_total",
        "Signed envelopes refused as replays (acknowledged already, or older than max_age_s).",
        |s| &s.replayed,
    ),
    (
        "hb_collector_decode_failures_total",
        "Undecodable messages sent to the dead-letter destination.",
        |s| &s.dead_lettered,
    ),
    (
        "hb_collector_dead_letter_failures_total",
        "Undecodable messages dropped because the dead-letter destination refused them.",
        |s| &s.dead_letter_failures,
    ),
    (
        "hb_collector_oversized_total",
        "Messages over max_message_bytes or max_samples_per_envelope (dead-lettered).",
        |s| &s.oversized,
    ),
    (
        "hb_collector_reconnects_total",
        "Connections to the bus lost or refused, each retried after a backoff.",
        |s| &s.reconnects,
    ),
    (
        "hb_collector_notifications_total",
        "Notifications of other services decoded.",
        |s| &s.notifications,
    ),
    (
        "hb_collector_notification_samples_total",
        "Samples made from notifications (also in hb_collector_samples_total).",
        |s| &s.notification_samples,
    ),
    (
        "hb_collector_events_total",
        "Events made from notifications.",
        |s| &s.events,
    ),
    (
        "hb_collector_events_unrouted_total",
        "Events no sink takes (no event_sinks).",
        |s| &s.unrouted_events,
    ),
    (
        "hb_collector_definition_misses_total",
        "Definition values that found nothing in a notification.",
        |s| &s.definition_misses,
    ),
    (
        "hb_collector_skipped_definitions_total",
        "Notification definitions skipped at start for being wrong.",
        |s| &s.skipped_definitions,
    ),
];

/// Reloads and their failures.
const RELOADS: &[CounterOf<ReloadStats>] = &[
    (
        "hb_config_reloads_total",
        "Whole-configuration reloads applied (SIGHUP, POST /config/reload).",
        |s| &s.config_reloads,
    ),
    (
        "hb_config_reload_failures_total",
        "Whole-configuration reloads refused (invalid) or rolled back (a sink could not start).",
        |s| &s.config_reload_failures,
    ),
    (
        "hb_plugin_reloads_total",
        "Single plugins reloaded or given a new configuration.",
        |s| &s.plugin_reloads,
    ),
    (
        "hb_plugin_reload_failures_total",
        "Single-plugin reloads or configurations refused or rolled back.",
        |s| &s.plugin_reload_failures,
    ),
];

fn families(stats: &Stats, transport: &'static str, f: &mut Families) {
    let labels = [("transport", transport)];
    f.counters(COUNTERS, stats, &labels);
    f.gauge(
        "hb_collector_connected",
        "1 while the consumer is connected to the bus, 0 otherwise.",
        &labels,
        f64::from(u8::from(stats.connected.load(Ordering::Relaxed))),
    );
}

/// Binds the management server of `config` (none when `listen: off`) with the collector's
/// plugins and metrics; it serves once [`Server::spawn`]ed.
pub async fn bind(
    config: &Config,
    pipeline: &Arc<Pipeline>,
    notifier: Option<&Notifier>,
    stats: &Arc<Stats>,
    control: &Arc<Control>,
) -> Result<Option<Server>, hb_management::ServerError> {
    let Some(addr) = config.management.listen.address(DEFAULT_PORT) else {
        return Ok(None);
    };
    let plugins = Arc::new(Plugins::default());
    let metrics = Arc::new(Metrics::new("hb-collector"));
    let transport = config.transport.kind();
    plugins.add(Arc::new(ConsumerPlugin {
        stats: Arc::clone(stats),
    }));
    if let Some(notifier) = notifier {
        for (kind, count) in [
            (Kind::MeterDefinitions, notifier.definitions.meter_count()),
            (Kind::EventDefinitions, notifier.definitions.event_count()),
        ] {
            plugins.add(Arc::new(DefinitionsPlugin {
                kind,
                count,
                stats: Arc::clone(stats),
            }));
        }
    }
    hb_management::sinks::register(pipeline, &plugins, &metrics);
    let counted = Arc::clone(stats);
    metrics.add_source(Box::new(move |f| families(&counted, transport, f)));
    let reloads = Arc::clone(control);
    metrics.add_source(Box::new(move |f| f.counters(RELOADS, &reloads.stats, &[])));
    let connected = Arc::clone(stats);
    let ready: Probe = Arc::new(move || match connected.connected.load(Ordering::Relaxed) {
        true => Vec::new(),
        false => vec![match connected.last_bus_error() {
            Some(error) => format!("not connected to the bus: {error}"),
            None => "not connected to the bus yet".to_owned(),
        }],
    });
    let token = config.management.token.clone();
    let changes = hb_management::changes::routes(Arc::clone(control) as Arc<dyn Changes>);
    Server::bind(addr, token, plugins, metrics, ready, changes)
        .await
        .map(Some)
}

/// Serves `server` (if any) until `shutdown`.
pub fn spawn(server: Option<Server>, shutdown: &CancellationToken) {
    if let Some(server) = server {
        server.spawn(shutdown.clone());
    }
}

/// The bus consumer.
struct ConsumerPlugin {
    stats: Arc<Stats>,
}

impl Plugin for ConsumerPlugin {
    fn name(&self) -> &str {
        "consumer"
    }

    fn kind(&self) -> Kind {
        Kind::Consumer
    }

    fn state(&self) -> State {
        if self.stats.ever_connected.load(Ordering::Relaxed) {
            State::Active
        } else {
            State::Loading
        }
    }

    fn health(&self) -> Health {
        let s = &self.stats;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let connected = s.connected.load(Ordering::Relaxed);
        let mut checks = Map::new();
        checks.insert("connected".into(), connected.into());
        // Received and not yet acknowledged: in the sinks, or being decoded.
        checks.insert("active_requests".into(), get(&s.pending).into());
        checks.insert("messages".into(), get(&s.messages).into());
        checks.insert("acknowledged".into(), get(&s.acked).into());
        checks.insert("reconnects".into(), get(&s.reconnects).into());
        checks.insert("last_error".into(), s.last_bus_error().into());
        Health {
            healthy: connected,
            checks,
        }
    }
}

/// The notification meter or event definitions in force.
struct DefinitionsPlugin {
    kind: Kind,
    count: usize,
    stats: Arc<Stats>,
}

impl Plugin for DefinitionsPlugin {
    fn name(&self) -> &str {
        match self.kind {
            Kind::MeterDefinitions => "meter_definitions",
            _ => "event_definitions",
        }
    }

    fn kind(&self) -> Kind {
        self.kind
    }

    fn state(&self) -> State {
        State::Active
    }

    fn health(&self) -> Health {
        let get = |c: &AtomicU64| Value::from(c.load(Ordering::Relaxed));
        let mut checks = Map::new();
        checks.insert("definitions".into(), self.count.into());
        checks.insert("skipped".into(), get(&self.stats.skipped_definitions));
        checks.insert("misses".into(), get(&self.stats.definition_misses));
        checks.insert("notifications".into(), get(&self.stats.notifications));
        Health::healthy(checks)
    }
}
