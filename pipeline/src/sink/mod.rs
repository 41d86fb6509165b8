//! Sinks at run time: each sink is a task that applies its transformers to samples, batches
//! samples and events together by count, size and time, hands each batch to its publishers
//! until all of them took it (retrying with backoff), and only then accepts the submissions the
//! batch holds. Events bypass the transformers.
//!
//! A sink whose publishers are all InfluxDB endpoints keeps up to `request_concurrency` batches
//! in flight (it encodes and sends the next while the server ingests the previous); batches
//! are still settled in the order they were made, so submissions are accepted in order.
//!
//! Submitting waits while the sink already holds `buffer_events` items (samples and events): a
//! sink that keeps failing slows its submitters down (backpressure) instead of dropping
//! anything.

mod batch;
mod publish;
mod stats;
mod ticket;

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use hb_sample::{Event, Sample};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use batch::{BatchConfig, DEFAULT_REQUEST_CONCURRENCY};
pub use stats::SinkStats;
pub use ticket::Receipt;
pub(crate) use ticket::Ticket;

use crate::dead_letter::DeadLetters;
use crate::publisher::{Batch, Publisher};
use crate::transform::Chain;
use publish::publish;

/// How often time-driven transformers (aggregator retention) are given a chance to emit.
const TRANSFORMER_TICK: Duration = Duration::from_secs(1);

/// Selects the resources whose transformer state a sink forgets.
pub type Stale = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// What a sink receives, in order.
enum Message {
    Submit(Item),
    /// Forget the transformer state of these resources (see [`Chain::forget`]).
    Forget(Stale),
}

/// One submission as a sink receives it.
struct Item {
    samples: Vec<Sample>,
    events: Vec<Event>,
    ticket: Arc<Ticket>,
    permit: OwnedSemaphorePermit,
}

/// The submitting side of a running sink.
#[derive(Debug)]
pub(crate) struct SinkHandle {
    pub(crate) name: String,
    tx: mpsc::UnboundedSender<Message>,
    permits: Arc<Semaphore>,
    capacity: usize,
    pub(crate) stats: Arc<SinkStats>,
    /// A transformer keeps state across the samples of a series.
    pub(crate) stateful: bool,
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
        let stateful = chain.transformers().iter().any(|t| t.is_stateful());
        let stats = Arc::new(SinkStats::default());
        let task = Task {
            chain,
            config,
            shared: Arc::new(Shared {
                name: name.clone(),
                publishers,
                stats: Arc::clone(&stats),
                abandon,
                dead,
                dead_writing: tokio::sync::Mutex::new(()),
            }),
        };
        let handle = tokio::spawn(task.run(rx, closing));
        let sink = Self {
            name,
            tx,
            permits: Arc::new(Semaphore::new(capacity)),
            capacity,
            stats,
            stateful,
        };
        (sink, handle)
    }

    /// Queues samples and events for this sink, waiting while it holds `buffer_events` items
    /// already.
    pub(crate) async fn submit(
        &self,
        samples: Vec<Sample>,
        events: Vec<Event>,
        ticket: Arc<Ticket>,
    ) -> Result<(), Closed> {
        let wanted = (samples.len() + events.len()).clamp(1, self.capacity) as u32;
        let permit = Arc::clone(&self.permits)
            .acquire_many_owned(wanted)
            .await
            .map_err(|_| Closed)?;
        self.tx
            .send(Message::Submit(Item {
                samples,
                events,
                ticket,
                permit,
            }))
            .map_err(|_| Closed)
    }

    /// Asks the sink to forget the transformer state of the resources `stale` selects, after
    /// the submissions queued before.
    pub(crate) fn forget(&self, stale: Stale) {
        let _ = self.tx.send(Message::Forget(stale));
    }

    /// The most items the sink holds (`buffer_events`).
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Items held by the sink (waiting for a batch or being published).
    pub(crate) fn held(&self) -> usize {
        self.capacity - self.permits.available_permits()
    }
}

/// What a sink has accumulated since its last batch.
#[derive(Default)]
struct Pending {
    batch: Batch,
    bytes: usize,
    tickets: Vec<Arc<Ticket>>,
    permits: Vec<OwnedSemaphorePermit>,
    since: Option<Instant>,
}

impl Pending {
    fn add(&mut self, samples: Vec<Sample>, events: Vec<Event>) {
        if samples.is_empty() && events.is_empty() {
            return;
        }
        self.since.get_or_insert_with(Instant::now);
        self.bytes += samples.iter().map(batch::estimated_size).sum::<usize>();
        self.bytes += events
            .iter()
            .map(batch::estimated_event_size)
            .sum::<usize>();
        self.batch.samples.extend(samples);
        self.batch.events.extend(events);
    }

    fn full(&self, config: &BatchConfig) -> bool {
        self.batch.len() >= config.max_events || self.bytes >= config.max_bytes
    }
}

/// What a sink's publishing needs, shared by the batches in flight.
struct Shared {
    name: String,
    publishers: Arc<Vec<Publisher>>,
    stats: Arc<SinkStats>,
    abandon: CancellationToken,
    dead: DeadLetters,
    /// Held while appending dead letters, so that batches in flight together never interleave
    /// their lines in the sink's file.
    dead_writing: tokio::sync::Mutex<()>,
}

/// A batch with its publishers: resolves to whether every publisher took it (`false`: the
/// sink was told to abandon it).
type Publishing = Pin<Box<dyn Future<Output = bool> + Send>>;

/// A batch with its publishers, with the submissions it settles.
#[derive(Default)]
struct Flight {
    tickets: Vec<Arc<Ticket>>,
    /// Its room in the sink's buffer, freed once it is settled.
    _permits: Vec<OwnedSemaphorePermit>,
}

