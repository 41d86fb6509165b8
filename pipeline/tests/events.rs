//! Events through the pipeline into a real archive on a temporary directory: every event sink
//! gets every event, sinks batch samples and events together, receipts and backpressure hold.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use hb_pipeline::publisher::PublisherSpec;
use hb_pipeline::publisher::archive::{ArchiveReader, ArchiveSpec, day_range};
use hb_pipeline::{Config, Delivery, Pipeline, Receipt};
use hb_sample::{Event, Sample, SampleType, Trait, TraitValue};

fn at() -> DateTime<Utc> {
    hb_sample::timestamp::parse("2026-11-22T10:59:59.5Z").expect("time")
}

fn event(id: &str, offset: TimeDelta) -> Event {
    let traits = vec![
        ("launched_at", TraitValue::Datetime(at())),
        ("memory_mb", TraitValue::Int(512)),
        ("ratio", TraitValue::Float(0.25)),
        ("state", TraitValue::Text("say \"hi\",\n a=b \\".into())),
    ];
    Event {
        message_id: id.into(),
        event_type: "compute.instance.create.end".into(),
        generated: at() + offset,
        traits: traits
            .into_iter()
            .map(|(name, value)| Trait {
                name: name.into(),
                value,
            })
            .collect(),
    }
}

fn sample(name: &str) -> Sample {
    Sample::new(name, SampleType::Gauge, "B", 1.0, "host-a", at()).expect("sample")
}

fn pipeline(dir: &Path, yaml: &str) -> (Config, Pipeline) {
    let config = Config::parse(yaml, &dir.join("pipeline.yaml"), |_| None).expect("config");
    let pipeline = Pipeline::open(&config).expect("open");
    (config, pipeline)
}

/// The archive spec of the first publisher of sink `name`.
fn archive(config: &Config, name: &str) -> ArchiveSpec {
    let sink = config.sinks.iter().find(|s| s.name == name).expect("sink");
    match &sink.publishers[0] {
        PublisherSpec::Archive(spec) => spec.clone(),
        other => panic!("not an archive: {other:?}"),
    }
}

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .unwrap_or_else(|_| panic!("{what} took more than 10 s"))
}

