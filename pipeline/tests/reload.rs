//! Applying configurations to a running pipeline: sinks replaced under load lose and double
//! nothing, keep their transformers' state, and a sink that cannot start leaves the old one
//! writing.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hb_pipeline::{Applied, Config, Pipeline};
use hb_sample::{Sample, SampleType};

fn config(dir: &Path, yaml: &str) -> Config {
    Config::parse(yaml, &dir.join("pipeline.yaml"), |_| None).expect("config")
}

fn ids(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            serde_json::from_str::<Sample>(l)
                .expect("json line")
                .id
                .to_string()
        })
        .collect()
}

fn gauge(n: usize) -> Sample {
    let at = hb_sample::timestamp::parse("2026-11-22T10:00:00Z").expect("time");
    Sample::new("load", SampleType::Gauge, "1", n as f64, "host-a", at).expect("sample")
}

const TWO_SINKS: &str = r#"
sources:
  - {name: all, interval: 10, meters: ["*"], sinks: [a, b]}
sinks:
  - {name: a, publishers: ["file://a.jsonl"], batch: {timeout: 0.01, max_events: 50}}
  - {name: b, publishers: ["file://b.jsonl"], batch: {timeout: 0.01, max_events: 50}}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_a_sink_under_load_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = config(dir.path(), TWO_SINKS);
    let changed = config(
        dir.path(),
        &TWO_SINKS.replace(
            "max_events: 50}}\n  - {name: b",
            "max_events: 7}}\n  - {name: b",
        ),
    );
    let pipeline = Arc::new(Pipeline::open(&first).expect("open"));
    let submitter = {
        let pipeline = Arc::clone(&pipeline);
        tokio::spawn(async move {
            let mut receipts = Vec::new();
            for chunk in 0..400 {
                let samples: Vec<Sample> = (0..10).map(|i| gauge(chunk * 10 + i)).collect();
                let submitted = pipeline.submit(samples).await;
                receipts.push(submitted.receipt);
                tokio::task::yield_now().await;
            }
            let mut accepted = 0;
            for r in receipts {
                accepted += usize::from(r.accepted().await);
            }
            accepted
        })
    };
    let mut draining_seen = false;
    for round in 0..10 {
        let next = if round % 2 == 0 { &changed } else { &first };
        let applied = pipeline.apply(next, Some("a")).expect("apply");
        assert_eq!(applied.replaced, ["a"], "{applied:?}");
        assert_eq!(applied.kept, ["b"], "{applied:?}");
        let (stats, _) = pipeline.sink("a").expect("sink a");
        draining_seen |= stats.draining.load(Ordering::Relaxed) > 0;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        submitter.await.expect("submitter"),
        400,
        "every submission accepted"
    );
    assert_eq!(pipeline.close(Duration::from_secs(5)).await, 0);
    assert!(draining_seen, "a retired instance was seen draining");
    for file in ["a.jsonl", "b.jsonl"] {
        let ids = ids(&dir.path().join(file));
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for id in &ids {
            *counts.entry(id).or_default() += 1;
        }
        assert_eq!(counts.len(), 4000, "{file}: every sample once");
        assert!(counts.values().all(|&c| c == 1), "{file}: none doubled");
    }
    let (stats, _) = pipeline.sink("a").expect("sink a");
    assert_eq!(
        stats.published.load(Ordering::Relaxed),
        4000,
        "counters carried over"
    );
    assert_eq!(stats.draining.load(Ordering::Relaxed), 0);
}

fn cpu(ns: f64, at: &str) -> Sample {
    let at = hb_sample::timestamp::parse(at).expect("time");
    Sample::new("cpu", SampleType::Cumulative, "ns", ns, "host-a", at).expect("sample")
}

const RATE: &str = r#"
sources:
  - {name: cpu, interval: 10, meters: ["cpu"], sinks: [util]}
sinks:
  - name: util
    transformers:
      - {name: rate_of_change, parameters: {target: {name: cpu.util, unit: "%", type: gauge, scale: "100 / 1e9"}}}
    publishers: ["file://util.jsonl"]
    batch: {timeout: 0.01}
