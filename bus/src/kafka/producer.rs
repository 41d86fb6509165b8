//! The Kafka producer: idempotent, `acks=all`, topics created on first use.

use std::time::Instant;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureProducer;
use tokio::sync::Mutex;

use super::{Quiet, ensure_topics, producer, send};
use crate::{BusError, KafkaSpec, Outgoing};

/// The idempotent producer; topics are created on first use.
pub struct Producer {
    spec: KafkaSpec,
    producer: FutureProducer<Quiet>,
    topics: Mutex<Topics>,
}

/// Whether the topics exist, or when creating them last failed (and why).
#[derive(Default)]
enum Topics {
    #[default]
    Unknown,
    Ready,
    Failed(Instant, BusError),
}

impl Producer {
    pub(crate) fn new(spec: &KafkaSpec) -> Result<Self, BusError> {
        Ok(Self {
            spec: spec.clone(),
            producer: producer(spec)?,
            topics: Mutex::new(Topics::Unknown),
        })
    }

    pub(crate) async fn send(&self, message: &Outgoing) -> Result<(), BusError> {
        {
            // Senders queued behind a failed attempt share its answer instead of each
            // waiting out its own timeout.
            let mut topics = self.topics.lock().await;
            match &*topics {
                Topics::Ready => {}
                Topics::Failed(at, error) if at.elapsed() < self.spec.timeout => {
                    return Err(error.clone());
                }
                _ => match ensure_topics(&self.spec, &[]).await {
                    Ok(()) => *topics = Topics::Ready,
                    Err(error) => {
                        *topics = Topics::Failed(Instant::now(), error.clone());
                        return Err(error);
                    }
                },
            }
        }
        let headers = OwnedHeaders::new().insert(Header {
            key: "routing",
            value: Some(message.routing_key.as_bytes()),
        });
        let topic = self.spec.common.name(message.topic);
        let (key, payload) = (&message.key, &message.payload);
        let sent = send(
            &self.producer,
            self.spec.timeout,
            &topic,
            message.partition_in(self.spec.common.partitions),
            key,
            payload,
            headers,
        )
        .await;
        if sent.is_err() {
            // Fail what librdkafka still queues behind this message now, so that it is
            // spooled after it, rather than delivered ahead of it when the broker returns.
            use rdkafka::producer::{Producer as _, PurgeConfig};
            self.producer.purge(PurgeConfig::default().queue());
        }
        sent
    }

    pub(crate) async fn close(&self) {
        use rdkafka::producer::Producer as _;
        let producer = self.producer.clone();
        let timeout = self.spec.timeout;
        let _ = tokio::task::spawn_blocking(move || producer.flush(timeout)).await;
    }
}
