//! The Redis Streams consumer: one member of the collectors' group. The heartbeats stream and
//! the notification streams are shared by the group (competing consumers, `XAUTOCLAIM` of
//! what a dead member left pending); a samples partition stream is read only under its lease
//! (`lease.rs`), taken over whole (everything pending in it) when the lease is won.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use redis::{RedisError, Value, cmd};

use super::lease::Leases;
use super::{RESPONSE, TRANSPORT, client, connect, unreachable, xadd};
use crate::host_name;
use crate::message::Token;
use crate::partition::InFlight;
use crate::{Assigned, BusError, NotificationSources, Partition, Received, RedisSpec, Topic};

/// How often a partition whose lease another collector holds is asked for again.
const RETRY_LEASE: Duration = Duration::from_secs(1);

/// Acknowledges entries (`XACK`) on the consumer's command connection, from any task.
#[derive(Clone)]
pub struct Acker {
    commands: MultiplexedConnection,
    group: String,
    in_flight: InFlight,
}

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
        for (stream, ids) in per_stream {
            let _: u64 = cmd("XACK")
                .arg(stream)
                .arg(&self.group)
                .arg(&ids)
                .query_async(&mut commands)
                .await
                .map_err(unreachable)?;
        }
        for m in messages {
            if let Some(p) = m.partition {
                self.in_flight.done(p);
            }
        }
        Ok(())
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
    blocking: MultiplexedConnection,
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
        let blocking = connect(&client, spec.block + RESPONSE).await?;
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
            blocking,
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

    /// Entries: own pending ones of the shared streams first, then what a taken-over
    /// partition holds, then entries a dead member left in the shared streams, then new ones;
    /// up to `max` per stream.
    async fn fetch(&mut self, max: usize) -> Result<Vec<Received>, BusError> {
        let backlog: Vec<usize> = (0..self.shared.len())
            .filter(|&i| self.shared[i].after.is_some())
            .collect();
        if !backlog.is_empty() {
            let streams: Vec<(String, Option<Partition>)> = backlog
                .iter()
                .map(|&i| (self.shared[i].stream.clone(), None))
                .collect();
            let ids: Vec<String> = backlog
                .iter()
                .filter_map(|&i| self.shared[i].after.clone())
                .collect();
            let own = self.read(max, &streams, &ids, None).await?;
            for &i in &backlog {
                let last = own.iter().rev().find_map(|m| match &m.token {
                    Token::Redis { stream, id } if *stream == self.shared[i].stream => {
                        Some(id.clone())
                    }
                    _ => None,
                });
                // Nothing more after the last one read: caught up with this stream.
                self.shared[i].after = last;
            }
            if !own.is_empty() {
                return Ok(own);
            }
        }
        let taking_over: Vec<Partition> = self
            .parts
            .iter()
            .filter(|(p, part)| part.claim.is_some() && self.readable(**p))
            .map(|(p, _)| *p)
            .collect();
        let mut out = Vec::new();
        for p in taking_over {
            let (stream, cursor) = match self.parts.get(&p) {
                Some(Part {
                    stream,
                    claim: Some(cursor),
                    ..
                }) => (stream.clone(), cursor.clone()),
                _ => continue,
            };
            // Under the lease nobody else reads this stream: everything pending is ours.
            let reply = self.autoclaim(&stream, 0, &cursor, max).await?;
            if let Some(part) = self.parts.get_mut(&p) {
                part.claim = (reply.next_stream_id != "0-0").then_some(reply.next_stream_id);
            }
            if !reply.claimed.is_empty() {
                tracing::info!(partition = p, entries = reply.claimed.len(), consumer = %self.name, "took over entries left pending in the partition");
            }
            out.extend(
                reply
                    .claimed
                    .into_iter()
                    .map(|e| received(Topic::Samples, Some(p), &stream, e)),
            );
        }
        if !out.is_empty() {
            return Ok(out);
        }
        let claim_due = self
            .last_claim
            .is_none_or(|at| at.elapsed() >= self.spec.claim_idle / 2);
        if claim_due {
            let idle = self.spec.claim_idle.as_millis() as u64;
            for i in 0..self.shared.len() {
                let (stream, topic) = (self.shared[i].stream.clone(), self.shared[i].topic);
                let reply = self.autoclaim(&stream, idle, "0-0", max).await?;
                if !reply.claimed.is_empty() {
                    tracing::info!(stream = %stream, claimed = reply.claimed.len(), consumer = %self.name, "claimed entries left pending by another consumer");
                }
                out.extend(
                    reply
                        .claimed
                        .into_iter()
                        .map(|e| received(topic, None, &stream, e)),
                );
            }
            let held: Vec<Partition> = self
                .parts
                .iter()
                .filter(|(p, part)| part.claim.is_none() && self.readable(**p))
                .map(|(p, _)| *p)
                .collect();
            for p in held {
                out.extend(self.strays(p, max).await?);
            }
            if !out.is_empty() {
                return Ok(out);
            }
            self.last_claim = Some(Instant::now());
        }
        let mut streams: Vec<(String, Option<Partition>)> = self
            .shared
            .iter()
            .map(|s| (s.stream.clone(), None))
            .collect();
        streams.extend(
            self.parts
                .iter()
                .filter(|(p, part)| part.claim.is_none() && self.readable(**p))
                .map(|(p, part)| (part.stream.clone(), Some(*p))),
        );
        let new = vec![">".to_owned(); streams.len()];
        let block = self.spec.block.as_millis() as u64;
        self.read(max, &streams, &new, Some(block)).await
    }

    /// Entries of a held partition left pending by another consumer for longer than the lease
    /// (a previous holder that read them while its lease ran out): taken over with `XCLAIM`.
    /// This consumer's own pending entries are in its sinks and are left alone.
    async fn strays(&mut self, p: Partition, max: usize) -> Result<Vec<Received>, BusError> {
        let stream = self.spec.common.partition_name(p);
        let idle = self.spec.lease.as_millis() as u64;
        let pending: Vec<(String, String, u64, u64)> = cmd("XPENDING")
            .arg(&stream)
            .arg(&self.spec.group)
            .arg("IDLE")
            .arg(idle)
            .arg("-")
            .arg("+")
            .arg(max)
            .query_async(&mut self.commands)
            .await
            .map_err(unreachable)?;
        let ids: Vec<String> = pending
            .into_iter()
            .filter(|(_, consumer, _, _)| *consumer != self.name)
            .map(|(id, ..)| id)
            .collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let claimed: redis::streams::StreamClaimReply = cmd("XCLAIM")
            .arg(&stream)
            .arg(&self.spec.group)
            .arg(&self.name)
            .arg(idle)
            .arg(&ids)
            .query_async(&mut self.commands)
            .await
            .map_err(unreachable)?;
        tracing::info!(partition = p, entries = claimed.ids.len(), consumer = %self.name, "took over entries a previous holder of the partition left pending");
        Ok(claimed
            .ids
            .into_iter()
            .map(|e| received(Topic::Samples, Some(p), &stream, e))
            .collect())
    }

    /// `XAUTOCLAIM` of entries of `stream` pending at least `idle_ms`, from `cursor`.
    async fn autoclaim(
        &mut self,
        stream: &str,
        idle_ms: u64,
        cursor: &str,
        max: usize,
    ) -> Result<StreamAutoClaimReply, BusError> {
        cmd("XAUTOCLAIM")
            .arg(stream)
            .arg(&self.spec.group)
            .arg(&self.name)
            .arg(idle_ms)
            .arg(cursor)
            .arg("COUNT")
            .arg(max)
            .query_async(&mut self.commands)
            .await
            .map_err(unreachable)
    }

    /// `XREADGROUP` from every stream, from its id in `ids` (`>` = new; otherwise own
    /// pending entries after that id).
    async fn read(
        &mut self,
        max: usize,
        streams: &[(String, Option<Partition>)],
        ids: &[String],
        block_ms: Option<u64>,
    ) -> Result<Vec<Received>, BusError> {
        let mut c = cmd("XREADGROUP");
        c.arg("GROUP")
            .arg(&self.spec.group)
            .arg(&self.name)
            .arg("COUNT")
            .arg(max);
        if let Some(ms) = block_ms {
            c.arg("BLOCK").arg(ms);
        }
        c.arg("STREAMS");
        for (stream, _) in streams {
            c.arg(stream);
        }
        c.arg(ids);
        let connection = if block_ms.is_some() {
            &mut self.blocking
        } else {
            &mut self.commands
        };
        let reply: Option<StreamReadReply> =
            c.query_async(connection).await.map_err(unreachable)?;
        let mut out = Vec::new();
        for key in reply.map(|r| r.keys).unwrap_or_default() {
            let partition = streams
                .iter()
                .find(|(s, _)| *s == key.key)
                .and_then(|s| s.1);
            let topic = match partition {
                Some(_) => Topic::Samples,
                None => self
                    .shared
                    .iter()
                    .find(|s| s.stream == key.key)
                    .map_or(Topic::Notifications, |s| s.topic),
            };
            out.extend(
                key.ids
                    .into_iter()
                    .map(|entry| received(topic, partition, &key.key, entry)),
            );
        }
        Ok(out)
    }

    pub(crate) fn acker(&self) -> Acker {
        Acker {
            commands: self.commands.clone(),
            group: self.spec.group.clone(),
            in_flight: self.in_flight.clone(),
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

    /// Releases every lease (what is still pending goes to the next holder).
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

fn received(
    topic: Topic,
    partition: Option<Partition>,
    stream: &str,
    mut entry: StreamId,
) -> Received {
    // Another service's entry may name its only field as it likes; one of several fields and
    // no `payload` arrives whole, as a JSON object of its fields, so that a collector decodes
    // it (a notification written field by field) or dead-letters it with nothing lost.
    let payload = match entry.map.remove("payload") {
        Some(field) => bytes(field),
        None if entry.map.len() == 1 => entry
            .map
            .drain()
            .next()
            .map_or_else(Vec::new, |(_, v)| bytes(v)),
        // An entry trimmed away while pending comes back without fields.
        None if entry.map.is_empty() => Vec::new(),
        None => {
            let fields: std::collections::BTreeMap<String, String> = entry
                .map
                .drain()
                .map(|(name, value)| (name, String::from_utf8_lossy(&bytes(value)).into_owned()))
                .collect();
            serde_json::to_vec(&fields).unwrap_or_default()
        }
    };
    Received {
        topic,
        id: format!("{stream}/{}", entry.id),
        payload,
        partition,
        token: Token::Redis {
            stream: stream.to_owned(),
            id: entry.id,
        },
    }
}

/// A field's value as bytes (empty for a value that is not a string).
fn bytes(value: Value) -> Vec<u8> {
    match value {
        Value::BulkString(bytes) => bytes,
        Value::SimpleString(text) => text.into_bytes(),
        _ => Vec::new(),
    }
}
