//! The pipeline shared by the agent (embedded mode) and the collector: configuration, meter
//! filters, routing of samples and events to sinks, and publishers (DESIGN §4, §5, §7, §8).
//!
//! # Layout
//!
//! - [`config`]: pipeline.yaml, validated into [`Config`]; errors name file, line, key, reason.
//! - [`dead_letter`]: what publishers refused for good, kept as JSON lines per sink.
//! - [`filter`]: [`MeterFilter`], Ceilometer's meter selection rules.
//! - [`publisher`]: publisher URLs and the publishers themselves (`file://`, the archive,
//!   InfluxDB), each taking a [`Batch`] of samples and events.
//! - [`reload`]: [`Pipeline::apply`], a new configuration applied to a running pipeline as
//!   a difference by sink name (unchanged sinks untouched, changed ones drained and swapped).
//! - [`router`]: [`Pipeline`], which routes each sample to the sinks of every source whose
//!   meter filter selects it ([`Pipeline::submit`]) and each event to every event sink
//!   ([`Pipeline::submit_events`]); a [`Receipt`] says when every sink published them.
//! - [`sink`]: one task per sink: transformers (samples only), batching of samples and events
//!   together, publishing with retries and backoff, backpressure, per-sink [`SinkStats`].
//! - [`signals`]: graceful shutdown on SIGINT/SIGTERM; SIGHUP logged and ignored.
//! - [`transform`]: Ceilometer-style transformers (rate_of_change, delta, unit_conversion,
//!   arithmetic, aggregator) that a sink applies in order, as a [`transform::Chain`].
#![warn(missing_docs)]

pub mod config;
pub mod dead_letter;
pub mod filter;
pub mod publisher;
pub mod reload;
pub mod router;
pub mod signals;
pub mod sink;
pub mod transform;

pub use config::{Config, ConfigError, ConfigErrors, SpoolConfig};
pub use filter::MeterFilter;
pub use hb_bus::Transport;
pub use publisher::Batch;
pub use reload::Applied;
pub use router::{Delivery, Fill, OpenError, Pipeline, Submitted};
pub use sink::{BatchConfig, Receipt, SinkStats, Stale};

/// An error and its causes on one line: HTTP clients' top-level message hides the cause
/// ("error sending request"), so the causes are appended.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
