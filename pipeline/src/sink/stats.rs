//! The counters of a sink, and the progress line that reports them; the management server
//! reads the same counters for `/metrics` and the sink's health.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

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
    /// Batches being published now (handed to the publishers, not yet taken by all).
    pub in_flight: AtomicU64,
    /// Failed attempts since the last batch every publisher took.
    pub consecutive_failures: AtomicU64,
    /// When a batch was last taken by every publisher (Unix seconds; 0: never).
    pub last_success: AtomicU64,
    /// The last publisher error, as logged.
    pub last_error: Mutex<Option<String>>,
    /// Retired instances of this sink still publishing what they held (a reload drains).
    pub draining: AtomicU64,
}

impl SinkStats {
    /// A batch every publisher took.
    pub(crate) fn succeeded(&self) {
        self.consecutive_failures.store(0, Ordering::Relaxed);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.last_success.store(now, Ordering::Relaxed);
    }

    /// An attempt some publisher refused, with its error.
    pub(crate) fn failed(&self, error: String) {
        self.consecutive_failures.fetch_add(1, Ordering::Relaxed);
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(error);
    }

    /// The last publisher error, if any.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

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
