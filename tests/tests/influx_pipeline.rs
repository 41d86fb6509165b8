//! The collector into real InfluxDB 1.x and VictoriaMetrics: a real agent's samples arrive
//! exactly (values, times, series), `cpu.util` is derived, and an InfluxDB outage under load
//! loses nothing (the sink retries, the collector stops consuming, the bus keeps the rest).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use hb_bus::{Outgoing, Transport};
use hb_sample::{Envelope, Sample, SampleType, Secret};
use hb_tests::bus::{Broker, Kind};
use hb_tests::influx::{Influxd, VictoriaMetrics, point, points};
use hb_tests::node::{Node, SECRET, send, sum, wait_until};

fn unique(what: &str) -> String {
    format!(
        "{what}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

#[test]
fn agent_to_influxdb_and_victoriametrics_through_the_collector() {
    let influx = Influxd::launch();
    let victoria = VictoriaMetrics::launch();
    let db = unique("hb");
    influx.create_database(&db);
    let broker = Broker::start(Kind::Redis);
    let url = broker.direct("");
    let influx_url = format!("influxdb://{}?db={db}", influx.host_port());
    let victoria_url = format!(
        "influxdb2://{}?org=hb&bucket=hb&token_env=&backslash=escape",
        victoria.host_port()
    );
    let collector = format!(
        "transport: \"{url}\"\nsecret_file: secret\n\
         sources:\n  - {{name: all, interval: 10, meters: [\"*\"], sinks: [raw]}}\n\
         \x20 - {{name: cpu, interval: 10, meters: [\"cpu\"], sinks: [util]}}\n\
         sinks:\n\
         \x20 - name: raw\n    batch: {{timeout: 0.2}}\n    publishers: [\"{influx_url}\", \"{victoria_url}\", \"file://samples.jsonl\"]\n\
         \x20 - name: util\n    batch: {{timeout: 0.2}}\n    transformers:\n\
         \x20     - name: rate_of_change\n        parameters:\n\
         \x20         target: {{name: cpu.util, unit: \"%\", type: gauge, scale: \"100 / (1e9 * (resource_metadata.cpu_number or 1))\", max: 100}}\n\
         \x20   publishers: [\"{influx_url}\"]\n"
    );
    let mut collector = Node::collector_with(&collector);
    let agent_yaml = format!(
        "transport: \"{url}\"\nsecret_file: secret\n\
         sources:\n  - {{name: all, interval: 1, meters: [\"*\"], sinks: [out]}}\n\
         sinks:\n  - {{name: out, publishers: [\"file://unused.jsonl\"]}}\n"
    );
    let mut agent = Node::agent_with(&agent_yaml);
    std::thread::sleep(Duration::from_secs(7));
    assert!(agent.term().success(), "{}", agent.log());
    let polled = sum(&agent.log(), "cycle done", "samples") as usize;
    let arrived = wait_until(Duration::from_secs(30), || collector.lines() >= polled);
    assert!(collector.term().success(), "{}", collector.log());
    assert!(
        arrived,
        "{} of {polled} arrived:\n{}",
        collector.lines(),
        collector.log()
    );
    let (sent, _) = collector.samples();
    let expected: BTreeSet<_> = sent.iter().map(point).collect();
    let stored = points(&influx, &db);
    let util: Vec<_> = stored
        .iter()
        .filter(|p| p.0 == "cpu.util")
        .cloned()
        .collect();
    let raw: BTreeSet<_> = stored.into_iter().filter(|p| p.0 != "cpu.util").collect();
    println!(
        "influxdb: agent polled {polled}, collector file {}, influxdb raw points {}, cpu.util points {}",
        sent.len(),
        raw.len(),
        util.len()
    );
    assert_eq!(raw, expected, "InfluxDB holds exactly what was sent");
    assert!(
        util.len() >= 3,
        "cpu.util derived once per cycle after the first: {util:?}"
    );
    for (_, _, _, value) in &util {
        let v: f64 = value.parse().expect("number");
        assert!((0.0..=100.0).contains(&v), "cpu.util {v} out of [0, 100]");
    }
    // VictoriaMetrics names a field `<measurement>_<field>`; count every raw point.
    let exported = victoria.export_at_least("{__name__=~\".+_value\"}", 3);
    let vm_points: usize = exported
        .iter()
        .map(|s| s["timestamps"].as_array().map_or(0, Vec::len))
        .sum();
    println!(
        "victoriametrics: {vm_points} points in {} series",
        exported.len()
    );
    assert_eq!(
        vm_points,
        expected.len(),
        "the v2 write path lands the same points"
    );
}

/// Envelopes of `per` samples, one series per sample, signed.
fn envelopes(wave: usize, count: usize, per: usize) -> Vec<Outgoing> {
    let secret = Secret::new(SECRET);
    let at = chrono::Utc::now();
    (0..count)
        .map(|e| {
            let samples = (0..per)
                .map(|i| {
                    let resource = format!("w{wave}-e{e}-s{i}");
                    Sample::new("load.test", SampleType::Gauge, "1", i as f64, resource, at)
                        .expect("sample")
                })
                .collect();
            let producer = hb_sample::Producer {
                host: "load".into(),
                agent_id: "load/test".into(),
                namespaces: vec!["test".into()],
            };
            let payload = Envelope::samples(producer, (wave * count + e) as u64, samples)
                .encode(Some(&secret))
                .expect("encode");
            Outgoing::samples("test", "load", 0, payload)
        })
        .collect()
}

#[test]
fn influxdb_down_for_15s_under_load_loses_nothing() {
    const WAVES: usize = 25;
    const PER_WAVE: usize = 20;
    const PER: usize = 100;
    let mut influx = Influxd::launch();
    let db = unique("hb");
    influx.create_database(&db);
    let broker = Broker::start(Kind::Redis);
    let url = broker.direct("prefetch=50");
    let yaml = format!(
        "transport: \"{url}\"\nsecret_file: secret\n\
         sources:\n  - {{name: all, interval: 10, meters: [\"*\"], sinks: [influx]}}\n\
         sinks:\n  - {{name: influx, batch: {{max_events: 2000, buffer_events: 8000, timeout: 0.2}}, \
         publishers: [\"influxdb://{}?db={db}&timeout_ms=2000\"]}}\n",
        influx.host_port()
    );
    let mut collector = Node::collector_with(&yaml);
    let transport = Transport::parse(&url).expect("url");
    let started = Instant::now();
    for wave in 0..WAVES {
        send(&transport, &envelopes(wave, PER_WAVE, PER));
        if wave == 5 {
            influx.stop();
            println!(
                "influxdb stopped after {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
        if wave == 20 {
            influx.start();
            println!(
                "influxdb back after {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
        std::thread::sleep(if (5..20).contains(&wave) {
            Duration::from_secs(1)
        } else {
            Duration::from_millis(200)
        });
    }
    let total = (WAVES * PER_WAVE * PER) as u64;
    let done = wait_until(Duration::from_secs(90), || {
        influx.count(&db, "load.test") >= total
    });
    assert!(collector.term().success(), "{}", collector.log());
    let stored = influx.count(&db, "load.test");
    let log = collector.log();
    let retried = log
        .matches("publisher refused a batch; retrying it")
        .count();
    println!(
        "influxdb outage: sent {total} samples, stored {stored}, retry warnings {retried}, took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(done, "only {stored} of {total} stored:\n{log}");
    assert_eq!(stored, total);
    assert!(retried > 0, "the outage was seen:\n{log}");
}

/// A batch InfluxDB takes only in part: the refused lines go to the sink's dead-letter file
/// with InfluxDB's reason, the rest is stored, and the batch counts as published.
#[test]
fn refused_lines_are_dead_lettered_and_the_rest_is_kept() {
    let influx = Influxd::launch();
    let db = unique("hb");
    influx.create_database(&db);
    let at = chrono::Utc::now() - chrono::Duration::minutes(1);
    let ns = at.timestamp_nanos_opt().expect("ns");
    // `value` is a string on `conflict` in this shard: float points there are refused.
    let seeded = influx.write_raw(
        &db,
        &format!("conflict,resource_id=seed value=\"text\" {ns}"),
    );
    assert_eq!(seeded.status, 204);
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = format!(
        "dead_letter_dir: dead\n\
         sources:\n  - {{name: all, interval: 10, meters: [\"*\"], sinks: [influx]}}\n\
         sinks:\n  - {{name: influx, batch: {{timeout: 0.05}}, publishers: [\"influxdb://{}?db={db}\"]}}\n",
        influx.host_port()
    );
    let config = hb_pipeline::Config::parse(&yaml, &dir.path().join("pipeline.yaml"), |_| None)
        .expect("config");
    let sample = |name: &str, resource: &str| {
        Sample::new(name, SampleType::Gauge, "1", 1.5, resource, at).expect("sample")
    };
    let batch = vec![
        sample("fine", "a"),
        sample("conflict", "b"),
        sample("fine", "c"),
        sample("conflict", "d"),
        sample("fine", "e"),
    ];
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (delivery, dead_lettered) = runtime.block_on(async {
        let pipeline = hb_pipeline::Pipeline::open(&config).expect("pipeline");
        let delivery = pipeline.publish(batch).await;
        let (_, stats, _) = pipeline.sinks().into_iter().next().expect("sink");
        let dead = stats
            .dead_lettered
            .load(std::sync::atomic::Ordering::Relaxed);
        pipeline.close(Duration::from_secs(1)).await;
        (delivery, dead)
    });
    assert_eq!((delivery.delivered, delivery.failed), (5, 0));
    assert_eq!(dead_lettered, 2);
    assert_eq!(influx.count(&db, "fine"), 3);
    let text = std::fs::read_to_string(dir.path().join("dead/influx.jsonl")).expect("dead letters");
    let entries: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    println!("dead letters: {entries:?}");
    assert_eq!(entries.len(), 2);
    for entry in &entries {
        assert!(
            entry["data"]
                .as_str()
                .expect("line")
                .starts_with("conflict,")
        );
        assert!(
            entry["reason"]
                .as_str()
                .expect("reason")
                .contains("field type conflict"),
            "{entry}"
        );
        assert_eq!(entry["sink"], "influx");
    }
}
