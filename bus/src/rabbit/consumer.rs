//! The RabbitMQ consumer: the heartbeats queue (and the notifications queue when given
//! sources) as a competing consumer on one channel, and each assigned samples partition queue
//! on a channel of its own, so that giving a partition up is closing its channel: the broker
//! puts back what this consumer held of it, in order, and makes the next consumer standing
//! by on the queue (single active consumer) the active one.

use std::collections::BTreeMap;
use std::task::Poll;
use std::time::Duration;

use futures_util::stream::{self, BoxStream, StreamExt};
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, Connection};

use super::{TRANSPORT, header, notifications, open, publish, unreachable};
use crate::message::Token;
use crate::partition::InFlight;
use crate::{Assigned, BusError, NotificationSources, Partition, RabbitSpec, Received, Topic};

/// Acknowledges deliveries on the channels they came from, from any task.
#[derive(Clone)]
pub struct Acker(InFlight);

impl Acker {
    pub(crate) async fn ack(&self, messages: &[Received]) -> Result<(), BusError> {
        // One ack per message: deliveries of the queues interleave, so "multiple" could
        // acknowledge a message not yet processed.
        let acks = messages.iter().filter_map(|m| match &m.token {
            Token::Rabbit { tag, channel } => {
                Some(channel.basic_ack(*tag, BasicAckOptions::default()))
            }
            _ => None,
        });
        let results = futures_util::future::join_all(acks).await;
        for m in messages {
            if let Some(p) = m.partition {
                self.0.done(p);
            }
        }
        for result in results {
            result.map_err(unreachable)?;
        }
        Ok(())
    }
}

/// Where a stream of deliveries comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    Shared(Topic),
    Partition(Partition),
}

/// The deliveries of one queue, then `None` once when the broker ends that queue's consumer
/// (the queue was deleted, say, or its channel closed).
type Deliveries = BoxStream<'static, Option<Result<lapin::message::Delivery, lapin::Error>>>;

/// A consumed samples partition.
struct Part {
    channel: Channel,
    /// Given up: nothing more of it is handed out; its channel closes once what was handed
    /// out is acknowledged.
    releasing: bool,
    /// Deliveries taken while giving up and left unacknowledged: only closing the channel
    /// gives them back, so a part that has some is closed even if it is wanted again (and
    /// opened anew after).
    dropped: usize,
}

/// The collector's consumer of heartbeats, notifications and its assigned partitions.
pub struct Consumer {
    spec: RabbitSpec,
    connection: Connection,
    channel: Channel,
    streams: BTreeMap<Source, Deliveries>,
    parts: BTreeMap<Partition, Part>,
    assigned: Assigned,
    in_flight: InFlight,
    released: Vec<Partition>,
    /// Where the next wait starts polling, so that no queue is starved.
    turn: usize,
}

impl Consumer {
    pub(crate) async fn connect(
        spec: &RabbitSpec,
        sources: Option<&NotificationSources>,
        assigned: Assigned,
    ) -> Result<Self, BusError> {
        let sources = sources
            .map(|s| s.checked(TRANSPORT, true, &[]))
            .transpose()?;
        let (connection, channel) = open(spec, "hb-collector").await?;
        let mut topics = vec![Topic::Heartbeats];
        if let Some(sources) = &sources {
            notifications::declare(&connection, &channel, spec, sources).await?;
            topics.push(Topic::Notifications);
        }
        qos(&channel, spec).await?;
        let mut streams = BTreeMap::new();
        for topic in topics {
            let queue = spec.common.name(topic);
            streams.insert(Source::Shared(topic), consume(&channel, &queue).await?);
        }
        let mut consumer = Self {
            spec: spec.clone(),
            connection,
            channel,
            streams,
            parts: BTreeMap::new(),
            assigned,
            in_flight: InFlight::default(),
            released: Vec::new(),
            turn: 0,
        };
        consumer.follow().await?;
        Ok(consumer)
    }

    /// Opens the newly assigned partitions, gives up those no longer assigned, and closes
    /// those given up whose messages are all acknowledged.
    async fn follow(&mut self) -> Result<(), BusError> {
        let wanted = self
            .assigned
            .borrow_and_update()
            .within(self.spec.common.partitions);
        for p in &wanted {
            if let Some(part) = self.parts.get_mut(p) {
                // Assigned again before it was closed: keep it, unless it left deliveries
                // unacknowledged (then it closes, and is opened again at the next call).
                if part.dropped == 0 {
                    part.releasing = false;
                }
                continue;
            }
            let channel = self
                .connection
                .create_channel()
                .await
                .map_err(unreachable)?;
            qos(&channel, &self.spec).await?;
            let queue = self.spec.common.partition_name(*p);
            let deliveries = consume(&channel, &queue).await?;
            self.streams.insert(Source::Partition(*p), deliveries);
            self.parts.insert(
                *p,
                Part {
                    channel,
                    releasing: false,
                    dropped: 0,
                },
            );
            tracing::info!(partition = p, queue = %queue, "consuming partition (active once no other collector is)");
        }
        let done = self
            .in_flight
            .give_up(&mut self.parts, &wanted, |part| &mut part.releasing);
        for p in done {
            if let Some(part) = self.parts.remove(&p) {
                // Closing the channel returns what it still holds (deliveries taken while
                // giving up) to the queue, in order, for the next consumer.
                let _ = part
                    .channel
                    .close(200, "partition handed over".into())
                    .await;
            }
            self.streams.remove(&Source::Partition(p));
            self.in_flight.clear(p);
            self.released.push(p);
            tracing::info!(partition = p, "partition released");
        }
        Ok(())
    }

