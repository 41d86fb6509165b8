//! The submitting side of a running sink: submissions with backpressure, and retirement
//! (a reload hands the sink's queue, and maybe its transformers, to its successor).

use std::sync::{Arc, Mutex};

use hb_sample::{Event, Sample};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Ends, Item, Message, Shared, SinkStats, Stale, Task, Ticket};
use crate::config::Sink;
use crate::dead_letter::DeadLetters;
use crate::publisher::Publisher;
use crate::router::lock;
use crate::transform::Chain;

/// The submitting side of a running sink.
#[derive(Debug)]
pub(crate) struct SinkHandle {
    pub(crate) name: String,
    /// What it was built from.
    pub(crate) config: Sink,
    pub(crate) publishers: Arc<Vec<Publisher>>,
    tx: mpsc::UnboundedSender<Message>,
    permits: Arc<Semaphore>,
    capacity: usize,
    pub(crate) stats: Arc<SinkStats>,
    /// A transformer keeps state across the samples of a series.
    pub(crate) stateful: bool,
    retire: Mutex<Option<oneshot::Sender<Retire>>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// The sink is shut down (or retired: the caller submits to its successor instead); the
/// submission comes back.
#[derive(Debug)]
pub(crate) struct Closed {
    pub(crate) samples: Vec<Sample>,
    pub(crate) events: Vec<Event>,
    pub(crate) ticket: Arc<Ticket>,
}

/// Asks a running sink to stop taking work: what it queued and has not transformed yet goes
/// to its successor, with its transformers (and their state) when `keep_state`; what it has
/// batched already it publishes itself.
pub(super) struct Retire {
    pub(super) successor: Option<oneshot::Sender<Inheritance>>,
    pub(super) keep_state: bool,
}

impl std::fmt::Debug for Retire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retire")
            .field("keep_state", &self.keep_state)
            .finish_non_exhaustive()
    }
}

/// What a retiring sink hands its successor.
pub(crate) struct Inheritance {
    pub(super) chain: Option<Chain>,
    pub(super) queued: Vec<Message>,
}

/// How a sink starts: what it is, where its items go, and what it inherits.
pub(crate) struct Spawn {
    pub(crate) config: Sink,
    pub(crate) chain: Chain,
    pub(crate) publishers: Arc<Vec<Publisher>>,
    pub(crate) dead: DeadLetters,
    /// Kept across the instances of a sink of one name.
    pub(crate) stats: Arc<SinkStats>,
    /// What the instance it replaces hands over, before it takes anything else.
    pub(crate) inherit: Option<oneshot::Receiver<Inheritance>>,
}

impl SinkHandle {
    /// Starts the sink's task. `closing` asks it to flush and stop; `abandon` stops retries.
    pub(crate) fn spawn(
        spawn: Spawn,
        closing: CancellationToken,
        abandon: &CancellationToken,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let (retire_tx, retire_rx) = oneshot::channel();
        let config = spawn.config;
        let capacity = config.batch.buffer_events.max(1);
        let stateful = spawn.chain.transformers().iter().any(|t| t.is_stateful());
        let task = Task {
            dropped_seen: 0,
            chain: spawn.chain,
            config: config.batch,
            shared: Arc::new(Shared {
                name: config.name.clone(),
                publishers: Arc::clone(&spawn.publishers),
                stats: Arc::clone(&spawn.stats),
                abandon: abandon.clone(),
                dead: spawn.dead,
                dead_writing: tokio::sync::Mutex::new(()),
            }),
        };
        let ends = Ends {
            rx,
            closing,
            retire: retire_rx,
            inherit: spawn.inherit,
        };
        let handle = tokio::spawn(task.run(ends));
        Self {
            name: config.name.clone(),
            config,
            publishers: spawn.publishers,
            tx,
            permits: Arc::new(Semaphore::new(capacity)),
            capacity,
            stats: spawn.stats,
            stateful,
            retire: Mutex::new(Some(retire_tx)),
            task: Mutex::new(Some(handle)),
        }
    }

    /// Stops taking submissions (those waiting for room get [`Closed`] and go to the
    /// successor); hands what is queued to `successor` (see [`Retire`]) and publishes what
    /// is batched. The task, to await, if it was not taken already.
    pub(crate) fn retire(
        &self,
        successor: Option<oneshot::Sender<Inheritance>>,
        keep_state: bool,
    ) -> Option<JoinHandle<()>> {
        self.permits.close();
        let retire = lock(&self.retire).take();
        if let Some(retire) = retire {
            let _ = retire.send(Retire {
                successor,
                keep_state,
            });
        }
        self.take_task()
    }

    /// The sink's task, once (to await at shutdown or retirement).
    pub(crate) fn take_task(&self) -> Option<JoinHandle<()>> {
        lock(&self.task).take()
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
        let Ok(permit) = Arc::clone(&self.permits).acquire_many_owned(wanted).await else {
            return Err(Closed {
                samples,
                events,
                ticket,
            });
        };
        let item = Item {
            samples,
            events,
            ticket: Arc::clone(&ticket),
            permit,
        };
        self.tx
            .send(Message::Submit(item))
            .map_err(|back| match back.0 {
                Message::Submit(item) => Closed {
                    samples: item.samples,
                    events: item.events,
                    ticket: item.ticket,
                },
                // Not what was sent: nothing to give back but the ticket.
                Message::Forget(_) => Closed {
                    samples: Vec::new(),
                    events: Vec::new(),
                    ticket,
                },
            })
    }

    /// Asks the sink to forget the transformer state of the resources `stale` selects, after
    /// the submissions queued before.
    /// False when the sink is retired already (ask its successor).
    pub(crate) fn forget(&self, stale: Stale) -> bool {
        self.tx.send(Message::Forget(stale)).is_ok()
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
