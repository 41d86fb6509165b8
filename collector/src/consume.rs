//! The consume loop: messages from the bus → decoded, verified envelopes (and notifications,
//! through their definitions) → the pipeline → acknowledgement once every sink published the
//! samples and events (DESIGN §4).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hb_bus::{Acker, Backoff, BusError, Consumer, Partition, Received, Transport};
use hb_pipeline::config::Coordination;
use hb_pipeline::{Pipeline, Receipt};
use hb_sample::{Limits, Secret};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::notify::Notifier;
use crate::partitions;
use crate::replays::{Key, Replays};
use crate::stats::{Stats, add};
use crate::worker::Worker;

/// A typical envelope's size (100 samples), in KiB: the least the byte window assumes a
/// message takes when it decides how many to ask for.
const TYPICAL_KIB: usize = 64;
/// How often progress is logged.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// Why the collector stopped before being asked to.
#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    /// The broker refused a declaration; retrying will not help.
    #[error("{0}")]
    Setup(BusError),
    /// The collectors' group cannot be joined (its backend URL was refused).
    #[error("{0}")]
    Coordination(hb_coordination::CoordinationError),
}

/// How long a graceful stop waits for sinks whose publishers still refuse their batches.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Consumes until `shutdown`, reconnecting after broker failures; then closes the pipeline
/// (flushing every sink) and acknowledges what the sinks accepted.
pub async fn run(
    transport: &Transport,
    coordination: Option<&Coordination>,
    pipeline: &Pipeline,
    secret: Option<&Secret>,
    notifier: Option<&Notifier>,
    shutdown: &CancellationToken,
    stats: &Arc<Stats>,
) -> Result<(), ConsumeError> {
    let prefetch = transport.common().map_or(100, |c| c.prefetch).max(1);
    let prefetch_kib = transport
        .common()
        .map_or(64 << 10, |c| c.prefetch_bytes / 1024)
        .clamp(1, u32::MAX as usize);
    let limits = transport.common().map_or(Limits::DEFAULT, |c| Limits {
        max_bytes: c.max_message_bytes,
        max_samples: c.max_samples_per_envelope,
    });
    let partitions = transport.common().map_or(1, |c| c.partitions);
    partitions::warn_unpartitioned(pipeline, notifier);
    let assigned = partitions::follow(transport, coordination, shutdown)
        .map_err(ConsumeError::Coordination)?;
    // Kept across reconnections but, in memory like transformer state, not for partitions
    // let go; shared by the collectors' group when there is a coordination backend.
    let replays = match secret {
        None => None,
        Some(_) => {
            let max_age = transport
                .common()
                .map_or(Duration::from_secs(7 * 86_400), |c| c.max_age);
            let replays = match partitions::backend(transport, coordination) {
                Some(backend) => {
                    Replays::shared(max_age, &backend).map_err(ConsumeError::Coordination)?
                }
                None => Replays::new(max_age),
            };
            tracing::info!(
                shared = replays.is_shared(),
                window = crate::replays::WINDOW,
                "replay protection on"
            );
            Some(Arc::new(replays))
        }
    };
    let mut backoff = Backoff::default();
    let mut last_report = Instant::now();
    while !shutdown.is_cancelled() {
        // The delay is reset only by progress (a message acknowledged on the connection), not
        // by connecting: a connection that breaks straight away again backs off all the same.
        let acked_before = stats.acked.load(std::sync::atomic::Ordering::Relaxed);
        let sources = notifier.map(|n| &n.sources);
        let mut consumer = match Consumer::connect_assigned(transport, sources, assigned.clone())
            .await
        {
            Ok(consumer) => {
                tracing::info!(transport = %transport, "consuming");
                stats.connected();
                consumer
            }
            Err(error) if !error.is_retryable() => return Err(ConsumeError::Setup(error)),
            Err(error) => {
                stats.disconnected(&error);
                let wait = backoff.next(None);
                tracing::warn!(%error, retry_in_ms = wait.as_millis() as u64, "cannot consume; retrying");
                sleep(wait, shutdown).await;
                continue;
            }
        };
        // Acknowledgements run beside receiving: a batch is acked when its receipt says every
        // sink published it, while the next batches are already being consumed.
        let acks = Acks {
            acker: consumer.acker(),
            tasks: JoinSet::new(),
            failed: Arc::default(),
            stats: Arc::clone(stats),
            replays: replays.clone(),
        };
        let window = Arc::new(Semaphore::new(prefetch));
        let bytes_window = Arc::new(Semaphore::new(prefetch_kib));
        // Until messages show their size, each is assumed as large as one may be.
        let mut largest_kib = (limits.max_bytes / 1024).max(TYPICAL_KIB);
        let mut worker = Worker {
            consumer: &mut consumer,
            acks,
            pipeline,
            secret,
            limits,
            replays: replays.as_deref(),
            notifier,
            stats,
        };
        let result = loop {
            if shutdown.is_cancelled() {
                break Ok(());
            }
            if let Some(error) = worker.acks.failure() {
                break Err(error);
            }
            if last_report.elapsed() >= REPORT_EVERY {
                worker.report();
                last_report = Instant::now();
            }
            worker.acks.reap();
            let held = prefetch - window.available_permits().min(prefetch);
            stats
                .pending
                .store(held as u64, std::sync::atomic::Ordering::Relaxed);
            // At most `prefetch` messages handed out and unacknowledged, on every transport
            // (RabbitMQ's basic.qos also bounds each consumed queue to `prefetch`): this bounds
            // memory and redeliveries after a crash.
            // And at most `prefetch_bytes` (in KiB) of payloads held undecoded, give or take the
            // last batch: no more
            // messages asked for than fit if each were as large as the largest one lately,
            // an estimate that halves with each batch of small ones (Redis's XREADGROUP takes
            // a count only; RabbitMQ pushes up to `prefetch` per queue whatever their size, so
            // there the bound is on what is held here).
            let room = match (window.acquire().await, bytes_window.acquire().await) {
                (Ok(_), Ok(_)) => window
                    .available_permits()
                    .min((bytes_window.available_permits() / largest_kib).max(1)),
                _ => break Ok(()),
            };
            let batch = match worker.consumer.recv(room).await {
                Ok(batch) => batch,
                Err(error) => break Err(error),
            };
            partitions::forget(
                pipeline,
                replays.as_deref(),
                partitions,
                &worker.consumer.released(),
            );
            // Never waits: recv returns at most `room` messages (capped all the same, so that a
            // transport returning more could never wait forever). The window is never closed.
            let taken = batch.len().min(prefetch) as u32;
            let kib: usize = batch.iter().map(|m| m.payload.len().div_ceil(1024)).sum();
            let batch_largest = batch.iter().map(|m| m.payload.len().div_ceil(1024)).max();
            largest_kib = batch_largest
                .unwrap_or(0)
                .max(largest_kib / 2)
                .max(TYPICAL_KIB);
            // Waits, when the batch is large, for earlier batches to be acknowledged.
            let kib = kib.clamp(1, prefetch_kib) as u32;
            let (Ok(messages), Ok(bytes)) = (
                window.clone().acquire_many_owned(taken).await,
                bytes_window.clone().acquire_many_owned(kib).await,
            ) else {
                break Ok(());
            };
            if !batch.is_empty()
                && let Err(error) = worker.handle(batch, Held { messages, bytes }).await
            {
                break Err(error);
            }
        };
        match result {
            Ok(()) => {
                // Flush every sink; receipts complete, their acknowledgements go out, and
                // only then does the consumer leave.
                let failed = pipeline.close(SHUTDOWN_GRACE).await;
                if failed > 0 {
                    tracing::error!(failed, "publishers failed to sync at shutdown");
                }
                let mut acks = worker.acks;
                acks.drain().await;
                consumer.close().await;
                return Ok(());
            }
            Err(error) => {
                stats.disconnected(&error);
                if stats.acked.load(std::sync::atomic::Ordering::Relaxed) > acked_before {
                    backoff.reset();
                }
                let wait = backoff.next(None);
                tracing::warn!(%error, retry_in_ms = wait.as_millis() as u64, "lost the bus; unacknowledged messages will be redelivered");
                let mut acks = worker.acks;
                acks.tasks.abort_all();
                acks.drain().await;
                // Let go of the broker now, not after the backoff: its partitions (RabbitMQ's
                // active consumer, Redis leases) go to the others meanwhile.
                consumer.close().await;
                // What was not acknowledged goes back to the broker, possibly to another
                // collector: nothing kept of any partition can be trusted any more.
                let all: Vec<Partition> = (0..partitions).collect();
                partitions::forget(pipeline, replays.as_deref(), partitions, &all);
                sleep(wait, shutdown).await;
            }
        }
    }
    Ok(())
}

