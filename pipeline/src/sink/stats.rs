//! The counters of a sink, and the progress line that reports them.

use std::sync::atomic::{AtomicU64, Ordering};

/// Running totals of one sink.
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Samples every publisher of the sink accepted (after transformers).
    pub published: AtomicU64,
    /// Events every publisher of the sink accepted.
    pub published_events: AtomicU64,
    /// Batches every publisher accepted.
    pub batches: AtomicU64,
    /// Publisher attempts that failed and were retried.
    pub retries: AtomicU64,
    /// Items (samples and events) abandoned at shutdown because a publisher still refused them.
    pub abandoned: AtomicU64,
    /// Items publishers refused for good, kept in the dead-letter directory.
    pub dead_lettered: AtomicU64,
    /// Samples transformers dropped (out of order, division by zero, ...), all reasons
    /// together; each transformer logs its reasons when the sink stops.
    pub dropped_by_transformers: AtomicU64,
}

impl SinkStats {
    /// One structured log line with every counter of the sink `name`, which holds `held`
    /// items (samples and events) now.
    pub fn report(&self, name: &str, held: usize) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        tracing::info!(
            sink = name,
            published = get(&self.published),
            published_events = get(&self.published_events),
            batches = get(&self.batches),
            retries = get(&self.retries),
            abandoned = get(&self.abandoned),
            dead_lettered = get(&self.dead_lettered),
            dropped_by_transformers = get(&self.dropped_by_transformers),
            held,
            "sink progress"
        );
    }
}
