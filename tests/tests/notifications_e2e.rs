//! Notifications end to end on the real local RabbitMQ, Redis and a Kafka-protocol broker
//! (tansu): published the way OpenStack services publish them (RabbitMQ: topic exchanges,
//! routing key `notifications.info`; Kafka and Redis: a topic or stream per priority,
//! `notifications.info`), turned by the repository's shipped
//! definitions into samples in a real InfluxDB and events in the archive; a malformed
//! notification is dead-lettered.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hb_notification::{Definitions, Notification, Unmatched};
use hb_pipeline::publisher::PublisherSpec;
use hb_pipeline::publisher::archive::read_events_range;
use hb_sample::{Event, Sample};
use hb_tests::bus::{Broker, Kind, dead_letters};
use hb_tests::influx::{Influxd, Point, point, points};
use hb_tests::node::{Node, wait_until};
use hb_tests::repo;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, ExchangeKind};

fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_owned()
}

/// The exact bytes of every notification fixture of the notification crate, with the
/// service (exchange) that publishes it: `<service>-<what>.yaml`.
fn fixtures() -> Vec<(String, String, Vec<u8>)> {
    #[derive(serde::Deserialize)]
    struct Fixture {
        notification: String,
    }
    let dir = repo().join("notification/tests/fixtures");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("fixture");
            let fixture: Fixture = serde_saphyr::from_str(&text).expect("fixture yaml");
            let name = path
                .file_stem()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            let service = name.split('-').next().expect("service").to_owned();
            (name, service, fixture.notification.into_bytes())
        })
        .collect()
}

/// Publishes `(service, routing key, bytes)` as an oslo.messaging notifier does: to the
/// service's topic exchange `<service>-<tag>`, which it declares itself, non-durable, with
/// confirms.
fn publish_rabbit(messages: &[(String, &str, Vec<u8>)], tag: &str) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let uri = "amqp://guest:guest@127.0.0.1:5672/%2f";
        let connection = lapin::Connection::connect(uri, Default::default())
            .await
            .expect("connect");
        let channel = connection.create_channel().await.expect("channel");
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirms");
        for (service, key, bytes) in messages {
            let exchange = format!("{service}-{tag}");
            let options = ExchangeDeclareOptions {
                durable: false,
                ..Default::default()
            };
            channel
                .exchange_declare(
                    exchange.as_str().into(),
                    ExchangeKind::Topic,
                    options,
                    FieldTable::default(),
                )
                .await
                .expect("declare the exchange as the service does");
            let confirm = channel
                .basic_publish(
                    exchange.as_str().into(),
                    (*key).into(),
                    BasicPublishOptions::default(),
                    bytes,
                    BasicProperties::default().with_content_type("application/json".into()),
                )
                .await
                .expect("publish");
            confirm.await.expect("confirmed");
        }
        let _ = connection.close(0, "done".into()).await;
    });
}

/// Adds `(service, routing key, bytes)` to the stream `<routing key>-<tag>`, the notification
/// as the entry's one field.
fn publish_redis(messages: &[(String, &str, Vec<u8>)], tag: &str, port: u16) {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/0")).expect("client");
    let mut connection = client.get_connection().expect("connect");
    for (_, key, bytes) in messages {
        let _: String = redis::cmd("XADD")
            .arg(format!("{key}-{tag}"))
            .arg("*")
            .arg("message")
            .arg(bytes.as_slice())
            .query(&mut connection)
            .expect("XADD");
    }
}

/// Writes `(service, routing key, bytes)` to the topic `<routing key>-<tag>` without a key, as
/// oslo.messaging's Kafka driver does; a topic the collector does not read is created first
/// (the broker does not create topics on use).
fn publish_kafka(messages: &[(String, &str, Vec<u8>)], tag: &str, port: u16) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let mut config = rdkafka::ClientConfig::new();
        config.set("bootstrap.servers", format!("127.0.0.1:{port}"));
        let admin: AdminClient<DefaultClientContext> = config.create().expect("admin");
        let debug = format!("notifications.debug-{tag}");
        let created = admin
            .create_topics(
                &[NewTopic::new(&debug, 1, TopicReplication::Fixed(1))],
                &AdminOptions::new(),
            )
            .await
            .expect("create topics");
        assert!(created.iter().all(Result::is_ok), "{created:?}");
        let producer: FutureProducer = config.create().expect("producer");
        for (_, key, bytes) in messages {
            let topic = format!("{key}-{tag}");
            producer
                .send(
                    FutureRecord::<(), [u8]>::to(&topic).payload(bytes.as_slice()),
                    Duration::from_secs(30),
                )
                .await
                .map_err(|(e, _)| e)
                .expect("delivered");
        }
    });
}

#[test]
fn openstack_notifications_on_kafka_become_samples_in_influxdb_and_events_in_the_archive() {
    end_to_end(Kind::Kafka);
}

#[test]
fn openstack_notifications_on_rabbitmq_become_samples_in_influxdb_and_events_in_the_archive() {
    end_to_end(Kind::Rabbit);
}

#[test]
fn openstack_notifications_on_redis_become_samples_in_influxdb_and_events_in_the_archive() {
    end_to_end(Kind::Redis);
}

