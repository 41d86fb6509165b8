//! Samples per second from agent-side publish to collector acknowledgement, per transport,
//! next to the broker's raw rate measured in the same run with a bare client loop that keeps
//! the same guarantees (persistent messages with confirms / acks=all with idempotence / the XADD
//! reply; consumer acknowledgements) and the same payloads.
//!
//!   cargo bench -p hb-tests --bench bus [-- rabbit kafka redis] [--envelopes N] [--options Q]
//!
//! `--options` adds transport URL options to hb's side (e.g. `prefetch=500`).
//!
//! hb: `hb_bus::Producer::send_all` in windows of 200 envelopes of 100 signed samples, and, in
//! the same process, the collector's consume loop (decode, verify, route, write JSON lines to
//! a file in batches of 5000 with a 50 ms timeout, acknowledge). Raw: the same encoded envelopes published and consumed as opaque bytes.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hb_bus::{Outgoing, Producer, Transport};
use hb_collector::stats::Stats;
use hb_pipeline::{Config, Pipeline};
use hb_sample::{Envelope, Sample, SampleType, Secret};
use hb_tests::bus::{Broker, Kind};
use hb_tests::node::SECRET;
use tokio_util::sync::CancellationToken;

/// mimalloc: a collector allocates and frees a few strings per sample; measured ~15 % faster
/// than the system allocator on the pipeline benchmark (`cargo bench -p hb-pipeline`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const WINDOW: usize = 200;
const PER: usize = 100;

fn envelopes(n: usize) -> Vec<Outgoing> {
    let secret = Secret::new(SECRET);
    (0..n)
        .map(|e| {
            let host = format!("bench-{}", e % 16);
            let samples = (0..PER)
                .map(|i| {
                    Sample::new(
                        "cpu",
                        SampleType::Cumulative,
                        "ns",
                        (e * PER + i) as f64,
                        format!("{host}/cpu{i}"),
                        chrono::Utc::now(),
                    )
                    .expect("sample")
                })
                .collect();
            let producer = hb_sample::Producer {
                host: host.clone(),
                agent_id: host.clone(),
                namespaces: vec!["compute".into()],
            };
            let payload = Envelope::samples(producer, e as u64, samples)
                .encode(Some(&secret))
                .expect("encode");
            Outgoing::samples("compute", &host, (e % 3) as u32, payload)
        })
        .collect()
}

/// hb end to end: producer and the collector loop in one process; seconds until all acked.
async fn hb(url: &str, messages: &[Outgoing]) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = format!(
        "transport: \"{url}\"\nsources:\n  - {{name: all, interval: 10, meters: [\"*\"], sinks: [out]}}\n\
         sinks:\n  - {{name: out, batch: {{timeout: 0.05}}, publishers: [\"file://samples.jsonl\"]}}\n"
    );
    let config = Config::parse(&yaml, &dir.path().join("pipeline.yaml"), |_| None).expect("config");
    let pipeline = Arc::new(Pipeline::open(&config).expect("pipeline"));
    let stats = Arc::new(Stats::default());
    let shutdown = CancellationToken::new();
    let consumer = {
        let (stats, shutdown, pipeline, transport) = (
            Arc::clone(&stats),
            shutdown.clone(),
            Arc::clone(&pipeline),
            config.transport.clone(),
        );
        tokio::spawn(async move {
            let secret = Secret::new(SECRET);
            let _ = hb_collector::consume::run(
                &transport,
                None,
                &pipeline,
                Some(&secret),
                None,
                &shutdown,
                &stats,
            )
            .await;
        })
    };
    let started = Instant::now();
    let producer = Producer::new(&config.transport).expect("producer");
    for window in messages.chunks(WINDOW) {
        for r in producer.send_all(window).await {
            r.expect("confirmed");
        }
    }
    while stats.acked.load(Ordering::Relaxed) < messages.len() as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    shutdown.cancel();
    let _ = consumer.await;
    producer.close().await;
    elapsed
}

