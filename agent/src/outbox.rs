//! Publishing to a bus: samples in signed envelopes of at most `batch` samples, counted only
//! when the broker confirmed them; what it does not confirm goes to the [spool](crate::spool)
//! and is replayed, in order, by [`Outbox::replay`] once the broker is back.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hb_bus::{Backoff, BusError, Outgoing, Partition, Producer, Transport};
use hb_pipeline::SpoolConfig;
use hb_sample::{Envelope, Heartbeat, PollsterState, Sample, Secret};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::model::LoadedPollster;
use crate::spool::{Spool, SpoolError};

/// Spool entries sent together when replaying.
const REPLAY_WINDOW: usize = 64;
/// First and longest wait between two replay attempts (jittered: agents that spooled through
/// one broker restart do not all replay at the same instant).
const REPLAY_BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));

/// The agent's side of the bus.
pub struct Outbox {
    producer: Producer,
    spool: Mutex<Spool>,
    wake: Notify,
    identity: hb_sample::Producer,
    secret: Option<Secret>,
    seq: AtomicU64,
    batch: usize,
    /// The bus's samples partitions: each run is split into one envelope per partition.
    partitions: u32,
    started: Instant,
    spooling: AtomicBool,
    /// Held from the decision to send until the outcome is known (confirmed or spooled), so
    /// that concurrent pollster runs reach the broker, or the spool, in the order they came.
    sending: tokio::sync::Mutex<()>,
    /// Running totals, for logs and heartbeats.
    pub stats: Stats,
}

/// Counters of an [`Outbox`] since start.
#[derive(Debug, Default)]
pub struct Stats {
    /// Envelopes the broker confirmed (sent directly or replayed).
    pub confirmed: AtomicU64,
    /// Envelopes written to the spool.
    pub spooled: AtomicU64,
    /// Envelopes replayed from the spool and confirmed.
    pub replayed: AtomicU64,
    /// Envelopes dropped: spool overflow, corrupt spool entries, spool write failures.
    pub dropped: AtomicU64,
    /// Heartbeats the broker did not take (not spooled: a late heartbeat says nothing).
    pub heartbeats_lost: AtomicU64,
    /// Heartbeats the broker confirmed.
    pub heartbeats: AtomicU64,
}

/// What became of one pollster run's samples.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sent {
    /// Samples in envelopes the broker confirmed.
    pub confirmed: usize,
    /// Samples waiting in the spool.
    pub spooled: usize,
    /// Samples lost (spool overflow or write failure), already logged.
    pub dropped: usize,
}

impl Outbox {
    /// Opens the spool (entries of a previous run are replayed first) and prepares the
    /// producer; nothing connects yet.
    pub fn open(
        transport: &Transport,
        spool: &SpoolConfig,
        identity: hb_sample::Producer,
        secret: Option<Secret>,
    ) -> Result<Self, String> {
        let producer = Producer::new(transport).map_err(|e| e.to_string())?;
        let spool = Spool::open(&spool.dir, spool.max_bytes).map_err(|e| e.to_string())?;
        if !spool.is_empty() {
            tracing::info!(
                envelopes = spool.len(),
                bytes = spool.bytes(),
                "spool holds envelopes from a previous run; replaying them first"
            );
        }
        let batch = transport
            .common()
            .map_or(hb_bus::spec::DEFAULT_BATCH, |c| c.batch);
        let partitions = transport
            .common()
            .map_or(hb_bus::partition::DEFAULT_PARTITIONS, |c| c.partitions);
        // Sequence numbers keep growing across restarts without persisted state.
        let seq = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        Ok(Self {
            producer,
            spool: Mutex::new(spool),
            wake: Notify::new(),
            identity,
            secret,
            seq: AtomicU64::new(seq),
            batch,
            partitions,
            started: Instant::now(),
            spooling: AtomicBool::new(false),
            sending: tokio::sync::Mutex::new(()),
            stats: Stats::default(),
        })
    }

    fn spool(&self) -> MutexGuard<'_, Spool> {
        self.spool.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Publishes one pollster run's samples from `namespace`: one envelope (or more, of at
    /// most `batch` samples) per partition of their resources, in partition order.
    pub async fn publish(&self, namespace: &str, samples: Vec<Sample>) -> Sent {
        let mut sent = Sent::default();
        let mut messages = Vec::new();
        let mut sizes = Vec::new();
        let mut parts: std::collections::BTreeMap<Partition, Vec<Sample>> = Default::default();
        for sample in samples {
            let p = hb_bus::partition::of(&sample.resource_id, self.partitions);
            parts.entry(p).or_default().push(sample);
        }
        let chunks = parts.into_iter().flat_map(|(p, samples)| {
            let mut samples = samples.into_iter().peekable();
            std::iter::from_fn(move || {
                samples.peek()?;
                Some((
                    p,
                    samples.by_ref().take(self.batch).collect::<Vec<Sample>>(),
                ))
            })
        });
        for (partition, chunk) in chunks {
            let n = chunk.len();
            let envelope = Envelope::samples(self.identity.clone(), self.next_seq(), chunk);
            match envelope.encode(self.secret.as_ref()) {
                Ok(payload) => {
                    let host = &self.identity.host;
                    messages.push(Outgoing::samples(namespace, host, partition, payload));
                    sizes.push(n);
                }
                Err(error) => {
                    tracing::error!(%error, samples = n, "cannot encode an envelope; samples dropped");
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    sent.dropped += n;
                }
            }
        }
        // Fair: runs that wait take their turn in arrival order. Without this, a run whose
        // send is still waiting for a broker that went away could spool its envelopes after
        // those of a later run.
        let _turn = self.sending.lock().await;
        if self.spooling.load(Ordering::Relaxed) || !self.spool().is_empty() {
            // Keep order: nothing overtakes what already waits. During an outage only the
            // replayer talks to the broker; polling never waits for it.
            for (message, n) in messages.iter().zip(sizes) {
                self.to_spool(message, n, &mut sent);
            }
            return sent;
        }
        let results = self.producer.send_all(&messages).await;
        for ((message, n), result) in messages.iter().zip(sizes).zip(results) {
            match result {
                Ok(()) => {
                    self.stats.confirmed.fetch_add(1, Ordering::Relaxed);
                    sent.confirmed += n;
                }
                Err(error) => {
                    self.outage(&error);
                    self.to_spool(message, n, &mut sent);
                }
            }
        }
        sent
    }

