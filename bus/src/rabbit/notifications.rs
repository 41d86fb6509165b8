//! The notification side of RabbitMQ: the services' exchanges, and the collectors' queue
//! `<prefix>notifications` bound to each of them with each routing key.
//!
//! The exchanges belong to the services (oslo.messaging declares them when it first
//! publishes): a collector asks whether each exists (a passive declare) and leaves one that
//! does as it is, whatever its type and flags. Only one nobody declared yet is created, as
//! oslo.messaging would: a `topic` exchange, not durable and not auto-deleted
//! (`amqp_durable_queues = False` and `amqp_auto_delete = False`, its defaults), so that the
//! service's own declaration later agrees with it. A service configured with
//! `amqp_durable_queues = True` declares durable exchanges and should start first, or its
//! exchanges be made beforehand.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ErrorKind, ExchangeKind};

use super::{setup, unreachable};
use crate::{BusError, NotificationSources, RabbitSpec, Topic};

/// Makes sure every exchange of `sources` exists, then declares the durable queue
/// `<prefix>notifications` on `channel` and binds it to every exchange with every routing key.
pub(super) async fn declare(
    connection: &Connection,
    channel: &Channel,
    spec: &RabbitSpec,
    sources: &NotificationSources,
) -> Result<(), BusError> {
    ensure_exchanges(connection, &sources.exchanges).await?;
    let queue = spec.common.name(Topic::Notifications);
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .queue_declare(queue.as_str().into(), durable, FieldTable::default())
        .await
        .map_err(setup(format!("queue `{queue}`")))?;
    for exchange in &sources.exchanges {
        for key in &sources.topics {
            channel
                .queue_bind(
                    queue.as_str().into(),
                    exchange.as_str().into(),
                    key.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(setup(format!(
                    "binding of `{queue}` to exchange `{exchange}` with `{key}`"
                )))?;
        }
    }
    Ok(())
}

/// Declares each exchange passively on a channel of its own (a missing one is a 404 that
/// closes the channel: the next question goes on a new one) and creates those missing.
async fn ensure_exchanges(connection: &Connection, exchanges: &[String]) -> Result<(), BusError> {
    let mut probe = connection.create_channel().await.map_err(unreachable)?;
    for exchange in exchanges {
        let what = || format!("exchange `{exchange}`");
        let passive = ExchangeDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let asked = probe
            .exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Topic,
                passive,
                FieldTable::default(),
            )
            .await;
        match asked {
            Ok(()) => continue,
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(setup(what())(e)),
        }
        probe = connection.create_channel().await.map_err(unreachable)?;
        let like_oslo = ExchangeDeclareOptions {
            durable: false,
            auto_delete: false,
            ..Default::default()
        };
        probe
            .exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Topic,
                like_oslo,
                FieldTable::default(),
            )
            .await
            .map_err(setup(what()))?;
        tracing::info!(
            exchange = %exchange,
            "rabbitmq: notification exchange created (topic, not durable): no service had declared it yet"
        );
    }
    let _ = probe
        .close(200, "notification exchanges checked".into())
        .await;
    Ok(())
}

/// The broker's `404 NOT_FOUND`.
fn not_found(e: &lapin::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ProtocolError(amqp)
            if matches!(amqp.kind(), AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND))
    )
}