async fn raw_rabbit(broker: &Broker, messages: &[Outgoing]) -> f64 {
    use lapin::options::*;
    use lapin::types::FieldTable;
    let uri = format!("amqp://guest:guest@127.0.0.1:{}/%2f", broker.port);
    let queue = format!("{}raw", broker.prefix);
    let connect = || async {
        lapin::Connection::connect(&uri, Default::default())
            .await
            .expect("connect")
    };
    let (pc, cc) = (connect().await, connect().await);
    let (pch, cch) = (
        pc.create_channel().await.expect("ch"),
        cc.create_channel().await.expect("ch"),
    );
    pch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm");
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    pch.queue_declare(queue.as_str().into(), durable, FieldTable::default())
        .await
        .expect("declare");
    cch.basic_qos(100, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut consumer = cch
        .basic_consume(
            queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let n = messages.len();
    let reader = tokio::spawn(async move {
        let mut got = 0;
        while got < n {
            let d = consumer.next().await.expect("open").expect("delivery");
            got += 1;
            d.acker.ack(BasicAckOptions::default()).await.expect("ack");
        }
    });
    let started = Instant::now();
    for window in messages.chunks(WINDOW) {
        let confirms = futures_util::future::join_all(window.iter().map(|m| {
            let props = lapin::BasicProperties::default().with_delivery_mode(2);
            pch.basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                &m.payload,
                props,
            )
        }))
        .await;
        for c in
            futures_util::future::join_all(confirms.into_iter().map(|c| c.expect("publish"))).await
        {
            assert!(c.expect("confirm").is_ack());
        }
    }
    reader.await.expect("reader");
    let elapsed = started.elapsed().as_secs_f64();
    let _ = pch
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await;
    elapsed
}

async fn raw_kafka(broker: &Broker, messages: &[Outgoing]) -> f64 {
    use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
    let brokers = format!("127.0.0.1:{}", broker.port);
    let topic = format!("{}raw", broker.prefix);
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()
            .expect("admin");
    let new = rdkafka::admin::NewTopic::new(&topic, 3, rdkafka::admin::TopicReplication::Fixed(1));
    admin
        .create_topics([&new], &Default::default())
        .await
        .expect("create");
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .create()
        .expect("producer");
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", format!("{topic}-g"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");
    let n = messages.len();
    let reader = tokio::spawn(async move {
        let mut got = 0;
        while got < n {
            let m = consumer.recv().await.expect("message");
            got += 1;
            let mut list = TopicPartitionList::new();
            list.add_partition_offset(m.topic(), m.partition(), Offset::Offset(m.offset() + 1))
                .expect("tpl");
            if got % PER == 0 || got == n {
                consumer.commit(&list, CommitMode::Async).expect("commit");
            }
        }
    });
    let started = Instant::now();
    for window in messages.chunks(WINDOW) {
        let sends = window.iter().map(|m| {
            producer.send(
                FutureRecord::to(&topic).key(&m.key).payload(&m.payload),
                Duration::from_secs(10),
            )
        });
        for r in futures_util::future::join_all(sends).await {
            r.expect("delivered");
        }
    }
    reader.await.expect("reader");
    started.elapsed().as_secs_f64()
}

async fn raw_redis(broker: &Broker, messages: &[Outgoing]) -> f64 {
    let client =
        redis::Client::open(format!("redis://127.0.0.1:{}/0", broker.port)).expect("client");
    let config =
        redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(10)));
    let mut p = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("connect");
    let mut c = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("connect");
    let stream = format!("{}raw", broker.prefix);
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&stream)
        .arg("g")
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut c)
        .await
        .expect("group");
    let n = messages.len();
    let s = stream.clone();
    let reader = tokio::spawn(async move {
        let mut got = 0;
        while got < n {
            let reply: Option<redis::streams::StreamReadReply> = redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg("g")
                .arg("c")
                .arg("COUNT")
                .arg(100)
                .arg("BLOCK")
                .arg(1000)
                .arg("STREAMS")
                .arg(&s)
                .arg(">")
                .query_async(&mut c)
                .await
                .expect("read");
            let ids: Vec<String> = reply
                .map(|r| r.keys)
                .unwrap_or_default()
                .into_iter()
                .flat_map(|k| k.ids)
                .map(|i| i.id)
                .collect();
            if ids.is_empty() {
                continue;
            }
            got += ids.len();
            let _: u64 = redis::cmd("XACK")
                .arg(&s)
                .arg("g")
                .arg(&ids)
                .query_async(&mut c)
                .await
                .expect("ack");
        }
    });
    let started = Instant::now();
    for window in messages.chunks(WINDOW) {
        let adds = window.iter().map(|m| {
            let mut conn = p.clone();
            let stream = stream.clone();
            async move {
                let id: String = redis::cmd("XADD")
                    .arg(&stream)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(1_000_000)
                    .arg("*")
                    .arg("payload")
                    .arg(&m.payload[..])
                    .query_async(&mut conn)
                    .await
                    .expect("xadd");
                id
            }
        });
        futures_util::future::join_all(adds).await;
    }
    reader.await.expect("reader");
    let _: () = redis::cmd("DEL")
        .arg(&stream)
        .query_async(&mut p)
        .await
        .expect("del");
    started.elapsed().as_secs_f64()
}