    fn outage(&self, error: &BusError) {
        if !self.spooling.swap(true, Ordering::Relaxed) {
            tracing::warn!(%error, "broker did not confirm; spooling envelopes until it does");
        }
    }

    fn to_spool(&self, message: &Outgoing, samples: usize, sent: &mut Sent) {
        let pushed = self.spool().push(message);
        self.wake.notify_one();
        match pushed {
            Ok(dropped) => {
                self.stats.spooled.fetch_add(1, Ordering::Relaxed);
                sent.spooled += samples;
                if dropped > 0 {
                    self.stats
                        .dropped
                        .fetch_add(dropped as u64, Ordering::Relaxed);
                    tracing::error!(
                        dropped_envelopes = dropped,
                        total_dropped = self.stats.dropped.load(Ordering::Relaxed),
                        "spool full: dropped the oldest envelopes"
                    );
                }
            }
            Err(error) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                sent.dropped += samples;
                tracing::error!(%error, samples, "cannot spool an envelope; its samples are lost");
            }
        }
    }

    /// Sends a heartbeat; it is not spooled when the broker is away.
    pub async fn heartbeat(&self, pollsters: &[Arc<LoadedPollster>], interval: Duration) {
        let heartbeat = Heartbeat {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            uptime_s: self.started.elapsed().as_secs(),
            interval_s: interval.as_secs(),
            pollsters: pollsters
                .iter()
                .map(|p| PollsterState {
                    namespace: p.namespace.clone(),
                    name: p.name.clone(),
                    failures_in_a_row: p.state.consecutive_failures.load(Ordering::Relaxed),
                })
                .collect(),
            spooled: self.spool().len() as u64,
        };
        let envelope = Envelope::heartbeat(self.identity.clone(), self.next_seq(), heartbeat);
        let payload = match envelope.encode(self.secret.as_ref()) {
            Ok(payload) => payload,
            Err(error) => {
                tracing::error!(%error, "cannot encode a heartbeat");
                return;
            }
        };
        let message = Outgoing::heartbeat(&self.identity.host, payload);
        match self.producer.send(&message).await {
            Ok(()) => {
                self.stats.heartbeats.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                let lost = self.stats.heartbeats_lost.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::debug!(%error, heartbeats_lost = lost, "heartbeat not confirmed");
            }
        }
    }

    /// Replays the spool in order whenever it holds something, backing off while the broker
    /// stays away, until `shutdown`.
    pub async fn replay(&self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(REPLAY_BACKOFF.0, REPLAY_BACKOFF.1);
        loop {
            if self.spool().is_empty() {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = self.wake.notified() => continue,
                }
            }
            let replayed = self.replay_window().await;
            let wait = match replayed {
                Ok(()) => {
                    backoff.reset();
                    if self.spool().is_empty() && self.spooling.swap(false, Ordering::Relaxed) {
                        tracing::info!(
                            replayed = self.stats.replayed.load(Ordering::Relaxed),
                            dropped = self.stats.dropped.load(Ordering::Relaxed),
                            "broker back; spool replayed"
                        );
                    }
                    continue;
                }
                Err(()) => backoff.next(None),
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Sends the oldest entries; pops those confirmed, in order. `Err` = try again later.
    async fn replay_window(&self) -> Result<(), ()> {
        let front = self.spool().front(REPLAY_WINDOW);
        let mut messages = Vec::new();
        for entry in front {
            match entry {
                Ok(message) => messages.push(message),
                Err(error @ SpoolError::Corrupt { .. }) => {
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(%error, "corrupt spool entry skipped");
                }
                Err(error) => {
                    tracing::error!(%error, "cannot read the spool");
                    return Err(());
                }
            }
        }
        let results = self.producer.send_all(&messages).await;
        let confirmed = results.iter().take_while(|r| r.is_ok()).count();
        self.spool().pop_front(confirmed);
        self.stats
            .replayed
            .fetch_add(confirmed as u64, Ordering::Relaxed);
        self.stats
            .confirmed
            .fetch_add(confirmed as u64, Ordering::Relaxed);
        match results.into_iter().find_map(Result::err) {
            None => Ok(()),
            Some(error) => {
                tracing::debug!(%error, waiting = self.spool().len(), "replay not confirmed; retrying later");
                Err(())
            }
        }
    }

    /// Envelopes still waiting.
    pub fn spooled(&self) -> usize {
        self.spool().len()
    }

    /// Bytes the spool holds now.
    pub fn spooled_bytes(&self) -> u64 {
        self.spool().bytes()
    }

    /// Whether envelopes go to the spool now (the broker is away).
    pub fn is_spooling(&self) -> bool {
        self.spooling.load(Ordering::Relaxed)
    }

    /// Waits for outstanding sends and closes the connection.
    pub async fn close(&self) {
        self.producer.close().await;
    }
}
