//! Tests of the archive reader: time ranges, bad objects and lines, samples and events.

use std::io::Write;
use std::path::Path;

use chrono::TimeZone;
use flate2::write::GzEncoder;
use hb_sample::{SampleType, Trait, TraitValue};

use super::super::{ArchiveLocation, ArchivePublisher};
use super::*;
use crate::publisher::Batch;

fn sample(t: DateTime<Utc>, v: f64) -> Sample {
    Sample::new("disk.read", SampleType::Cumulative, "B", v, "host-b", t).unwrap()
}

fn spec(dir: &Path) -> ArchiveSpec {
    ArchiveSpec {
        location: ArchiveLocation::Local(dir.to_owned()),
        writer: "reader-test".into(),
        compression: Compression::Gzip,
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

#[test]
fn archive_range_hours_cover_partial_hours_and_days() {
    let t = |d, h, m| Utc.with_ymd_and_hms(2026, 1, d, h, m, 0).unwrap();
    let days = hours(t(1, 22, 30), t(2, 1, 0));
    let date = |d| NaiveDate::from_ymd_opt(2026, 1, d).unwrap();
    assert_eq!(
        days,
        vec![
            (date(1), BTreeSet::from([22, 23])),
            (date(2), BTreeSet::from([0]))
        ]
    );
    assert_eq!(
        hours(t(1, 5, 0), t(1, 5, 1)),
        vec![(date(1), BTreeSet::from([5]))]
    );
    assert_eq!(hours(t(1, 0, 0), t(3, 0, 0)).len(), 2);
}

#[tokio::test]
async fn archive_read_range_filters_by_time_and_reports_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path());
    let publisher = ArchivePublisher::open(&spec).unwrap();
    let t0 = Utc.with_ymd_and_hms(2026, 3, 4, 5, 0, 0).unwrap();
    let at = |minutes| t0 + TimeDelta::minutes(minutes);
    let batch1 = [sample(at(-1), 1.0), sample(at(0), 2.0), sample(at(30), 3.0)];
    let batch2 = [sample(at(59), 4.0), sample(at(60 * 9), 5.0)];
    publisher.publish(&batch1).await.unwrap();
    publisher.publish(&batch2).await.unwrap();

    // A damaged object in one of the partitions, and a stray file that is not an object.
    let part = dir.path().join("samples/dt=2026-03-04/hour=05");
    let good = serde_json::to_string(&sample(at(10), 6.0)).unwrap();
    let text = format!("{good}\n{{\"id\": 1}}\nnot json\n\n{good}\n");
    std::fs::write(part.join("zz-bad.jsonl.gz"), gzip(text.as_bytes())).unwrap();
    std::fs::write(part.join("zz-notgzip.jsonl.gz"), b"plain text\n").unwrap();
    std::fs::write(part.join("README"), b"ignored").unwrap();

    let outcome = read_range(&spec, at(0), at(60 * 10)).await.unwrap();
    let volumes: Vec<f64> = outcome.samples.iter().map(Sample::volume).collect();
    assert_eq!(volumes, vec![2.0, 3.0, 4.0, 6.0, 6.0, 5.0]);
    assert_eq!(outcome.objects, 5);
    let bad: Vec<String> = outcome.bad.iter().map(ToString::to_string).collect();
    let bad_path = part.join("zz-bad.jsonl.gz").display().to_string();
    assert_eq!(bad.len(), 3, "{bad:?}");
    assert!(
        bad[0].starts_with(&format!("{bad_path} line 2: not a sample: ")),
        "{bad:?}"
    );
    assert!(
        bad[1].starts_with(&format!("{bad_path} line 3: not a sample: ")),
        "{bad:?}"
    );
    let not_gzip = part.join("zz-notgzip.jsonl.gz").display().to_string();
    assert!(
        bad[2].starts_with(&format!("{not_gzip} line 1: cannot decompress")),
        "{bad:?}"
    );

    // Just the first hour, and an empty range.
    let outcome = read_range(&spec, at(-60), at(0)).await.unwrap();
    assert_eq!(outcome.samples, vec![batch1[0].clone()]);
    let outcome = read_range(&spec, at(60), at(120)).await.unwrap();
    assert_eq!(outcome, ReadOutcome::default());
    let err = read_range(&spec, at(1), at(1)).await.unwrap_err();
    assert!(err.to_string().starts_with("invalid time range"), "{err}");
}

