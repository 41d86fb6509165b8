//! Routing through real file publishers: filters, fan-out, de-duplication per sink, failures.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hb_pipeline::{Config, Delivery, Pipeline};
use hb_sample::{Sample, SampleType};

fn sample(name: &str) -> Sample {
    let at = hb_sample::timestamp::parse("2026-11-22T10:00:00Z").expect("time");
    Sample::new(name, SampleType::Gauge, "B", 1.0, "host-a", at).expect("sample")
}

fn names(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<Sample>(l).expect("json line").name)
        .collect()
}

fn pipeline(dir: &Path, yaml: &str) -> Pipeline {
    let config = Config::parse(yaml, &dir.join("pipeline.yaml"), |_| None).expect("config");
    Pipeline::open(&config).expect("open")
}

#[tokio::test]
async fn samples_reach_each_selected_sink_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = pipeline(
        dir.path(),
        r#"
sources:
  - {name: cpu, interval: 10, meters: ["cpu"], sinks: [fast, all]}
  - {name: rest, interval: 10, meters: ["*", "!disk.*"], sinks: [all]}
  - {name: disk, interval: 10, meters: ["disk.*"], sinks: [disk]}
sinks:
  - {name: fast, publishers: ["file://fast.jsonl"]}
  - {name: all, publishers: ["file://all.jsonl", "file://all-copy.jsonl"]}
  - {name: disk, publishers: ["file://disk.jsonl"]}
"#,
    );
    let batch = ["cpu", "memory.usage", "disk.device.read.bytes"]
        .map(sample)
        .to_vec();
    let delivery = p.publish(batch).await;
    // cpu -> fast, all (once, although two sources route it there); memory -> all; disk -> disk.
    assert_eq!(
        delivery,
        Delivery {
            delivered: 4,
            failed: 0,
            unrouted: 0
        }
    );
    assert_eq!(names(&dir.path().join("fast.jsonl")), ["cpu"]);
    assert_eq!(
        names(&dir.path().join("all.jsonl")),
        ["cpu", "memory.usage"]
    );
    assert_eq!(
        names(&dir.path().join("all-copy.jsonl")),
        ["cpu", "memory.usage"]
    );
    assert_eq!(
        names(&dir.path().join("disk.jsonl")),
        ["disk.device.read.bytes"]
    );
}

#[tokio::test]
async fn unselected_samples_are_counted_and_a_failing_publisher_does_not_stop_the_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    // /dev/full opens fine and refuses every write with ENOSPC: a real failing sink.
    let p = pipeline(
        dir.path(),
        r#"
sources:
  - {name: s, interval: 10, meters: ["cpu", "load.*"], sinks: [full, ok]}
sinks:
  - {name: full, publishers: ["file:///dev/full"], batch: {timeout: 0.05}}
  - {name: ok, publishers: ["file://ok.jsonl"], batch: {timeout: 0.05}}
"#,
    );
    let submitted = p
        .submit(["cpu", "load.1", "swap.used"].map(sample).to_vec())
        .await;
    assert_eq!((submitted.routed, submitted.unrouted), (4, 1));
    let ok = dir.path().join("ok.jsonl");
    let deadline = Instant::now() + Duration::from_secs(10);
    while names(&ok).len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        names(&ok),
        ["cpu", "load.1"],
        "the healthy sink is not held up"
    );
    // The failing sink keeps retrying: the submission is not accepted until it gives up at
    // close, and then it is refused (a bus would redeliver it).
    assert_eq!(
        p.close(Duration::from_millis(300)).await,
        1,
        "syncing /dev/full is refused too"
    );
    assert!(!submitted.receipt.accepted().await);
    let (_, full, _) = p
        .sinks()
        .into_iter()
        .find(|(name, ..)| name == "full")
        .expect("sink");
    assert_eq!(full.abandoned.load(Ordering::Relaxed), 2);
    assert!(full.retries.load(Ordering::Relaxed) >= 1);
}

