//! Publishing one batch: every publisher until all of them took it, retrying those that
//! refuse with backoff, dead-lettering what they refuse for good.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hb_bus::Backoff;

use super::Shared;
use crate::dead_letter::Rejected;
use crate::publisher::{Batch, Publisher};

/// Publishes `batch` with the sink's publishers: `true` once every publisher took it (or
/// refused items for good: dead letters), `false` when the sink was told to abandon it.
pub(super) async fn publish(shared: Arc<Shared>, batch: Batch) -> bool {
    shared.publish(batch).await
}

impl Shared {
    /// Hands a batch to every publisher until all of them took it, retrying only those that
    /// refused, with backoff; `false` when the sink was told to abandon it first.
    async fn publish(&self, batch: Batch) -> bool {
        let _in_flight = InFlight::enter(&self.stats.in_flight);
        let mut todo: Vec<usize> = (0..self.publishers.len()).collect();
        let mut backoff = Backoff::default();
        let (samples, events) = (batch.samples.len(), batch.events.len());
        // A publisher refused the batch for good: it is dead-lettered, not a success.
        let mut refused_for_good = false;
        while !batch.is_empty() {
            let attempts = todo.iter().map(|&i| self.publishers[i].publish(&batch));
            let results = futures_util::future::join_all(attempts).await;
            let mut refused = Vec::new();
            let mut floor = None;
            for (&i, result) in todo.iter().zip(results) {
                let publisher = &self.publishers[i];
                match result {
                    Ok(rejected) => self.dead_letter(publisher, rejected).await,
                    Err(error) if error.is_permanent() => {
                        // Retrying cannot help: keep the batch as dead letters, go on.
                        tracing::error!(
                            sink = %self.name,
                            publisher = %publisher.describe(),
                            samples,
                            events,
                            %error,
                            "publisher refused a batch for good; dead-lettering it"
                        );
                        let rejected = batch.rejected(&error.to_string());
                        self.stats
                            .failed(format!("{}: {error}", publisher.describe()));
                        refused_for_good = true;
                        self.dead_letter(publisher, rejected).await;
                    }
                    Err(error) => {
                        floor = floor.max(error.retry_after());
                        self.stats
                            .failed(format!("{}: {error}", publisher.describe()));
                        tracing::warn!(
                            sink = %self.name,
                            publisher = %publisher.describe(),
                            samples,
                            events,
                            %error,
                            "publisher refused a batch; retrying it"
                        );
                        refused.push(i);
                    }
                }
            }
            if refused.is_empty() {
                break;
            }
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            todo = refused;
            let wait = backoff.next(floor);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.abandon.cancelled() => {
                    let n = batch.len() as u64;
                    let total = self.stats.abandoned.fetch_add(n, Ordering::Relaxed) + n;
                    tracing::error!(
                        sink = %self.name,
                        samples,
                        events,
                        abandoned_total = total,
                        "stopping with a batch some publisher still refuses; it is not \
                         acknowledged (a bus redelivers it, the embedded mode loses it)"
                    );
                    return false;
                }
            }
        }
        if !batch.is_empty() {
            let stats = &self.stats;
            stats.published.fetch_add(samples as u64, Ordering::Relaxed);
            stats
                .published_events
                .fetch_add(events as u64, Ordering::Relaxed);
            stats.batches.fetch_add(1, Ordering::Relaxed);
        }
        if !refused_for_good {
            self.stats.succeeded();
        }
        true
    }

    /// Keeps what a publisher refused for good in the dead-letter directory, and counts it.
    async fn dead_letter(&self, publisher: &Publisher, rejected: Vec<Rejected>) {
        if rejected.is_empty() {
            return;
        }
        let n = rejected.len() as u64;
        let total = self.stats.dead_lettered.fetch_add(n, Ordering::Relaxed) + n;
        let describe = publisher.describe();
        let written = {
            let _writing = self.dead_writing.lock().await;
            self.dead.append(&self.name, &describe, &rejected).await
        };
        match written {
            Ok(()) => tracing::warn!(
                sink = %self.name,
                publisher = %describe,
                rejected = n,
                dead_lettered_total = total,
                first_reason = %rejected[0].reason,
                file = %self.dead.path(&self.name).display(),
                "publisher refused items; dead-lettered"
            ),
            Err(error) => tracing::error!(
                sink = %self.name,
                publisher = %describe,
                rejected = n,
                first_reason = %rejected[0].reason,
                %error,
                "publisher refused items and the dead-letter file cannot be written; they are lost"
            ),
        }
    }
}

/// Counts a batch in flight while it lives.
struct InFlight<'a>(&'a AtomicU64);

impl<'a> InFlight<'a> {
    fn enter(counter: &'a AtomicU64) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