    pub(crate) async fn recv(&mut self, max: usize) -> Result<Vec<Received>, BusError> {
        self.follow().await?;
        let mut out = Vec::new();
        let Ok(mut next) = tokio::time::timeout(Duration::from_secs(1), self.next()).await else {
            return Ok(out);
        };
        loop {
            let (source, item) = next;
            match item {
                None if !self.connection.status().connected() => {
                    return Err(unreachable("the connection to the broker was closed"));
                }
                None => {
                    let queue = match source {
                        Source::Shared(topic) => self.spec.common.name(topic),
                        Source::Partition(p) => self.spec.common.partition_name(p),
                    };
                    return Err(unreachable(format!(
                        "the broker cancelled the consumer of queue `{queue}`"
                    )));
                }
                Some(Err(e)) => return Err(unreachable(e)),
                Some(Ok(delivery)) => {
                    if let Some(m) = self.received(source, delivery) {
                        out.push(m);
                    }
                }
            }
            if out.len() >= max {
                break;
            }
            match futures_util::FutureExt::now_or_never(self.next()) {
                Some(more) => next = more,
                None => break,
            }
        }
        Ok(out)
    }

    /// The next delivery of any queue, polling them in turn.
    async fn next(
        &mut self,
    ) -> (
        Source,
        Option<Result<lapin::message::Delivery, lapin::Error>>,
    ) {
        self.turn = self.turn.wrapping_add(1);
        let turn = self.turn;
        let streams = &mut self.streams;
        std::future::poll_fn(move |cx| {
            let n = streams.len();
            if n == 0 {
                return Poll::Pending;
            }
            let start = turn % n;
            // From `start` to the end, then from the beginning to `start`.
            for (from, to) in [(start, n), (0, start)] {
                for (source, stream) in streams.iter_mut().skip(from).take(to - from) {
                    if let Poll::Ready(item) = stream.poll_next_unpin(cx) {
                        return Poll::Ready((*source, item.flatten()));
                    }
                }
            }
            Poll::Pending
        })
        .await
    }

    /// The message of a delivery; `None` for one of a partition being given up (left
    /// unacknowledged, it goes back to the queue when the partition's channel closes).
    fn received(&mut self, source: Source, delivery: lapin::message::Delivery) -> Option<Received> {
        let tag = delivery.delivery_tag;
        let (topic, partition, queue, channel) = match source {
            Source::Shared(topic) => (topic, None, self.spec.common.name(topic), &self.channel),
            Source::Partition(p) => {
                let part = self.parts.get_mut(&p)?;
                if part.releasing {
                    part.dropped += 1;
                    return None;
                }
                self.in_flight.out(p);
                (
                    Topic::Samples,
                    Some(p),
                    self.spec.common.partition_name(p),
                    &part.channel,
                )
            }
        };
        Some(Received {
            topic,
            id: format!("{queue}#{tag}"),
            length: delivery.data.len(),
            payload: delivery.data,
            partition,
            token: Token::Rabbit {
                tag,
                channel: channel.clone(),
            },
        })
    }

    pub(crate) fn acker(&self) -> Acker {
        Acker(self.in_flight.clone())
    }

    pub(crate) fn released(&mut self) -> Vec<Partition> {
        std::mem::take(&mut self.released)
    }

    pub(crate) async fn dead_letter(
        &mut self,
        message: &Received,
        reason: &str,
    ) -> Result<(), BusError> {
        let mut headers = header("x-hb-reason", reason);
        headers.insert(
            "x-hb-source".into(),
            AMQPValue::LongString(LongString::from(message.id.as_str())),
        );
        let queue = self.spec.common.name(Topic::Dead);
        publish(&self.channel, "", &queue, &message.payload, headers).await
    }

    pub(crate) async fn close(self) {
        for part in self.parts.values() {
            let _ = part
                .channel
                .close(200, "hb-collector stopping".into())
                .await;
        }
        let _ = self
            .channel
            .close(200, "hb-collector stopping".into())
            .await;
        let _ = self
            .connection
            .close(200, "hb-collector stopping".into())
            .await;
    }
}

/// Per consumer: each queue gets `prefetch` unacknowledged deliveries.
async fn qos(channel: &Channel, spec: &RabbitSpec) -> Result<(), BusError> {
    channel
        .basic_qos(spec.common.prefetch as u16, BasicQosOptions::default())
        .await
        .map_err(unreachable)
}

/// Starts consuming `queue` on `channel`: its deliveries, then `None` when the broker ends
/// the consumer.
async fn consume(channel: &Channel, queue: &str) -> Result<Deliveries, BusError> {
    let consumer = channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(unreachable)?;
    let ended = stream::once(async { None });
    Ok(consumer.map(Some).chain(ended).boxed())
}
