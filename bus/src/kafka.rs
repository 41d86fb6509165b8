//! Kafka: topics `<prefix>samples`, `<prefix>heartbeats`, `<prefix>dead` (created through the
//! admin API with the configured partitions and replication; brokers that do not auto-create
//! topics need this), an idempotent producer with `acks=all`, linger and compression, and
//! messages keyed by host so that one host's samples stay on one partition.
//!
//! Collectors form one consumer group. After each acknowledgement the offset of every touched
//! partition is committed (asynchronously) up to the contiguous watermark of acknowledged
//! messages: a message acknowledged while an earlier one is still in a sink does not move it,
//! and a crash redelivers at most what was in flight.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{CommitMode, Consumer as _, ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use tokio::sync::Mutex;

use crate::message::Token;
use crate::{BusError, KafkaSpec, Outgoing, Received, Topic};

const TRANSPORT: &str = "kafka";

fn unreachable(e: KafkaError) -> BusError {
    BusError::Unreachable {
        transport: TRANSPORT,
        reason: e.to_string(),
    }
}

fn setup(what: &str, e: impl std::fmt::Display) -> BusError {
    BusError::Setup {
        transport: TRANSPORT,
        what: what.to_owned(),
        reason: e.to_string(),
    }
}

/// Routes librdkafka's own logs and transient errors to `debug`: while a broker is away it
/// reports every reconnection attempt, and hb already says once that it is spooling.
#[derive(Clone, Copy, Default)]
pub struct Quiet;

impl ClientContext for Quiet {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        if matches!(
            level,
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical
        ) {
            tracing::error!(facility, "librdkafka: {message}");
        } else {
            tracing::debug!(facility, "librdkafka: {message}");
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal) {
            tracing::error!(%error, reason, "librdkafka fatal error");
        } else {
            tracing::debug!(%error, reason, "librdkafka");
        }
    }
}

impl ConsumerContext for Quiet {}

fn base(spec: &KafkaSpec) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &spec.brokers);
    if spec.tls {
        config.set("security.protocol", "ssl");
    }
    config
}

fn producer(spec: &KafkaSpec) -> Result<FutureProducer<Quiet>, BusError> {
    base(spec)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", spec.linger.as_millis().to_string())
        .set("compression.type", &spec.compression)
        .set("message.timeout.ms", spec.timeout.as_millis().to_string())
        .create_with_context(Quiet)
        .map_err(|e| setup("the producer", e))
}

/// Creates the topics hb uses that the broker does not have yet (asking first, so that a
/// broker without CreateTopics, or an account without the right to use it, works with
/// topics made by an administrator).
async fn ensure_topics(spec: &KafkaSpec) -> Result<(), BusError> {
    let admin: AdminClient<Quiet> = base(spec)
        .create_with_context(Quiet)
        .map_err(|e| setup("the admin client", e))?;
    let timeout = spec.timeout;
    let (admin, existing) = tokio::task::spawn_blocking(move || {
        let existing: Result<HashSet<String>, KafkaError> =
            admin.inner().fetch_metadata(None, timeout).map(|m| {
                m.topics()
                    .iter()
                    .filter(|t| t.error().is_none() && !t.partitions().is_empty())
                    .map(|t| t.name().to_owned())
                    .collect()
            });
        (admin, existing)
    })
    .await
    .map_err(|e| setup("topic metadata", e))?;
    let existing = existing.map_err(unreachable)?;
    let missing: Vec<String> = Topic::ALL
        .iter()
        .map(|t| spec.common.name(*t))
        .filter(|n| !existing.contains(n))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let topics: Vec<NewTopic<'_>> = missing
        .iter()
        .map(|n| {
            NewTopic::new(
                n,
                spec.partitions,
                TopicReplication::Fixed(spec.replication),
            )
        })
        .collect();
    let options = AdminOptions::new()
        .operation_timeout(Some(timeout))
        .request_timeout(Some(timeout));
    let results = admin
        .create_topics(&topics, &options)
        .await
        .map_err(unreachable)?;
    for result in results {
        match result {
            Ok(name) => {
                tracing::info!(topic = %name, partitions = spec.partitions, "kafka topic created")
            }
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => return Err(setup(&format!("topic `{name}`"), code)),
        }
    }
    Ok(())
}

