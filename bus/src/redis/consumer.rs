//! The Redis Streams consumer: one member of the collectors' group, reading hb's streams and
//! the notification streams with one `XREADGROUP`.

use std::collections::VecDeque;
use std::time::Instant;

use redis::aio::MultiplexedConnection;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use redis::{RedisError, Value, cmd};

use super::{RESPONSE, TRANSPORT, client, connect, host_name, unreachable, xadd};
use crate::message::Token;
use crate::{BusError, NotificationSources, Received, RedisSpec, Topic};

/// Acknowledges entries (`XACK`) on the consumer's command connection, from any task.
#[derive(Clone)]
pub struct Acker {
    commands: MultiplexedConnection,
    group: String,
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
        Ok(())
    }
}

/// One member of the collectors' consumer group.
pub struct Consumer {
    spec: RedisSpec,
    name: String,
    /// hb's samples and heartbeats streams, then the notification streams.
    streams: Vec<String>,
    commands: MultiplexedConnection,
    blocking: MultiplexedConnection,
    /// Own entries still pending from a previous life under the same name, read first: per
    /// stream, the id after which to read them (each handed out once), until none is left.
    backlog: Option<Vec<String>>,
    last_claim: Option<Instant>,
    /// Entries read but not handed out yet: `COUNT` limits each stream on its own, so one
    /// read of several streams can return more than the caller asked for; the rest waits here
    /// (still pending in Redis, so nothing is lost if the consumer goes away).
    held: VecDeque<Received>,
}

impl Consumer {
    pub(crate) async fn connect(
        spec: &RedisSpec,
        sources: Option<&NotificationSources>,
    ) -> Result<Self, BusError> {
        let own: Vec<String> = Topic::ALL.map(|t| spec.common.name(t)).into();
        let mut streams = vec![
            spec.common.name(Topic::Samples),
            spec.common.name(Topic::Heartbeats),
        ];
        if let Some(sources) = sources {
            streams.extend(sources.checked(TRANSPORT, false, &own)?.topics);
        }
        let client = client(spec)?;
        let mut commands = connect(&client, RESPONSE).await?;
        let blocking = connect(&client, spec.block + RESPONSE).await?;
        for stream in &streams {
            // From the start of the stream, so what agents sent before any collector existed
            // is consumed too.
            let created: Result<(), RedisError> = cmd("XGROUP")
                .arg("CREATE")
                .arg(stream)
                .arg(&spec.group)
                .arg("0")
                .arg("MKSTREAM")
                .query_async(&mut commands)
                .await;
            match created {
                Err(e) if e.code() == Some("BUSYGROUP") => {}
                Err(e) if e.is_io_error() || e.is_timeout() => return Err(unreachable(e)),
                Err(e) => {
                    return Err(BusError::Setup {
                        transport: TRANSPORT,
                        what: format!("consumer group `{}` on `{stream}`", spec.group),
                        reason: e.to_string(),
                    });
                }
                Ok(()) => {}
            }
        }
        let name = spec
            .consumer
            .clone()
            .unwrap_or_else(|| format!("{}-{}", host_name(), std::process::id()));
        Ok(Self {
            spec: spec.clone(),
            name,
            backlog: Some(vec!["0".to_owned(); streams.len()]),
            streams,
            commands,
            blocking,
            last_claim: None,
            held: VecDeque::new(),
        })
    }

    /// At most `max` entries (the caller's window), reading more when none are held.
    pub(crate) async fn recv(&mut self, max: usize) -> Result<Vec<Received>, BusError> {
        let max = max.max(1);
        if self.held.is_empty() {
            let read = self.fetch(max).await?;
            self.held.extend(read);
        }
        let n = self.held.len().min(max);
        Ok(self.held.drain(..n).collect())
    }

    /// Entries from every stream: own pending ones first, then claimed ones, then new ones;
    /// up to `max` per stream.
    async fn fetch(&mut self, max: usize) -> Result<Vec<Received>, BusError> {
        if let Some(after) = self.backlog.take() {
            let own = self.read(max, &after, None).await?;
            if !own.is_empty() {
                // Read again from the last entry of each stream, in the order of the reply.
                let mut after = after;
                for m in &own {
                    if let Token::Redis { stream, id } = &m.token
                        && let Some(i) = self.streams.iter().position(|s| s == stream)
                    {
                        after[i].clone_from(id);
                    }
                }
                self.backlog = Some(after);
                return Ok(own);
            }
        }
        let claim_due = self
            .last_claim
            .is_none_or(|at| at.elapsed() >= self.spec.claim_idle / 2);
        if claim_due {
            let claimed = self.claim(max).await?;
            if !claimed.is_empty() {
                return Ok(claimed);
            }
            self.last_claim = Some(Instant::now());
        }
        let block = self.spec.block.as_millis() as u64;
        let new = vec![">".to_owned(); self.streams.len()];
        self.read(max, &new, Some(block)).await
    }

    /// `XREADGROUP` from every stream, from its id in `ids` (`>` = new; otherwise own
    /// pending entries after that id).
    async fn read(
        &mut self,
        max: usize,
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
        c.arg("STREAMS").arg(&self.streams).arg(ids);
        let connection = if block_ms.is_some() {
            &mut self.blocking
        } else {
            &mut self.commands
        };
        let reply: Option<StreamReadReply> =
            c.query_async(connection).await.map_err(unreachable)?;
        let mut out = Vec::new();
        for key in reply.map(|r| r.keys).unwrap_or_default() {
            let topic = self.topic(&key.key);
            out.extend(
                key.ids
                    .into_iter()
                    .map(|entry| received(topic, &key.key, entry)),
            );
        }
        Ok(out)
    }

    /// Takes over entries pending longer than `claim_idle` on any consumer (a dead one).
    async fn claim(&mut self, max: usize) -> Result<Vec<Received>, BusError> {
        let mut out = Vec::new();
        for stream in self.streams.clone() {
            let reply: StreamAutoClaimReply = cmd("XAUTOCLAIM")
                .arg(&stream)
                .arg(&self.spec.group)
                .arg(&self.name)
                .arg(self.spec.claim_idle.as_millis() as u64)
                .arg("0-0")
                .arg("COUNT")
                .arg(max)
                .query_async(&mut self.commands)
                .await
                .map_err(unreachable)?;
            if !reply.claimed.is_empty() {
                tracing::info!(stream = %stream, claimed = reply.claimed.len(), consumer = %self.name, "claimed entries left pending by another consumer");
            }
            let topic = self.topic(&stream);
            out.extend(
                reply
                    .claimed
                    .into_iter()
                    .map(|e| received(topic, &stream, e)),
            );
        }
        Ok(out)
    }

    fn topic(&self, stream: &str) -> Topic {
        match self.streams.iter().position(|s| s == stream) {
            Some(0) => Topic::Samples,
            Some(1) => Topic::Heartbeats,
            _ => Topic::Notifications,
        }
    }

    pub(crate) fn acker(&self) -> Acker {
        Acker {
            commands: self.commands.clone(),
            group: self.spec.group.clone(),
        }
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
}

fn received(topic: Topic, stream: &str, mut entry: StreamId) -> Received {
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
