//! The collector's counters, shared with whoever watches them, logged as progress lines.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// Totals since start.
#[derive(Debug, Default)]
pub struct Stats {
    /// Messages received from the bus.
    pub messages: AtomicU64,
    /// Messages acknowledged.
    pub acked: AtomicU64,
    /// Samples handed to the pipeline (sinks count what they published).
    pub samples: AtomicU64,
    /// Samples no source selects.
    pub unrouted: AtomicU64,
    /// Heartbeats received.
    pub heartbeats: AtomicU64,
    /// Envelopes dropped for a missing or wrong signature.
    pub refused: AtomicU64,
    /// Signed envelopes refused as replays (seen and acknowledged already, or too old).
    pub replayed: AtomicU64,
    /// Undecodable messages sent to the dead-letter destination.
    pub dead_lettered: AtomicU64,
    /// Undecodable messages dropped because the dead-letter destination refused them.
    pub dead_letter_failures: AtomicU64,
    /// Messages over `max_message_bytes` or `max_samples_per_envelope` (dead-lettered).
    pub oversized: AtomicU64,
    /// Notifications decoded (other services' messages).
    pub notifications: AtomicU64,
    /// Samples made from notifications (also counted in `samples`).
    pub notification_samples: AtomicU64,
    /// Events made from notifications.
    pub events: AtomicU64,
    /// Events no sink takes (no `event_sinks`).
    pub unrouted_events: AtomicU64,
    /// Definition values that found nothing for a notification (no sample, no trait).
    pub definition_misses: AtomicU64,
    /// Notification definitions skipped at start for being wrong (each logged at error level).
    pub skipped_definitions: AtomicU64,
    /// Whether the consumer is connected to the bus now.
    pub connected: AtomicBool,
    /// Whether it ever was.
    pub ever_connected: AtomicBool,
    /// Messages handed out by the bus and not yet acknowledged, now.
    pub pending: AtomicU64,
    /// Connections to the bus lost or refused (each followed by a retry after a backoff).
    pub reconnects: AtomicU64,
    /// Why the bus was last lost or refused.
    pub last_bus_error: Mutex<Option<String>>,
}

/// Adds `n` to a counter and returns the new total.
pub fn add(counter: &AtomicU64, n: u64) -> u64 {
    counter.fetch_add(n, Ordering::Relaxed) + n
}

impl Stats {
    /// The consumer is connected.
    pub fn connected(&self) {
        self.connected.store(true, Ordering::Relaxed);
        self.ever_connected.store(true, Ordering::Relaxed);
    }

    /// The bus was lost or refused the connection.
    pub fn disconnected(&self, error: &impl std::fmt::Display) {
        self.connected.store(false, Ordering::Relaxed);
        self.pending.store(0, Ordering::Relaxed);
        self.reconnects.fetch_add(1, Ordering::Relaxed);
        *self
            .last_bus_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(error.to_string());
    }

    /// Why the bus was last lost, if it was.
    pub fn last_bus_error(&self) -> Option<String> {
        self.last_bus_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// One structured log line with every counter.
    pub fn report(&self, what: &'static str) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        tracing::info!(
            messages = get(&self.messages),
            acked = get(&self.acked),
            samples = get(&self.samples),
            unrouted = get(&self.unrouted),
            heartbeats = get(&self.heartbeats),
            refused = get(&self.refused),
            replayed = get(&self.replayed),
            dead_lettered = get(&self.dead_lettered),
            dead_letter_failures = get(&self.dead_letter_failures),
            oversized = get(&self.oversized),
            notifications = get(&self.notifications),
            notification_samples = get(&self.notification_samples),
            events = get(&self.events),
            unrouted_events = get(&self.unrouted_events),
            definition_misses = get(&self.definition_misses),
            skipped_definitions = get(&self.skipped_definitions),
            reconnects = get(&self.reconnects),
            "{what}"
        );
    }
}
