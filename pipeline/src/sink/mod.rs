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
mod flight;
mod handle;
mod publish;
mod stats;
mod ticket;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hb_sample::{Event, Sample};
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use batch::{BatchConfig, DEFAULT_REQUEST_CONCURRENCY};
use handle::Retire;
pub(crate) use handle::{Inheritance, SinkHandle, Spawn};
pub use stats::SinkStats;
pub use ticket::Receipt;
pub(crate) use ticket::Ticket;

use crate::dead_letter::DeadLetters;
use crate::publisher::Publisher;
use crate::transform::Chain;
use flight::{Flight, InFlight, Pending};
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

struct Task {
    chain: Chain,
    /// What the chain's transformers had dropped when last counted.
    dropped_seen: u64,
    config: BatchConfig,
    shared: Arc<Shared>,
}

/// A running sink's inputs.
struct Ends {
    rx: mpsc::UnboundedReceiver<Message>,
    closing: CancellationToken,
    retire: oneshot::Receiver<Retire>,
    inherit: Option<oneshot::Receiver<Inheritance>>,
}

impl Task {
    async fn run(mut self, ends: Ends) {
        let Ends {
            mut rx,
            closing,
            retire,
            inherit,
        } = ends;
        let mut pending = Pending::default();
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
        // What the instance this one replaces had queued comes first (a predecessor that
        // ended without handing over leaves nothing).
        if let Some(Ok(inheritance)) = match inherit {
            Some(inherit) => Some(inherit.await),
            None => None,
        } {
            if let Some(chain) = inheritance.chain {
                self.chain = chain;
                self.dropped_seen = self.dropped();
            }
            for message in inheritance.queued {
                self.receive(message, &mut pending, &mut in_flight);
                if pending.full(&self.config) {
                    self.start_when_room(std::mem::take(&mut pending), &mut in_flight)
                        .await;
                }
            }
        }
        let timers = self
            .chain
            .transformers()
            .iter()
            .any(|t| t.name() == "aggregator");
        let mut tick = tokio::time::interval(TRANSFORMER_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut retire = Some(retire);
        let mut leftover = Vec::new();
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
                asked = wait_for(&mut retire), if retire.is_some() => {
                    retire = None;
                    // Dropped without a word: the pipeline is going away; `closing` follows.
                    if let Ok(asked) = asked {
                        leftover = self.hand_over(asked, &mut rx);
                        break;
                    }
                }
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
        let queued = std::iter::from_fn(|| rx.try_recv().ok());
        for message in leftover.into_iter().chain(queued) {
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

    /// Retiring: no more submissions; what is queued (not transformed yet) goes to the
    /// successor, with the transformers when it keeps their state. What comes back (no
    /// successor: the sink is removed; or it is gone already) is published here, as at
    /// shutdown.
    fn hand_over(
        &mut self,
        asked: Retire,
        rx: &mut mpsc::UnboundedReceiver<Message>,
    ) -> Vec<Message> {
        rx.close();
        let Some(successor) = asked.successor else {
            return Vec::new();
        };
        let queued = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        let chain = asked.keep_state.then(|| std::mem::take(&mut self.chain));
        match successor.send(Inheritance { chain, queued }) {
            Ok(()) => Vec::new(),
            Err(back) => {
                if let Some(chain) = back.chain {
                    self.chain = chain;
                }
                back.queued
            }
        }
    }

    /// Samples the chain's transformers dropped so far.
    fn dropped(&self) -> u64 {
        self.chain
            .transformers()
            .iter()
            .map(|t| t.counters().dropped())
            .sum()
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
        // Added as a difference: the counter is shared by the sink's instances.
        let dropped = self.dropped();
        self.shared
            .stats
            .dropped_by_transformers
            .fetch_add(dropped.saturating_sub(self.dropped_seen), Ordering::Relaxed);
        self.dropped_seen = dropped;
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

/// The retirement notice, while one may still come.
async fn wait_for(
    retire: &mut Option<oneshot::Receiver<Retire>>,
) -> Result<Retire, oneshot::error::RecvError> {
    match retire {
        Some(rx) => rx.await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