"#;

#[tokio::test]
async fn a_replaced_sink_with_the_same_transformers_keeps_their_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pipeline = Pipeline::open(&config(dir.path(), RATE)).expect("open");
    pipeline
        .publish(vec![cpu(0.0, "2026-11-22T10:00:00Z")])
        .await;
    // Another batch timeout: the sink is replaced, its rate_of_change carries on.
    let other = config(dir.path(), &RATE.replace("timeout: 0.01", "timeout: 0.02"));
    let applied = pipeline.apply(&other, None).expect("apply");
    assert_eq!(applied.replaced, ["util"]);
    pipeline
        .publish(vec![cpu(30e9, "2026-11-22T10:01:00Z")])
        .await;
    pipeline.close(Duration::from_secs(1)).await;
    let util = std::fs::read_to_string(dir.path().join("util.jsonl")).expect("util");
    let util: Vec<Sample> = util
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(
        util.len(),
        1,
        "the second sample made a rate from the first"
    );
    assert!(
        (util[0].volume() - 50.0).abs() < 1e-9,
        "{}",
        util[0].volume()
    );
}

#[tokio::test]
async fn a_sink_that_cannot_start_leaves_everything_as_it_was() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pipeline = Pipeline::open(&config(dir.path(), TWO_SINKS)).expect("open");
    let blocked = dir.path().join("not-a-dir");
    std::fs::write(&blocked, "a file").expect("file");
    let bad = config(
        dir.path(),
        &TWO_SINKS.replace("file://a.jsonl", "file://not-a-dir/a.jsonl"),
    );
    let error = pipeline.apply(&bad, None).expect_err("cannot open");
    assert!(error.to_string().contains("sink `a`"), "{error}");
    pipeline.publish(vec![gauge(1)]).await;
    pipeline.close(Duration::from_secs(1)).await;
    assert_eq!(
        ids(&dir.path().join("a.jsonl")).len(),
        1,
        "the old sink still writes"
    );
}

#[tokio::test]
async fn sinks_are_added_and_removed_and_the_rest_keep_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pipeline = Pipeline::open(&config(dir.path(), TWO_SINKS)).expect("open");
    pipeline.publish(vec![gauge(1)]).await;
    let three = TWO_SINKS.replace("sinks: [a, b]", "sinks: [b, c]").replace(
        "  - {name: a, publishers: [\"file://a.jsonl\"], batch: {timeout: 0.01, max_events: 50}}\n",
        "",
    ) + "  - {name: c, publishers: [\"file://c.jsonl\"], batch: {timeout: 0.01}}\n";
    let applied = pipeline
        .apply(&config(dir.path(), &three), None)
        .expect("apply");
    assert_eq!(
        applied,
        Applied {
            added: vec!["c".into()],
            replaced: vec![],
            removed: vec!["a".into()],
            kept: vec!["b".into()],
        }
    );
    pipeline.publish(vec![gauge(2)]).await;
    pipeline.close(Duration::from_secs(1)).await;
    assert_eq!(ids(&dir.path().join("a.jsonl")).len(), 1);
    assert_eq!(ids(&dir.path().join("b.jsonl")).len(), 2);
    assert_eq!(ids(&dir.path().join("c.jsonl")).len(), 1);
    assert_eq!(pipeline.sink_names(), ["b", "c"]);
}

#[tokio::test]
async fn nothing_is_applied_once_the_pipeline_closes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pipeline = Pipeline::open(&config(dir.path(), TWO_SINKS)).expect("open");
    assert_eq!(pipeline.close(Duration::from_secs(1)).await, 0);
    let error = pipeline
        .apply(&config(dir.path(), TWO_SINKS), Some("a"))
        .expect_err("closing");
    assert!(matches!(error, hb_pipeline::OpenError::Closing), "{error}");
    assert_eq!(
        pipeline.close(Duration::from_secs(1)).await,
        0,
        "a second close"
    );
}
