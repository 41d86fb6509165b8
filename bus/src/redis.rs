//! Redis Streams: one stream per topic (`<prefix>samples`, ...), `XADD` with an approximate
//! `MAXLEN`, one consumer group for the collectors, `XACK` after the sinks, and `XAUTOCLAIM`
//! of entries left pending by a consumer that died.
//!
//! Each entry has the fields `payload` (the envelope), `key` (the producing host) and
//! `routing` (the routing key); dead letters add `reason` and `source` (the original id).

use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use redis::{AsyncConnectionConfig, Client, RedisError, Value, cmd};
use tokio::sync::Mutex;

use crate::message::Token;
use crate::{BusError, Outgoing, Received, RedisSpec, Topic};

const TRANSPORT: &str = "redis";
/// Time allowed for a command that does not block.
const RESPONSE: Duration = Duration::from_secs(5);

fn unreachable(e: RedisError) -> BusError {
    BusError::Unreachable {
        transport: TRANSPORT,
        reason: e.to_string(),
    }
}

fn client(spec: &RedisSpec) -> Result<Client, BusError> {
    Client::open(spec.url.as_str()).map_err(|e| BusError::Setup {
        transport: TRANSPORT,
        what: "the client".to_owned(),
        reason: e.to_string(),
    })
}

async fn connect(client: &Client, response: Duration) -> Result<MultiplexedConnection, BusError> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(3)))
        .set_response_timeout(Some(response));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(unreachable)
}

/// `XADD stream MAXLEN ~ maxlen * field value ...`.
fn xadd(stream: &str, maxlen: usize, fields: &[(&str, &[u8])]) -> redis::Cmd {
    let mut c = cmd("XADD");
    c.arg(stream).arg("MAXLEN").arg("~").arg(maxlen).arg("*");
    for (field, value) in fields {
        c.arg(*field).arg(*value);
    }
    c
}

/// Publishes with `XADD`; the reply (the new entry's id) is the confirmation.
pub struct Producer {
    client: Client,
    spec: RedisSpec,
    connection: Mutex<Option<MultiplexedConnection>>,
}

impl Producer {
    pub(crate) fn new(spec: &RedisSpec) -> Result<Self, BusError> {
        Ok(Self {
            client: client(spec)?,
            spec: spec.clone(),
            connection: Mutex::new(None),
        })
    }

    async fn connection(&self) -> Result<MultiplexedConnection, BusError> {
        let mut slot = self.connection.lock().await;
        if let Some(c) = &*slot {
            return Ok(c.clone());
        }
        let c = connect(&self.client, RESPONSE).await?;
        *slot = Some(c.clone());
        Ok(c)
    }

    pub(crate) async fn send(&self, message: &Outgoing) -> Result<(), BusError> {
        let mut connection = self.connection().await?;
        let stream = self.spec.common.name(message.topic);
        let fields: [(&str, &[u8]); 3] = [
            ("payload", &message.payload),
            ("key", message.key.as_bytes()),
            ("routing", message.routing_key.as_bytes()),
        ];
        let reply: Result<String, RedisError> = xadd(&stream, self.spec.maxlen, &fields)
            .query_async(&mut connection)
            .await;
        reply.map(drop).map_err(|e| {
            if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
                // Reconnect on the next send.
                if let Ok(mut slot) = self.connection.try_lock() {
                    *slot = None;
                }
            }
            BusError::NotConfirmed {
                transport: TRANSPORT,
                reason: e.to_string(),
            }
        })
    }
}

/// Acknowledges entries (`XACK`) on the consumer's command connection, from any task.
#[derive(Clone)]
pub struct Acker {
    commands: MultiplexedConnection,
    streams: [String; 2],
    group: String,
}

impl Acker {
    pub(crate) async fn ack(&self, messages: &[Received]) -> Result<(), BusError> {
        let mut commands = self.commands.clone();
        for stream in &self.streams {
            let ids: Vec<&str> = messages
                .iter()
                .filter_map(|m| match &m.token {
                    Token::Redis { stream: s, id } if s == stream => Some(id.as_str()),
                    _ => None,
                })
                .collect();
            if ids.is_empty() {
                continue;
            }
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
    streams: [String; 2],
    commands: MultiplexedConnection,
    blocking: MultiplexedConnection,
    /// Own entries still pending from a previous life under the same name, read first.
    backlog: bool,
    last_claim: Option<Instant>,
}

impl Consumer {
    pub(crate) async fn connect(spec: &RedisSpec) -> Result<Self, BusError> {
        let client = client(spec)?;
        let mut commands = connect(&client, RESPONSE).await?;
        let blocking = connect(&client, spec.block + RESPONSE).await?;
        let streams = [
            spec.common.name(Topic::Samples),
            spec.common.name(Topic::Heartbeats),
        ];
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
            streams,
            commands,
            blocking,
            backlog: true,
            last_claim: None,
        })
    }

    pub(crate) async fn recv(&mut self, max: usize) -> Result<Vec<Received>, BusError> {
        if self.backlog {
            let own = self.read(max, "0", None).await?;
            if !own.is_empty() {
                return Ok(own);
            }
            self.backlog = false;
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
        self.read(max, ">", Some(block)).await
    }

    /// `XREADGROUP` from both streams, from `id` (`>` = new, `0` = own pending).
    async fn read(
        &mut self,
        max: usize,
        id: &str,
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
        c.arg("STREAMS").arg(&self.streams).arg(id).arg(id);
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
        if stream == self.streams[0] {
            Topic::Samples
        } else {
            Topic::Heartbeats
        }
    }

    pub(crate) fn acker(&self) -> Acker {
        Acker {
            commands: self.commands.clone(),
            streams: self.streams.clone(),
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

fn received(topic: Topic, stream: &str, entry: StreamId) -> Received {
    let payload = match entry.map.get("payload") {
        Some(Value::BulkString(bytes)) => bytes.clone(),
        Some(Value::SimpleString(text)) => text.clone().into_bytes(),
        // An entry without a payload is dead-lettered as undecodable.
        _ => Vec::new(),
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

/// The machine's host name, for default consumer names.
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
