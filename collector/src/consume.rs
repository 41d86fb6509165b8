//! The consume loop: messages from the bus → decoded, verified envelopes → the pipeline →
//! acknowledgement once every publisher accepted the samples (DESIGN §4).

use std::time::{Duration, Instant};

use hb_bus::{BusError, Consumer, Received, Topic, Transport};
use hb_pipeline::Pipeline;
use hb_sample::{Body, Envelope, EnvelopeError, Secret, envelope::claimed_producer};
use tokio_util::sync::CancellationToken;

use crate::stats::{Stats, add};

/// Longest wait between reconnection or publish attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often progress is logged.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// Why the collector stopped before being asked to.
#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    /// The broker refused a declaration; retrying will not help.
    #[error("{0}")]
    Setup(BusError),
}

/// Consumes until `shutdown`, reconnecting after broker failures.
pub async fn run(
    transport: &Transport,
    pipeline: &Pipeline,
    secret: Option<&Secret>,
    shutdown: &CancellationToken,
    stats: &Stats,
) -> Result<(), ConsumeError> {
    let prefetch = transport.common().map_or(100, |c| c.prefetch);
    let mut backoff = Backoff::default();
    let mut last_report = Instant::now();
    while !shutdown.is_cancelled() {
        let mut consumer = match Consumer::connect(transport).await {
            Ok(consumer) => {
                tracing::info!(transport = %transport, "consuming");
                backoff.reset();
                consumer
            }
            Err(error) if !error.is_retryable() => return Err(ConsumeError::Setup(error)),
            Err(error) => {
                tracing::warn!(%error, retry_in_s = backoff.peek().as_secs(), "cannot consume; retrying");
                backoff.wait(shutdown).await;
                continue;
            }
        };
        let mut worker = Worker {
            consumer: &mut consumer,
            pipeline,
            secret,
            stats,
        };
        let result = loop {
            if shutdown.is_cancelled() {
                break Ok(());
            }
            if last_report.elapsed() >= REPORT_EVERY {
                worker.stats.report("collector progress");
                last_report = Instant::now();
            }
            let batch = match worker.consumer.recv(prefetch).await {
                Ok(batch) => batch,
                Err(error) => break Err(error),
            };
            if !batch.is_empty()
                && let Err(error) = worker.handle(batch, shutdown).await
            {
                break Err(error);
            }
        };
        match result {
            Ok(()) => {
                consumer.close().await;
                return Ok(());
            }
            Err(error) => {
                tracing::warn!(%error, "lost the bus; unacknowledged messages will be redelivered");
                backoff.wait(shutdown).await;
            }
        }
    }
    Ok(())
}

struct Worker<'a> {
    consumer: &'a mut Consumer,
    pipeline: &'a Pipeline,
    secret: Option<&'a Secret>,
    stats: &'a Stats,
}

impl Worker<'_> {
    /// Decodes a batch, publishes its samples until every publisher took them, then acks.
    async fn handle(
        &mut self,
        batch: Vec<Received>,
        shutdown: &CancellationToken,
    ) -> Result<(), BusError> {
        add(&self.stats.messages, batch.len() as u64);
        let mut samples = self.decode(&batch, true).await?;
        let mut backoff = Backoff::default();
        while !samples.is_empty() {
            let n = samples.len() as u64;
            let delivery = self.pipeline.publish(samples).await;
            add(&self.stats.unrouted, delivery.unrouted as u64);
            if delivery.failed == 0 {
                add(&self.stats.samples, n);
                break;
            }
            add(&self.stats.publish_failures, 1);
            tracing::warn!(
                failed = delivery.failed,
                retry_in_ms = backoff.peek().as_millis() as u64,
                "a publisher refused samples; not acknowledging, retrying the batch"
            );
            backoff.wait(shutdown).await;
            if shutdown.is_cancelled() {
                // Unacknowledged: the broker redelivers them to the next collector.
                return Ok(());
            }
            samples = self.decode(&batch, false).await?;
        }
        self.consumer.ack(&batch).await?;
        add(&self.stats.acked, batch.len() as u64);
        Ok(())
    }

    /// The samples of every valid envelope; the first time, heartbeats are logged, refused
    /// envelopes counted and undecodable messages dead-lettered.
    async fn decode(
        &mut self,
        batch: &[Received],
        first: bool,
    ) -> Result<Vec<hb_sample::Sample>, BusError> {
        let mut samples = Vec::new();
        for (message, decoded) in batch.iter().zip(decode_all(batch, self.secret).await) {
            match decoded {
                Ok(Envelope {
                    body: Body::Samples(s),
                    ..
                }) => samples.extend(s),
                Ok(envelope) if first => self.heartbeat(message.topic, &envelope),
                Ok(_) => {}
                Err(error) if first => self.refuse(message, error).await?,
                Err(_) => {}
            }
        }
        Ok(samples)
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

    async fn refuse(&mut self, message: &Received, error: EnvelopeError) -> Result<(), BusError> {
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
                let reason = error.to_string();
                self.consumer.dead_letter(message, &reason).await?;
                let total = add(&self.stats.dead_lettered, 1);
                tracing::warn!(
                    message_id = %message.id,
                    %reason,
                    dead_lettered_total = total,
                    "undecodable message dead-lettered"
                );
            }
        }
        Ok(())
    }
}

/// Threads that decode and verify a batch in parallel (besides the runtime's own).
const DECODERS: usize = 2;

/// Decodes and verifies every message of a batch, in order; a large batch is split across
/// blocking threads, since decoding and checking signatures is most of a collector's work.
async fn decode_all(
    batch: &[Received],
    secret: Option<&Secret>,
) -> Vec<Result<Envelope, EnvelopeError>> {
    if batch.len() < 2 * DECODERS {
        return batch
            .iter()
            .map(|m| Envelope::decode(&m.payload, secret))
            .collect();
    }
    let per = batch.len().div_ceil(DECODERS);
    let parts = batch.chunks(per).map(|chunk| {
        let payloads: Vec<Vec<u8>> = chunk.iter().map(|m| m.payload.clone()).collect();
        let secret = secret.cloned();
        tokio::task::spawn_blocking(move || {
            payloads
                .iter()
                .map(|p| Envelope::decode(p, secret.as_ref()))
                .collect::<Vec<_>>()
        })
    });
    let mut out = Vec::with_capacity(batch.len());
    for part in futures_util::future::join_all(parts).await {
        match part {
            Ok(decoded) => out.extend(decoded),
            // A decoder thread cannot panic on bad input (decoding returns errors); if the
            // runtime lost it anyway, decode that part here.
            Err(_) => {
                let done = out.len();
                let end = (done + per).min(batch.len());
                out.extend(
                    batch[done..end]
                        .iter()
                        .map(|m| Envelope::decode(&m.payload, secret)),
                );
            }
        }
    }
    out
}

/// Exponential backoff with jitter, 200 ms to 30 s.
#[derive(Debug)]
struct Backoff(Duration);

impl Default for Backoff {
    fn default() -> Self {
        Self(Duration::from_millis(200))
    }
}

impl Backoff {
    fn reset(&mut self) {
        *self = Self::default();
    }

    fn peek(&self) -> Duration {
        self.0
    }

    /// Sleeps the current delay (± 20 %), or until `shutdown`, then doubles it.
    async fn wait(&mut self, shutdown: &CancellationToken) {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let jitter = 0.8 + 0.4 * f64::from(nanos % 1000) / 1000.0;
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = tokio::time::sleep(self.0.mul_f64(jitter)) => {}
        }
        self.0 = (self.0 * 2).min(MAX_BACKOFF);
    }
}
