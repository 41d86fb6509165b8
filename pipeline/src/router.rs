//! Routing: each sample goes to the sinks of every source whose meter filter selects it (at
//! most once per sink), each event to every event sink (`notifications.event_sinks`); each
//! sink runs as its own task (see [`crate::sink`]) and batches samples and events together.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::future::join_all;
use hb_sample::{Event, Sample};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::dead_letter::DeadLetters;
use crate::filter::MeterFilter;
use crate::publisher::{PublishError, Publisher};
use crate::sink::{Receipt, SinkHandle, SinkStats, Stale, Ticket};
use crate::transform::{Chain, TransformError};

/// A running pipeline: routes plus one task per sink.
#[derive(Debug)]
pub struct Pipeline {
    routes: Vec<Route>,
    /// Indexes into `sinks` of the sinks every event goes to.
    event_sinks: Vec<usize>,
    sinks: Vec<SinkHandle>,
    publishers: Vec<Arc<Vec<Publisher>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    closing: CancellationToken,
    abandon: CancellationToken,
}

#[derive(Debug)]
struct Route {
    filter: MeterFilter,
    sinks: Vec<usize>,
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
        let (closing, abandon) = (CancellationToken::new(), CancellationToken::new());
        let mut sinks = Vec::new();
        let mut publishers = Vec::new();
        let mut tasks = Vec::new();
        for sink in &config.sinks {
            let opened = sink
                .publishers
                .iter()
                .map(Publisher::open)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|source| OpenError::Publisher {
                    sink: sink.name.clone(),
                    source,
                })?;
            let chain =
                Chain::new(&sink.transformers).map_err(|source| OpenError::Transformer {
                    sink: sink.name.clone(),
                    source,
                })?;
            let opened = Arc::new(opened);
            let (handle, task) = SinkHandle::spawn(
                sink.name.clone(),
                chain,
                Arc::clone(&opened),
                sink.batch,
                DeadLetters::new(&config.dead_letter_dir),
                closing.clone(),
                abandon.clone(),
            );
            sinks.push(handle);
            publishers.push(opened);
            tasks.push(task);
        }
        let routes = config
            .sources
            .iter()
            .map(|s| Route {
                filter: s.meters.clone(),
                sinks: s.sinks.clone(),
            })
            .collect();
        let event_sinks = config
            .notifications
            .as_ref()
            .map(|n| n.event_sinks.clone())
            .unwrap_or_default();
        Ok(Self {
            routes,
            event_sinks,
            sinks,
            publishers,
            tasks: Mutex::new(tasks),
            closing,
            abandon,
        })
    }

    /// Routes samples and hands each sink its share, waiting while a sink is full
    /// (backpressure). The receipt says when all of them are published.
    pub async fn submit(&self, samples: Vec<Sample>) -> Submitted {
        let mut batches: Vec<Vec<Sample>> = self.sinks.iter().map(|_| Vec::new()).collect();
        let mut wanted = vec![false; self.sinks.len()];
        let mut unrouted = 0;
        for sample in samples {
            wanted.fill(false);
            for route in self
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
            receipt: self.hand_out(shares).await,
            routed,
            unrouted,
        }
    }

    /// Makes every sink forget the transformer state of the resources `stale` selects, after
    /// what was submitted before: their series are processed elsewhere from now on (a
    /// collector gave up their partition). An aggregator publishes their groups now.
    pub fn forget(&self, stale: Stale) {
        for sink in &self.sinks {
            sink.forget(Arc::clone(&stale));
        }
    }

    /// The sinks a sample of `meter` reaches that have a transformer keeping state across
    /// the samples of a series (see [`crate::transform::Transformer::is_stateful`]).
    pub fn stateful_sinks_of(&self, meter: &str) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .routes
            .iter()
            .filter(|r| r.filter.matches(meter))
            .flat_map(|r| r.sinks.iter())
            .filter(|&&i| self.sinks[i].stateful)
            .map(|&i| self.sinks[i].name.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Hands every event to every event sink, waiting while a sink is full (backpressure);
    /// transformers never see events. Without event sinks (or without a `notifications:`
    /// section) the events are accepted at once and counted as unrouted.
    pub async fn submit_events(&self, events: Vec<Event>) -> Submitted {
        if self.event_sinks.is_empty() {
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
        let routed = events.len() * self.event_sinks.len();
        let mut shares: Vec<(Vec<Sample>, Vec<Event>)> =
            self.sinks.iter().map(|_| Default::default()).collect();
        if !events.is_empty()
            && let Some((&last, rest)) = self.event_sinks.split_last()
        {
            for &sink in rest {
                shares[sink].1.clone_from(&events);
            }
            shares[last].1 = events;
        }
        Submitted {
            receipt: self.hand_out(shares).await,
            routed,
            unrouted: 0,
        }
    }

    /// Gives each sink its share (samples, events) under one ticket; the receipt completes
    /// once every sink with a non-empty share published it.
    async fn hand_out(&self, shares: Vec<(Vec<Sample>, Vec<Event>)>) -> Receipt {
        let used = shares
            .iter()
            .filter(|(s, e)| !s.is_empty() || !e.is_empty())
            .count();
        if used == 0 {
            return Receipt::empty();
        }
        let (ticket, receipt) = Ticket::new(used);
        for (sink, (samples, events)) in self.sinks.iter().zip(shares) {
            if (samples.is_empty() && events.is_empty())
                || sink
                    .submit(samples, events, Arc::clone(&ticket))
                    .await
                    .is_ok()
            {
                continue;
            }
            tracing::warn!(sink = %sink.name, "pipeline closed; submission not accepted");
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
    pub async fn close(&self, grace: Duration) -> usize {
        self.closing.cancel();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        let abandon = self.abandon.clone();
        let waiter = tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            abandon.cancel();
        });
        for task in tasks {
            if let Err(error) = task.await {
                tracing::error!(%error, "a sink task ended abnormally");
            }
        }
        waiter.abort();
        self.sync().await
    }

    async fn sync(&self) -> usize {
        let flushes = self.sinks.iter().zip(&self.publishers).flat_map(|(sink, ps)| {
            ps.iter().map(move |p| async move {
                let result = p.flush().await;
                if let Err(error) = &result {
                    tracing::error!(sink = %sink.name, publisher = %p.describe(), %error, "flush failed");
                }
                result.is_err()
            })
        });
        join_all(flushes)
            .await
            .into_iter()
            .filter(|failed| *failed)
            .count()
    }

    /// The sink `name`: its counters, and how full its buffer is.
    pub fn sink(&self, name: &str) -> Option<(&SinkStats, Fill)> {
        let sink = self.sinks.iter().find(|s| s.name == name)?;
        let fill = Fill {
            held: sink.held(),
            capacity: sink.capacity(),
        };
        Some((&*sink.stats, fill))
    }

    /// The sinks' names, in configuration order.
    pub fn sink_names(&self) -> impl Iterator<Item = &str> {
        self.sinks.iter().map(|s| s.name.as_str())
    }

    /// Per sink: its name, its counters and the items (samples and events) it holds now.
    pub fn sinks(&self) -> impl Iterator<Item = (&str, &SinkStats, usize)> {
        self.sinks
            .iter()
            .map(|s| (s.name.as_str(), &*s.stats, s.held()))
    }
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
