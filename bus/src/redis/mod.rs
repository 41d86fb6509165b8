//! Redis Streams: one stream per samples partition (`<prefix>samples.<p>`) and per other
//! topic (`<prefix>heartbeats`, `<prefix>dead`), one consumer group for the collectors, `XACK`
//! after the sinks. A stream holds at most `maxlen` entries: an agent's `XADD` is refused when
//! it is full (the agent spools), never trimmed over unread entries; collectors delete what
//! every group acknowledged (`scripts.rs`). The dead-letter stream keeps its newest `maxlen`. A partition stream is read by
//! the holder of its lease only (`lease.rs`); the shared streams by any member, with
//! `XAUTOCLAIM` of entries left pending by a consumer that died.
//!
//! Each entry has the fields `payload` (the envelope), `key` (the producing host) and
//! `routing` (the routing key); dead letters add `reason` and `source` (the original id).
//!
//! Collectors given [`NotificationSources`](crate::NotificationSources) also read the streams
//! named by its topics (under the services' names) with the same group. Other services write
//! their own entries there: a notification is the entry's `payload` field or, in an entry of a
//! single field, that field's value; an entry of several fields and no `payload` arrives as a
//! JSON object of its fields (string values), a notification written field by field, or dead
//! letter whole if it is not one.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, ClientTlsConfig, RedisError, TlsCertificates, cmd};
use tokio::sync::Mutex;

use crate::{BusError, Outgoing, RedisSpec, SecretUrl, Tls};

mod consumer;
mod lease;
mod scripts;

pub use consumer::{Acker, Consumer};

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
    open_client(&spec.url, &spec.tls).map_err(|e| BusError::Setup {
        transport: TRANSPORT,
        what: "the client".to_owned(),
        reason: e.to_string(),
    })
}

/// The one way hb makes a Redis client (the bus, the coordination backend): `url` without
/// hb's options, with `tls` applied (`tls_ca` as the trusted roots, which replace the public
/// ones; `tls_cert` + `tls_key` as the client certificate; `tls_insecure` as redis-rs's
/// `#insecure`, with a warning).
pub fn open_client(url: &SecretUrl, tls: &Tls) -> Result<Client, RedisError> {
    tls.warn_if_insecure(&format_args!("redis {url}"));
    let full = if tls.insecure {
        format!("{}#insecure", url.expose())
    } else {
        url.expose().to_owned()
    };
    if tls.ca.is_none() && tls.identity.is_none() {
        return Client::open(full);
    }
    let certificates = TlsCertificates {
        client_tls: tls.identity.as_ref().map(|id| ClientTlsConfig {
            client_cert: id.cert.pem.clone(),
            client_key: id.key.pem.clone(),
        }),
        root_cert: tls.ca.as_ref().map(|ca| ca.pem.clone()),
    };
    Client::build_with_tls(full, certificates)
}

/// [`open_client`] for a URL that may carry the TLS options in its query
/// (`rediss://host:6379/0?tls_ca=/etc/hb/ca.pem`): they are taken out, any other query
/// parameter stays for redis-rs. A TLS option refused (see [`Tls::load`]) is the error.
pub fn client_from_url(url: &SecretUrl) -> Result<Client, String> {
    let mut parsed = url::Url::parse(url.expose()).map_err(|e| format!("not a URL: {e}"))?;
    let mut pairs: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
    let tls = Tls::take(&mut pairs).map_err(|e| e.to_string())?;
    if !tls.is_default() && parsed.scheme() != "rediss" {
        return Err(format!(
            "{}: is for TLS connections: use rediss://",
            crate::tls::OPTIONS
        ));
    }
    if pairs.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    open_client(&SecretUrl::new(parsed.to_string()), &tls).map_err(|e| e.to_string())
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

/// `XADD stream MAXLEN ~ maxlen * field value ...`: for dead letters, of which the oldest
/// go past `maxlen`.
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
        let stream = match message.partition_in(self.spec.common.partitions) {
            Some(p) => self.spec.common.partition_name(p),
            None => self.spec.common.name(message.topic),
        };
        // Refused when the stream is full rather than trimmed: MAXLEN would delete the oldest
        // entries whether or not a collector read them.
        let reply: Result<String, RedisError> = scripts::XADD_IF_ROOM
            .key(&stream)
            .arg(self.spec.maxlen)
            .arg(&message.payload[..])
            .arg(&message.key)
            .arg(&message.routing_key)
            .invoke_async(&mut connection)
            .await;
        reply.map(drop).map_err(|e| {
            if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
                // Reconnect on the next send.
                if let Ok(mut slot) = self.connection.try_lock() {
                    *slot = None;
                }
            }
            if e.code() == Some(scripts::FULL) {
                tracing::warn!(%stream, maxlen = self.spec.maxlen, "redis stream full: collectors are behind or down; the envelope is refused (an agent spools it)");
            }
            BusError::NotConfirmed {
                transport: TRANSPORT,
                reason: e.to_string(),
            }
        })
    }
}
