//! What travels on the bus: outgoing messages, received messages and their acknowledgement.

use crate::Partition;

/// The stream a message belongs to. hb's own streams are one queue, topic or Redis stream
/// each; notifications come from the sources of a [`NotificationSources`].
///
/// [`NotificationSources`]: crate::NotificationSources
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Topic {
    /// Sample envelopes.
    Samples,
    /// Heartbeat envelopes.
    Heartbeats,
    /// Messages a collector could not decode, with the reason.
    Dead,
    /// Notifications other services published in their own format (OpenStack's JSON), raw.
    /// Not one of hb's streams (not in [`Topic::ALL`]) and never published by hb: on RabbitMQ
    /// the collectors' queue `<prefix>notifications` bound to the services' exchanges; on
    /// Kafka and Redis the topics and streams the services write to, under their own names.
    Notifications,
}

impl Topic {
    /// hb's own streams (agents publish them, hb creates them), in the order collectors
    /// consume them. [`Topic::Notifications`] is not one of them.
    pub const ALL: [Topic; 3] = [Topic::Samples, Topic::Heartbeats, Topic::Dead];

    /// The suffix after the transport's `prefix` (for notifications, of the RabbitMQ queue).
    pub fn suffix(self) -> &'static str {
        match self {
            Self::Samples => "samples",
            Self::Heartbeats => "heartbeats",
            Self::Dead => "dead",
            Self::Notifications => "notifications",
        }
    }
}

/// A message to publish.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Where it goes.
    pub topic: Topic,
    /// AMQP routing key (`samples.<namespace>`, `heartbeat.<host>`).
    pub routing_key: String,
    /// The producing host (AMQP header `x-hb-key`, Kafka key, Redis field `key`).
    pub key: String,
    /// The partition of a samples envelope (every sample in it has a resource id of this
    /// partition, see [`crate::partition`]); `None` for heartbeats, and for envelopes spooled
    /// by a version before partitions, which go to the partition of their `key`.
    pub partition: Option<Partition>,
    /// The encoded envelope.
    pub payload: Vec<u8>,
}

/// A message received by a collector, to be acknowledged once every sink has it.
#[derive(Debug)]
pub struct Received {
    /// The stream it came from.
    pub topic: Topic,
    /// Where it is on the bus, for logs: `<queue>#<delivery tag>` (`hb.samples#42`,
    /// `hb.notifications#7`), `<topic>/<partition>@<offset>` (`hb.samples/0@1234`),
    /// `<stream>/<entry id>` (`hb:samples/1-0`).
    pub id: String,
    /// The bytes as published (an envelope, or a notification as the service sent it), or
    /// only the first [`CUT_TO`] of them when the transport cut a message longer than
    /// `max_message_bytes` (see [`Received::is_cut`]).
    pub payload: Vec<u8>,
    /// How long the message is on the bus: the payload's length, unless it was cut.
    pub length: usize,
    /// The samples partition it came from (`None` for heartbeats and notifications).
    pub partition: Option<Partition>,
    /// What acknowledging it takes.
    pub(crate) token: Token,
}

/// What is kept of a message over `max_message_bytes`: its first 64 KiB (for its dead letter).
pub const CUT_TO: usize = 64 << 10;

impl Received {
    /// Whether the transport read only the first [`CUT_TO`] bytes of a message longer than
    /// `max_message_bytes` (Redis does, through a script; the other brokers hand over the
    /// whole message, which the collector cuts itself).
    pub fn is_cut(&self) -> bool {
        self.length > self.payload.len()
    }
}

/// Transport-specific acknowledgement handle.
#[derive(Debug, Clone)]
pub(crate) enum Token {
    #[cfg(feature = "rabbit")]
    Rabbit {
        tag: u64,
        /// The channel it was delivered on (each samples partition has its own).
        channel: lapin::Channel,
    },
    Kafka {
        topic: String,
        partition: i32,
        offset: i64,
    },
    Redis {
        stream: String,
        id: String,
    },
}

impl Outgoing {
    /// An envelope of samples of `partition` from `namespace` on `host`; routing key
    /// `samples.<partition>.<namespace>`.
    pub fn samples(namespace: &str, host: &str, partition: Partition, payload: Vec<u8>) -> Self {
        Self {
            topic: Topic::Samples,
            routing_key: format!("samples.{partition}.{namespace}"),
            key: host.to_owned(),
            partition: Some(partition),
            payload,
        }
    }

    /// The partition this message goes to on a bus of `partitions` partitions (samples
    /// only).
    pub fn partition_in(&self, partitions: u32) -> Option<Partition> {
        (self.topic == Topic::Samples).then(|| {
            self.partition
                .filter(|p| *p < partitions)
                .unwrap_or_else(|| crate::partition::of(&self.key, partitions))
        })
    }

    /// A heartbeat envelope from `host`.
    pub fn heartbeat(host: &str, payload: Vec<u8>) -> Self {
        Self {
            topic: Topic::Heartbeats,
            routing_key: format!("heartbeat.{host}"),
            key: host.to_owned(),
            partition: None,
            payload,
        }
    }
}
