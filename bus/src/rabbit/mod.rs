//! RabbitMQ: a durable topic exchange (`hb`), durable queues `<prefix>samples` (bound to
//! `samples.#`), `<prefix>heartbeats` (`heartbeat.#`) and `<prefix>dead`, persistent messages
//! with publisher confirms, and competing consumers with a `basic.qos` prefetch.
//!
//! Agents declare the queues too, so nothing published before the first collector started is
//! dropped by an exchange without bindings; publishes are `mandatory`, so an unroutable
//! message is not confirmed.
//!
//! Collectors given [`NotificationSources`](crate::NotificationSources) also consume the
//! durable queue `<prefix>notifications`, bound to the services' exchanges (see
//! `notifications`), on the same channel and with the same prefetch.

use std::time::Duration;

use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use tokio::sync::Mutex;

use crate::{BusError, Outgoing, RabbitSpec, Topic};

mod consumer;
mod notifications;

pub use consumer::{Acker, Consumer};

const TRANSPORT: &str = "rabbit";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

fn unreachable(e: impl std::fmt::Display) -> BusError {
    BusError::Unreachable {
        transport: TRANSPORT,
        reason: e.to_string(),
    }
}

/// Maps the broker's refusal to declare or bind `what` to a permanent error; a connection
/// lost meanwhile (anything but an AMQP protocol refusal) is retryable.
fn setup(what: String) -> impl FnOnce(lapin::Error) -> BusError {
    move |e| match e.kind() {
        lapin::ErrorKind::ProtocolError(_) => BusError::Setup {
            transport: TRANSPORT,
            what,
            reason: e.to_string(),
        },
        _ => unreachable(format!("{what}: {e}")),
    }
}

/// Connects, opens a channel in confirm mode and declares the exchange and queues.
async fn open(spec: &RabbitSpec, role: &str) -> Result<(Connection, Channel), BusError> {
    let properties = ConnectionProperties::default().with_connection_name(role.into());
    let connection =
        tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(&spec.uri, properties))
            .await
            .map_err(|_| unreachable(format!("no connection within {CONNECT_TIMEOUT:?}")))?
            .map_err(unreachable)?;
    let channel = connection.create_channel().await.map_err(unreachable)?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(unreachable)?;
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .exchange_declare(
            spec.exchange.as_str().into(),
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await
        .map_err(setup(format!("exchange `{}`", spec.exchange)))?;
    for (topic, binding) in [
        (Topic::Samples, Some("samples.#")),
        (Topic::Heartbeats, Some("heartbeat.#")),
        (Topic::Dead, None),
    ] {
        let queue = spec.common.name(topic);
        let options = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        channel
            .queue_declare(queue.as_str().into(), options, FieldTable::default())
            .await
            .map_err(setup(format!("queue `{queue}`")))?;
        if let Some(key) = binding {
            channel
                .queue_bind(
                    queue.as_str().into(),
                    spec.exchange.as_str().into(),
                    key.into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(setup(format!("binding of `{queue}` to `{key}`")))?;
        }
    }
    Ok((connection, channel))
}

/// Publishes persistently and waits for the broker's confirm.
async fn publish(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    payload: &[u8],
    headers: FieldTable,
) -> Result<(), BusError> {
    let properties = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_headers(headers);
    let options = BasicPublishOptions {
        mandatory: true,
        ..Default::default()
    };
    let confirm = channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            options,
            payload,
            properties,
        )
        .await
        .map_err(unreachable)?;
    let confirmation = tokio::time::timeout(CONFIRM_TIMEOUT, confirm)
        .await
        .map_err(|_| BusError::NotConfirmed {
            transport: TRANSPORT,
            reason: format!("no confirm within {CONFIRM_TIMEOUT:?}"),
        })?
        .map_err(unreachable)?;
    let refused = |reason: &str| BusError::NotConfirmed {
        transport: TRANSPORT,
        reason: reason.to_owned(),
    };
    match confirmation {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(_)) => {
            Err(refused("unroutable (no queue bound to the routing key)"))
        }
        Confirmation::Nack(_) => Err(refused("nack")),
        Confirmation::NotRequested => Err(refused("channel not in confirm mode")),
    }
}

fn header(key: &str, value: &str) -> FieldTable {
    let mut headers = FieldTable::default();
    headers.insert(key.into(), AMQPValue::LongString(LongString::from(value)));
    headers
}

/// Publishes with confirms on one channel, reconnecting after a failure.
pub struct Producer {
    spec: RabbitSpec,
    link: Mutex<Option<(Connection, Channel)>>,
}

impl Producer {
    pub(crate) fn new(spec: &RabbitSpec) -> Self {
        Self {
            spec: spec.clone(),
            link: Mutex::new(None),
        }
    }

    async fn channel(&self) -> Result<Channel, BusError> {
        let mut link = self.link.lock().await;
        if let Some((connection, channel)) = &*link
            && connection.status().connected()
            && channel.status().connected()
        {
            return Ok(channel.clone());
        }
        *link = None;
        let (connection, channel) = open(&self.spec, "hb-polling").await?;
        *link = Some((connection, channel.clone()));
        Ok(channel)
    }

    pub(crate) async fn send(&self, message: &Outgoing) -> Result<(), BusError> {
        let channel = self.channel().await?;
        publish(
            &channel,
            &self.spec.exchange,
            &message.routing_key,
            &message.payload,
            header("x-hb-key", &message.key),
        )
        .await
    }

    pub(crate) async fn close(&self) {
        if let Some((connection, _)) = self.link.lock().await.take() {
            let _ = connection.close(200, "hb-polling stopping".into()).await;
        }
    }
}