#[tokio::test]
async fn archive_long_ranges_list_whole_days() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path());
    let publisher = ArchivePublisher::open(&spec).unwrap();
    let t0 = Utc.with_ymd_and_hms(2026, 3, 4, 0, 30, 0).unwrap();
    let batch: Vec<Sample> = (0..30)
        .map(|h| sample(t0 + TimeDelta::hours(h), h as f64))
        .collect();
    publisher.publish(&batch).await.unwrap();
    let reader = ArchiveReader::open(&spec).unwrap();
    let objects = reader
        .list(t0 + TimeDelta::hours(1), t0 + TimeDelta::hours(28))
        .await
        .unwrap();
    assert_eq!(objects.len(), 28, "{objects:?}");
    assert!(objects[0].key.starts_with("samples/dt=2026-03-04/hour=01/"));
    assert!(
        objects[27]
            .key
            .starts_with("samples/dt=2026-03-05/hour=04/")
    );
    let outcome = reader
        .read_range(t0, t0 + TimeDelta::hours(30))
        .await
        .unwrap();
    assert_eq!(outcome.samples, batch);
}

fn event(t: DateTime<Utc>, id: &str) -> Event {
    Event {
        message_id: id.into(),
        event_type: "compute.instance.update".into(),
        generated: t,
        traits: vec![Trait {
            name: "state".into(),
            value: TraitValue::Text("active".into()),
        }],
    }
}

#[tokio::test]
async fn archive_events_are_read_back_by_range_and_day_apart_from_samples() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path());
    let publisher = ArchivePublisher::open(&spec).unwrap();
    let t0 = Utc.with_ymd_and_hms(2026, 3, 4, 23, 30, 0).unwrap();
    let events = vec![
        event(t0, "e1"),
        event(t0 + TimeDelta::hours(1), "e2"),
        event(t0 + TimeDelta::minutes(10), "e3"),
    ];
    let batch = Batch {
        samples: vec![sample(t0, 1.0)],
        events: events.clone(),
    };
    publisher.publish_batch(&batch).await.unwrap();
    publisher.publish_events(&events[..1]).await.unwrap();

    // A damaged line among the events.
    let part = dir.path().join("events/dt=2026-03-04/hour=23");
    let good = serde_json::to_string(&event(t0, "e4")).unwrap();
    let text = format!("{good}\n{{\"message_id\": 1}}\n");
    std::fs::write(part.join("zz-bad.jsonl.gz"), gzip(text.as_bytes())).unwrap();

    let reader = ArchiveReader::open(&spec).unwrap();
    let objects = reader
        .list_events(t0, t0 + TimeDelta::hours(2))
        .await
        .unwrap();
    let keys: Vec<&str> = objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys.len(), 4, "{keys:?}");
    assert!(keys[0].starts_with("events/dt=2026-03-04/hour=23/reader-test-"));
    assert!(keys[3].starts_with("events/dt=2026-03-05/hour=00/reader-test-"));
    let day1 = reader.read_events_range(day_range(t0.date_naive()).0, day_range(t0.date_naive()).1);
    let day1 = day1.await.unwrap();
    let ids: Vec<&str> = day1.events.iter().map(|e| e.message_id.as_str()).collect();
    assert_eq!(ids, ["e1", "e3", "e1", "e4"]);
    assert_eq!(day1.objects, 3);
    assert_eq!(day1.bad.len(), 1);
    assert!(
        day1.bad[0].reason.starts_with("not an event: "),
        "{:?}",
        day1.bad
    );
    let (from, to) = day_range(t0.date_naive().succ_opt().unwrap());
    let day2 = read_events_range(&spec, from, to).await.unwrap();
    assert_eq!(day2.events, vec![events[1].clone()]);

    // Samples and events do not mix.
    let samples = read_range(&spec, t0, t0 + TimeDelta::hours(2))
        .await
        .unwrap();
    assert_eq!(samples.samples, batch.samples);
    assert!(samples.bad.is_empty());
    let sample_object = &reader.list(t0, t0 + TimeDelta::hours(1)).await.unwrap()[0];
    let event_object = &objects[0];
    let name = |k: &str| k.rsplit('/').next().unwrap().to_owned();
    assert_eq!(
        name(&sample_object.key),
        name(&event_object.key),
        "one batch, one name"
    );
}
