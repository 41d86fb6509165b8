//! The thread that polls the Kafka consumer: it takes each message from librdkafka, marks it
//! in flight and passes it to [`Consumer::recv`](super::Consumer) through a bounded channel.
//!
//! Rebalance callbacks run on the thread that polls. Here that is this thread, not the
//! collector's (single-threaded) runtime, so a revocation can wait for the messages still in
//! the sinks while the runtime goes on writing and acknowledging them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::Message;
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use tokio::sync::mpsc;

use super::offsets::{Member, Offsets, lock};
use crate::message::Token;
use crate::{Received, Topic};

/// How long one poll waits for a message; the thread notices a stop within it.
const POLL: Duration = Duration::from_millis(100);

/// What the poller passes on.
pub(super) enum Polled {
    /// A message, in flight from now on, with its partition's revocation count when taken.
    Message(Received, u64),
    /// The broker is away; librdkafka keeps reconnecting.
    Away(RDKafkaErrorCode),
    /// A fatal error: the poller has stopped.
    Failed(KafkaError),
}

/// Names of hb's own topics, to tell samples and heartbeats from notifications.
pub(super) struct Topics {
    pub(super) samples: String,
    pub(super) heartbeats: String,
}

/// The polling thread and the switch that stops it.
pub(super) struct Poller {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Poller {
    /// Starts polling `consumer`, passing at most `capacity` messages ahead of `recv`.
    pub(super) fn start(
        consumer: Arc<BaseConsumer<Member>>,
        offsets: Arc<Mutex<Offsets>>,
        topics: Topics,
        capacity: usize,
    ) -> std::io::Result<(Self, mpsc::Receiver<Polled>)> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("hb-kafka-poll".into())
            .spawn(move || run(&consumer, &offsets, &topics, &tx, &stopped))?;
        Ok((
            Self {
                stop,
                thread: Some(thread),
            },
            rx,
        ))
    }

    /// Stops the thread and waits for it (within one poll, once `recv`'s end of the
    /// channel is closed).
    pub(super) fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        // A consumer dropped without `close` (a lost bus): the thread ends within one poll
        // and the group sees the member go.
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn run(
    consumer: &BaseConsumer<Member>,
    offsets: &Mutex<Offsets>,
    topics: &Topics,
    tx: &mpsc::Sender<Polled>,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Relaxed) && !tx.is_closed() {
        let Some(polled) = consumer.poll(POLL) else {
            continue;
        };
        let polled = match polled {
            Ok(message) => {
                let (topic, partition, offset) = (
                    message.topic().to_owned(),
                    message.partition(),
                    message.offset(),
                );
                let kind = if topic == topics.samples {
                    Topic::Samples
                } else if topic == topics.heartbeats {
                    Topic::Heartbeats
                } else {
                    Topic::Notifications
                };
                let payload = message.payload().unwrap_or_default().to_vec();
                let received = Received {
                    topic: kind,
                    id: format!("{topic}/{partition}@{offset}"),
                    length: payload.len(),
                    payload,
                    partition: (kind == Topic::Samples).then_some(partition as u32),
                    token: Token::Kafka {
                        topic: topic.clone(),
                        partition,
                        offset,
                    },
                };
                let taken_at = lock(offsets).handed_out((topic, partition), offset);
                Polled::Message(received, taken_at)
            }
            Err(KafkaError::MessageConsumption(code)) if code != RDKafkaErrorCode::Fatal => {
                Polled::Away(code)
            }
            Err(e) => Polled::Failed(e),
        };
        let fatal = matches!(polled, Polled::Failed(_));
        // Waits while the collector's window is full; a closed channel ends the thread.
        if tx.blocking_send(polled).is_err() || fatal {
            break;
        }
    }
}
