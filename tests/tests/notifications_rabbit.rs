//! Notifications other services publish on RabbitMQ, consumed by `hb_bus::Consumer` next to
//! hb's own envelopes. The "service" here does what oslo.messaging does: it declares its
//! topic exchange (not durable, not auto-deleted) and publishes JSON to it with the routing
//! key `notifications.<priority>`. Each test owns its prefix and exchange names.

use std::time::{Duration, Instant};

use hb_bus::{
    BusError, Consumer, NotificationSources, Outgoing, Producer, Received, Topic, Transport,
};
use hb_tests::bus::{Broker, Kind, exactly};
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ExchangeKind};

/// How long a test waits for what it expects.
const WAIT: Duration = Duration::from_secs(20);
const URI: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// A service publishing notifications the way oslo.messaging does.
struct Service {
    connection: Connection,
    channel: Channel,
    exchange: String,
}

impl Service {
    async fn connect(exchange: &str) -> Self {
        let connection = Connection::connect(URI, Default::default())
            .await
            .expect("connect");
        let channel = connection.create_channel().await.expect("channel");
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirm mode");
        Self {
            connection,
            channel,
            exchange: exchange.to_owned(),
        }
    }

    /// Declares the exchange as oslo.messaging does by default (`amqp_durable_queues=False`),
    /// or durable (`amqp_durable_queues=True`), on a channel of its own.
    async fn declare(&self, durable: bool) -> Result<(), lapin::Error> {
        let channel = self.connection.create_channel().await.expect("channel");
        let options = ExchangeDeclareOptions {
            durable,
            auto_delete: false,
            ..Default::default()
        };
        let declared = channel
            .exchange_declare(
                self.exchange.as_str().into(),
                ExchangeKind::Topic,
                options,
                FieldTable::default(),
            )
            .await;
        if declared.is_ok() {
            let _ = channel.close(200, "declared".into()).await;
        }
        declared
    }

