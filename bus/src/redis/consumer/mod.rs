//! The Redis Streams consumer: one member of the collectors' group. The heartbeats stream and
//! the notification streams are shared by the group (competing consumers, `XAUTOCLAIM` of
//! what a dead member left pending); a samples partition stream is read only under its lease
//! (`lease.rs`), taken over whole (everything pending in it) when the lease is won.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{RedisError, cmd};

use super::lease::Leases;
use super::{RESPONSE, TRANSPORT, client, connect, unreachable, xadd};
use crate::host_name;
use crate::message::Token;
use crate::partition::InFlight;
use crate::{Assigned, BusError, NotificationSources, Partition, Received, RedisSpec, Topic};

mod read;

/// How often a partition whose lease another collector holds is asked for again.
const RETRY_LEASE: Duration = Duration::from_secs(1);

/// Acknowledges entries (`XACK`) on the consumer's command connection, from any task.
#[derive(Clone)]
pub struct Acker {
    commands: MultiplexedConnection,
    group: String,
    in_flight: InFlight,
    /// When each of hb's own streams was last trimmed of what every group acknowledged.
    trimmed: Arc<std::sync::Mutex<HashMap<String, Instant>>>,
    /// hb's streams start with it (the services' notification streams are theirs to trim).
    prefix: String,
}

/// How often a stream is trimmed of what every group acknowledged.
const TRIM_EVERY: Duration = Duration::from_secs(5);

impl Acker {
    pub(crate) async fn ack(&self, messages: &[Received]) -> Result<(), BusError> {
        let mut commands = self.commands.clone();
        // One XACK per stream, streams in the order first met.
        let mut per_stream: Vec<(&str, Vec<&str>)> = Vec::new();
        for m in messages {
            let Token::Redis { stream, id } = &m.token else {
                continue;
            };
            match per_stream.iter_mut().find(|(s, _)| s == stream) {
                Some((_, ids)) => ids.push(id),
                None => per_stream.push((stream, vec![id])),
            }
        }
        for (stream, ids) in &per_stream {
            let _: u64 = cmd("XACK")
                .arg(*stream)
                .arg(&self.group)
                .arg(ids)
                .query_async(&mut commands)
                .await
                .map_err(unreachable)?;
        }
        for (stream, _) in per_stream {
            self.trim(&mut commands, stream).await;
        }
        for m in messages {
            if let Some(p) = m.partition {
                self.in_flight.done(p);
            }
        }
        Ok(())
    }
}

impl Acker {
    /// Deletes what every group acknowledged from one of hb's streams, at most every
    /// [`TRIM_EVERY`]; a failure is logged and tried again next time.
    async fn trim(&self, commands: &mut MultiplexedConnection, stream: &str) {
        if !stream.starts_with(&self.prefix) {
            return;
        }
        {
            let mut trimmed = self.trimmed.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            match trimmed.get(stream) {
                Some(at) if now.duration_since(*at) < TRIM_EVERY => return,
                _ => trimmed.insert(stream.to_owned(), now),
            };
        }
        let deleted: Result<u64, _> = super::scripts::TRIM_ACKNOWLEDGED
            .key(stream)
            .invoke_async(commands)
            .await;
        match deleted {
            Ok(n) if n > 0 => tracing::debug!(%stream, deleted = n, "acknowledged entries trimmed"),
            Ok(_) => {}
            Err(error) => tracing::warn!(%stream, %error, "cannot trim acknowledged entries"),
        }
    }
}

/// A stream the whole group shares (heartbeats, notifications).
struct Shared {
    stream: String,
    topic: Topic,
    /// Own entries still pending from a previous life under the same name are read first:
    /// the id after which to read them (each handed out once), until none is left.
    after: Option<String>,
}

/// A samples partition this consumer holds the lease of.
struct Part {
    stream: String,
    /// Taking over: the `XAUTOCLAIM` cursor through what is pending in the stream (left by
    /// the previous holder, or by this consumer in a previous life), until it comes back to
    /// `0-0`; then new entries are read.
    claim: Option<String>,
    /// Given up: nothing more of it is handed out; its lease is released once what was
    /// handed out is acknowledged.
    releasing: bool,
}

