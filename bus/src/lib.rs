//! The message bus between agents and collectors: RabbitMQ, Kafka and Redis Streams behind
//! one interface (DESIGN §3–4).
//!
//! A [`Producer`] publishes [`Outgoing`] messages and returns only when the broker confirmed
//! them (publisher confirms, Kafka `acks=all` with idempotence, the `XADD` reply). It connects
//! lazily and reconnects after a failure, so an agent starts and spools while the broker is
//! down. A [`Consumer`] hands a collector [`Received`] messages in batches and acknowledges them
//! when told to (`basic.ack`, the Kafka offset of the contiguous acknowledged watermark,
//! `XACK`); what it never acknowledges is redelivered.
//!
//! Besides hb's own envelopes ([`Topic::ALL`]), a consumer connected with
//! [`Consumer::connect_with`] and [`NotificationSources`] also receives the notifications
//! other services publish on the same broker (OpenStack style: the services' exchanges and
//! `notifications.<priority>` routing keys on RabbitMQ, topics on Kafka, streams on Redis),
//! as [`Topic::Notifications`]: raw bytes, acknowledged and dead-lettered like the rest. The
//! bus does not decode them; hb never publishes them.
//!
//! # Layout
//!
//! - [`spec`]: the `transport` URL and its options ([`Transport`]).
//! - [`message`]: [`Topic`], [`Outgoing`], [`Received`].
//! - [`notifications`]: [`NotificationSources`], where notifications come from.
//! - [`partition`]: the partition of a sample, and the [`Assignment`] a collector consumes.
//! - [`error`]: [`BusError`], retryable or permanent.
//! - [`secret_url`]: [`SecretUrl`], a URL whose password no message shows.
//! - [`backoff`]: [`Backoff`], the one retry delay of hb (consumers, sinks, spool replay).
//! - `rabbit`, `kafka`, `redis`: one module per broker, each with its producer and consumer.
#![warn(missing_docs)]
// A build without some transports leaves their message tokens (and, without any, the whole
// bus) unused; the default build keeps every lint.
#![cfg_attr(
    not(all(feature = "rabbit", feature = "kafka", feature = "redis")),
    allow(dead_code)
)]
#![cfg_attr(
    not(any(feature = "rabbit", feature = "kafka", feature = "redis")),
    allow(unused_variables)
)]

pub mod backoff;
pub mod error;
pub mod features;
#[cfg(feature = "kafka")]
mod kafka;
pub mod message;
pub mod notifications;
mod options;
pub mod partition;
#[cfg(feature = "rabbit")]
mod rabbit;
#[cfg(feature = "redis")]
mod redis;
pub mod secret_url;
pub mod spec;
pub mod tls;

pub use backoff::Backoff;
pub use error::BusError;
pub use features::NotInBuild;
pub use message::{CUT_TO, Outgoing, Received, Topic};
pub use notifications::NotificationSources;
pub use partition::{Assigned, Assignment, Partition};
#[cfg(feature = "redis")]
pub use redis::{client_from_url as redis_client_from_url, open_client as redis_client};
pub use secret_url::SecretUrl;
pub use spec::{Common, KafkaSpec, RabbitSpec, RedisSpec, Sasl, Transport, TransportError};
pub use tls::{Tls, TlsError};

/// Publishes to the bus of a [`Transport`].
pub enum Producer {
    #[cfg(feature = "rabbit")]
    /// RabbitMQ.
    Rabbit(rabbit::Producer),
    #[cfg(feature = "kafka")]
    /// Kafka.
    Kafka(kafka::Producer),
    #[cfg(feature = "redis")]
    /// Redis Streams.
    Redis(redis::Producer),
}

/// Consumes from the bus of a [`Transport`] as one member of the collectors' group.
pub enum Consumer {
    #[cfg(feature = "rabbit")]
    /// RabbitMQ.
    Rabbit(rabbit::Consumer),
    #[cfg(feature = "kafka")]
    /// Kafka.
    Kafka(kafka::Consumer),
    #[cfg(feature = "redis")]
    /// Redis Streams.
    Redis(redis::Consumer),
}