/// Sends and waits for the delivery report.
async fn send(
    producer: &FutureProducer<Quiet>,
    timeout: Duration,
    topic: &str,
    key: &str,
    payload: &[u8],
    headers: OwnedHeaders,
) -> Result<(), BusError> {
    let record = FutureRecord::to(topic)
        .key(key)
        .payload(payload)
        .headers(headers);
    producer
        .send(record, Timeout::After(timeout))
        .await
        .map(drop)
        .map_err(|(e, _)| BusError::NotConfirmed {
            transport: TRANSPORT,
            reason: e.to_string(),
        })
}

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
                _ => match ensure_topics(&self.spec).await {
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

/// One member of the collectors' consumer group.
pub struct Consumer {
    consumer: StreamConsumer<Quiet>,
    timeout: Duration,
    dead: FutureProducer<Quiet>,
    dead_topic: String,
    samples_topic: String,
    /// Per (topic, partition): offsets handed out and not yet acknowledged.
    in_flight: HashMap<(String, i32), BTreeSet<i64>>,
    /// Per (topic, partition): the offset after the last message handed out.
    next: HashMap<(String, i32), i64>,
    /// The broker is away (reported once).
    degraded: bool,
}

impl Consumer {
    pub(crate) async fn connect(spec: &KafkaSpec) -> Result<Self, BusError> {
        ensure_topics(spec).await?;
        let session = spec.session_timeout.as_millis();
        let consumer: StreamConsumer<Quiet> = base(spec)
            .set("group.id", &spec.group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", session.to_string())
            .set("heartbeat.interval.ms", (session / 3).to_string())
            .create_with_context(Quiet)
            .map_err(|e| setup("the consumer", e))?;
        let samples_topic = spec.common.name(Topic::Samples);
        let heartbeats = spec.common.name(Topic::Heartbeats);
        consumer
            .subscribe(&[&samples_topic, &heartbeats])
            .map_err(|e| setup("the subscription", e))?;
        Ok(Self {
            consumer,
            timeout: spec.timeout,
            dead: producer(spec)?,
            dead_topic: spec.common.name(Topic::Dead),
            samples_topic,
            in_flight: HashMap::new(),
            next: HashMap::new(),
            degraded: false,
        })
    }

    pub(crate) async fn recv(&mut self, max: usize) -> Result<Vec<Received>, BusError> {
        let mut out = Vec::new();
        let first = tokio::time::timeout(Duration::from_secs(1), self.consumer.recv()).await;
        let Ok(first) = first else {
            return Ok(out);
        };
        let mut next = Some(first);
        while let Some(message) = next {
            let message = match message {
                Ok(message) => message,
                // librdkafka reconnects by itself and keeps the group membership: a broker
                // away is reported once, and the consumer is kept.
                Err(KafkaError::MessageConsumption(code)) if code != RDKafkaErrorCode::Fatal => {
                    if !self.degraded {
                        self.degraded = true;
                        tracing::warn!(%code, "kafka: broker unreachable; librdkafka keeps reconnecting");
                    }
                    return Ok(out);
                }
                Err(e) => return Err(unreachable(e)),
            };
            if self.degraded {
                self.degraded = false;
                tracing::info!("kafka: consuming again");
            }
            let (topic, partition, offset) = (
                message.topic().to_owned(),
                message.partition(),
                message.offset(),
            );
            let kind = if topic == self.samples_topic {
                Topic::Samples
            } else {
                Topic::Heartbeats
            };
            out.push(Received {
                topic: kind,
                id: format!("{topic}/{partition}@{offset}"),
                payload: message.payload().unwrap_or_default().to_vec(),
                token: Token::Kafka {
                    topic: topic.clone(),
                    partition,
                    offset,
                },
            });
            drop(message);
            let key = (topic, partition);
            self.in_flight
                .entry(key.clone())
                .or_default()
                .insert(offset);
            self.next.insert(key, offset + 1);
            if out.len() >= max {
                break;
            }
            next = self.consumer.recv().now_or_never();
        }
        Ok(out)
    }

    /// Marks messages done and commits, per partition, the first offset still in a sink (or
    /// the next one to read).
    pub(crate) fn ack(&mut self, messages: &[Received]) -> Result<(), BusError> {
        let mut touched = BTreeSet::new();
        for m in messages {
            if let Token::Kafka {
                topic,
                partition,
                offset,
            } = &m.token
            {
                let key = (topic.clone(), *partition);
                if let Some(set) = self.in_flight.get_mut(&key) {
                    set.remove(offset);
                }
                touched.insert(key);
            }
        }
        let mut list = TopicPartitionList::new();
        for key in touched {
            if let Some(w) = self.watermark(&key) {
                let _ = list.add_partition_offset(&key.0, key.1, Offset::Offset(w));
            }
        }
        if list.count() == 0 {
            return Ok(());
        }
        match self.consumer.commit(&list, CommitMode::Async) {
            Ok(()) => Ok(()),
            // A partition revoked by a rebalance: its new owner re-reads from the last commit.
            Err(KafkaError::ConsumerCommit(code)) => {
                tracing::debug!(%code, "offsets not committed");
                Ok(())
            }
            Err(e) => Err(unreachable(e)),
        }
    }

    pub(crate) async fn dead_letter(
        &mut self,
        message: &Received,
        reason: &str,
    ) -> Result<(), BusError> {
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "reason",
                value: Some(reason.as_bytes()),
            })
            .insert(Header {
                key: "source",
                value: Some(message.id.as_bytes()),
            });
        let (topic, key) = (&self.dead_topic, &message.id);
        send(
            &self.dead,
            self.timeout,
            topic,
            key,
            &message.payload,
            headers,
        )
        .await
    }

    /// Per partition: the first offset still in a sink, or the next one to read.
    fn watermark(&self, key: &(String, i32)) -> Option<i64> {
        match self.in_flight.get(key).and_then(|s| s.first()) {
            Some(&pending) => Some(pending),
            None => self.next.get(key).copied(),
        }
    }

    pub(crate) fn close(self) {
        // A synchronous commit of the watermarks also flushes the asynchronous ones.
        let mut list = TopicPartitionList::new();
        for key in self.next.keys() {
            if let Some(w) = self.watermark(key) {
                let _ = list.add_partition_offset(&key.0, key.1, Offset::Offset(w));
            }
        }
        if list.count() > 0
            && let Err(error) = self.consumer.commit(&list, CommitMode::Sync)
        {
            tracing::warn!(%error, "final offset commit failed; the last messages may be redelivered");
        }
        self.consumer.unsubscribe();
    }
}
