//! Sinks at run time: each sink is a task that applies its transformers, batches samples by
//! count, size and time, hands each batch to its publishers until all of them took it
//! (retrying with backoff), and only then accepts the submissions the batch holds.
//!
//! Submitting waits while the sink already holds `buffer_events` samples: a sink that keeps
//! failing slows its submitters down (backpressure) instead of dropping anything.

mod batch;
mod retry;
mod ticket;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hb_sample::Sample;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use batch::BatchConfig;
pub use ticket::Receipt;
pub(crate) use ticket::Ticket;

use crate::dead_letter::{DeadLetters, Rejected};
use crate::publisher::Publisher;
use crate::transform::Chain;
use retry::Backoff;

/// How often time-driven transformers (aggregator retention) are given a chance to emit.
const TRANSFORMER_TICK: Duration = Duration::from_secs(1);

/// One submission as a sink receives it.
struct Item {
    samples: Vec<Sample>,
    ticket: Arc<Ticket>,
    permit: OwnedSemaphorePermit,
}

/// Running totals of one sink.
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Samples every publisher of the sink accepted (after transformers).
    pub published: AtomicU64,
    /// Batches every publisher accepted.
    pub batches: AtomicU64,
    /// Publisher attempts that failed and were retried.
    pub retries: AtomicU64,
    /// Samples abandoned at shutdown because a publisher still refused them.
    pub abandoned: AtomicU64,
    /// Items publishers refused for good, kept in the dead-letter directory.
    pub dead_lettered: AtomicU64,
    /// Samples transformers dropped (out of order, division by zero, ...), all reasons
    /// together; each transformer logs its reasons when the sink stops.
    pub dropped_by_transformers: AtomicU64,
}

