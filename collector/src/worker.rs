//! One batch through the collector: envelopes decoded and verified (off the runtime when
//! large), notifications converted, samples and events submitted to the pipeline, refused
//! messages counted by reason and dead-lettered; the batch is acknowledged once every sink has
//! what it was given.

use hb_bus::{Backoff, BusError, Consumer, Received, Topic};
use hb_pipeline::Pipeline;
use hb_sample::{Body, Envelope, EnvelopeError, Limits, Secret, envelope::claimed_producer};

use crate::consume::{Acks, Held};
use crate::decode::decode_all;
use crate::notify::Notifier;
use crate::replays::{Claim, Key, Replays, Stale};
use crate::stats::{Stats, add};

/// Attempts at writing one dead letter before the message is dropped (see
/// [`Worker::dead_letter`]).
const DEAD_LETTER_ATTEMPTS: u32 = 3;
/// What the dead letter of a message over `max_message_bytes` keeps of it: writing it whole
/// would cost as much memory again as reading it did.
const KEPT_OF_LARGE: usize = hb_bus::CUT_TO;

pub(crate) struct Worker<'a> {
    pub(crate) consumer: &'a mut Consumer,
    pub(crate) acks: Acks,
    pub(crate) pipeline: &'a Pipeline,
    pub(crate) secret: Option<&'a Secret>,
    pub(crate) limits: Limits,
    /// Replay protection, with a secret.
    pub(crate) replays: Option<&'a Replays>,
    pub(crate) notifier: Option<&'a Notifier>,
    pub(crate) stats: &'a Stats,
}

