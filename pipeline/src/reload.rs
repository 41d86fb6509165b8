//! Applying a configuration to a running pipeline, as a difference by sink name: an unchanged
//! sink keeps running untouched; a changed one (or one asked to reload) is replaced by a new
//! instance that takes over what the old one had queued, and its transformers' state when
//! the transformers are the same; a removed one stops; a new one starts. Everything that can
//! fail (opening publishers, building transformers) is done before anything changes, so a
//! refusal leaves the running pipeline as it was (rolled back).
//!
//! A replaced or removed sink retires: it takes no more submissions (those racing the swap
//! go to its successor), publishes what it had batched with its own publishers, and flushes
//! them. One still publishing after `management.drain_timeout` is logged and keeps trying: its
//! items are not abandoned while the process runs (the consumers do not hand a refused
//! message back to the bus before they stop), only by the shutdown's grace, as any sink's.
//! When a sink's publishers are unchanged, its new instance shares them with the old one, so
//! that one file is never written by two publishers (each rotating on its own).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::config::{Config, Sink};
use crate::dead_letter::DeadLetters;
use crate::publisher::Publisher;
use crate::router::{OpenError, Pipeline, Route, Topology, lock, sync};
use crate::sink::{Inheritance, SinkHandle, SinkStats, Spawn};
use crate::transform::Chain;

/// What applying a configuration did, by sink name, in configuration order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Sinks started.
    pub added: Vec<String>,
    /// Sinks replaced by a new instance (their configuration changed, or a reload asked it).
    pub replaced: Vec<String>,
    /// Sinks stopped for good.
    pub removed: Vec<String>,
    /// Sinks that kept running untouched.
    pub kept: Vec<String>,
}

/// One sink of the new configuration.
enum Plan<'a> {
    Keep(Arc<SinkHandle>),
    Start {
        config: &'a Sink,
        publishers: Arc<Vec<Publisher>>,
        chain: Chain,
        previous: Option<Arc<SinkHandle>>,
    },
}

impl Pipeline {
    /// Makes `config` the running configuration (its sinks, sources and event sinks);
    /// `reload` names a sink to replace even if its configuration is the same. On error
    /// nothing changed.
    pub fn apply(&self, config: &Config, reload: Option<&str>) -> Result<Applied, OpenError> {
        let _one_at_a_time = lock(&self.applying);
        if self.closing.is_cancelled() {
            return Err(OpenError::Closing);
        }
        let old = self.current();
        let mut plans = Vec::new();
        for sink in &config.sinks {
            let previous = old.sinks.iter().find(|s| s.name == sink.name);
            if let Some(previous) = previous
                && previous.config == *sink
                && reload != Some(sink.name.as_str())
            {
                plans.push(Plan::Keep(Arc::clone(previous)));
                continue;
            }
            let publishers = match previous {
                Some(previous) if previous.config.publishers == sink.publishers => {
                    Arc::clone(&previous.publishers)
                }
                _ => Arc::new(
                    sink.publishers
                        .iter()
                        .map(Publisher::open)
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|source| OpenError::Publisher {
                            sink: sink.name.clone(),
                            source,
                        })?,
                ),
            };
            let chain =
                Chain::new(&sink.transformers).map_err(|source| OpenError::Transformer {
                    sink: sink.name.clone(),
                    source,
                })?;
            plans.push(Plan::Start {
                config: sink,
                publishers,
                chain,
                previous: previous.cloned(),
            });
        }
        let mut applied = Applied::default();
        let mut retiring = Vec::new();
        let mut sinks = Vec::new();
        for plan in plans {
            let (config_of, publishers, chain, previous) = match plan {
                Plan::Keep(sink) => {
                    applied.kept.push(sink.name.clone());
                    sinks.push(sink);
                    continue;
                }
                Plan::Start {
                    config,
                    publishers,
                    chain,
                    previous,
                } => (config, publishers, chain, previous),
            };
            let (stats, inherit) = match previous {
                Some(previous) => {
                    let (tx, rx) = oneshot::channel();
                    let keep_state = previous.config.transformers == config_of.transformers;
                    applied.replaced.push(config_of.name.clone());
                    let stats = Arc::clone(&previous.stats);
                    retiring.push((previous, Some(tx), keep_state));
                    (stats, Some(rx))
                }
                None => {
                    applied.added.push(config_of.name.clone());
                    (Arc::new(SinkStats::default()), None)
                }
            };
            let spawn = Spawn {
                config: config_of.clone(),
                chain,
                publishers,
                dead: DeadLetters::new(&config.dead_letter_dir),
                stats,
                inherit,
            };
            sinks.push(Arc::new(SinkHandle::spawn(
                spawn,
                self.closing.child_token(),
                &self.abandon,
            )));
        }
        for sink in &old.sinks {
            if !config.sinks.iter().any(|s| s.name == sink.name) {
                applied.removed.push(sink.name.clone());
                retiring.push((Arc::clone(sink), None, false));
            }
        }
        let topology = Topology {
            routes: config
                .sources
                .iter()
                .map(|s| Route {
                    filter: s.meters.clone(),
                    sinks: s.sinks.clone(),
                })
                .collect(),
            event_sinks: config
                .notifications
                .as_ref()
                .map(|n| n.event_sinks.clone())
                .unwrap_or_default(),
            sinks,
        };
        // Swapped before the old sinks retire: a submission they turn away finds the new one.
        *self
            .topology
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(topology);
        for (sink, successor, keep_state) in retiring {
            self.retire(sink, successor, keep_state, config.management.drain_timeout);
        }
        Ok(applied)
    }

    /// Retires `sink` in the background (see the module doc).
    fn retire(
        &self,
        sink: Arc<SinkHandle>,
        successor: Option<oneshot::Sender<Inheritance>>,
        keep_state: bool,
        drain_timeout: Duration,
    ) {
        sink.stats.draining.fetch_add(1, Ordering::Relaxed);
        let task = sink.retire(successor, keep_state);
        let watcher = tokio::spawn(async move {
            if let Some(mut task) = task
                && tokio::time::timeout(drain_timeout, &mut task)
                    .await
                    .is_err()
            {
                tracing::warn!(
                    sink = %sink.name,
                    drain_timeout_s = drain_timeout.as_secs_f64(),
                    "a retired sink still publishes what it held after drain_timeout; it keeps \
                     trying (its messages stay unacknowledged until then)"
                );
                let _ = task.await;
            }
            let failed = sync(&sink).await;
            sink.stats.draining.fetch_sub(1, Ordering::Relaxed);
            tracing::info!(sink = %sink.name, "retired sink drained");
            failed
        });
        let mut draining = lock(&self.draining);
        draining.retain(|task| !task.is_finished());
        draining.push(watcher);
    }
}