/// The batches in flight, in the order they were started; settled in that order.
struct InFlight {
    limit: usize,
    publishing: FuturesOrdered<Publishing>,
    flights: VecDeque<Flight>,
}

impl InFlight {
    fn new(limit: usize) -> Self {
        Self {
            limit: limit.max(1),
            publishing: FuturesOrdered::new(),
            flights: VecDeque::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.flights.is_empty()
    }

    fn has_room(&self) -> bool {
        self.flights.len() < self.limit
    }

    /// Waits for the oldest batch and settles its submissions: accepted if it was published,
    /// dropped (not accepted) if it was abandoned.
    async fn settle_next(&mut self) {
        let published = self.publishing.next().await.unwrap_or(false);
        if let Some(flight) = self.flights.pop_front()
            && published
        {
            for ticket in &flight.tickets {
                ticket.accept();
            }
        }
    }

    async fn settle_all(&mut self) {
        while !self.is_empty() {
            self.settle_next().await;
        }
    }
}

struct Task {
    chain: Chain,
    config: BatchConfig,
    shared: Arc<Shared>,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Message>, closing: CancellationToken) {
        let mut pending = Pending::default();
        let timers = self
            .chain
            .transformers()
            .iter()
            .any(|t| t.name() == "aggregator");
        let mut tick = tokio::time::interval(TRANSFORMER_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let concurrent = self
            .shared
            .publishers
            .iter()
            .all(|p| matches!(p, Publisher::Influx(_)));
        let mut in_flight = InFlight::new(if concurrent {
            self.config.request_concurrency
        } else {
            1
        });
        loop {
            let deadline = pending.since.map(|at| at + self.config.timeout);
            let full = pending.full(&self.config);
            tokio::select! {
                () = in_flight.settle_next(), if !in_flight.is_empty() => {}
                message = rx.recv(), if !full => match message {
                    Some(message) => self.receive(message, &mut pending, &mut in_flight),
                    None => break,
                },
                () = closing.cancelled() => break,
                () = sleep_until(deadline), if deadline.is_some() && in_flight.has_room() => {
                    self.start(std::mem::take(&mut pending), &mut in_flight);
                }
                _ = tick.tick(), if timers => {
                    let out = self.chain.flush(chrono::Utc::now());
                    pending.add(out, Vec::new());
                }
            }
            if pending.full(&self.config) && in_flight.has_room() {
                self.start(std::mem::take(&mut pending), &mut in_flight);
            }
        }
        // Closing: take what was already submitted, let transformers emit what they hold,
        // publish the rest.
        rx.close();
        while let Ok(message) = rx.try_recv() {
            self.receive(message, &mut pending, &mut in_flight);
            if pending.full(&self.config) {
                self.start_when_room(std::mem::take(&mut pending), &mut in_flight)
                    .await;
            }
        }
        let out = self.chain.flush(chrono::DateTime::<chrono::Utc>::MAX_UTC);
        pending.add(out, Vec::new());
        self.start_when_room(pending, &mut in_flight).await;
        in_flight.settle_all().await;
        for t in self.chain.transformers() {
            let counters = t.counters();
            if counters.dropped() > 0 {
                tracing::info!(sink = %self.shared.name, transformer = t.name(), ?counters, "samples dropped by a transformer");
            }
        }
    }

    fn receive(&mut self, message: Message, pending: &mut Pending, in_flight: &mut InFlight) {
        match message {
            Message::Submit(item) => self.take(item, pending, in_flight),
            Message::Forget(stale) => {
                let out = self.chain.forget(&*stale);
                pending.add(out, Vec::new());
            }
        }
    }

    /// Runs the transformers over a submission's samples and adds the result, and its events,
    /// to the batch.
    fn take(&mut self, item: Item, pending: &mut Pending, in_flight: &mut InFlight) {
        let out = if item.samples.is_empty() {
            Vec::new()
        } else {
            self.chain.process(item.samples)
        };
        let dropped = self
            .chain
            .transformers()
            .iter()
            .map(|t| t.counters().dropped())
            .sum();
        self.shared
            .stats
            .dropped_by_transformers
            .store(dropped, Ordering::Relaxed);
        if out.is_empty() && item.events.is_empty() && pending.batch.is_empty() {
            // Nothing to publish (a first sample of a rate, an aggregate still filling): the
            // submission is as safe as it will get once the batches before it are published.
            match in_flight.flights.back_mut() {
                Some(last) => last.tickets.push(item.ticket),
                None => item.ticket.accept(),
            }
            return;
        }
        pending.add(out, item.events);
        pending.tickets.push(item.ticket);
        pending.permits.push(item.permit);
    }

    /// Starts publishing a batch (there is room in flight); an empty one settles its
    /// submissions along with the batches before it.
    fn start(&self, batch: Pending, in_flight: &mut InFlight) {
        if batch.batch.is_empty() {
            match in_flight.flights.back_mut() {
                Some(last) => last.tickets.extend(batch.tickets),
                None => batch.tickets.iter().for_each(|t| t.accept()),
            }
            return;
        }
        let flight = Flight {
            tickets: batch.tickets,
            _permits: batch.permits,
        };
        let shared = Arc::clone(&self.shared);
        in_flight
            .publishing
            .push_back(Box::pin(publish(shared, batch.batch)));
        in_flight.flights.push_back(flight);
    }

    /// Waits until a batch may start, then starts it.
    async fn start_when_room(&self, batch: Pending, in_flight: &mut InFlight) {
        while !in_flight.has_room() {
            in_flight.settle_next().await;
        }
        self.start(batch, in_flight);
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