/// A batch's room in the windows: its messages until they are acknowledged, its KiB until
/// its payloads are dropped (once decoded: what the sinks then hold of it they bound
/// themselves). Only dropped: that returns the permits.
pub(crate) struct Held {
    pub(crate) messages: OwnedSemaphorePermit,
    pub(crate) bytes: OwnedSemaphorePermit,
}

/// Acknowledgement tasks of one consumer connection.
pub(crate) struct Acks {
    acker: Acker,
    tasks: JoinSet<()>,
    /// The error of an acknowledgement that failed: the connection is gone; reconnect.
    failed: Arc<Mutex<Option<BusError>>>,
    stats: Arc<Stats>,
    replays: Option<Arc<Replays>>,
}

impl Acks {
    /// Acknowledges `messages` once every receipt says every sink published what they held,
    /// then records the envelopes' sequence numbers (`marks`) as acknowledged.
    /// `held` is the batch's room in the windows: its bytes are freed here, its messages once
    /// they are acknowledged.
    pub(crate) fn after(
        &mut self,
        receipts: [Receipt; 2],
        mut messages: Vec<Received>,
        held: Held,
        marks: Vec<(Key, u64)>,
    ) {
        for m in &mut messages {
            // Only the token is needed from here on.
            m.payload = Vec::new();
        }
        // The payloads are gone: the next messages may come (on RabbitMQ, where the broker
        // pushes up to basic.qos deliveries whatever their size, the client holds them until
        // they are taken, so holding the window longer would only keep them in memory longer).
        let Held {
            messages: held,
            bytes,
        } = held;
        drop(bytes);
        let (acker, failed, stats, replays) = (
            self.acker.clone(),
            Arc::clone(&self.failed),
            Arc::clone(&self.stats),
            self.replays.clone(),
        );
        self.tasks.spawn(async move {
            let _held = held;
            let [samples, events] = receipts;
            if !samples.accepted().await || !events.accepted().await {
                // The pipeline closed first: left unacknowledged, the broker redelivers.
                return;
            }
            match acker.ack(&messages).await {
                Ok(()) => {
                    add(&stats.acked, messages.len() as u64);
                    if let Some(replays) = replays {
                        replays.acknowledged(marks).await;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, messages = messages.len(), "acknowledgement failed; the broker will redeliver");
                    *failed.lock().unwrap_or_else(PoisonError::into_inner) = Some(error);
                }
            }
        });
    }

    fn failure(&self) -> Option<BusError> {
        self.failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Forgets finished tasks.
    fn reap(&mut self) {
        while self.tasks.try_join_next().is_some() {}
    }

    async fn drain(&mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Sleeps `wait`, or until `shutdown`.
async fn sleep(wait: Duration, shutdown: &CancellationToken) {
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = tokio::time::sleep(wait) => {}
    }
}
