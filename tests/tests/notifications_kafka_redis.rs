//! Notifications other services write to Kafka topics (a private tansu per test) and Redis
//! streams, consumed by `hb_bus::Consumer` next to hb's own envelopes: raw bytes in, the same
//! bytes out as `Topic::Notifications`, acknowledged like the rest. Each test owns its names.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use hb_bus::{Consumer, NotificationSources, Outgoing, Producer, Received, Topic, Transport};
use hb_tests::bus::{Broker, Kind, exactly};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const WAIT: Duration = Duration::from_secs(10);

fn unique(name: &str) -> String {
    format!(
        "{name}.{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

/// A notification as a service wrote it: JSON, and bytes that are not UTF-8 after it, since
/// the bus must not care.
fn notification(event_type: &str) -> Vec<u8> {
    let id = uuid::Uuid::new_v4();
    let mut bytes = serde_json::json!({
        "message_id": id.to_string(),
        "publisher_id": "image.host-1",
        "event_type": event_type,
        "priority": "INFO",
        "payload": {"id": id.to_string(), "size": 1024},
        "timestamp": "2026-11-29 10:00:00.000000",
    })
    .to_string()
    .into_bytes();
    bytes.extend_from_slice(&[0xff, 0x00, 0xfe]);
    bytes
}

fn topics(names: &[&str]) -> NotificationSources {
    NotificationSources {
        exchanges: Vec::new(),
        topics: names.iter().map(|n| (*n).to_owned()).collect(),
    }
}

/// The payloads of `topic`'s messages, as a set.
fn payloads(messages: &[Received], topic: Topic) -> BTreeSet<Vec<u8>> {
    messages
        .iter()
        .filter(|m| m.topic == topic)
        .map(|m| m.payload.clone())
        .collect()
}

fn set(payloads: &[&[u8]]) -> BTreeSet<Vec<u8>> {
    payloads.iter().map(|p| p.to_vec()).collect()
}

async fn send_sample(transport: &Transport, payload: &[u8]) {
    let producer = Producer::new(transport).expect("producer");
    producer
        .send(&Outgoing::samples("test", "host-1", 0, payload.to_vec()))
        .await
        .expect("sample sent");
    producer.close().await;
}

fn kafka_config(broker: &Broker) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", format!("127.0.0.1:{}", broker.port));
    config
}

/// Writes `payload` to `topic` without a key, as a service's Kafka driver would.
async fn produce(producer: &FutureProducer, topic: &str, payload: &[u8]) {
    producer
        .send(
            FutureRecord::<(), [u8]>::to(topic).payload(payload),
            Timeout::After(WAIT),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("delivered");
}

/// Raw bytes on a topic the service made (one partition, one record written before any
/// collector) and on one nobody made yet (hb creates it with the transport's partitions)
/// arrive as notifications next to hb's own samples, and their offsets are committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_notifications() {
    let broker = Broker::start(Kind::Kafka);
    let url = broker.direct("");
    let transport = Transport::parse(&url).expect("transport");
    let (info, error) = (unique("notifications.info"), unique("notifications.error"));

    let admin: AdminClient<DefaultClientContext> =
        kafka_config(&broker).create().expect("admin client");
    let options = AdminOptions::new().operation_timeout(Some(WAIT));
    let made = admin
        .create_topics(
            &[NewTopic::new(&info, 1, TopicReplication::Fixed(1))],
            &options,
        )
        .await
        .expect("create topics");
    assert!(made.iter().all(Result::is_ok), "{made:?}");
    let service: FutureProducer = kafka_config(&broker).create().expect("producer");
    let early = notification("image.create");
    produce(&service, &info, &early).await;

    let sources = topics(&[&info, &error]);
    let mut collector = Consumer::connect_with(&transport, Some(&sources))
        .await
        .expect("consumer connects");
    let (late, failed) = (notification("image.upload"), notification("image.failed"));
    produce(&service, &info, &late).await;
    produce(&service, &error, &failed).await;
    let sample = br#"{"kind":"samples","stand-in":"the bus does not decode"}"#;
    send_sample(&transport, sample).await;
    let got = exactly(&mut collector, 4, Duration::from_secs(60)).await;
    let expected = set(&[&early, &late, &failed]);
    assert_eq!(payloads(&got, Topic::Notifications), expected);
    assert_eq!(payloads(&got, Topic::Samples), set(&[sample]));
    for m in got.iter().filter(|m| m.topic == Topic::Notifications) {
        assert!(
            m.id.starts_with(&info) || m.id.starts_with(&error),
            "{}",
            m.id
        );
    }
    collector.ack(&got).await.expect("ack");
    collector.close().await;

    let group: BaseConsumer = kafka_config(&broker)
        .set("group.id", "hb-collector")
        .create()
        .expect("group client");
    let partitions = |topic: &str| {
        let metadata = group.fetch_metadata(Some(topic), WAIT).expect("metadata");
        metadata.topics()[0].partitions().len() as i32
    };
    assert_eq!(partitions(&info), 1, "the service's topic left as it was");
    assert_eq!(
        partitions(&error),
        3,
        "created with the transport's partitions"
    );
    let mut list = TopicPartitionList::new();
    list.add_partition(&info, 0);
    for p in 0..3 {
        list.add_partition(&error, p);
    }
    let committed = group.committed_offsets(list, WAIT).expect("committed");
    let sum = |topic: &str| -> i64 {
        let offsets = committed.elements_for_topic(topic);
        let offsets = offsets.iter().filter_map(|e| match e.offset() {
            Offset::Offset(n) => Some(n),
            _ => None,
        });
        offsets.sum()
    };
    assert_eq!((sum(&info), sum(&error)), (2, 1), "{committed:?}");
}

async fn redis() -> redis::aio::MultiplexedConnection {
    redis::Client::open("redis://127.0.0.1:6379/0")
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect")
}

/// Deletes the services' `streams` and hb's own streams under the broker's prefix.
async fn clean_up(c: &mut redis::aio::MultiplexedConnection, broker: &Broker, streams: &[&str]) {
    let mut del = redis::cmd("DEL");
    del.arg(streams);
    for suffix in ["samples", "heartbeats", "dead"] {
        del.arg(format!("{}{suffix}", broker.prefix));
    }
    let _: u64 = del.query_async(c).await.expect("DEL");
}

async fn pending(c: &mut redis::aio::MultiplexedConnection, stream: &str) -> u64 {
    let (count, _, _, _): (u64, redis::Value, redis::Value, redis::Value) = redis::cmd("XPENDING")
        .arg(stream)
        .arg("hb-collector")
        .query_async(c)
        .await
        .expect("XPENDING");
    count
}

async fn redis_consumer(broker: &Broker, name: &str, sources: &NotificationSources) -> Consumer {
    let url = broker.direct(&format!("consumer={name}"));
    let transport = Transport::parse(&url).expect("transport");
    Consumer::connect_with(&transport, Some(sources))
        .await
        .expect("consumer connects")
}

/// Raw bytes added to a stream before any collector (field `payload`) and after (a single
/// field of the service's naming), and on a stream that did not exist, arrive as
/// notifications next to hb's samples; an entry of several fields and no `payload` arrives
/// whole, as a JSON object of its fields; `XACK`ed they stay done, one left unacknowledged
/// comes back to its consumer.
#[tokio::test]
async fn redis_notifications() {
    let broker = Broker::start(Kind::Redis);
    let (info, error) = (unique("notifications.info"), unique("notifications.error"));
    let mut service = redis().await;
    let early = notification("image.create");
    let _: String = redis::cmd("XADD")
        .arg(&info)
        .arg("*")
        .arg("payload")
        .arg(&early)
        .query_async(&mut service)
        .await
        .expect("XADD");

    let sources = topics(&[&info, &error]);
    let mut collector = redis_consumer(&broker, "first", &sources).await;
    let (late, failed) = (notification("image.upload"), notification("image.failed"));
    for (stream, field, payload) in [(&info, "message", &late), (&error, "payload", &failed)] {
        let _: String = redis::cmd("XADD")
            .arg(stream)
            .arg("*")
            .arg(field)
            .arg(payload)
            .query_async(&mut service)
            .await
            .expect("XADD");
    }
    let _: String = redis::cmd("XADD")
        .arg(&info)
        .arg("*")
        .arg("publisher_id")
        .arg("image.host")
        .arg("event_type")
        .arg("image.delete")
        .query_async(&mut service)
        .await
        .expect("XADD");
    let flat = br#"{"event_type":"image.delete","publisher_id":"image.host"}"#.to_vec();
    let transport = Transport::parse(&broker.direct("")).expect("transport");
    let sample = br#"{"kind":"samples","stand-in":"the bus does not decode"}"#;
    send_sample(&transport, sample).await;
    let got = exactly(&mut collector, 5, WAIT).await;
    let expected = set(&[&early, &late, &failed, &flat]);
    assert_eq!(payloads(&got, Topic::Notifications), expected);
    assert_eq!(payloads(&got, Topic::Samples), set(&[sample]));

    let (done, open): (Vec<Received>, Vec<Received>) =
        got.into_iter().partition(|m| m.payload != failed);
    collector.ack(&done).await.expect("ack");
    assert_eq!(
        (
            pending(&mut service, &info).await,
            pending(&mut service, &error).await
        ),
        (0, 1)
    );
    assert_eq!(open[0].topic, Topic::Notifications);
    collector.close().await;

    let mut again = redis_consumer(&broker, "first", &sources).await;
    let back = exactly(&mut again, 1, WAIT).await;
    assert_eq!(payloads(&back, Topic::Notifications), set(&[&failed]));
    again.ack(&back).await.expect("ack");
    assert_eq!(pending(&mut service, &error).await, 0);
    let mut other = redis_consumer(&broker, "second", &sources).await;
    exactly(&mut other, 0, WAIT).await;

    clean_up(&mut service, &broker, &[&info, &error]).await;
}

/// `COUNT` limits each stream on its own: with entries waiting on three streams, `recv(max)`
/// still hands out at most `max` (the collector's window counts on it), and every entry once.
#[tokio::test]
async fn redis_recv_never_returns_more_than_asked_across_streams() {
    let broker = Broker::start(Kind::Redis);
    let (info, error) = (unique("notifications.info"), unique("notifications.error"));
    let mut service = redis().await;
    let mut sent = BTreeSet::new();
    for stream in [&info, &error] {
        for _ in 0..5 {
            let payload = notification("image.create");
            let _: String = redis::cmd("XADD")
                .arg(stream)
                .arg("*")
                .arg("payload")
                .arg(&payload)
                .query_async(&mut service)
                .await
                .expect("XADD");
            sent.insert(payload);
        }
    }
    let transport = Transport::parse(&broker.direct("")).expect("transport");
    for i in 0..5 {
        let sample = format!("sample {i}").into_bytes();
        send_sample(&transport, &sample).await;
        sent.insert(sample);
    }
    let mut collector = redis_consumer(&broker, "window", &topics(&[&info, &error])).await;
    let mut got = Vec::new();
    let deadline = Instant::now() + WAIT;
    while got.len() < sent.len() && Instant::now() < deadline {
        let batch = collector.recv(3).await.expect("recv");
        assert!(batch.len() <= 3, "recv(3) returned {}", batch.len());
        got.extend(batch);
    }
    let received: Vec<Vec<u8>> = got.iter().map(|m| m.payload.clone()).collect();
    assert_eq!(received.len(), sent.len(), "each entry once");
    assert_eq!(received.into_iter().collect::<BTreeSet<_>>(), sent);
    collector.ack(&got).await.expect("ack");
    collector.close().await;
    clean_up(&mut service, &broker, &[&info, &error]).await;
}

/// An empty stream name, or one of hb's own streams, is refused before connecting.
#[tokio::test]
async fn redis_names_are_checked() {
    let broker = Broker::start(Kind::Redis);
    let transport = Transport::parse(&broker.direct("")).expect("transport");
    let own = format!("{}samples", broker.prefix);
    for (names, expected) in [
        (vec!["notifications.info", ""], "empty topic name"),
        (vec![own.as_str()], "is one of hb's own streams"),
    ] {
        let refused = Consumer::connect_with(&transport, Some(&topics(&names))).await;
        let error = refused.err().expect("refused");
        assert!(!error.is_retryable(), "{error}");
        assert!(error.to_string().contains(expected), "{error}");
    }
}
