//! The RabbitMQ consumer: a competing consumer of the samples and heartbeats queues, and of
//! the notifications queue when given sources, all on one channel with one prefetch.

use std::time::Duration;

use futures_util::FutureExt;
use futures_util::stream::{self, BoxStream, SelectAll, StreamExt};
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, Connection};

use super::{TRANSPORT, header, notifications, open, publish, unreachable};
use crate::message::Token;
use crate::{BusError, NotificationSources, RabbitSpec, Received, Topic};

/// Acknowledges deliveries on the consumer's channel, from any task.
#[derive(Clone)]
pub struct Acker(Channel);

impl Acker {
    pub(crate) async fn ack(&self, messages: &[Received]) -> Result<(), BusError> {
        // One ack per message: deliveries of the queues interleave, so "multiple" could
        // acknowledge a message not yet processed.
        let acks = messages.iter().filter_map(|m| match m.token {
            Token::Rabbit { tag } => Some(self.0.basic_ack(tag, BasicAckOptions::default())),
            _ => None,
        });
        for result in futures_util::future::join_all(acks).await {
            result.map_err(unreachable)?;
        }
        Ok(())
    }
}

/// The deliveries of one queue, each with the topic of that queue, then `None` once when the
/// broker ends that queue's consumer (the queue was deleted, say): the other queues' streams
/// go on, so without it the end of one would go unnoticed.
type Deliveries = BoxStream<
    'static,
    (
        Topic,
        Option<Result<lapin::message::Delivery, lapin::Error>>,
    ),
>;

/// A competing consumer of the samples and heartbeats queues (and the notifications queue).
pub struct Consumer {
    spec: RabbitSpec,
    connection: Connection,
    channel: Channel,
    deliveries: SelectAll<Deliveries>,
}

impl Consumer {
    pub(crate) async fn connect(
        spec: &RabbitSpec,
        sources: Option<&NotificationSources>,
    ) -> Result<Self, BusError> {
        let sources = sources
            .map(|s| s.checked(TRANSPORT, true, &[]))
            .transpose()?;
        let (connection, channel) = open(spec, "hb-collector").await?;
        let mut topics = vec![Topic::Samples, Topic::Heartbeats];
        if let Some(sources) = &sources {
            notifications::declare(&connection, &channel, spec, sources).await?;
            topics.push(Topic::Notifications);
        }
        // Per consumer: each queue gets `prefetch` unacknowledged deliveries.
        channel
            .basic_qos(spec.common.prefetch as u16, BasicQosOptions::default())
            .await
            .map_err(unreachable)?;
        let mut deliveries = SelectAll::new();
        for topic in topics {
            let queue = spec.common.name(topic);
            let consumer = channel
                .basic_consume(
                    queue.as_str().into(),
                    "".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(unreachable)?;
            let ended = stream::once(async { None });
            deliveries.push(
                stream::repeat(topic)
                    .zip(consumer.map(Some).chain(ended))
                    .boxed(),
            );
        }
        Ok(Self {
            spec: spec.clone(),
            connection,
            channel,
            deliveries,
        })
    }

    pub(crate) async fn recv(&mut self, max: usize) -> Result<Vec<Received>, BusError> {
        let mut out = Vec::new();
        let first = match tokio::time::timeout(Duration::from_secs(1), self.deliveries.next()).await
        {
            Err(_) => return Ok(out),
            Ok(first) => first,
        };
        let mut next = first;
        loop {
            match next {
                None => return Err(unreachable("the broker cancelled the consumer")),
                Some((_, None)) if !self.connection.status().connected() => {
                    return Err(unreachable("the connection to the broker was closed"));
                }
                Some((topic, None)) => {
                    return Err(unreachable(format!(
                        "the broker cancelled the consumer of queue `{}`",
                        self.spec.common.name(topic)
                    )));
                }
                Some((_, Some(Err(e)))) => return Err(unreachable(e)),
                Some((topic, Some(Ok(delivery)))) => out.push(self.received(topic, delivery)),
            }
            if out.len() >= max {
                break;
            }
            match self.deliveries.next().now_or_never() {
                Some(more) => next = more,
                None => break,
            }
        }
        Ok(out)
    }

    /// The topic is that of the queue the delivery came from, the id `<queue>#<tag>`.
    fn received(&self, topic: Topic, delivery: lapin::message::Delivery) -> Received {
        let tag = delivery.delivery_tag;
        Received {
            topic,
            id: format!("{}{}#{tag}", self.spec.common.prefix, topic.suffix()),
            payload: delivery.data,
            token: Token::Rabbit { tag },
        }
    }

    pub(crate) fn acker(&self) -> Acker {
        Acker(self.channel.clone())
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