/// One member of the collectors' consumer group.
pub struct Consumer {
    spec: RedisSpec,
    name: String,
    shared: Vec<Shared>,
    parts: BTreeMap<Partition, Part>,
    leases: Leases,
    commands: MultiplexedConnection,
    last_claim: Option<Instant>,
    /// Entries read but not handed out yet: `COUNT` limits each stream on its own, so one
    /// read of several streams can return more than the caller asked for; the rest waits here
    /// (still pending in Redis, so nothing is lost if the consumer goes away).
    held: VecDeque<Received>,
    assigned: Assigned,
    in_flight: InFlight,
    released: Vec<Partition>,
    /// When each partition held by another collector was last asked for.
    asked: HashMap<Partition, Instant>,
}

/// Creates the group on `stream` (from its start, so what agents sent before any collector
/// existed is consumed too).
async fn create_group(
    commands: &mut MultiplexedConnection,
    stream: &str,
    group: &str,
) -> Result<(), BusError> {
    let created: Result<(), RedisError> = cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg(group)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(commands)
        .await;
    match created {
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        Err(e) if e.is_io_error() || e.is_timeout() => Err(unreachable(e)),
        Err(e) => Err(BusError::Setup {
            transport: TRANSPORT,
            what: format!("consumer group `{group}` on `{stream}`"),
            reason: e.to_string(),
        }),
        Ok(()) => Ok(()),
    }
}

impl Consumer {
    pub(crate) async fn connect(
        spec: &RedisSpec,
        sources: Option<&NotificationSources>,
        assigned: Assigned,
    ) -> Result<Self, BusError> {
        let mut own: Vec<String> = Topic::ALL.map(|t| spec.common.name(t)).into();
        own.extend((0..spec.common.partitions).map(|p| spec.common.partition_name(p)));
        let mut shared = vec![(spec.common.name(Topic::Heartbeats), Topic::Heartbeats)];
        if let Some(sources) = sources {
            let topics = sources.checked(TRANSPORT, false, &own)?.topics;
            shared.extend(topics.into_iter().map(|t| (t, Topic::Notifications)));
        }
        let client = client(spec)?;
        let mut commands = connect(&client, RESPONSE).await?;
        for (stream, _) in &shared {
            create_group(&mut commands, stream, &spec.group).await?;
        }
        for p in 0..spec.common.partitions {
            create_group(&mut commands, &spec.common.partition_name(p), &spec.group).await?;
        }
        let name = spec
            .consumer
            .clone()
            .unwrap_or_else(|| format!("{}-{}", host_name(), std::process::id()));
        let leases = Leases::start(commands.clone(), &name, spec.lease);
        let mut consumer = Self {
            spec: spec.clone(),
            name,
            shared: shared
                .into_iter()
                .map(|(stream, topic)| Shared {
                    stream,
                    topic,
                    after: Some("0".to_owned()),
                })
                .collect(),
            parts: BTreeMap::new(),
            leases,
            commands,
            last_claim: None,
            held: VecDeque::new(),
            assigned,
            in_flight: InFlight::default(),
            released: Vec::new(),
            asked: HashMap::new(),
        };
        consumer.follow().await?;
        Ok(consumer)
    }

    fn lease_key(&self, partition: Partition) -> String {
        format!("{}:lease", self.spec.common.partition_name(partition))
    }

    /// Takes the leases of newly assigned partitions that are free, gives up those no longer
    /// assigned, releases those given up whose entries are all acknowledged, and drops those
    /// whose lease was lost.
    async fn follow(&mut self) -> Result<(), BusError> {
        for p in self.leases.take_lost() {
            if self.parts.remove(&p).is_some() {
                self.forget_held(p);
                self.released.push(p);
                // Its count stays: the partition is not taken again here before the entries
                // still in the sinks are acknowledged.
                tracing::warn!(partition = p, in_flight = self.in_flight.of(p), consumer = %self.name, "lease of partition lost (not renewed in time); another collector may take it over, with the entries still in the sinks here");
            }
        }
        let wanted = self
            .assigned
            .borrow_and_update()
            .within(self.spec.common.partitions);
        for &p in &wanted {
            if let Some(part) = self.parts.get_mut(&p) {
                part.releasing = false;
                continue;
            }
            if self
                .asked
                .get(&p)
                .is_some_and(|at| at.elapsed() < RETRY_LEASE)
            {
                continue;
            }
            let key = self.lease_key(p);
            if self.leases.acquire(&mut self.commands, &key, p).await? {
                let stream = self.spec.common.partition_name(p);
                tracing::info!(partition = p, stream = %stream, consumer = %self.name, "lease taken; consuming partition");
                self.parts.insert(
                    p,
                    Part {
                        stream,
                        claim: Some("0-0".to_owned()),
                        releasing: false,
                    },
                );
                self.asked.remove(&p);
            } else {
                self.asked.insert(p, Instant::now());
            }
        }
        let done = self
            .in_flight
            .give_up(&mut self.parts, &wanted, |part| &mut part.releasing);
        for p in done {
            let key = self.lease_key(p);
            self.leases.release(&mut self.commands, &key, p).await?;
            self.parts.remove(&p);
            self.forget_held(p);
            self.in_flight.clear(p);
            self.released.push(p);
            tracing::info!(partition = p, "partition released");
        }
        Ok(())
    }