impl SinkStats {
    /// One structured log line with every counter of the sink `name`, which holds `held`
    /// samples now.
    pub fn report(&self, name: &str, held: usize) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        tracing::info!(
            sink = name,
            published = get(&self.published),
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

/// The submitting side of a running sink.
#[derive(Debug)]
pub(crate) struct SinkHandle {
    pub(crate) name: String,
    tx: mpsc::UnboundedSender<Item>,
    permits: Arc<Semaphore>,
    capacity: usize,
    pub(crate) stats: Arc<SinkStats>,
}

/// The sink is shut down.
#[derive(Debug)]
pub(crate) struct Closed;

impl SinkHandle {
    /// Starts the sink's task. `closing` asks it to flush and stop; `abandon` stops retries.
    pub(crate) fn spawn(
        name: String,
        chain: Chain,
        publishers: Arc<Vec<Publisher>>,
        config: BatchConfig,
        dead: DeadLetters,
        closing: CancellationToken,
        abandon: CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let capacity = config.buffer_events.max(1);
        let stats = Arc::new(SinkStats::default());
        let task = Task {
            name: name.clone(),
            chain,
            publishers,
            config,
            stats: Arc::clone(&stats),
            abandon,
            dead,
        };
        let handle = tokio::spawn(task.run(rx, closing));
        let sink = Self {
            name,
            tx,
            permits: Arc::new(Semaphore::new(capacity)),
            capacity,
            stats,
        };
        (sink, handle)
    }

    /// Queues samples for this sink, waiting while it holds `buffer_events` samples already.
    pub(crate) async fn submit(
        &self,
        samples: Vec<Sample>,
        ticket: Arc<Ticket>,
    ) -> Result<(), Closed> {
        let wanted = samples.len().clamp(1, self.capacity) as u32;
        let permit = Arc::clone(&self.permits)
            .acquire_many_owned(wanted)
            .await
            .map_err(|_| Closed)?;
        self.tx
            .send(Item {
                samples,
                ticket,
                permit,
            })
            .map_err(|_| Closed)
    }

    /// Samples held by the sink (waiting for a batch or being published).
    pub(crate) fn held(&self) -> usize {
        self.capacity - self.permits.available_permits()
    }
}

/// What a sink has accumulated since its last batch.
#[derive(Default)]
struct Pending {
    samples: Vec<Sample>,
    bytes: usize,
    tickets: Vec<Arc<Ticket>>,
    permits: Vec<OwnedSemaphorePermit>,
    since: Option<Instant>,
}

impl Pending {
    fn add(&mut self, samples: Vec<Sample>) {
        if samples.is_empty() {
            return;
        }
        self.since.get_or_insert_with(Instant::now);
        self.bytes += samples.iter().map(batch::estimated_size).sum::<usize>();
        self.samples.extend(samples);
    }

    fn full(&self, config: &BatchConfig) -> bool {
        self.samples.len() >= config.max_events || self.bytes >= config.max_bytes
    }
}

struct Task {
    name: String,
    chain: Chain,
    publishers: Arc<Vec<Publisher>>,
    config: BatchConfig,
    stats: Arc<SinkStats>,
    abandon: CancellationToken,
    dead: DeadLetters,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Item>, closing: CancellationToken) {
        let mut pending = Pending::default();
        let timers = self
            .chain
            .transformers()
            .iter()
            .any(|t| t.name() == "aggregator");
        let mut tick = tokio::time::interval(TRANSFORMER_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            let deadline = pending.since.map(|at| at + self.config.timeout);
            tokio::select! {
                item = rx.recv() => match item {
                    Some(item) => self.take(item, &mut pending),
                    None => break,
                },
                () = closing.cancelled() => break,
                () = sleep_until(deadline), if deadline.is_some() => {
                    self.publish(std::mem::take(&mut pending)).await;
                    continue;
                }
                _ = tick.tick(), if timers => {
                    let out = self.chain.flush(chrono::Utc::now());
                    pending.add(out);
                }
            }
            if pending.full(&self.config) {
                self.publish(std::mem::take(&mut pending)).await;
            }
        }
        // Closing: take what was already submitted, let transformers emit what they hold,
        // publish the rest.
        rx.close();
        while let Ok(item) = rx.try_recv() {
            self.take(item, &mut pending);
            if pending.full(&self.config) {
                self.publish(std::mem::take(&mut pending)).await;
            }
        }
        let out = self.chain.flush(chrono::DateTime::<chrono::Utc>::MAX_UTC);
        pending.add(out);
        self.publish(pending).await;
        for t in self.chain.transformers() {
            let counters = t.counters();
            if counters.dropped() > 0 {
                tracing::info!(sink = %self.name, transformer = t.name(), ?counters, "samples dropped by a transformer");
            }
        }
    }

    /// Runs the transformers over a submission and adds the result to the batch.
    fn take(&mut self, item: Item, pending: &mut Pending) {
        let out = self.chain.process(item.samples);
        let dropped = self
            .chain
            .transformers()
            .iter()
            .map(|t| t.counters().dropped())
            .sum();
        self.stats
            .dropped_by_transformers
            .store(dropped, Ordering::Relaxed);
        if out.is_empty() && pending.samples.is_empty() {
            // Nothing to publish (a first sample of a rate, an aggregate still filling):
            // the submission is as safe as it will get.
            item.ticket.accept();
            return;
        }
        pending.add(out);
        pending.tickets.push(item.ticket);
        pending.permits.push(item.permit);
    }

    /// Hands a batch to every publisher until all of them took it, retrying only those that
    /// refused, with backoff; then accepts its submissions and frees its buffer space.
    async fn publish(&self, batch: Pending) {
        let mut todo: Vec<usize> = (0..self.publishers.len()).collect();
        let mut backoff = Backoff::default();
        while !batch.samples.is_empty() {
            let attempts = todo
                .iter()
                .map(|&i| self.publishers[i].publish(&batch.samples));
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
                            samples = batch.samples.len(),
                            %error,
                            "publisher refused a batch for good; dead-lettering it"
                        );
                        let reason = error.to_string();
                        let rejected = batch
                            .samples
                            .iter()
                            .map(|s| Rejected {
                                data: serde_json::to_string(s).unwrap_or_default(),
                                reason: reason.clone(),
                            })
                            .collect();
                        self.dead_letter(publisher, rejected).await;
                    }
                    Err(error) => {
                        floor = floor.max(error.retry_after());
                        tracing::warn!(
                            sink = %self.name,
                            publisher = %publisher.describe(),
                            samples = batch.samples.len(),
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
                    let total = self
                        .stats
                        .abandoned
                        .fetch_add(batch.samples.len() as u64, Ordering::Relaxed)
                        + batch.samples.len() as u64;
                    tracing::error!(
                        sink = %self.name,
                        samples = batch.samples.len(),
                        abandoned_total = total,
                        "stopping with a batch some publisher still refuses; it is not \
                         acknowledged (a bus redelivers it, the embedded mode loses it)"
                    );
                    return;
                }
            }
        }
        if !batch.samples.is_empty() {
            self.stats
                .published
                .fetch_add(batch.samples.len() as u64, Ordering::Relaxed);
            self.stats.batches.fetch_add(1, Ordering::Relaxed);
        }
        for ticket in &batch.tickets {
            ticket.accept();
        }
    }
}

impl Task {
    /// Keeps what a publisher refused for good in the dead-letter directory, and counts it.
    async fn dead_letter(&self, publisher: &Publisher, rejected: Vec<Rejected>) {
        if rejected.is_empty() {
            return;
        }
        let n = rejected.len() as u64;
        let total = self.stats.dead_lettered.fetch_add(n, Ordering::Relaxed) + n;
        let describe = publisher.describe();
        let written = self.dead.append(&self.name, &describe, &rejected).await;
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

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
