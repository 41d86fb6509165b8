//! Routing through real file publishers: filters, fan-out, de-duplication per sink, failures.

use std::path::Path;

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
  - {name: full, publishers: ["file:///dev/full"]}
  - {name: ok, publishers: ["file://ok.jsonl"]}
"#,
    );
    let delivery = p
        .publish(["cpu", "load.1", "swap.used"].map(sample).to_vec())
        .await;
    assert_eq!(
        delivery,
        Delivery {
            delivered: 2,
            failed: 2,
            unrouted: 1
        }
    );
    assert_eq!(names(&dir.path().join("ok.jsonl")), ["cpu", "load.1"]);
    assert_eq!(p.flush().await, 1, "syncing /dev/full is refused too");
}
