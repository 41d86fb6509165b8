//! RabbitMQ: a durable topic exchange (`hb`), one durable queue per samples partition
//! `<prefix>samples.<p>` (bound to `samples.<p>.#`, single active consumer), `<prefix>heartbeats`
//! (`heartbeat.#`) and `<prefix>dead`, persistent messages with publisher confirms, and a
//! `basic.qos` prefetch. Heartbeats and notifications have competing consumers; each samples
//! partition is consumed on its own channel, only while it is assigned.
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
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
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

/// `tls_ca` (added to the public roots lapin trusts) and `tls_cert` + `tls_key` (the client
/// certificate) as lapin's TLS configuration.
fn tls_config(spec: &RabbitSpec) -> OwnedTLSConfig {
    OwnedTLSConfig {
        identity: spec.tls.identity.as_ref().map(|id| OwnedIdentity::PKCS8 {
            pem: id.cert.pem.clone(),
            key: id.key.pem.clone(),
        }),
        cert_chain: spec
            .tls
            .ca
            .as_ref()
            .map(|ca| String::from_utf8_lossy(&ca.pem).into_owned()),
    }
}

/// Connects, opens a channel in confirm mode and declares the exchange and queues.
async fn open(spec: &RabbitSpec, role: &str) -> Result<(Connection, Channel), BusError> {
    let properties = ConnectionProperties::default().with_connection_name(role.into());
    let runtime = lapin::runtime::default_runtime().map_err(unreachable)?;
    let connection = tokio::time::timeout(
        CONNECT_TIMEOUT,
        Connection::connect_with_config(spec.uri.expose(), properties, tls_config(spec), runtime),
    )
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
    let mut queues: Vec<(String, Option<String>, FieldTable)> = (0..spec.common.partitions)
        .map(|p| {
            let queue = spec.common.partition_name(p);
            (queue, Some(format!("samples.{p}.#")), single_active())
        })
        .collect();
    queues.push((
        spec.common.name(Topic::Heartbeats),
        Some("heartbeat.#".to_owned()),
        FieldTable::default(),
    ));
    queues.push((spec.common.name(Topic::Dead), None, FieldTable::default()));
    for (queue, binding, arguments) in queues {
        let options = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        channel
            .queue_declare(queue.as_str().into(), options, arguments)
            .await
            .map_err(setup(format!("queue `{queue}`")))?;
        if let Some(key) = binding {
            channel
                .queue_bind(
                    queue.as_str().into(),
                    spec.exchange.as_str().into(),
                    key.as_str().into(),
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

/// The arguments of a samples partition queue: one consumer at a time gets its messages
/// (`x-single-active-consumer`); the others stand by and take over, in order, when it goes.
fn single_active() -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
    arguments
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
        // The routing key is made again from the partition on this bus: an envelope spooled
        // before partitions existed says `samples.<namespace>`, one spooled with another
        // `partitions` may name a partition that has no queue any more.
        let routing_key = match message.partition_in(self.spec.common.partitions) {
            Some(p) => {
                let rest = message
                    .routing_key
                    .strip_prefix("samples.")
                    .unwrap_or("unknown");
                let namespace = match message.partition {
                    Some(old) => rest.strip_prefix(&format!("{old}.")).unwrap_or(rest),
                    None => rest,
                };
                format!("samples.{p}.{namespace}")
            }
            None => message.routing_key.clone(),
        };
        publish(
            &channel,
            &self.spec.exchange,
            &routing_key,
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