/// The collector's own CPU work on one core, without any broker: decode and verify every
/// envelope, then write each sample as a JSON line (what the `file://` publisher does).
/// Returns (decode seconds, encode seconds).
fn collector_cpu(messages: &[Outgoing]) -> (f64, f64) {
    let secret = Secret::new(SECRET);
    let started = Instant::now();
    let mut samples = Vec::with_capacity(messages.len() * PER);
    for m in messages {
        match Envelope::decode(&m.payload, Some(&secret))
            .expect("decode")
            .body
        {
            hb_sample::Body::Samples(s) => samples.extend(s),
            _ => unreachable!("samples"),
        }
    }
    let decode = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut buf = Vec::with_capacity(PER * 384);
    for chunk in samples.chunks(PER * 100) {
        buf.clear();
        for s in chunk {
            serde_json::to_writer(&mut buf, s).expect("encode");
            buf.push(b'\n');
        }
        std::hint::black_box(&buf);
    }
    (decode, started.elapsed().as_secs_f64())
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let mut n = 2000;
    if let Some(i) = args.iter().position(|a| a == "--envelopes") {
        n = args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .expect("--envelopes N");
    }
    let kinds: Vec<Kind> = [
        ("rabbit", Kind::Rabbit),
        ("kafka", Kind::Kafka),
        ("redis", Kind::Redis),
    ]
    .into_iter()
    .filter(|(name, _)| {
        let named = |n: &str| args.iter().any(|a| a == n);
        named(name) || !["rabbit", "kafka", "redis"].iter().any(|n| named(n))
    })
    .map(|(_, k)| k)
    .collect();
    let options = args
        .iter()
        .position(|a| a == "--options")
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_default();
    let messages = envelopes(n);
    let bytes: usize = messages.iter().map(|m| m.payload.len()).sum();
    println!(
        "{n} envelopes of {PER} samples, {} bytes each on average",
        bytes / n
    );
    let (decode, encode) = collector_cpu(&messages);
    let per_core = |s: f64| (n * PER) as f64 / s;
    println!(
        "collector CPU on one core: decode+verify {:.0} samples/s, JSON lines {:.0} samples/s, both {:.0} samples/s",
        per_core(decode),
        per_core(encode),
        per_core(decode + encode)
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    for kind in kinds {
        let broker = Broker::start(kind);
        let url = broker.direct(&options);
        Transport::parse(&url).expect("url");
        let raw = runtime.block_on(async {
            match kind {
                Kind::Rabbit => raw_rabbit(&broker, &messages).await,
                Kind::Kafka => raw_kafka(&broker, &messages).await,
                Kind::Redis => raw_redis(&broker, &messages).await,
            }
        });
        let ours = runtime.block_on(hb(&url, &messages));
        let rate = |s: f64| (n * PER) as f64 / s;
        println!(
            "{kind:?}: raw {:>9.0} samples/s ({:.2} s) | hb {:>9.0} samples/s ({:.2} s) | hb/raw {:.0} %",
            rate(raw),
            raw,
            rate(ours),
            ours,
            100.0 * raw / ours
        );
    }
}
