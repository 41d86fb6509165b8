//! The sinks of a running pipeline as plugins (health from their publishing) and as metrics
//! (their counters, one table): the same in the collector and in the agent's embedded mode.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hb_pipeline::{Pipeline, SinkStats};
use serde_json::{Map, Value};

use crate::metrics::{CounterOf, Families, Metrics};
use crate::plugins::{Health, Kind, Plugin, Plugins, State};

/// Every counter of a sink.
const COUNTERS: &[CounterOf<SinkStats>] = &[
    (
        "hb_sink_samples_published_total",
        "Samples every publisher of the sink accepted (after transformers).",
        |s| &s.published,
    ),
    (
        "hb_sink_events_published_total",
        "Events every publisher of the sink accepted.",
        |s| &s.published_events,
    ),
    (
        "hb_sink_batches_total",
        "Batches every publisher of the sink accepted.",
        |s| &s.batches,
    ),
    (
        "hb_sink_retries_total",
        "Publishing attempts some publisher refused, retried after a backoff.",
        |s| &s.retries,
    ),
    (
        "hb_sink_dead_lettered_total",
        "Items publishers refused for good, kept in the dead-letter directory.",
        |s| &s.dead_lettered,
    ),
    (
        "hb_sink_abandoned_total",
        "Items abandoned at shutdown while a publisher still refused them (not acknowledged).",
        |s| &s.abandoned,
    ),
    (
        "hb_sink_transformer_dropped_total",
        "Samples the sink's transformers dropped (out of order, division by zero, ...).",
        |s| &s.dropped_by_transformers,
    ),
];

/// Adds every sink of `pipeline` to `plugins`, and their counters to `metrics`.
/// The sinks are those of the pipeline's configuration of the moment (a reload adds and
/// removes some).
pub fn register(pipeline: &Arc<Pipeline>, plugins: &Plugins, metrics: &Metrics) {
    let listed = Arc::clone(pipeline);
    plugins.add_group(Box::new(move || {
        listed
            .sink_names()
            .into_iter()
            .map(|name| {
                Arc::new(SinkPlugin {
                    pipeline: Arc::clone(&listed),
                    name,
                }) as Arc<dyn Plugin>
            })
            .collect()
    }));
    let pipeline = Arc::clone(pipeline);
    metrics.add_source(Box::new(move |f| families(&pipeline, f)));
}

fn families(pipeline: &Pipeline, f: &mut Families) {
    for name in pipeline.sink_names() {
        let Some((stats, fill)) = pipeline.sink(&name) else {
            continue;
        };
        let labels = [("sink", name.as_str())];
        f.counters(COUNTERS, &stats, &labels);
        f.gauge(
            "hb_sink_buffered_items",
            "Samples and events the sink holds now (transformed or batched, not yet published).",
            &labels,
            fill.held as f64,
        );
        f.gauge(
            "hb_sink_buffer_capacity_items",
            "The most items the sink holds before submitters wait (batch.buffer_events).",
            &labels,
            fill.capacity as f64,
        );
        f.gauge(
            "hb_sink_in_flight_batches",
            "Batches handed to the publishers and not yet taken by all of them.",
            &labels,
            stats.in_flight.load(Ordering::Relaxed) as f64,
        );
        f.gauge(
            "hb_sink_consecutive_failures",
            "Failed publishing attempts since the last batch every publisher took.",
            &labels,
            stats.consecutive_failures.load(Ordering::Relaxed) as f64,
        );
        f.gauge(
            "hb_sink_draining_instances",
            "Replaced instances of the sink still publishing what they held (a reload drains).",
            &labels,
            stats.draining.load(Ordering::Relaxed) as f64,
        );
    }
}

/// One sink, looked up by name in the pipeline at every request.
struct SinkPlugin {
    pipeline: Arc<Pipeline>,
    name: String,
}

impl Plugin for SinkPlugin {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> Kind {
        Kind::Sink
    }

    fn state(&self) -> State {
        match self.pipeline.sink(&self.name) {
            Some((stats, _)) if stats.draining.load(Ordering::Relaxed) > 0 => State::Reloading,
            Some(_) => State::Active,
            None => State::Unloading,
        }
    }

    fn health(&self) -> Health {
        let Some((stats, fill)) = self.pipeline.sink(&self.name) else {
            return Health {
                healthy: false,
                checks: Map::new(),
            };
        };
        let get = |c: &AtomicU64| Value::from(c.load(Ordering::Relaxed));
        let failures = stats.consecutive_failures.load(Ordering::Relaxed);
        let mut checks = Map::new();
        checks.insert("active_requests".into(), get(&stats.in_flight));
        checks.insert("consecutive_failures".into(), failures.into());
        let last_success = stats.last_success.load(Ordering::Relaxed);
        checks.insert(
            "last_success".into(),
            if last_success == 0 {
                Value::Null
            } else {
                last_success.into()
            },
        );
        checks.insert("last_error".into(), stats.last_error().into());
        checks.insert("buffered_items".into(), fill.held.into());
        checks.insert(
            "buffer_fill".into(),
            (fill.held as f64 / fill.capacity.max(1) as f64).into(),
        );
        checks.insert("samples_published".into(), get(&stats.published));
        checks.insert("dead_lettered".into(), get(&stats.dead_lettered));
        checks.insert("draining_instances".into(), get(&stats.draining));
        Health {
            healthy: failures == 0,
            checks,
        }
    }
}
