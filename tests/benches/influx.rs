//! Samples per second into a real InfluxDB 1.x through hb (decode and verify signed envelopes,
//! route, batch in a sink, encode line protocol, gzip, POST, wait until InfluxDB took every
//! batch), next to InfluxDB's raw ingest of the same line protocol posted directly, in batches
//! of the same size, measured in the same run against the same server (goal: ≥ 90 %).
//!
//!   cargo bench -p hb-tests --bench influx [-- --samples N] [--concurrency N] [--gzip false]
//!
//! `--concurrency` sets the hb sink's `request_concurrency` (default: hb's default); the raw
//! side keeps as many requests in flight. `--gzip false` turns compression off on both
//! sides (by default both gzip every body at level 1, as hb does).
//!
//! Each side writes its own database; points are distinct series × times, so neither side's
//! points overwrite the other's or its own.

use std::time::{Duration, Instant};

use hb_pipeline::publisher::PublisherSpec;
use hb_pipeline::publisher::influx::InfluxWriter;
use hb_pipeline::{Config, Pipeline};
use hb_sample::{Body, Envelope, Sample, SampleType, Secret};
use hb_tests::influx::Influxd;

/// The allocator the hb binaries use.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PER: usize = 100;
const BATCH: usize = 5000;

fn samples(n: usize) -> Vec<Sample> {
    let t0 = chrono::Utc::now() - chrono::Duration::hours(1);
    (0..n)
        .map(|i| {
            let mut meta = serde_json::Map::new();
            meta.insert("host".into(), format!("host-{}", i % 100).into());
            Sample::new(
                "cpu.util",
                SampleType::Gauge,
                "%",
                (i % 100) as f64,
                format!("host-{}/cpu{}", i % 100, i % 1000 / 100),
                t0 + chrono::Duration::milliseconds((i / 1000) as i64),
            )
            .expect("sample")
            .with_metadata(meta)
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n = args
        .iter()
        .position(|a| a == "--samples")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(500_000);
    let option = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let concurrency: Option<usize> =
        option("--concurrency").map(|v| v.parse().expect("--concurrency N"));
    let gzip = option("--gzip").unwrap_or_else(|| "true".to_owned());
    let influx = Influxd::launch();
    influx.create_database("raw");
    influx.create_database("hb");
    let samples = samples(n);
    let secret = Secret::new("bench secret");
    let envelopes: Vec<Vec<u8>> = samples
        .chunks(PER)
        .enumerate()
        .map(|(i, chunk)| {
            let producer = hb_sample::Producer {
                host: "bench".into(),
                agent_id: "bench/compute".into(),
                namespaces: vec!["compute".into()],
            };
            Envelope::samples(producer, i as u64, chunk.to_vec())
                .encode(Some(&secret))
                .expect("encode")
        })
        .collect();
    let url = |db: &str| format!("influxdb://{}?db={db}&gzip={gzip}", influx.host_port());
    let spec = |db: &str| match PublisherSpec::parse(&url(db), std::path::Path::new("/")) {
        Ok(PublisherSpec::Influx(spec)) => spec,
        other => panic!("{other:?}"),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let concurrency_shown =
        concurrency.unwrap_or(hb_pipeline::BatchConfig::default().request_concurrency);
    println!(
        "{n} samples, {PER} per envelope, batches of {BATCH}, gzip={gzip}, hb request_concurrency {concurrency_shown}"
    );

    // Raw: the same line protocol, pre-encoded, posted batch after batch.
    let raw_spec = spec("raw");
    let encoder = raw_spec.encoder();
    let bodies: Vec<(Vec<u8>, usize)> = samples
        .chunks(BATCH)
        .map(|chunk| {
            let mut body = Vec::new();
            let lines = encoder.encode(chunk, &mut body).lines;
            (body, lines)
        })
        .collect();
    let writer = InfluxWriter::new(&raw_spec).expect("writer");
    // With as many requests in flight as hb's sink may have, so that neither side gets more of
    // InfluxDB's parallelism than the other.
    let raw_concurrency = concurrency_shown.max(1);
    let raw = runtime.block_on(async {
        use futures_util::StreamExt;
        let started = Instant::now();
        let mut writes = futures_util::stream::iter(&bodies)
            .map(|(body, lines)| writer.write(body, *lines))
            .buffer_unordered(raw_concurrency);
        while let Some(written) = writes.next().await {
            assert!(written.expect("raw write").rejected.is_empty());
        }
        started.elapsed().as_secs_f64()
    });
    assert_eq!(influx.count("raw", "cpu.util"), n as u64);

    // hb: decode and verify each envelope, submit to a sink whose publisher is InfluxDB.
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = format!(
        "sources:\n  - {{name: all, interval: 10, meters: [\"*\"], sinks: [influx]}}\n\
         sinks:\n  - {{name: influx, batch: {{max_events: {BATCH}, timeout: 0.05}}, publishers: [\"{}\"]}}\n",
        url("hb")
    );
    let mut config =
        Config::parse(&yaml, &dir.path().join("pipeline.yaml"), |_| None).expect("config");
    if let Some(n) = concurrency {
        config.sinks[0].batch.request_concurrency = n;
    }
    let ours = runtime.block_on(async {
        let pipeline = Pipeline::open(&config).expect("pipeline");
        let started = Instant::now();
        let mut receipts = Vec::new();
        for payload in &envelopes {
            let Body::Samples(samples) = Envelope::decode(payload, Some(&secret))
                .expect("decode")
                .body
            else {
                unreachable!("samples")
            };
            receipts.push(pipeline.submit(samples).await.receipt);
        }
        for receipt in receipts {
            assert!(receipt.accepted().await);
        }
        let elapsed = started.elapsed().as_secs_f64();
        pipeline.close(Duration::from_secs(5)).await;
        elapsed
    });
    assert_eq!(influx.count("hb", "cpu.util"), n as u64);
    let rate = |s: f64| n as f64 / s;
    println!(
        "InfluxDB 1.x: raw {:>9.0} samples/s ({raw:.2} s) | hb {:>9.0} samples/s ({ours:.2} s) | hb/raw {:.0} %",
        rate(raw),
        rate(ours),
        100.0 * raw / ours
    );
}
