//! Routing: each sample goes to the sinks of every source whose meter filter selects it (at
//! most once per sink), each event to every event sink (`notifications.event_sinks`); each
//! sink runs as its own task (see [`crate::sink`]) and batches samples and events together.

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use futures_util::future::join_all;
use hb_sample::{Event, Sample};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::filter::MeterFilter;
use crate::publisher::PublishError;
use crate::sink::{Receipt, SinkHandle, SinkStats, Stale, Ticket};
use crate::transform::TransformError;

/// A running pipeline: routes plus one task per sink. Its topology (routes and sinks) is
/// replaced whole by [`Pipeline::apply`] (see [`crate::reload`]); each submission routes by
/// the topology of its moment.
#[derive(Debug)]
pub struct Pipeline {
    pub(crate) topology: RwLock<Arc<Topology>>,
    /// Retired sinks publishing what they had batched, then flushing their publishers (how
    /// many failed to flush).
    pub(crate) draining: Mutex<Vec<JoinHandle<usize>>>,
    pub(crate) closing: CancellationToken,
    pub(crate) abandon: CancellationToken,
    /// Held while a configuration is applied: one at a time.
    pub(crate) applying: Mutex<()>,
}

/// Routes and sinks of one configuration.
#[derive(Debug)]
pub(crate) struct Topology {
    pub(crate) routes: Vec<Route>,
    /// Indexes into `sinks` of the sinks every event goes to.
    pub(crate) event_sinks: Vec<usize>,
    pub(crate) sinks: Vec<Arc<SinkHandle>>,
}

#[derive(Debug)]
pub(crate) struct Route {
    pub(crate) filter: MeterFilter,
    pub(crate) sinks: Vec<usize>,
}

/// What became of one batch (of samples, or of events), once every sink answered.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// (item, sink) pairs that every publisher of the sink accepted.
    pub delivered: usize,
    /// (item, sink) pairs not accepted before the pipeline closed; already logged.
    pub failed: usize,
    /// Samples that no source selects; events when there is no event sink.
    pub unrouted: usize,
}

impl std::ops::AddAssign for Delivery {
    fn add_assign(&mut self, rhs: Self) {
        self.delivered += rhs.delivered;
        self.failed += rhs.failed;
        self.unrouted += rhs.unrouted;
    }
}

/// A submission (of samples, or of events) handed to the sinks.
#[derive(Debug)]
pub struct Submitted {
    /// Resolves when every sink the items went to has published them.
    pub receipt: Receipt,
    /// (item, sink) pairs handed to sinks.
    pub routed: usize,
    /// Samples that no source selects (logged at debug level, counted here); events when the
    /// configuration has no event sink.
    pub unrouted: usize,
}

/// Why the pipeline could not start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// A publisher that could not be opened.
    #[error("sink `{sink}`: cannot open publisher: {source}")]
    Publisher {
        /// The sink it belongs to.
        sink: String,
        /// What went wrong.
        #[source]
        source: PublishError,
    },
    /// The pipeline is shutting down: no configuration is applied any more.
    #[error("the pipeline is shutting down")]
    Closing,
    /// A transformer whose parameters do not hold (normally caught by config validation).
    #[error("sink `{sink}`: {source}")]
    Transformer {
        /// The sink it belongs to.
        sink: String,
        /// What went wrong.
        #[source]
        source: TransformError,
    },
}

impl Pipeline {
    /// Opens every publisher and starts one task per sink; call inside a Tokio runtime.
    pub fn open(config: &Config) -> Result<Self, OpenError> {
        let pipeline = Self {
            topology: RwLock::new(Arc::new(Topology {
                routes: Vec::new(),
                event_sinks: Vec::new(),
                sinks: Vec::new(),
            })),
            draining: Mutex::default(),
            closing: CancellationToken::new(),
            abandon: CancellationToken::new(),
            applying: Mutex::default(),
        };
        pipeline.apply(config, None)?;
        Ok(pipeline)
    }