/// The machine's host name (default consumer and member names).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// `memory://` has no bus.
fn no_bus() -> BusError {
    BusError::Setup {
        transport: "memory",
        what: "a bus".to_owned(),
        reason: "memory:// runs the pipeline in the agent's process and has no bus".to_owned(),
    }
}

impl Producer {
    /// A producer for `transport`; it connects on first use, so this fails only when the
    /// client cannot be configured.
    pub fn new(transport: &Transport) -> Result<Self, BusError> {
        match transport {
            Transport::Memory => Err(no_bus()),
            #[cfg(feature = "rabbit")]
            Transport::Rabbit(spec) => Ok(Self::Rabbit(rabbit::Producer::new(spec))),
            #[cfg(feature = "kafka")]
            Transport::Kafka(spec) => kafka::Producer::new(spec).map(Self::Kafka),
            #[cfg(feature = "redis")]
            Transport::Redis(spec) => redis::Producer::new(spec).map(Self::Redis),
            #[cfg(not(all(feature = "rabbit", feature = "kafka", feature = "redis")))]
            other => Err(features::NotInBuild::of(other).into()),
        }
    }

    /// Publishes one message; returns once the broker confirmed it. hb publishes no
    /// [`Topic::Notifications`]: those are refused, permanently.
    pub async fn send(&self, message: &Outgoing) -> Result<(), BusError> {
        if message.topic == Topic::Notifications {
            return Err(BusError::Setup {
                transport: self.transport(),
                what: "a notification".to_owned(),
                reason: "notifications come from other services; hb does not publish them"
                    .to_owned(),
            });
        }
        match self {
            #[cfg(feature = "rabbit")]
            Self::Rabbit(p) => p.send(message).await,
            #[cfg(feature = "kafka")]
            Self::Kafka(p) => p.send(message).await,
            #[cfg(feature = "redis")]
            Self::Redis(p) => p.send(message).await,
            #[cfg(not(any(feature = "rabbit", feature = "kafka", feature = "redis")))]
            _ => unreachable!("no transport is built in, so there is none of these"),
        }
    }

    /// Publishes messages concurrently (pipelined); one result per message, in order.
    pub async fn send_all(&self, messages: &[Outgoing]) -> Vec<Result<(), BusError>> {
        futures_util::future::join_all(messages.iter().map(|m| self.send(m))).await
    }

    fn transport(&self) -> &'static str {
        match self {
            #[cfg(feature = "rabbit")]
            Self::Rabbit(_) => "rabbit",
            #[cfg(feature = "kafka")]
            Self::Kafka(_) => "kafka",
            #[cfg(feature = "redis")]
            Self::Redis(_) => "redis",
            #[cfg(not(any(feature = "rabbit", feature = "kafka", feature = "redis")))]
            _ => unreachable!("no transport is built in, so there is none of these"),
        }
    }

    /// Waits for outstanding sends and closes connections.
    pub async fn close(&self) {
        match self {
            #[cfg(feature = "rabbit")]
            Self::Rabbit(p) => p.close().await,
            #[cfg(feature = "kafka")]
            Self::Kafka(p) => p.close().await,
            #[cfg(feature = "redis")]
            Self::Redis(_) => {}
            #[cfg(not(any(feature = "rabbit", feature = "kafka", feature = "redis")))]
            _ => unreachable!("no transport is built in, so there is none of these"),
        }
    }
}

/// Acknowledges a [`Consumer`]'s messages independently of receiving (cheap to clone).
#[derive(Clone)]
pub enum Acker {
    #[cfg(feature = "rabbit")]
    /// `basic.ack` on the consumer's channel.
    Rabbit(rabbit::Acker),
    #[cfg(feature = "kafka")]
    /// Offset commits of the contiguous watermark.
    Kafka(kafka::Acker),
    #[cfg(feature = "redis")]
    /// `XACK`.
    Redis(redis::Acker),
}