#[tokio::test]
async fn events_reach_every_event_sink_and_read_back_equal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, p) = pipeline(
        dir.path(),
        r#"
sources:
  - {name: cpu, interval: 10, meters: ["cpu"], sinks: [archive]}
sinks:
  - name: archive
    # Transformers never see events: a rate swallows the first sample, not the events.
    transformers:
      - {name: rate_of_change, parameters: {target: {name: cpu.util, unit: "%", type: gauge}}}
    publishers: ["archive+file://archive?writer=w1"]
    batch: {timeout: 0.05}
  - {name: copy, publishers: ["archive+file://copy?writer=w2"], batch: {timeout: 0.05}}
notifications:
  event_sinks: [archive, copy]
"#,
    );
    let events: Vec<Event> = (0..5)
        .map(|i| event(&format!("m-{i}"), TimeDelta::milliseconds(i * 200)))
        .collect();
    let swallowed = p.submit(vec![sample("cpu")]).await;
    let submitted = p.submit_events(events.clone()).await;
    assert_eq!((submitted.routed, submitted.unrouted), (10, 0));
    let both = Receipt::all([swallowed.receipt, submitted.receipt]);
    assert!(within("the receipt", both.accepted()).await);

    for (sink, writer) in [("archive", "w1"), ("copy", "w2")] {
        let spec = archive(&config, sink);
        let reader = ArchiveReader::open(&spec).expect("reader");
        let (from, to) = day_range(at().date_naive());
        let keys: Vec<String> = reader
            .list_events(from, to)
            .await
            .expect("list")
            .into_iter()
            .map(|o| o.key)
            .collect();
        // The events straddle 11:00: one object per hour partition.
        assert_eq!(keys.len(), 2, "{keys:?}");
        assert!(keys[0].starts_with(&format!("events/dt=2026-11-22/hour=10/{writer}-")));
        assert!(keys[1].starts_with(&format!("events/dt=2026-11-22/hour=11/{writer}-")));
        assert!(keys.iter().all(|k| k.ends_with(".jsonl.gz")), "{keys:?}");
        let read = reader.read_events_range(from, to).await.expect("read");
        assert!(read.bad.is_empty(), "{:?}", read.bad);
        assert_eq!(read.events, events, "{sink} holds exactly the events sent");
        assert!(reader.list(from, to).await.expect("list").is_empty());
    }
    let stats: Vec<(u64, u64)> = p
        .sinks()
        .into_iter()
        .map(|(_, s, _)| {
            let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
            (get(&s.published), get(&s.published_events))
        })
        .collect();
    assert_eq!(stats, [(0, 5), (0, 5)]);
    p.close(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn samples_and_events_share_batches_and_a_samples_only_sink_is_unaffected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, p) = pipeline(
        dir.path(),
        r#"
sources:
  - {name: all, interval: 10, meters: ["*"], sinks: [archive, raw]}
sinks:
  - {name: archive, publishers: ["archive+file://archive?writer=w"], batch: {max_events: 4, timeout: 3600}}
  - {name: raw, publishers: ["file://raw.jsonl"], batch: {timeout: 0.05}}
notifications:
  event_sinks: [archive]
"#,
    );
    let samples = vec![sample("a"), sample("b")];
    let events = vec![
        event("m-1", TimeDelta::zero()),
        event("m-2", TimeDelta::zero()),
    ];
    let first = p.submit(samples.clone()).await;
    let second = p.submit_events(events.clone()).await;
    assert_eq!(
        (first.routed, second.routed),
        (4, 2),
        "samples to both sinks, events to the event sink only"
    );
    // Two samples and two events fill a batch of 4: it goes out at once, not after an hour.
    let both = Receipt::all([first.receipt, second.receipt]);
    assert!(within("a full mixed batch", both.accepted()).await);

    let mut sinks = p.sinks().into_iter();
    let (name, archive_stats, _) = sinks.next().expect("archive");
    assert_eq!(name, "archive");
    assert_eq!(archive_stats.batches.load(Ordering::Relaxed), 1);
    assert_eq!(archive_stats.published.load(Ordering::Relaxed), 2);
    assert_eq!(archive_stats.published_events.load(Ordering::Relaxed), 2);
    let (_, raw_stats, _) = sinks.next().expect("raw");
    assert_eq!(raw_stats.published.load(Ordering::Relaxed), 2);
    assert_eq!(raw_stats.published_events.load(Ordering::Relaxed), 0);

    let raw: Vec<Sample> = std::fs::read_to_string(dir.path().join("raw.jsonl"))
        .expect("raw")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a sample"))
        .collect();
    assert_eq!(raw, samples);
    let reader = ArchiveReader::open(&archive(&config, "archive")).expect("reader");
    let (from, to) = (at(), at() + TimeDelta::seconds(1));
    assert_eq!(
        reader.read_range(from, to).await.expect("read").samples,
        samples
    );
    assert_eq!(
        reader
            .read_events_range(from, to)
            .await
            .expect("read")
            .events,
        events
    );
    let name = |k: &str| k.rsplit('/').next().expect("name").to_owned();
    let sample_objects = reader.list(from, to).await.expect("list");
    let event_objects = reader.list_events(from, to).await.expect("list");
    assert_eq!((sample_objects.len(), event_objects.len()), (1, 1));
    assert_eq!(
        name(&sample_objects[0].key),
        name(&event_objects[0].key),
        "one batch: the samples' and the events' objects have its name"
    );
    p.close(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn without_event_sinks_events_are_accepted_at_once_and_counted_unrouted() {
    let dir = tempfile::tempdir().expect("tempdir");
    for notifications in ["", "notifications: {event_sinks: []}\n"] {
        let yaml = format!(
            "sources:\n  - {{name: s, interval: 10, meters: [\"*\"], sinks: [out]}}\n\
             sinks:\n  - {{name: out, publishers: [\"archive+file://archive\"]}}\n{notifications}"
        );
        let (_, p) = pipeline(dir.path(), &yaml);
        let events = vec![event("m-1", TimeDelta::zero()); 3];
        let submitted = p.submit_events(events.clone()).await;
        assert_eq!((submitted.routed, submitted.unrouted), (0, 3));
        assert!(within("an empty receipt", submitted.receipt.accepted()).await);
        let delivery = p.publish_events(events).await;
        let expected = Delivery {
            delivered: 0,
            failed: 0,
            unrouted: 3,
        };
        assert_eq!(delivery, expected);
        assert_eq!(
            p.sinks().into_iter().next().expect("sink").2,
            0,
            "nothing reached the sink"
        );
        p.close(Duration::from_secs(1)).await;
    }
    assert!(!dir.path().join("archive/events").exists());
}

#[tokio::test]
async fn a_failing_event_sink_pushes_back_and_its_events_are_not_accepted_at_close() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A file stands where the archive's `events` directory must go: every put fails.
    std::fs::create_dir_all(dir.path().join("archive")).expect("mkdir");
    std::fs::write(dir.path().join("archive/events"), b"").expect("blocker");
    let (_, p) = pipeline(
        dir.path(),
        r#"
sources:
  - {name: s, interval: 10, meters: ["*"], sinks: [archive]}
sinks:
  - {name: archive, publishers: ["archive+file://archive"], batch: {max_events: 1, buffer_events: 2, timeout: 0.01}}
notifications:
  event_sinks: [archive]
"#,
    );
    let held = p
        .submit_events(vec![
            event("m-1", TimeDelta::zero()),
            event("m-2", TimeDelta::zero()),
        ])
        .await;
    let blocked = tokio::time::timeout(
        Duration::from_millis(500),
        p.submit_events(vec![event("m-3", TimeDelta::zero())]),
    )
    .await;
    assert!(
        blocked.is_err(),
        "a third event waits for room instead of being dropped"
    );
    let (_, stats, holding) = p.sinks().into_iter().next().expect("sink");
    assert_eq!(holding, 2);
    assert!(stats.retries.load(Ordering::Relaxed) >= 1);
    p.close(Duration::from_millis(200)).await;
    assert!(
        !held.receipt.accepted().await,
        "never stored, so never acknowledged: a bus redelivers them"
    );
    let (_, stats, _) = p.sinks().into_iter().next().expect("sink");
    assert_eq!(stats.abandoned.load(Ordering::Relaxed), 2);
    assert_eq!(stats.published_events.load(Ordering::Relaxed), 0);
}
