//! The Kafka consumer: one member of the collectors' group, committing the contiguous
//! watermark of acknowledged offsets, per partition of hb's topics and of the notification
//! topics alike.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureProducer;
use rdkafka::{Message, Offset, TopicPartitionList};

use super::{Quiet, base, ensure_topics, producer, send, setup, unreachable};
use crate::message::Token;
use crate::{BusError, KafkaSpec, NotificationSources, Received, Topic};

/// One member of the collectors' consumer group.
pub struct Consumer {
    consumer: Arc<StreamConsumer<Member>>,
    offsets: Arc<Mutex<Offsets>>,
    timeout: Duration,
    dead: FutureProducer<Quiet>,
    dead_topic: String,
    samples_topic: String,
    heartbeats_topic: String,
    /// The broker is away (reported once).
    degraded: bool,
}

impl Consumer {
    pub(crate) async fn connect(
        spec: &KafkaSpec,
        sources: Option<&NotificationSources>,
    ) -> Result<Self, BusError> {
        let own: Vec<String> = Topic::ALL.map(|t| spec.common.name(t)).into();
        let notification_topics = match sources {
            Some(s) => s.checked(super::TRANSPORT, false, &own)?.topics,
            None => Vec::new(),
        };
        ensure_topics(spec, &notification_topics).await?;
        let session = spec.session_timeout.as_millis();
        let offsets: Arc<Mutex<Offsets>> = Arc::default();
        let member = Member {
            offsets: Arc::clone(&offsets),
        };
        let consumer: StreamConsumer<Member> = base(spec)
            .set("group.id", &spec.group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", session.to_string())
            .set("heartbeat.interval.ms", (session / 3).to_string())
            .create_with_context(member)
            .map_err(|e| setup("the consumer", e))?;
        let samples_topic = spec.common.name(Topic::Samples);
        let heartbeats_topic = spec.common.name(Topic::Heartbeats);
        let mut topics = vec![samples_topic.as_str(), heartbeats_topic.as_str()];
        topics.extend(notification_topics.iter().map(String::as_str));
        consumer
            .subscribe(&topics)
            .map_err(|e| setup("the subscription", e))?;
        Ok(Self {
            consumer: Arc::new(consumer),
            offsets,
            timeout: spec.timeout,
            dead: producer(spec)?,
            dead_topic: spec.common.name(Topic::Dead),
            samples_topic,
            heartbeats_topic,
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
            // Subscribed to hb's two topics and the notification topics only.
            let kind = if topic == self.samples_topic {
                Topic::Samples
            } else if topic == self.heartbeats_topic {
                Topic::Heartbeats
            } else {
                Topic::Notifications
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
            lock(&self.offsets).handed_out((topic, partition), offset);
            if out.len() >= max {
                break;
            }
            next = self.consumer.recv().now_or_never();
        }
        Ok(out)
    }

    pub(crate) fn acker(&self) -> Acker {
        Acker {
            consumer: Arc::clone(&self.consumer),
            offsets: Arc::clone(&self.offsets),
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

    pub(crate) fn close(self) {
        // A synchronous commit of the watermarks also flushes the asynchronous ones.
        let list = lock(&self.offsets).watermarks(None);
        if list.count() > 0
            && let Err(error) = self.consumer.commit(&list, CommitMode::Sync)
        {
            tracing::warn!(%error, "final offset commit failed; the last messages may be redelivered");
        }
        self.consumer.unsubscribe();
    }
}

/// What was handed out and what is done, per (topic, partition).
#[derive(Default)]
struct Offsets {
    /// Offsets handed out and not yet acknowledged.
    in_flight: HashMap<(String, i32), BTreeSet<i64>>,
    /// The offset after the last message handed out.
    next: HashMap<(String, i32), i64>,
}

impl Offsets {
    fn handed_out(&mut self, key: (String, i32), offset: i64) {
        self.in_flight
            .entry(key.clone())
            .or_default()
            .insert(offset);
        self.next.insert(key, offset + 1);
    }

    /// The first offset still in a sink, or the next one to read.
    fn watermark(&self, key: &(String, i32)) -> Option<i64> {
        match self.in_flight.get(key).and_then(|s| s.first()) {
            Some(&pending) => Some(pending),
            None => self.next.get(key).copied(),
        }
    }

    /// Commit positions of the partitions in `keys`, or of every partition seen.
    fn watermarks(&self, keys: Option<&BTreeSet<(String, i32)>>) -> TopicPartitionList {
        let mut list = TopicPartitionList::new();
        let all: Vec<&(String, i32)> = match keys {
            Some(keys) => keys.iter().collect(),
            None => self.next.keys().collect(),
        };
        for key in all {
            if let Some(w) = self.watermark(key) {
                let _ = list.add_partition_offset(&key.0, key.1, Offset::Offset(w));
            }
        }
        list
    }
}

/// How long a revocation waits for the messages of the revoked partitions that are still in
/// the sinks, so that their offsets are committed before the new owner starts reading.
const REVOKE_GRACE: Duration = Duration::from_secs(3);

/// The consumer's context: quiet logging, and on a rebalance, the commit of what was done in
/// the partitions being taken away. Without it, the new owner (possibly this same member)
/// re-reads from the last asynchronous commit and writes again what was already written.
struct Member {
    offsets: Arc<Mutex<Offsets>>,
}

impl ClientContext for Member {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        Quiet.log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        Quiet.error(error, reason);
    }
}

impl ConsumerContext for Member {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(revoked) = rebalance else {
            return;
        };
        let keys: BTreeSet<(String, i32)> = revoked
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        // Runs on the thread that polls: the sinks and their acknowledgements go on meanwhile.
        let deadline = Instant::now() + REVOKE_GRACE;
        let pending = || {
            let offsets = lock(&self.offsets);
            keys.iter()
                .map(|k| offsets.in_flight.get(k).map_or(0, BTreeSet::len))
                .sum::<usize>()
        };
        while pending() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let (list, left) = {
            let mut offsets = lock(&self.offsets);
            let list = offsets.watermarks(Some(&keys));
            let left: usize = keys
                .iter()
                .map(|k| offsets.in_flight.remove(k).map_or(0, |s| s.len()))
                .sum();
            for k in &keys {
                offsets.next.remove(k);
            }
            (list, left)
        };
        if list.count() > 0
            && let Err(error) = consumer.commit(&list, CommitMode::Sync)
        {
            tracing::warn!(%error, "kafka: offsets of revoked partitions not committed; their new owner may read some messages again");
        }
        if left > 0 {
            tracing::info!(
                messages = left,
                "kafka: partitions revoked with messages still in the sinks; their new owner will read them again"
            );
        }
    }
}

fn lock(offsets: &Mutex<Offsets>) -> MutexGuard<'_, Offsets> {
    offsets.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Marks messages done and commits, per partition, the contiguous watermark; usable from any
/// task while the consumer keeps receiving.
#[derive(Clone)]
pub struct Acker {
    consumer: Arc<StreamConsumer<Member>>,
    offsets: Arc<Mutex<Offsets>>,
}

impl Acker {
    pub(crate) fn ack(&self, messages: &[Received]) -> Result<(), BusError> {
        let list = {
            let mut offsets = lock(&self.offsets);
            let mut touched = BTreeSet::new();
            for m in messages {
                if let Token::Kafka {
                    topic,
                    partition,
                    offset,
                } = &m.token
                {
                    let key = (topic.clone(), *partition);
                    if let Some(set) = offsets.in_flight.get_mut(&key) {
                        set.remove(offset);
                    }
                    touched.insert(key);
                }
            }
            offsets.watermarks(Some(&touched))
        };
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
}