impl Worker<'_> {
    /// Decodes a batch and hands its samples to the pipeline (waiting while a sink is full);
    /// the batch is acknowledged once every sink published them. `Err` only when a decoder
    /// thread was lost or the shared replay store cannot be asked: the batch is then left for
    /// the broker to redeliver.
    pub(crate) async fn handle(
        &mut self,
        mut batch: Vec<Received>,
        held: Held,
    ) -> Result<(), BusError> {
        add(&self.stats.messages, batch.len() as u64);
        for message in batch.iter_mut().filter(|m| m.is_cut()) {
            let error = EnvelopeError::TooLarge {
                bytes: message.length,
                max: self.limits.max_bytes,
            };
            self.refuse(message, error).await;
        }
        let (mut samples, marks) = self.decode(&mut batch).await?;
        let mut events = Vec::new();
        self.notifications(&mut batch, &mut samples, &mut events)
            .await;
        let n = samples.len() as u64;
        let submitted = self.pipeline.submit(samples).await;
        add(&self.stats.samples, n);
        add(&self.stats.unrouted, submitted.unrouted as u64);
        let published = self.pipeline.submit_events(events).await;
        add(&self.stats.unrouted_events, published.unrouted as u64);
        self.acks
            .after([submitted.receipt, published.receipt], batch, held, marks);
        Ok(())
    }

    pub(crate) fn report(&self) {
        self.stats.report("collector progress");
        for (sink, stats, held) in self.pipeline.sinks() {
            stats.report(&sink, held);
        }
    }

    /// Notifications through the definitions: their samples and events are added; a
    /// notification that cannot be decoded is dead-lettered with the reason.
    async fn notifications(
        &mut self,
        batch: &mut [Received],
        samples: &mut Vec<hb_sample::Sample>,
        events: &mut Vec<hb_sample::Event>,
    ) {
        let Some(notifier) = self.notifier else {
            return;
        };
        for message in batch
            .iter_mut()
            .filter(|m| m.topic == Topic::Notifications && !m.is_cut())
        {
            if message.payload.len() > self.limits.max_bytes {
                let error = EnvelopeError::TooLarge {
                    bytes: message.payload.len(),
                    max: self.limits.max_bytes,
                };
                self.refuse(message, error).await;
                continue;
            }
            match hb_notification::Notification::decode(&message.payload) {
                Ok(n) => notifier.convert(&n, samples, events, self.stats),
                Err(error) => {
                    let reason = format!("notification refused: {error}");
                    self.dead_letter(message, reason).await;
                }
            }
        }
    }

    /// The samples of every valid envelope (the messages that are not notifications);
    /// heartbeats are logged, refused envelopes counted and undecodable messages
    /// dead-lettered.
    /// Also returns each accepted envelope's sequence mark, for replay protection.
    async fn decode(
        &mut self,
        batch: &mut [Received],
    ) -> Result<(Vec<hb_sample::Sample>, Vec<(Key, u64)>), BusError> {
        let ours: Vec<usize> = (0..batch.len())
            .filter(|&i| batch[i].topic != Topic::Notifications && !batch[i].is_cut())
            .collect();
        let payloads = ours
            .iter()
            .map(|&i| std::mem::take(&mut batch[i].payload))
            .collect();
        let Ok((payloads, decoded)) = decode_all(payloads, self.secret, self.limits).await else {
            return Err(BusError::Unreachable {
                transport: "collector",
                reason: "a decoder thread was lost; the batch is left to be redelivered".into(),
            });
        };
        for (&i, payload) in ours.iter().zip(payloads) {
            batch[i].payload = payload;
        }
        let keys: Vec<Option<Key>> = ours
            .iter()
            .zip(&decoded)
            .map(|(&i, decoded)| {
                let envelope = decoded.as_ref().ok()?;
                Some(Key::new(
                    &envelope.producer.agent_id,
                    batch[i].topic,
                    batch[i].partition,
                ))
            })
            .collect();
        let mut verdicts = replay_verdicts(self.replays, &keys, &decoded)
            .await?
            .into_iter();
        let (mut samples, mut marks) = (Vec::new(), Vec::new());
        for ((&i, decoded), key) in ours.iter().zip(decoded).zip(keys) {
            let message = &mut batch[i];
            if let (Some(key), Ok(envelope)) = (key, &decoded)
                && self.replays.is_some()
            {
                if let Some(Err(stale)) = verdicts.next() {
                    let total = add(&self.stats.replayed, 1);
                    tracing::warn!(
                        message_id = %message.id,
                        host = %envelope.producer.host,
                        agent_id = %envelope.producer.agent_id,
                        seq = envelope.seq,
                        error = %stale,
                        replayed_total = total,
                        "envelope refused as a replay and dropped"
                    );
                    continue;
                }
                marks.push((key, envelope.seq));
            }
            match decoded {
                Ok(Envelope {
                    body: Body::Samples(s),
                    ..
                }) => samples.extend(s),
                Ok(envelope) => self.heartbeat(message.topic, &envelope),
                Err(error) => self.refuse(message, error).await,
            }
        }
        Ok((samples, marks))
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

    /// Counts a refused message by reason: a missing or wrong signature is dropped, anything
    /// else dead-lettered (a message over `max_message_bytes` with only its first
    /// [`KEPT_OF_LARGE`] bytes: its size is in the reason).
    async fn refuse(&mut self, message: &mut Received, error: EnvelopeError) {
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
            EnvelopeError::TooLarge { .. } | EnvelopeError::TooManySamples { .. } => {
                let total = add(&self.stats.oversized, 1);
                tracing::warn!(message_id = %message.id, %error, oversized_total = total, "message over the limits");
                let mut reason = error.to_string();
                if matches!(error, EnvelopeError::TooLarge { .. }) {
                    message.payload.truncate(KEPT_OF_LARGE);
                    message.payload.shrink_to_fit();
                    reason.push_str(&format!("; its first {KEPT_OF_LARGE} bytes are kept"));
                }
                self.dead_letter(message, reason).await;
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

/// The replay guard's verdict on each decoded envelope (those with a key), in order;
/// none without a secret (a free function: the future must not borrow the worker, whose
/// consumer is not `Sync`). `Err` when a shared store cannot be asked: the batch is then
/// left unacknowledged, for the broker to hand out again once it can.
async fn replay_verdicts(
    replays: Option<&Replays>,
    keys: &[Option<Key>],
    decoded: &[Result<Envelope, EnvelopeError>],
) -> Result<Vec<Result<(), Stale>>, BusError> {
    let Some(replays) = replays else {
        return Ok(Vec::new());
    };
    let claims: Vec<Claim> = keys
        .iter()
        .zip(decoded)
        .filter_map(|(key, decoded)| {
            let envelope = decoded.as_ref().ok()?;
            Some(Claim {
                key: key.clone()?,
                seq: envelope.seq,
                sent_at: envelope.sent_at,
            })
        })
        .collect();
    replays
        .check(&claims, chrono::Utc::now())
        .await
        .map_err(|error| BusError::Unreachable {
            transport: "replay store",
            reason: format!("{error}; the batch is left to be redelivered"),
        })
}