#[tokio::test]
async fn a_full_batch_goes_out_before_the_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = pipeline(
        dir.path(),
        r#"
sources:
  - {name: s, interval: 10, meters: ["*"], sinks: [out]}
sinks:
  - {name: out, publishers: ["file://out.jsonl"], batch: {max_events: 3, timeout: 3600}}
"#,
    );
    let first = p.submit(["a", "b"].map(sample).to_vec()).await;
    let second = p.submit(["c", "d"].map(sample).to_vec()).await;
    let accepted = tokio::time::timeout(Duration::from_secs(10), async {
        (
            first.receipt.accepted().await,
            second.receipt.accepted().await,
        )
    })
    .await
    .expect("a batch of 3 is due at once, not after an hour");
    assert_eq!(accepted, (true, true));
    assert_eq!(names(&dir.path().join("out.jsonl")), ["a", "b", "c", "d"]);
    p.close(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_sink_that_keeps_failing_pushes_back_instead_of_dropping() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = pipeline(
        dir.path(),
        r#"
sources:
  - {name: s, interval: 10, meters: ["*"], sinks: [full]}
sinks:
  - {name: full, publishers: ["file:///dev/full"], batch: {max_events: 2, buffer_events: 4, timeout: 0.01}}
"#,
    );
    let _held = p.submit(["a", "b", "c", "d"].map(sample).to_vec()).await;
    let blocked =
        tokio::time::timeout(Duration::from_millis(500), p.submit(vec![sample("e")])).await;
    assert!(
        blocked.is_err(),
        "a fifth sample waits for room instead of being dropped"
    );
    let (_, stats, held) = p.sinks().into_iter().next().expect("sink");
    assert_eq!(held, 4);
    assert_eq!(stats.published.load(Ordering::Relaxed), 0);
    p.close(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn transformers_run_per_sink_before_publishing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = pipeline(
        dir.path(),
        r#"
sources:
  - {name: cpu, interval: 10, meters: ["cpu"], sinks: [util, raw]}
sinks:
  - name: util
    transformers:
      - name: rate_of_change
        parameters:
          target: {name: cpu.util, unit: "%", type: gauge, scale: "100 / (1e9 * (resource_metadata.cpu_number or 1))"}
    publishers: ["file://util.jsonl"]
    batch: {timeout: 0.05}
  - {name: raw, publishers: ["file://raw.jsonl"], batch: {timeout: 0.05}}
"#,
    );
    let cpu = |ns: f64, at: &str| {
        let at = hb_sample::timestamp::parse(at).expect("time");
        let mut meta = serde_json::Map::new();
        meta.insert("cpu_number".into(), 4.into());
        Sample::new("cpu", SampleType::Cumulative, "ns", ns, "host-a", at)
            .expect("sample")
            .with_metadata(meta)
    };
    let d1 = p.publish(vec![cpu(120e9, "2026-11-22T10:00:00Z")]).await;
    let d2 = p.publish(vec![cpu(180e9, "2026-11-22T10:01:00Z")]).await;
    assert_eq!((d1.failed, d2.failed), (0, 0));
    p.close(Duration::from_secs(1)).await;
    let util: Vec<Sample> = std::fs::read_to_string(dir.path().join("util.jsonl"))
        .expect("util")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(util.len(), 1);
    assert_eq!(util[0].name, "cpu.util");
    assert!(
        (util[0].volume() - 25.0).abs() < 1e-9,
        "{}",
        util[0].volume()
    );
    assert_eq!(names(&dir.path().join("raw.jsonl")), ["cpu", "cpu"]);
}

#[test]
fn bad_transformers_and_batches_are_refused_with_their_place() {
    let yaml = r#"
sources:
  - {name: s, interval: 10, meters: ["*"], sinks: [out]}
sinks:
  - name: out
    transformers:
      - {name: rate, parameters: {}}
      - {name: rate_of_change, parameters: {target: {scale: "100 / (1e9 *"}}}
    batch: {max_events: 0, timeout: -1}
    publishers: ["file://out.jsonl"]
"#;
    let errors = Config::parse(yaml, Path::new("/etc/hb/pipeline.yaml"), |_| None)
        .expect_err("refused")
        .to_string();
    for expected in [
        "sinks[0].transformers[0]",
        "unknown transformer `rate` (available: rate_of_change, delta, unit_conversion, arithmetic, aggregator)",
        "sinks[0].transformers[1]",
        "parameters.target.scale",
        "sinks[0].batch.max_events",
        "sinks[0].batch.timeout",
        "pipeline.yaml:7",
    ] {
        assert!(
            errors.contains(expected),
            "missing `{expected}` in:\n{errors}"
        );
    }
}

#[tokio::test]
async fn stateful_sinks_of_a_meter_are_those_it_reaches_with_a_transformer_keeping_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = pipeline(
        dir.path(),
        r#"
sources:
  - {name: cpu, interval: 10, meters: ["cpu"], sinks: [delta, plain, units]}
  - {name: volume, interval: 10, meters: ["volume.*"], sinks: [plain, rate]}
sinks:
  - {name: delta, transformers: [{name: delta}], publishers: ["file://delta.jsonl"]}
  - name: rate
    transformers:
      - {name: rate_of_change, parameters: {target: {name: volume.rate, unit: B/s, type: gauge}}}
    publishers: ["file://rate.jsonl"]
  - {name: plain, publishers: ["file://plain.jsonl"]}
  - name: units
    transformers:
      - {name: unit_conversion, parameters: {target: {unit: KB, scale: 0.0009765625}}}
    publishers: ["file://units.jsonl"]
"#,
    );
    // unit_conversion keeps nothing between samples; delta and rate_of_change do.
    assert_eq!(p.stateful_sinks_of("cpu"), ["delta"]);
    assert_eq!(p.stateful_sinks_of("volume.size"), ["rate"]);
    assert!(p.stateful_sinks_of("memory.usage").is_empty());
}