    /// Publishes `payload` with `routing_key` and waits for the broker's confirm (routed or
    /// not: an unbound routing key drops the notification, as for a real service).
    async fn notify(&self, routing_key: &str, payload: &[u8]) {
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_content_encoding("utf-8".into());
        self.channel
            .basic_publish(
                self.exchange.as_str().into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                payload,
                properties,
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
    }

    /// Deletes what the test made: hb's queues and exchange under `prefix`, and the
    /// services' exchanges.
    async fn clean_up(&self, prefix: &str, exchanges: &[&str]) {
        for suffix in ["samples", "heartbeats", "dead", "notifications"] {
            let queue = format!("{prefix}{suffix}");
            let _ = self
                .channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        let hb = format!("{prefix}x");
        for exchange in exchanges.iter().copied().chain([hb.as_str()]) {
            let _ = self
                .channel
                .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
                .await;
        }
    }

    /// Messages waiting in `queue`.
    async fn queue_len(&self, queue: &str) -> u32 {
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        self.channel
            .queue_declare(queue.into(), passive, FieldTable::default())
            .await
            .expect("queue exists")
            .message_count()
    }
}

/// An OpenStack notification (oslo.messaging's 2.0 envelope), unique per call.
fn notification(event_type: &str, priority: &str) -> Vec<u8> {
    let id = uuid::Uuid::new_v4();
    let message = serde_json::json!({
        "message_id": id.to_string(),
        "publisher_id": "compute.host-1",
        "event_type": event_type,
        "priority": priority,
        "payload": {"instance_id": id.to_string(), "state": "active", "memory_mb": 512},
        "timestamp": "2026-11-29 10:00:00.000000",
    });
    let envelope = serde_json::json!({
        "oslo.version": "2.0",
        "oslo.message": message.to_string(),
    });
    envelope.to_string().into_bytes()
}

fn unique(name: &str) -> String {
    format!(
        "{name}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

fn sources(exchanges: &[&str]) -> NotificationSources {
    NotificationSources {
        exchanges: exchanges.iter().map(|e| (*e).to_owned()).collect(),
        ..NotificationSources::default()
    }
}

async fn consumer(url: &str, sources: &NotificationSources) -> Consumer {
    let transport = Transport::parse(url).expect("transport");
    Consumer::connect_with(&transport, Some(sources))
        .await
        .expect("consumer connects")
}

fn payloads(messages: &[Received]) -> Vec<&[u8]> {
    messages.iter().map(|m| m.payload.as_slice()).collect()
}

fn assert_notifications(messages: &[Received], prefix: &str) {
    for m in messages {
        assert_eq!(m.topic, Topic::Notifications, "{}", m.id);
        let queue = format!("{prefix}notifications#");
        assert!(m.id.starts_with(&queue), "{} is not from {queue}", m.id);
    }
}

/// The service declared its exchange (not durable) before hb: hb leaves it as it is, and
/// receives exactly what is published with the subscribed routing keys, byte for byte; an
/// acknowledged notification is not delivered again, an unacknowledged one is.
#[tokio::test]
async fn exchange_declared_by_the_service() {
    let broker = Broker::start(Kind::Rabbit);
    let url = broker.direct("");
    let nova = unique("nova");
    let service = Service::connect(&nova).await;
    service.declare(false).await.expect("service declares");
    // Before any collector: no queue is bound yet, RabbitMQ drops it (as it would).
    service
        .notify("notifications.info", &notification("early", "INFO"))
        .await;

    let sources = sources(&[&nova]);
    let mut first = consumer(&url, &sources).await;
    let info = notification("compute.instance.create.end", "INFO");
    let error = notification("compute.instance.create.error", "ERROR");
    let debug = notification("compute.instance.debug", "DEBUG");
    service.notify("notifications.info", &info).await;
    service.notify("notifications.error", &error).await;
    service.notify("notifications.debug", &debug).await;
    let got = exactly(&mut first, 2, WAIT).await;
    assert_notifications(&got, &broker.prefix);
    assert_eq!(payloads(&got), [info.as_slice(), error.as_slice()]);
    // The exchange is still the service's: declaring it as before still agrees.
    service.declare(false).await.expect("exchange unchanged");

    first.ack(&got[..1]).await.expect("ack info");
    first.close().await;
    let mut second = consumer(&url, &sources).await;
    let again = exactly(&mut second, 1, WAIT).await;
    assert_notifications(&again, &broker.prefix);
    assert_eq!(payloads(&again), [error.as_slice()], "only the unacked one");
    second.ack(&again).await.expect("ack error");
    second.close().await;
    let mut third = consumer(&url, &sources).await;
    exactly(&mut third, 0, WAIT).await;
    third.close().await;
    service.clean_up(&broker.prefix, &[&nova]).await;
}

/// Nobody declared the exchange yet: hb creates it as oslo.messaging would (topic, not
/// durable), so that the service's own declaration agrees with it when it starts; one
/// service's exchange already declared and another's not, on one consumer.
#[tokio::test]
async fn exchange_nobody_declared_yet() {
    let broker = Broker::start(Kind::Rabbit);
    let url = broker.direct("");
    let (cinder, glance) = (unique("cinder"), unique("glance"));
    let cinder_service = Service::connect(&cinder).await;
    cinder_service.declare(false).await.expect("declared");

    let sources = sources(&[&cinder, &glance]);
    let mut collector = consumer(&url, &sources).await;
    let glance_service = Service::connect(&glance).await;
    // Declared durable it would differ from what hb made: the broker refuses.
    let durable = glance_service.declare(true).await;
    assert!(durable.is_err(), "hb made {glance} durable");
    glance_service
        .declare(false)
        .await
        .expect("the service's default declaration agrees with hb's");
    let (image, volume) = (
        notification("image.upload", "INFO"),
        notification("volume.create.end", "ERROR"),
    );
    glance_service.notify("notifications.info", &image).await;
    glance_service
        .notify("notifications.debug", &notification("image.debug", "DEBUG"))
        .await;
    cinder_service.notify("notifications.error", &volume).await;
    let got = exactly(&mut collector, 2, WAIT).await;
    assert_notifications(&got, &broker.prefix);
    assert_eq!(payloads(&got), [image.as_slice(), volume.as_slice()]);
    collector.ack(&got).await.expect("ack");
    collector.close().await;

    // Both exist now: the passive declarations succeed and nothing is left to deliver.
    let mut again = consumer(&url, &sources).await;
    exactly(&mut again, 0, WAIT).await;
    again.close().await;
    cinder_service
        .clean_up(&broker.prefix, &[&cinder, &glance])
        .await;
}

/// hb's own samples envelope and a notification on one consumer, each with its topic; a
/// notification dead-lettered goes to hb's dead-letter queue.
#[tokio::test]
async fn samples_and_notifications_together() {
    let broker = Broker::start(Kind::Rabbit);
    let url = broker.direct("");
    let neutron = unique("neutron");
    let service = Service::connect(&neutron).await;
    service.declare(false).await.expect("declared");
    let mut collector = consumer(&url, &sources(&[&neutron])).await;

    let transport = Transport::parse(&url).expect("transport");
    let producer = Producer::new(&transport).expect("producer");
    let envelope = br#"{"kind":"samples","stand-in":"the bus does not decode"}"#.to_vec();
    producer
        .send(&Outgoing::samples("test", "host-1", 0, envelope.clone()))
        .await
        .expect("sample sent");
    let port = notification("port.create.end", "INFO");
    service.notify("notifications.info", &port).await;
    let got = exactly(&mut collector, 2, WAIT).await;
    let topic_of = |payload: &[u8]| {
        got.iter()
            .find(|m| m.payload == payload)
            .map(|m| m.topic)
            .expect("received")
    };
    assert_eq!(topic_of(&envelope), Topic::Samples);
    assert_eq!(topic_of(&port), Topic::Notifications);

    // hb does not publish notifications.
    let refused = producer
        .send(&Outgoing {
            topic: Topic::Notifications,
            routing_key: "notifications.info".into(),
            key: "host-1".into(),
            partition: None,
            payload: port.clone(),
        })
        .await;
    assert!(
        matches!(refused, Err(BusError::Setup { .. })),
        "{refused:?}"
    );
    producer.close().await;

    let notification = got.iter().find(|m| m.topic == Topic::Notifications);
    let notification = notification.expect("a notification");
    collector
        .dead_letter(notification, "not understood")
        .await
        .expect("dead-lettered");
    collector.ack(&got).await.expect("ack");
    let dead = format!("{}dead", broker.prefix);
    let deadline = Instant::now() + Duration::from_secs(5);
    while service.queue_len(&dead).await == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(service.queue_len(&dead).await, 1, "in {dead}");
    collector.close().await;
    service.clean_up(&broker.prefix, &[&neutron]).await;
}

/// The notifications queue deleted under a running consumer (an operator's mistake, a policy):
/// the broker cancels that queue's consumer and `recv` says so, naming the queue, although
/// the samples queue still delivers; connecting again (what the collector does on a bus
/// error) declares and binds it anew, and notifications flow again.
#[tokio::test]
async fn a_queue_deleted_under_the_consumer_is_an_error_and_a_reconnect_restores_it() {
    let broker = Broker::start(Kind::Rabbit);
    let url = broker.direct("");
    let swift = unique("swift");
    let service = Service::connect(&swift).await;
    service.declare(false).await.expect("declared");
    let sources = sources(&[&swift]);
    let mut collector = consumer(&url, &sources).await;
    let queue = format!("{}notifications", broker.prefix);
    service
        .channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .expect("queue deleted");
    let deadline = Instant::now() + Duration::from_secs(10);
    let error = loop {
        match collector.recv(10).await {
            Err(error) => break error,
            Ok(got) => assert!(got.is_empty(), "nothing was published"),
        }
        assert!(
            Instant::now() < deadline,
            "the cancelled consumer went unnoticed"
        );
    };
    let said = error.to_string();
    assert!(said.contains(&format!("`{queue}`")), "{said}");
    collector.close().await;

    let mut again = consumer(&url, &sources).await;
    let object = notification("objectstore.http.request", "INFO");
    service.notify("notifications.info", &object).await;
    let got = exactly(&mut again, 1, WAIT).await;
    assert_eq!(payloads(&got), [object.as_slice()]);
    again.ack(&got).await.expect("ack");
    again.close().await;
    service.clean_up(&broker.prefix, &[&swift]).await;
}

/// Sources with an empty name are refused before anything is declared.
#[tokio::test]
async fn empty_names_are_refused() {
    let broker = Broker::start(Kind::Rabbit);
    let transport = Transport::parse(&broker.direct("")).expect("transport");
    let cases = [
        (
            vec!["nova".to_owned(), String::new()],
            "empty exchange name",
        ),
        (vec![], "no exchange"),
    ];
    for (exchanges, expected) in cases {
        let sources = NotificationSources {
            exchanges,
            ..NotificationSources::default()
        };
        let error = match Consumer::connect_with(&transport, Some(&sources)).await {
            Ok(_) => panic!("{sources:?} accepted"),
            Err(error) => error,
        };
        assert!(!error.is_retryable(), "{error}");
        let message = error.to_string();
        assert!(message.contains(expected), "{message}");
        assert_eq!(message, message.to_lowercase(), "{message}");
    }
    let sources = NotificationSources {
        topics: vec!["notifications.info".into(), String::new()],
        ..NotificationSources::default()
    };
    let error = Consumer::connect_with(&transport, Some(&sources)).await;
    let message = error.err().expect("refused").to_string();
    assert_eq!(
        message,
        r#"rabbit: cannot set up notification sources: empty topic name (topics: ["notifications.info", ""])"#
    );
}
