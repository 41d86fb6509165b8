//! The consume loop: messages from the bus → decoded, verified envelopes (and notifications,
//! through their definitions) → the pipeline → acknowledgement once every sink published the
//! samples and events (DESIGN §4).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hb_bus::{Acker, Backoff, BusError, Consumer, Partition, Received, Topic, Transport};
use hb_pipeline::config::Coordination;
use hb_pipeline::{Pipeline, Receipt};
use hb_sample::{Body, Envelope, EnvelopeError, Secret, envelope::claimed_producer};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::decode::decode_all;
use crate::notify::Notifier;
use crate::partitions;
use crate::stats::{Stats, add};

/// Attempts at writing one dead letter before the message is dropped (see
/// [`Worker::dead_letter`]).
const DEAD_LETTER_ATTEMPTS: u32 = 3;
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
    let partitions = transport.common().map_or(1, |c| c.partitions);
    partitions::warn_unpartitioned(pipeline, notifier);
    let assigned = partitions::follow(transport, coordination, shutdown)
        .map_err(ConsumeError::Coordination)?;
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
                consumer
            }
            Err(error) if !error.is_retryable() => return Err(ConsumeError::Setup(error)),
            Err(error) => {
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
        };
        let window = Arc::new(Semaphore::new(prefetch));
        let mut worker = Worker {
            consumer: &mut consumer,
            acks,
            pipeline,
            secret,
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
            // At most `prefetch` messages handed out and unacknowledged, on every transport
            // (RabbitMQ's basic.qos also bounds each consumed queue to `prefetch`): this bounds
            // memory and redeliveries after a crash.
            let room = match window.clone().acquire_many_owned(1).await {
                Ok(permit) => {
                    drop(permit);
                    window.available_permits()
                }
                Err(_) => break Ok(()),
            };
            let batch = match worker.consumer.recv(room).await {
                Ok(batch) => batch,
                Err(error) => break Err(error),
            };
            partitions::forget(pipeline, partitions, &worker.consumer.released());
            // Never waits: recv returns at most `room` messages (capped all the same, so that a
            // transport returning more could never wait forever). The window is never closed.
            let taken = batch.len().min(prefetch) as u32;
            let Ok(held) = window.clone().acquire_many_owned(taken).await else {
                break Ok(());
            };
            if !batch.is_empty() {
                worker.handle(batch, held).await;
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
                partitions::forget(pipeline, partitions, &all);
                sleep(wait, shutdown).await;
            }
        }
    }
    Ok(())
}

/// Acknowledgement tasks of one consumer connection.
struct Acks {
    acker: Acker,
    tasks: JoinSet<()>,
    /// The error of an acknowledgement that failed: the connection is gone; reconnect.
    failed: Arc<Mutex<Option<BusError>>>,
    stats: Arc<Stats>,
}

