//! The Kafka consumer: one member of the collectors' group, committing the contiguous
//! watermark of acknowledged offsets, per partition of hb's topics and of the notification
//! topics alike. Its messages come from the poller's thread (`poller.rs`).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureProducer;
use tokio::sync::mpsc;

use super::offsets::{Member, Offsets, lock};
use super::poller::{Polled, Poller, Topics};
use super::{Quiet, base, ensure_topics, producer, send, setup, unreachable};
use crate::message::Token;
use crate::{BusError, KafkaSpec, NotificationSources, Received, Topic};

/// One member of the collectors' consumer group.
pub struct Consumer {
    consumer: Arc<BaseConsumer<Member>>,
    offsets: Arc<Mutex<Offsets>>,
    incoming: mpsc::Receiver<Polled>,
    poller: Poller,
    timeout: Duration,
    dead: FutureProducer<Quiet>,
    dead_topic: String,
    samples_topic: String,
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
        let consumer: BaseConsumer<Member> = base(spec)?
            .set("group.id", &spec.group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", session.to_string())
            .set("heartbeat.interval.ms", (session / 3).to_string())
            .create_with_context(member)
            .map_err(|e| setup("the consumer", e))?;
        let topics = Topics {
            samples: spec.common.name(Topic::Samples),
            heartbeats: spec.common.name(Topic::Heartbeats),
        };
        let mut subscribed = vec![topics.samples.as_str(), topics.heartbeats.as_str()];
        subscribed.extend(notification_topics.iter().map(String::as_str));
        consumer
            .subscribe(&subscribed)
            .map_err(|e| setup("the subscription", e))?;
        let consumer = Arc::new(consumer);
        let (poller, incoming) = Poller::start(
            Arc::clone(&consumer),
            Arc::clone(&offsets),
            topics,
            spec.common.prefetch,
        )
        .map_err(|e| setup("the polling thread", e))?;
        Ok(Self {
            consumer,
            offsets,
            incoming,
            poller,
            timeout: spec.timeout,
            dead: producer(spec)?,
            dead_topic: spec.common.name(Topic::Dead),
            samples_topic: spec.common.name(Topic::Samples),
            degraded: false,
        })
    }

    pub(crate) async fn recv(&mut self, max: usize) -> Result<Vec<Received>, BusError> {
        let mut out = Vec::new();
        let Ok(mut next) = tokio::time::timeout(Duration::from_secs(1), self.incoming.recv()).await
        else {
            return Ok(out);
        };
        loop {
            match next {
                None => {
                    return Err(BusError::Unreachable {
                        transport: super::TRANSPORT,
                        reason: "the polling thread stopped".into(),
                    });
                }
                Some(Polled::Failed(e)) => return Err(unreachable(e)),
                // librdkafka reconnects by itself and keeps the group membership: a broker
                // away is reported once, and the consumer is kept.
                Some(Polled::Away(code)) => {
                    if !self.degraded {
                        self.degraded = true;
                        tracing::warn!(%code, "kafka: broker unreachable; librdkafka keeps reconnecting");
                    }
                    return Ok(out);
                }
                Some(Polled::Message(message, taken_at)) => {
                    if self.degraded {
                        self.degraded = false;
                        tracing::info!("kafka: consuming again");
                    }
                    if current(&self.offsets, &message, taken_at) {
                        out.push(message);
                    } else {
                        tracing::debug!(id = %message.id, "kafka: message of a revoked partition left to its new owner");
                    }
                }
            }
            if out.len() >= max {
                break;
            }
            match self.incoming.try_recv() {
                Ok(more) => next = Some(more),
                Err(_) => break,
            }
        }
        Ok(out)
    }

    pub(crate) fn released(&mut self) -> Vec<crate::Partition> {
        lock(&self.offsets)
            .take_revoked(&self.samples_topic)
            .into_iter()
            .map(|p| p as crate::Partition)
            .collect()
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
            None,
            key,
            &message.payload,
            headers,
        )
        .await
    }

    pub(crate) fn close(mut self) {
        // Nothing more is taken from librdkafka; what the poller passed on and `recv` did not
        // hand out stays in flight, below the committed watermark, for the next owner.
        self.incoming.close();
        self.poller.stop();
        // A synchronous commit of the watermarks also flushes the asynchronous ones.
        let list = lock(&self.offsets).watermarks(None);
        if list.count() > 0
            && let Err(error) = self.consumer.commit(&list, CommitMode::Sync)
        {
            tracing::warn!(%error, "final offset commit failed; the last messages may be redelivered");
        }
        // Committed as far as it goes: the revocation that leaving causes has nothing to wait
        // for (it would stall this, the runtime's thread, for its whole grace period).
        lock(&self.offsets).forget_in_flight();
        self.consumer.unsubscribe();
    }
}

/// False for a message whose partition was revoked after the poller took it.
fn current(offsets: &Mutex<Offsets>, message: &Received, taken_at: u64) -> bool {
    match &message.token {
        Token::Kafka {
            topic, partition, ..
        } => lock(offsets).is_current(&(topic.clone(), *partition), taken_at),
        _ => true,
    }
}

/// Marks messages done and commits, per partition, the contiguous watermark; usable from any
/// task while the consumer keeps receiving.
#[derive(Clone)]
pub struct Acker {
    consumer: Arc<BaseConsumer<Member>>,
    offsets: Arc<Mutex<Offsets>>,
}

impl Acker {
    pub(crate) fn ack(&self, messages: &[Received]) -> Result<(), BusError> {
        // Under the lock until the commit is queued, so that a revocation on the poller's
        // thread commits after this, never between the watermark and its commit.
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
                offsets.done(&key, *offset);
                touched.insert(key);
            }
        }
        let list = offsets.watermarks(Some(&touched));
        if list.count() == 0 {
            return Ok(());
        }
        // Asynchronous: queued, not waited for.
        let committed = self.consumer.commit(&list, CommitMode::Async);
        drop(offsets);
        match committed {
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