impl Acker {
    /// Acknowledges messages: they will not be delivered again.
    pub async fn ack(&self, messages: &[Received]) -> Result<(), BusError> {
        match self {
            #[cfg(feature = "rabbit")]
            Self::Rabbit(a) => a.ack(messages).await,
            #[cfg(feature = "kafka")]
            Self::Kafka(a) => a.ack(messages),
            #[cfg(feature = "redis")]
            Self::Redis(a) => a.ack(messages).await,
            #[cfg(not(any(feature = "rabbit", feature = "kafka", feature = "redis")))]
            _ => unreachable!("no transport is built in, so there is none of these"),
        }
    }
}

impl Consumer {
    /// Connects, declares what is missing (queues, topics, streams, groups) and starts
    /// consuming samples and heartbeats: [`connect_with`](Self::connect_with) without
    /// notifications.
    pub async fn connect(transport: &Transport) -> Result<Self, BusError> {
        Self::connect_with(transport, None).await
    }

    /// Like [`connect`](Self::connect), and with `notifications` also consumes the
    /// notifications other services publish there, as [`Topic::Notifications`]:
    ///
    /// - RabbitMQ: each exchange is declared passively and, if nobody declared it yet,
    ///   created as oslo.messaging would (topic, not durable, not auto-deleted); the durable
    ///   queue `<prefix>notifications` is bound to every exchange with every routing key and
    ///   consumed on the same channel, with the same prefetch, as hb's queues.
    /// - Kafka: the topics are created if missing (with the transport's partitions and
    ///   replication) and subscribed to in the collectors' group, offsets committed like
    ///   those of hb's topics.
    /// - Redis Streams: the streams are read with the collectors' group (created with
    ///   `MKSTREAM` if missing) and entries acknowledged with `XACK`. A notification is an
    ///   entry's `payload` field or, in an entry of a single field, that field.
    ///
    /// Sources with an empty name, with no topic (on RabbitMQ no exchange), or naming one of
    /// hb's own Kafka topics or Redis streams are refused with a permanent [`BusError`]
    /// before connecting.
    ///
    /// Every samples partition is consumed ([`Assignment::All`]); see
    /// [`connect_assigned`](Self::connect_assigned).
    pub async fn connect_with(
        transport: &Transport,
        notifications: Option<&NotificationSources>,
    ) -> Result<Self, BusError> {
        Self::connect_assigned(transport, notifications, partition::fixed(Assignment::All)).await
    }

