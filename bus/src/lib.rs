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
//! # Layout
//!
//! - [`spec`]: the `transport` URL and its options ([`Transport`]).
//! - [`message`]: [`Topic`], [`Outgoing`], [`Received`].
//! - [`error`]: [`BusError`], retryable or permanent.
//! - `rabbit`, `kafka`, `redis`: one module per broker, each with its producer and consumer.
#![warn(missing_docs)]

pub mod error;
mod kafka;
pub mod message;
mod options;
mod rabbit;
mod redis;
pub mod spec;

pub use error::BusError;
pub use message::{Outgoing, Received, Topic};
pub use spec::{Common, KafkaSpec, RabbitSpec, RedisSpec, Transport, TransportError};

/// Publishes to the bus of a [`Transport`].
pub enum Producer {
    /// RabbitMQ.
    Rabbit(rabbit::Producer),
    /// Kafka.
    Kafka(kafka::Producer),
    /// Redis Streams.
    Redis(redis::Producer),
}

/// Consumes from the bus of a [`Transport`] as one member of the collectors' group.
pub enum Consumer {
    /// RabbitMQ.
    Rabbit(rabbit::Consumer),
    /// Kafka.
    Kafka(kafka::Consumer),
    /// Redis Streams.
    Redis(redis::Consumer),
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
            Transport::Rabbit(spec) => Ok(Self::Rabbit(rabbit::Producer::new(spec))),
            Transport::Kafka(spec) => kafka::Producer::new(spec).map(Self::Kafka),
            Transport::Redis(spec) => redis::Producer::new(spec).map(Self::Redis),
        }
    }

    /// Publishes one message; returns once the broker confirmed it.
    pub async fn send(&self, message: &Outgoing) -> Result<(), BusError> {
        match self {
            Self::Rabbit(p) => p.send(message).await,
            Self::Kafka(p) => p.send(message).await,
            Self::Redis(p) => p.send(message).await,
        }
    }

    /// Publishes messages concurrently (pipelined); one result per message, in order.
    pub async fn send_all(&self, messages: &[Outgoing]) -> Vec<Result<(), BusError>> {
        futures_util::future::join_all(messages.iter().map(|m| self.send(m))).await
    }

    /// Waits for outstanding sends and closes connections.
    pub async fn close(&self) {
        match self {
            Self::Rabbit(p) => p.close().await,
            Self::Kafka(p) => p.close().await,
            Self::Redis(_) => {}
        }
    }
}

/// Acknowledges a [`Consumer`]'s messages independently of receiving (cheap to clone).
#[derive(Clone)]
pub enum Acker {
    /// `basic.ack` on the consumer's channel.
    Rabbit(rabbit::Acker),
    /// Offset commits of the contiguous watermark.
    Kafka(kafka::Acker),
    /// `XACK`.
    Redis(redis::Acker),
}

impl Acker {
    /// Acknowledges messages: they will not be delivered again.
    pub async fn ack(&self, messages: &[Received]) -> Result<(), BusError> {
        match self {
            Self::Rabbit(a) => a.ack(messages).await,
            Self::Kafka(a) => a.ack(messages),
            Self::Redis(a) => a.ack(messages).await,
        }
    }
}

impl Consumer {
    /// Connects, declares what is missing (queues, topics, streams, groups) and starts
    /// consuming samples and heartbeats.
    pub async fn connect(transport: &Transport) -> Result<Self, BusError> {
        match transport {
            Transport::Memory => Err(no_bus()),
            Transport::Rabbit(spec) => rabbit::Consumer::connect(spec).await.map(Self::Rabbit),
            Transport::Kafka(spec) => kafka::Consumer::connect(spec).await.map(Self::Kafka),
            Transport::Redis(spec) => redis::Consumer::connect(spec).await.map(Self::Redis),
        }
    }

    /// Waits up to about a second for messages and returns those available, at most `max`
    /// (possibly none). Every message returned must later be passed to [`ack`](Self::ack).
    pub async fn recv(&mut self, max: usize) -> Result<Vec<Received>, BusError> {
        match self {
            Self::Rabbit(c) => c.recv(max).await,
            Self::Kafka(c) => c.recv(max).await,
            Self::Redis(c) => c.recv(max).await,
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
            Self::Rabbit(c) => Acker::Rabbit(c.acker()),
            Self::Kafka(c) => Acker::Kafka(c.acker()),
            Self::Redis(c) => Acker::Redis(c.acker()),
        }
    }

    /// Publishes `message` to the dead-letter destination with `reason` (it still needs an ack).
    pub async fn dead_letter(&mut self, message: &Received, reason: &str) -> Result<(), BusError> {
        match self {
            Self::Rabbit(c) => c.dead_letter(message, reason).await,
            Self::Kafka(c) => c.dead_letter(message, reason).await,
            Self::Redis(c) => c.dead_letter(message, reason).await,
        }
    }

    /// Commits what was acknowledged and leaves the group.
    pub async fn close(self) {
        match self {
            Self::Rabbit(c) => c.close().await,
            Self::Kafka(c) => c.close(),
            Self::Redis(_) => {}
        }
    }
}