impl Acks {
    /// Acknowledges `messages` once every receipt says every sink published what they held.
    /// `held` is the messages' room in the unacknowledged window, freed once they are done.
    fn after(
        &mut self,
        receipts: [Receipt; 2],
        mut messages: Vec<Received>,
        held: OwnedSemaphorePermit,
    ) {
        for m in &mut messages {
            // Only the token is needed from here on.
            m.payload = Vec::new();
        }
        let (acker, failed, stats) = (
            self.acker.clone(),
            Arc::clone(&self.failed),
            Arc::clone(&self.stats),
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

struct Worker<'a> {
    consumer: &'a mut Consumer,
    acks: Acks,
    pipeline: &'a Pipeline,
    secret: Option<&'a Secret>,
    notifier: Option<&'a Notifier>,
    stats: &'a Stats,
}

impl Worker<'_> {
    /// Decodes a batch and hands its samples to the pipeline (waiting while a sink is full);
    /// the batch is acknowledged once every sink published them.
    async fn handle(&mut self, batch: Vec<Received>, held: OwnedSemaphorePermit) {
        add(&self.stats.messages, batch.len() as u64);
        let (ours, theirs): (Vec<_>, Vec<_>) =
            batch.iter().partition(|m| m.topic != Topic::Notifications);
        let mut samples = self.decode(&ours).await;
        let mut events = Vec::new();
        self.notifications(&theirs, &mut samples, &mut events).await;
        let n = samples.len() as u64;
        let submitted = self.pipeline.submit(samples).await;
        add(&self.stats.samples, n);
        add(&self.stats.unrouted, submitted.unrouted as u64);
        let published = self.pipeline.submit_events(events).await;
        add(&self.stats.unrouted_events, published.unrouted as u64);
        self.acks
            .after([submitted.receipt, published.receipt], batch, held);
    }

    fn report(&self) {
        self.stats.report("collector progress");
        for (sink, stats, held) in self.pipeline.sinks() {
            stats.report(sink, held);
        }
    }

    /// Notifications through the definitions: their samples and events are added; a
    /// notification that cannot be decoded is dead-lettered with the reason.
    async fn notifications(
        &mut self,
        messages: &[&Received],
        samples: &mut Vec<hb_sample::Sample>,
        events: &mut Vec<hb_sample::Event>,
    ) {
        let Some(notifier) = self.notifier else {
            return;
        };
        for message in messages {
            match hb_notification::Notification::decode(&message.payload) {
                Ok(n) => notifier.convert(&n, samples, events, self.stats),
                Err(error) => {
                    let reason = format!("notification refused: {error}");
                    self.dead_letter(message, reason).await;
                }
            }
        }
    }

    /// The samples of every valid envelope; heartbeats are logged, refused envelopes counted
    /// and undecodable messages dead-lettered.
    async fn decode(&mut self, batch: &[&Received]) -> Vec<hb_sample::Sample> {
        let mut samples = Vec::new();
        for (message, decoded) in batch.iter().zip(decode_all(batch, self.secret).await) {
            match decoded {
                Ok(Envelope {
                    body: Body::Samples(s),
                    ..
                }) => samples.extend(s),
                Ok(envelope) => self.heartbeat(message.topic, &envelope),
                Err(error) => self.refuse(message, error).await,
            }
        }
        samples
    }

    fn heartbeat(&mut self, topic: Topic, envelope: &Envelope) {
        if let Body::Heartbeat(h) = &envelope.body {
            add(&self.stats.heartbeats, 1);
            let failing: Vec<&str> = h
                .pollsters
                .iter()
                .filter(|p| p.failures_in_a_row > 0)
                .map(|p| p.name.as_str())
                .collect();
            tracing::info!(
                host = %envelope.producer.host,
                agent_id = %envelope.producer.agent_id,
                version = %h.version,
                uptime_s = h.uptime_s,
                pollsters = h.pollsters.len(),
                failing = %failing.join(","),
                spooled = h.spooled,
                "heartbeat"
            );
        } else {
            tracing::warn!(
                topic = topic.suffix(),
                "unexpected envelope kind on this stream"
            );
        }
    }

    async fn refuse(&mut self, message: &Received, error: EnvelopeError) {
        match error {
            EnvelopeError::MissingSignature | EnvelopeError::BadSignature => {
                let total = add(&self.stats.refused, 1);
                let producer = claimed_producer(&message.payload);
                tracing::warn!(
                    message_id = %message.id,
                    claimed_host = producer.as_ref().map_or("?", |p| p.host.as_str()),
                    claimed_agent = producer.as_ref().map_or("?", |p| p.agent_id.as_str()),
                    %error,
                    refused_total = total,
                    "envelope refused and dropped"
                );
            }
            EnvelopeError::Malformed(_) | EnvelopeError::UnsupportedVersion { .. } => {
                self.dead_letter(message, error.to_string()).await;
            }
        }
    }

    /// Sends an undecodable message to the dead-letter destination (it is acknowledged with
    /// its batch), counted and logged.
    ///
    /// When the destination keeps refusing it ([`DEAD_LETTER_ATTEMPTS`] attempts, with
    /// backoff) the message is acknowledged all the same and so dropped: counted in
    /// `dead_letter_failures` and logged at error level with its id, size and both reasons.
    /// Tearing the connection down instead would bring the same message back first, forever,
    /// and nothing else would be consumed. If the bus itself is gone, the acknowledgement
    /// fails too and the message is redelivered after the reconnection, as any other.
    async fn dead_letter(&mut self, message: &Received, reason: String) {
        let mut backoff = Backoff::default();
        let mut attempt = 1;
        let error = loop {
            match self.consumer.dead_letter(message, &reason).await {
                Ok(()) => {
                    let total = add(&self.stats.dead_lettered, 1);
                    tracing::warn!(
                        message_id = %message.id,
                        topic = message.topic.suffix(),
                        %reason,
                        dead_lettered_total = total,
                        "undecodable message dead-lettered"
                    );
                    return;
                }
                Err(error) if attempt >= DEAD_LETTER_ATTEMPTS => break error,
                Err(_) => {
                    attempt += 1;
                    tokio::time::sleep(backoff.next(None)).await;
                }
            }
        };
        let total = add(&self.stats.dead_letter_failures, 1);
        tracing::error!(
            message_id = %message.id,
            topic = message.topic.suffix(),
            bytes = message.payload.len(),
            %reason,
            dead_letter_error = %error,
            attempts = DEAD_LETTER_ATTEMPTS,
            dead_letter_failures_total = total,
            "undecodable message could not be dead-lettered; dropped"
        );
    }
}

/// Sleeps `wait`, or until `shutdown`.
async fn sleep(wait: Duration, shutdown: &CancellationToken) {
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = tokio::time::sleep(wait) => {}
    }
}
