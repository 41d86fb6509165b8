//! The agent's management server (run mode): every pollster as a plugin with its health,
//! the embedded pipeline's sinks, and the metrics of both, of the bus side (envelopes
//! confirmed, spooled, replayed, dropped; the spool's size; heartbeats) and of the process.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hb_management::{CounterOf, Families, Health, Kind, Metrics, Plugin, Plugins, Probe, Server};
use hb_pipeline::Config;
use serde_json::{Map, Value};

use crate::destination::Destination;
use crate::model::LoadedPollster;
use crate::outbox::{Outbox, Stats};

/// The agent's port on 127.0.0.1 when `management.listen` is not given.
pub const DEFAULT_PORT: u16 = 8043;

/// A pollster whose last runs all failed, this many or more, is `failed` (it is still run:
/// it comes back `active` with its next success).
const FAILED_AFTER: u32 = 3;

/// Every counter of a pollster.
const POLLSTER_COUNTERS: &[CounterOf<LoadedPollster>] = &[
    (
        "hb_pollster_runs_total",
        "Runs of the pollster that finished, failed ones included.",
        |p| &p.state.runs,
    ),
    (
        "hb_pollster_failures_total",
        "Runs of the pollster that failed (error or timeout).",
        |p| &p.state.failures,
    ),
    (
        "hb_pollster_samples_total",
        "Samples the pollster's runs produced.",
        |p| &p.state.samples,
    ),
];

/// Every counter of the bus side.
const OUTBOX_COUNTERS: &[CounterOf<Stats>] = &[
    (
        "hb_agent_envelopes_confirmed_total",
        "Envelopes the broker confirmed, sent directly or replayed.",
        |s| &s.confirmed,
    ),
    (
        "hb_agent_envelopes_spooled_total",
        "Envelopes written to the spool while the broker did not confirm them.",
        |s| &s.spooled,
    ),
    (
        "hb_agent_envelopes_replayed_total",
        "Envelopes replayed from the spool and confirmed.",
        |s| &s.replayed,
    ),
    (
        "hb_agent_envelopes_dropped_total",
        "Envelopes lost: spool overflow, corrupt spool entries, spool write failures.",
        |s| &s.dropped,
    ),
    (
        "hb_agent_heartbeats_total",
        "Heartbeats the broker confirmed.",
        |s| &s.heartbeats,
    ),
    (
        "hb_agent_heartbeats_lost_total",
        "Heartbeats the broker did not take (they are not spooled).",
        |s| &s.heartbeats_lost,
    ),
];

fn pollster_families(pollsters: &[Arc<LoadedPollster>], f: &mut Families) {
    for p in pollsters {
        let labels = [
            ("pollster", p.name.as_str()),
            ("namespace", p.namespace.as_str()),
        ];
        f.counters(POLLSTER_COUNTERS, p, &labels);
        f.histogram(
            "hb_pollster_duration_seconds",
            "How long the pollster's runs took.",
            &labels,
            &p.state.durations,
        );
        f.gauge(
            "hb_pollster_consecutive_failures",
            "Failed runs of the pollster in a row.",
            &labels,
            f64::from(p.state.consecutive_failures.load(Ordering::Relaxed)),
        );
        f.gauge(
            "hb_pollster_in_flight_runs",
            "Runs of the pollster going on now.",
            &labels,
            p.state.in_flight.load(Ordering::Relaxed) as f64,
        );
    }
}

fn outbox_families(outbox: &Outbox, f: &mut Families) {
    f.counters(OUTBOX_COUNTERS, &outbox.stats, &[]);
    f.gauge(
        "hb_agent_spool_envelopes",
        "Envelopes waiting in the spool for the broker.",
        &[],
        outbox.spooled() as f64,
    );
    f.gauge(
        "hb_agent_spool_bytes",
        "Bytes the spool holds (at most spool.max_bytes).",
        &[],
        outbox.spooled_bytes() as f64,
    );
}

/// Binds the management server of `config` (none when `listen: off`) with the agent's
/// plugins and metrics; it serves once [`Server::spawn`]ed.
pub async fn bind(
    config: &Config,
    pollsters: &[Arc<LoadedPollster>],
    destination: &Arc<Destination>,
) -> Result<Option<Server>, hb_management::ServerError> {
    let Some(addr) = config.management.listen.address(DEFAULT_PORT) else {
        return Ok(None);
    };
    let plugins = Arc::new(Plugins::default());
    let metrics = Arc::new(Metrics::new("hb-polling"));
    for p in pollsters {
        plugins.add(Arc::new(PollsterPlugin(Arc::clone(p))));
    }
    let all = pollsters.to_vec();
    metrics.add_source(Box::new(move |f| pollster_families(&all, f)));
    let ready: Probe = match &**destination {
        Destination::Embedded(pipeline) => {
            hb_management::sinks::register(pipeline, &plugins, &metrics);
            Arc::new(Vec::new)
        }
        Destination::Bus(_) => {
            let counted = Arc::clone(destination);
            metrics.add_source(Box::new(move |f| {
                if let Destination::Bus(outbox) = &*counted {
                    outbox_families(outbox, f);
                }
            }));
            let watched = Arc::clone(destination);
            Arc::new(move || match &*watched {
                Destination::Bus(outbox) if outbox.is_spooling() => {
                    vec!["the broker does not confirm envelopes: they go to the spool".to_owned()]
                }
                _ => Vec::new(),
            })
        }
    };
    let token = config.management.token.clone();
    Server::bind(addr, token, plugins, metrics, ready, axum::Router::new())
        .await
        .map(Some)
}

/// One pollster: healthy while its last run succeeded.
struct PollsterPlugin(Arc<LoadedPollster>);

impl Plugin for PollsterPlugin {
    fn name(&self) -> &str {
        &self.0.name
    }

    fn kind(&self) -> Kind {
        Kind::Pollster
    }

    fn state(&self) -> hb_management::State {
        if self.0.state.consecutive_failures.load(Ordering::Relaxed) >= FAILED_AFTER {
            hb_management::State::Failed
        } else {
            hb_management::State::Active
        }
    }

    fn health(&self) -> Health {
        let s = &self.0.state;
        let get = |c: &AtomicU64| Value::from(c.load(Ordering::Relaxed));
        let failures = s.consecutive_failures.load(Ordering::Relaxed);
        let mut checks = Map::new();
        checks.insert("active_requests".into(), get(&s.in_flight));
        checks.insert("consecutive_failures".into(), failures.into());
        checks.insert("runs".into(), get(&s.runs));
        checks.insert("failures".into(), get(&s.failures));
        checks.insert("samples".into(), get(&s.samples));
        let last_success = s.last_success.load(Ordering::Relaxed);
        checks.insert(
            "last_success".into(),
            (last_success > 0).then_some(last_success).into(),
        );
        checks.insert("last_error".into(), s.last_error().into());
        checks.insert("namespace".into(), self.0.namespace.clone().into());
        Health {
            healthy: failures == 0,
            checks,
        }
    }
}