    /// Like [`connect_with`](Self::connect_with), consuming the samples partitions that
    /// `assigned` names, and following its changes at every [`recv`](Self::recv):
    ///
    /// - RabbitMQ: each assigned partition queue is consumed on a channel of its own; the
    ///   broker makes one consumer of a queue active at a time (single active consumer), so
    ///   one assigned to several collectors is consumed by the first, the others standing by.
    /// - Redis Streams: each assigned partition stream is read once its lease is won; what is
    ///   pending in it (left by its previous holder) is taken over first.
    /// - Kafka: the consumer group assigns partitions; `assigned` is not used.
    ///
    /// A partition no longer assigned is given up once every message of it handed out is
    /// acknowledged, then reported by [`released`](Self::released).
    #[cfg_attr(
        not(any(feature = "rabbit", feature = "redis")),
        allow(unused_variables)
    )]
    pub async fn connect_assigned(
        transport: &Transport,
        notifications: Option<&NotificationSources>,
        assigned: Assigned,
    ) -> Result<Self, BusError> {
        let n = notifications;
        match transport {
            Transport::Memory => Err(no_bus()),
            #[cfg(feature = "rabbit")]
            Transport::Rabbit(spec) => rabbit::Consumer::connect(spec, n, assigned)
                .await
                .map(Self::Rabbit),
            #[cfg(feature = "kafka")]
            Transport::Kafka(spec) => kafka::Consumer::connect(spec, n).await.map(Self::Kafka),
            #[cfg(feature = "redis")]
            Transport::Redis(spec) => redis::Consumer::connect(spec, n, assigned)
                .await
                .map(Self::Redis),
            #[cfg(not(all(feature = "rabbit", feature = "kafka", feature = "redis")))]
            other => Err(features::NotInBuild::of(other).into()),
        }
    }

    /// The samples partitions given up (or revoked, on Kafka) since the last call, once
    /// everything this consumer handed out of them was acknowledged: their series may now be
    /// processed by another collector, so the transformer state kept for them is stale.
    pub fn released(&mut self) -> Vec<Partition> {
        match self {
            #[cfg(feature = "rabbit")]
            Self::Rabbit(c) => c.released(),
            #[cfg(feature = "kafka")]
            Self::Kafka(c) => c.released(),
            #[cfg(feature = "redis")]
            Self::Redis(c) => c.released(),
            #[cfg(not(any(feature = "rabbit", feature = "kafka", feature = "redis")))]
            _ => unreachable!("no transport is built in, so there is none of these"),
        }
    }

    /// Waits up to about a second for messages and returns those available, at most `max`
    /// (possibly none). Every message returned must later be passed to [`ack`](Self::ack).
    pub async fn recv(&mut self, max: usize) -> Result<Vec<Received>, BusError> {
        match self {
            #[cfg(feature = "rabbit")]
            Self::Rabbit(c) => c.recv(max).await,
            #[cfg(feature = "kafka")]
            Self::Kafka(c) => c.recv(max).await,
            #[cfg(feature = "redis")]
            Self::Redis(c) => c.recv(max).await,
            #[cfg(not(any(feature = "rabbit", feature = "kafka", feature = "redis")))]
            _ => unreachable!("no transport is built in, so there is none of these"),
        }
    }

    /// Acknowledges messages: they will not be delivered again.
    pub async fn ack(&mut self, messages: &[Received]) -> Result<(), BusError> {
        self.acker().ack(messages).await
    }

    /// A handle that acknowledges this consumer's messages from another task, while it keeps
    /// receiving.
    pub fn acker(&self) -> Acker {
        match self {
            #[cfg(feature = "rabbit")]
            Self::Rabbit(c) => Acker::Rabbit(c.acker()),
            #[cfg(feature = "kafka")]
            Self::Kafka(c) => Acker::Kafka(c.acker()),
            #[cfg(feature = "redis")]
            Self::Redis(c) => Acker::Redis(c.acker()),
            #[cfg(not(any(feature = "rabbit", feature = "kafka", feature = "redis")))]
            _ => unreachable!("no transport is built in, so there is none of these"),
        }
    }

    /// Publishes `message` to the dead-letter destination with `reason` (it still needs an
    /// ack); notifications go to the same destination as hb's envelopes.
    pub async fn dead_letter(&mut self, message: &Received, reason: &str) -> Result<(), BusError> {
        match self {
            #[cfg(feature = "rabbit")]
            Self::Rabbit(c) => c.dead_letter(message, reason).await,
            #[cfg(feature = "kafka")]
            Self::Kafka(c) => c.dead_letter(message, reason).await,
            #[cfg(feature = "redis")]
            Self::Redis(c) => c.dead_letter(message, reason).await,
            #[cfg(not(any(feature = "rabbit", feature = "kafka", feature = "redis")))]
            _ => unreachable!("no transport is built in, so there is none of these"),
        }
    }

    /// Commits what was acknowledged and leaves the group.
    pub async fn close(self) {
        match self {
            #[cfg(feature = "rabbit")]
            Self::Rabbit(c) => c.close().await,
            #[cfg(feature = "kafka")]
            Self::Kafka(c) => c.close(),
            #[cfg(feature = "redis")]
            Self::Redis(c) => c.close().await,
        }
    }
}
