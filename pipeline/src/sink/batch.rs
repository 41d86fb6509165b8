//! Batching settings of a sink (Vector's `batch` and `buffer`) and the size estimates they use.

use std::time::Duration;

use hb_sample::{Event, Sample, TraitValue};

/// When a sink hands what it accumulated to its publishers. Samples and events travel in the
/// same batches: every count below counts both.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchConfig {
    /// Flush once this many items (samples and events) are waiting (default 5000).
    pub max_events: usize,
    /// Flush once the waiting items' estimated encoded size reaches this (default 10 MB).
    pub max_bytes: usize,
    /// Flush this long after the first item of a batch arrived (default 1 s).
    pub timeout: Duration,
    /// Items a sink may hold (waiting or being published) before submitters wait: the bound
    /// that turns a failing sink into backpressure instead of loss (default 4 × max_events).
    pub buffer_events: usize,
    /// Batches a sink may have with its publishers at once (Vector's `request.concurrency`,
    /// default [`DEFAULT_REQUEST_CONCURRENCY`]): the sink encodes and sends the next batch while
    /// a server still ingests the previous one. Submissions are still accepted in order, each
    /// once its batch and every batch before it are published. Applies only to sinks whose
    /// publishers are all InfluxDB endpoints; a sink writing files or archives sends one batch
    /// at a time, so that what it writes stays in order.
    pub request_concurrency: usize,
}

/// Default of [`BatchConfig::request_concurrency`].
pub const DEFAULT_REQUEST_CONCURRENCY: usize = 2;

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_events: 5000,
            max_bytes: 10_000_000,
            timeout: Duration::from_secs(1),
            buffer_events: 20_000,
            request_concurrency: DEFAULT_REQUEST_CONCURRENCY,
        }
    }
}

/// Roughly the bytes a sample takes once encoded (JSON line or line protocol): its strings
/// plus a fixed allowance for the id, numbers and punctuation. Cheap, never exact.
pub(crate) fn estimated_size(sample: &Sample) -> usize {
    let metadata: usize = sample
        .resource_metadata
        .iter()
        .map(|(k, v)| {
            k.len()
                + match v {
                    serde_json::Value::String(s) => s.len() + 4,
                    _ => 12,
                }
        })
        .sum();
    160 + sample.name.len()
        + sample.unit.len()
        + sample.resource_id.len()
        + sample.project_id.as_ref().map_or(0, String::len)
        + sample.user_id.as_ref().map_or(0, String::len)
        + sample.source.len()
        + metadata
}

/// Roughly the bytes an event takes once encoded (JSON line or line protocol): its strings plus
/// a fixed allowance per trait for the type, numbers and punctuation.
pub(crate) fn estimated_event_size(event: &Event) -> usize {
    let traits: usize = event
        .traits
        .iter()
        .map(|t| {
            t.name.len()
                + match &t.value {
                    TraitValue::Text(s) => s.len() + 24,
                    _ => 48,
                }
        })
        .sum();
    120 + event.message_id.len() + event.event_type.len() + traits
}