fn end_to_end(kind: Kind) {
    let fixtures = fixtures();
    assert!(fixtures.len() >= 8, "the notification fixtures");
    // What the shipped definitions make of them, computed here with the same library.
    let loaded = Definitions::load(
        Some(&repo().join("meters.d")),
        Some(&repo().join("events.d")),
        Unmatched::Keep,
    )
    .expect("definitions");
    assert!(loaded.skipped.is_empty(), "{:?}", loaded.skipped);
    let (mut samples, mut events) = (Vec::<Sample>::new(), Vec::<Event>::new());
    for (_, _, bytes) in &fixtures {
        let converted = loaded
            .definitions
            .convert(&Notification::decode(bytes).expect("fixture decodes"));
        samples.extend(converted.samples);
        events.extend(converted.event);
    }
    let expected: BTreeSet<Point> = samples.iter().map(point).collect();
    assert!(expected.len() >= 10, "the fixtures make samples");

    let influx = Influxd::launch();
    let db = format!("notifications_{}", unique());
    influx.create_database(&db);
    let broker = Broker::start(kind);
    let url = broker.direct("");
    let tag = unique();
    let sources = match kind {
        Kind::Rabbit => {
            let services: BTreeSet<&str> = fixtures.iter().map(|(_, s, _)| s.as_str()).collect();
            let exchanges: Vec<String> = services.iter().map(|s| format!("{s}-{tag}")).collect();
            format!("exchanges: [{}]", exchanges.join(", "))
        }
        _ => format!("topics: [notifications.info-{tag}, notifications.error-{tag}]"),
    };
    let yaml = format!(
        "transport: \"{url}\"\nsecret_file: secret\n\
         notifications:\n  {sources}\n  meters: {}\n  events: {}\n  event_sinks: [archive]\n\
         sources:\n  - {{name: all, interval: 10, meters: [\"*\"], sinks: [influx]}}\n\
         sinks:\n\
         \x20 - {{name: influx, batch: {{timeout: 0.2}}, publishers: [\"influxdb://{}?db={db}\"]}}\n\
         \x20 - {{name: archive, batch: {{timeout: 0.2}}, publishers: [\"archive+file://archive\"]}}\n",
        repo().join("meters.d").display(),
        repo().join("events.d").display(),
        influx.host_port(),
    );
    let mut collector = Node::collector_with(&yaml);
    assert!(
        wait_until(Duration::from_secs(30), || collector
            .log()
            .contains(" consuming transport=")),
        "the collector consumes:\n{}",
        collector.log()
    );

    // As the services publish: the fixtures on `notifications.info` (errors on
    // `notifications.error`), two malformed ones, and one on a key nobody listens to.
    let mut messages: Vec<(String, &str, Vec<u8>)> = fixtures
        .iter()
        .map(|(name, service, bytes)| {
            let key = if name.contains("error") {
                "notifications.error"
            } else {
                "notifications.info"
            };
            (service.clone(), key, bytes.clone())
        })
        .collect();
    let nova = "nova".to_owned();
    messages.push((
        nova.clone(),
        "notifications.info",
        b"{\"event_type\": ".to_vec(),
    ));
    messages.push((
        nova.clone(),
        "notifications.info",
        br#"{"message_id": "m-0", "payload": {}}"#.to_vec(),
    ));
    messages.push((nova, "notifications.debug", fixtures[0].2.clone()));
    match kind {
        Kind::Rabbit => publish_rabbit(&messages, &tag),
        Kind::Kafka => publish_kafka(&messages, &tag, broker.port),
        Kind::Redis => publish_redis(&messages, &tag, broker.port),
    }

    let landed = wait_until(Duration::from_secs(60), || {
        points(&influx, &db).len() >= expected.len()
    });
    let status = collector.term();
    let log = collector.log();
    assert!(landed && status.success(), "{log}");
    let got = points(&influx, &db);
    println!(
        "{kind:?} notifications: {} published ({} fixtures, 2 malformed, 1 unsubscribed), {} samples \
         expected, {} points in InfluxDB, {} events expected",
        messages.len(),
        fixtures.len(),
        expected.len(),
        got.len(),
        events.len()
    );
    assert_eq!(got, expected, "InfluxDB holds exactly the samples made");

    // Events in the archive, exactly.
    let archive = collector.dir.path().join("archive");
    let spec = match PublisherSpec::parse(
        &format!("archive+file://{}", archive.display()),
        Path::new("/"),
    )
    .expect("url")
    {
        PublisherSpec::Archive(spec) => spec,
        other => panic!("{other:?}"),
    };
    let times: Vec<DateTime<Utc>> = events.iter().map(|e| e.generated).collect();
    let from = *times.iter().min().expect("events") - chrono::Duration::hours(1);
    let to = *times.iter().max().expect("events") + chrono::Duration::hours(1);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let read = runtime
        .block_on(read_events_range(&spec, from, to))
        .expect("read the archive");
    assert!(read.bad.is_empty(), "{:?}", read.bad);
    let key = |e: &Event| (e.message_id.clone(), e.event_type.clone());
    let mut archived = read.events.clone();
    archived.sort_by_key(key);
    events.sort_by_key(key);
    println!(
        "archive: {} event objects, {} events read back",
        read.objects,
        archived.len()
    );
    assert_eq!(
        archived, events,
        "the archive holds exactly the events made"
    );

    // The two malformed notifications, and nothing else, were dead-lettered.
    assert_eq!(dead_letters(&broker), 2, "{log}");
    assert!(log.contains("notification refused"), "{log}");
}