    /// The topology submissions are routed by now.
    pub(crate) fn current(&self) -> Arc<Topology> {
        Arc::clone(&self.topology.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Routes samples and hands each sink its share, waiting while a sink is full
    /// (backpressure). The receipt says when all of them are published.
    pub async fn submit(&self, samples: Vec<Sample>) -> Submitted {
        let topology = self.current();
        let mut batches: Vec<Vec<Sample>> = topology.sinks.iter().map(|_| Vec::new()).collect();
        let mut wanted = vec![false; topology.sinks.len()];
        let mut unrouted = 0;
        for sample in samples {
            wanted.fill(false);
            for route in topology
                .routes
                .iter()
                .filter(|r| r.filter.matches(&sample.name))
            {
                for &sink in &route.sinks {
                    wanted[sink] = true;
                }
            }
            let targets: Vec<usize> = (0..wanted.len()).filter(|&i| wanted[i]).collect();
            let Some((&last, rest)) = targets.split_last() else {
                tracing::debug!(meter = %sample.name, "no source selects this meter; not published");
                unrouted += 1;
                continue;
            };
            for &sink in rest {
                batches[sink].push(sample.clone());
            }
            batches[last].push(sample);
        }
        let routed = batches.iter().map(Vec::len).sum();
        let shares = batches.into_iter().map(|b| (b, Vec::new())).collect();
        Submitted {
            receipt: self.hand_out(&topology, shares).await,
            routed,
            unrouted,
        }
    }

    /// Makes every sink forget the transformer state of the resources `stale` selects, after
    /// what was submitted before: their series are processed elsewhere from now on (a
    /// collector gave up their partition). An aggregator publishes their groups now.
    pub fn forget(&self, stale: Stale) {
        for sink in &self.current().sinks {
            let mut sink = Arc::clone(sink);
            // A sink retired meanwhile: its successor holds the state now.
            while !sink.forget(Arc::clone(&stale)) {
                match self.current().sinks.iter().find(|s| s.name == sink.name) {
                    Some(successor) if !Arc::ptr_eq(successor, &sink) => {
                        sink = Arc::clone(successor);
                    }
                    _ => break,
                }
            }
        }
    }

    /// The sinks a sample of `meter` reaches that have a transformer keeping state across
    /// the samples of a series (see [`crate::transform::Transformer::is_stateful`]).
    pub fn stateful_sinks_of(&self, meter: &str) -> Vec<String> {
        let topology = self.current();
        let mut names: Vec<String> = topology
            .routes
            .iter()
            .filter(|r| r.filter.matches(meter))
            .flat_map(|r| r.sinks.iter())
            .filter(|&&i| topology.sinks[i].stateful)
            .map(|&i| topology.sinks[i].name.clone())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Hands every event to every event sink, waiting while a sink is full (backpressure);
    /// transformers never see events. Without event sinks (or without a `notifications:`
    /// section) the events are accepted at once and counted as unrouted.
    pub async fn submit_events(&self, events: Vec<Event>) -> Submitted {
        let topology = self.current();
        if topology.event_sinks.is_empty() {
            if !events.is_empty() {
                tracing::debug!(
                    events = events.len(),
                    "no event sink is configured; events not published"
                );
            }
            return Submitted {
                receipt: Receipt::empty(),
                routed: 0,
                unrouted: events.len(),
            };
        }
        let routed = events.len() * topology.event_sinks.len();
        let mut shares: Vec<(Vec<Sample>, Vec<Event>)> =
            topology.sinks.iter().map(|_| Default::default()).collect();
        if !events.is_empty()
            && let Some((&last, rest)) = topology.event_sinks.split_last()
        {
            for &sink in rest {
                shares[sink].1.clone_from(&events);
            }
            shares[last].1 = events;
        }
        Submitted {
            receipt: self.hand_out(&topology, shares).await,
            routed,
            unrouted: 0,
        }
    }

    /// Gives each sink its share (samples, events) under one ticket; the receipt completes
    /// once every sink with a non-empty share published it. A share that meets a retired
    /// sink goes to the sink of that name in the topology of now (none: the sink was
    /// removed, and the share is done with).
    async fn hand_out(
        &self,
        topology: &Topology,
        shares: Vec<(Vec<Sample>, Vec<Event>)>,
    ) -> Receipt {
        let used = shares
            .iter()
            .filter(|(s, e)| !s.is_empty() || !e.is_empty())
            .count();
        if used == 0 {
            return Receipt::empty();
        }
        let (ticket, receipt) = Ticket::new(used);
        for (sink, (samples, events)) in topology.sinks.iter().zip(shares) {
            if samples.is_empty() && events.is_empty() {
                continue;
            }
            let mut sink = Arc::clone(sink);
            let mut share = (samples, events, Arc::clone(&ticket));
            while let Err(closed) = sink.submit(share.0, share.1, share.2).await {
                let now = self.current();
                match now.sinks.iter().find(|s| s.name == sink.name) {
                    Some(successor) if !Arc::ptr_eq(successor, &sink) => {
                        sink = Arc::clone(successor);
                        share = (closed.samples, closed.events, closed.ticket);
                    }
                    Some(_) => {
                        tracing::warn!(sink = %sink.name, "pipeline closed; submission not accepted");
                        break;
                    }
                    None => {
                        closed.ticket.accept();
                        break;
                    }
                }
            }
        }
        receipt
    }

    /// Submits and waits until every sink published the samples (or the pipeline closed).
    pub async fn publish(&self, samples: Vec<Sample>) -> Delivery {
        delivery(self.submit(samples).await).await
    }

    /// Submits events and waits until every event sink published them (or the pipeline
    /// closed).
    pub async fn publish_events(&self, events: Vec<Event>) -> Delivery {
        delivery(self.submit_events(events).await).await
    }

    /// Flushes every sink (transformers, batches), waits up to `grace` for publishers that
    /// still refuse, then syncs the publishers. Returns how many publishers failed to sync.
    /// A second call waits for nothing more (each task is awaited once) and syncs the
    /// publishers again.
    pub async fn close(&self, grace: Duration) -> usize {
        let topology = {
            // After this, `apply` refuses: no sink starts that this close would miss.
            let _no_apply = lock(&self.applying);
            self.closing.cancel();
            self.current()
        };
        let abandon = self.abandon.clone();
        let waiter = tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            abandon.cancel();
        });
        for task in topology.sinks.iter().filter_map(|s| s.take_task()) {
            if let Err(error) = task.await {
                tracing::error!(%error, "a sink task ended abnormally");
            }
        }
        let draining = std::mem::take(&mut *lock(&self.draining));
        let retired_failures: usize = join_all(draining)
            .await
            .into_iter()
            .map(|r| r.unwrap_or(0))
            .sum();
        waiter.abort();
        let failures: usize = join_all(topology.sinks.iter().map(|s| sync(s)))
            .await
            .into_iter()
            .sum();
        failures + retired_failures
    }

    /// The sink `name`: its counters, and how full its buffer is.
    pub fn sink(&self, name: &str) -> Option<(Arc<SinkStats>, Fill)> {
        let topology = self.current();
        let sink = topology.sinks.iter().find(|s| s.name == name)?;
        let fill = Fill {
            held: sink.held(),
            capacity: sink.capacity(),
        };
        Some((Arc::clone(&sink.stats), fill))
    }

    /// The sinks' names, in configuration order.
    pub fn sink_names(&self) -> Vec<String> {
        self.current()
            .sinks
            .iter()
            .map(|s| s.name.clone())
            .collect()
    }

    /// Per sink: its name, its counters and the items (samples and events) it holds now.
    pub fn sinks(&self) -> Vec<(String, Arc<SinkStats>, usize)> {
        self.current()
            .sinks
            .iter()
            .map(|s| (s.name.clone(), Arc::clone(&s.stats), s.held()))
            .collect()
    }
}

/// Syncs a sink's publishers; how many failed.
pub(crate) async fn sync(sink: &SinkHandle) -> usize {
    let flushes = sink.publishers.iter().map(|p| async move {
        let result = p.flush().await;
        if let Err(error) = &result {
            tracing::error!(sink = %sink.name, publisher = %p.describe(), %error, "flush failed");
        }
        usize::from(result.is_err())
    });
    join_all(flushes).await.into_iter().sum()
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How full a sink's buffer is: items (samples and events) held, of `buffer_events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fill {
    /// Items held now.
    pub held: usize,
    /// The most it holds (`batch.buffer_events`).
    pub capacity: usize,
}

/// Waits for a submission's receipt.
async fn delivery(submitted: Submitted) -> Delivery {
    let accepted = submitted.receipt.accepted().await;
    Delivery {
        delivered: if accepted { submitted.routed } else { 0 },
        failed: if accepted { 0 } else { submitted.routed },
        unrouted: submitted.unrouted,
    }
}