    /// True when entries of `partition` may be handed out: it is held, not being given up, and
    /// its lease was renewed recently enough that no other collector can have it.
    /// The readable partitions that are being taken over (`claiming`: their previous holder's
    /// pending entries are still to claim) or not.
    fn readable_where(&self, claiming: bool) -> Vec<Partition> {
        self.parts
            .iter()
            .filter(|(p, part)| part.claim.is_some() == claiming && self.readable(**p))
            .map(|(p, _)| *p)
            .collect()
    }

    fn readable(&self, partition: Partition) -> bool {
        self.parts
            .get(&partition)
            .is_some_and(|part| !part.releasing)
            && self.leases.fresh(partition)
    }

    /// Drops the held entries of `partition`: still pending under this consumer's name, they
    /// go to the partition's next holder.
    fn forget_held(&mut self, partition: Partition) {
        self.held.retain(|m| m.partition != Some(partition));
    }

    /// At most `max` entries (the caller's window), reading more when none are held.
    pub(crate) async fn recv(&mut self, max: usize) -> Result<Vec<Received>, BusError> {
        self.follow().await?;
        let max = max.max(1);
        let ready = |c: &Self| {
            c.held
                .iter()
                .any(|m| m.partition.is_none_or(|p| c.readable(p)))
        };
        if !ready(self) {
            let read = self.fetch(max).await?;
            self.held.extend(read);
        }
        // Entries of a partition being given up stay held (pending in Redis under this
        // consumer's name) and go to its next holder.
        let mut out = Vec::new();
        let mut kept = VecDeque::new();
        while let Some(m) = self.held.pop_front() {
            let readable = m.partition.is_none_or(|p| self.readable(p));
            if readable && out.len() < max {
                out.push(m);
            } else {
                kept.push_back(m);
            }
        }
        self.held = kept;
        for m in &out {
            if let Some(p) = m.partition {
                self.in_flight.out(p);
            }
        }
        Ok(out)
    }

    pub(crate) fn acker(&self) -> Acker {
        Acker {
            commands: self.commands.clone(),
            group: self.spec.group.clone(),
            in_flight: self.in_flight.clone(),
            trimmed: Arc::default(),
            prefix: self.spec.common.prefix.clone(),
        }
    }

    pub(crate) fn released(&mut self) -> Vec<Partition> {
        std::mem::take(&mut self.released)
    }

    pub(crate) async fn dead_letter(
        &mut self,
        message: &Received,
        reason: &str,
    ) -> Result<(), BusError> {
        let stream = self.spec.common.name(Topic::Dead);
        let fields: [(&str, &[u8]); 3] = [
            ("payload", &message.payload),
            ("reason", reason.as_bytes()),
            ("source", message.id.as_bytes()),
        ];
        let _: String = xadd(&stream, self.spec.maxlen, &fields)
            .query_async(&mut self.commands)
            .await
            .map_err(unreachable)?;
        Ok(())
    }

    /// Releases every lease, all at once and for at most [`RESPONSE`] in all (an unreachable
    /// Redis lets them expire instead).
    pub(crate) async fn close(self) {
        self.leases.stop();
        let releases = self.parts.keys().map(|&p| {
            let (key, mut commands) = (self.lease_key(p), self.commands.clone());
            let leases = &self.leases;
            async move { leases.release(&mut commands, &key, p).await }
        });
        let _ = tokio::time::timeout(RESPONSE, futures_util::future::join_all(releases)).await;
    }
}
