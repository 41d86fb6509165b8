//! Events through the pipeline into a real InfluxDB 1.x (a private `influxd` per test, which
//! `scripts/influxdb` installs): every trait type lands in measurement `events` with its field
//! type and queries back exactly; a partial write dead-letters only the refused events.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use hb_pipeline::{Config, Delivery, Pipeline, Receipt};
use hb_sample::{Event, Sample, SampleType, Trait, TraitValue};
use hb_tests::influx::{Influxd, series};
use serde_json::{Value, json};

fn unique(what: &str) -> String {
    format!(
        "{what}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

fn event(
    id: &str,
    event_type: &str,
    generated: DateTime<Utc>,
    traits: Vec<(&str, TraitValue)>,
) -> Event {
    Event {
        message_id: id.into(),
        event_type: event_type.into(),
        generated,
        traits: traits
            .into_iter()
            .map(|(name, value)| Trait {
                name: name.into(),
                value,
            })
            .collect(),
    }
}

/// A pipeline with one sink `influx` writing to `url`, the event sink, in a temporary
/// directory (dead letters under `dead/`).
fn config(dir: &std::path::Path, url: &str) -> Config {
    let yaml = format!(
        "dead_letter_dir: dead\n\
         sources:\n  - {{name: all, interval: 10, meters: [\"*\"], sinks: [influx]}}\n\
         sinks:\n  - {{name: influx, batch: {{timeout: 0.05}}, publishers: [\"{url}\"]}}\n\
         notifications:\n  event_sinks: [influx]\n"
    );
    Config::parse(&yaml, &dir.join("pipeline.yaml"), |_| None).expect("config")
}

fn ns(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().expect("ns")
}

/// Whether InfluxQL returned `value` for a trait: text as written (newlines as spaces), a
/// datetime as its RFC 3339 text, numbers as numbers (InfluxQL's JSON writes `2.0` as `2`).
fn same(returned: &Value, value: &TraitValue) -> bool {
    match value {
        TraitValue::Text(s) => *returned == json!(s.replace(['\n', '\r'], " ")),
        TraitValue::Int(i) => returned.as_i64() == Some(*i),
        TraitValue::Float(f) => returned.as_f64() == Some(*f),
        TraitValue::Datetime(t) => *returned == json!(hb_sample::timestamp::format(t)),
    }
}

#[test]
fn events_of_every_trait_type_land_in_influxdb_exactly() {
    let influx = Influxd::launch();
    let db = unique("hb");
    influx.create_database(&db);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(
        dir.path(),
        &format!("influxdb://{}?db={db}", influx.host_port()),
    );
    let t0 = Utc::now() - TimeDelta::minutes(5) + TimeDelta::nanoseconds(123_456_789);
    let odd_text = "say \"hi\", a=b c:\\dir\\ and\ttab";
    let events = vec![
        event(
            "m-1",
            "compute.instance.create.end",
            t0,
            vec![
                (
                    "launched_at",
                    TraitValue::Datetime(t0 - TimeDelta::hours(1)),
                ),
                ("memory_mb", TraitValue::Int(-512)),
                (
                    "odd key, with=signs \"quoted\" back\\slash",
                    TraitValue::Text(odd_text.into()),
                ),
                ("ratio", TraitValue::Float(0.25)),
                ("state", TraitValue::Text("two\nlines".into())),
                ("whole", TraitValue::Float(2.0)),
            ],
        ),
        event(
            "m-2 \"odd\", id=\\",
            "odd type, with=signs",
            t0 + TimeDelta::nanoseconds(1),
            vec![
                ("big", TraitValue::Int(i64::MAX)),
                ("memory_mb", TraitValue::Int(2048)),
                ("time", TraitValue::Text("a trait called time".into())),
            ],
        ),
    ];
    let sample = Sample::new("cpu", SampleType::Gauge, "ns", 1.5, "host-a", t0).expect("sample");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (accepted, published) = runtime.block_on(async {
        let pipeline = Pipeline::open(&config).expect("pipeline");
        let samples = pipeline.submit(vec![sample.clone()]).await;
        let events = pipeline.submit_events(events.clone()).await;
        assert_eq!((events.routed, events.unrouted), (2, 0));
        let accepted = Receipt::all([samples.receipt, events.receipt])
            .accepted()
            .await;
        let (_, stats, _) = pipeline.sinks().into_iter().next().expect("sink");
        let published = (
            stats.published.load(Ordering::Relaxed),
            stats.published_events.load(Ordering::Relaxed),
            stats.dead_lettered.load(Ordering::Relaxed),
        );
        pipeline.close(Duration::from_secs(1)).await;
        (accepted, published)
    });
    assert!(accepted, "the receipt is accepted");
    assert_eq!(published, (1, 2, 0));
    assert_eq!(influx.count(&db, "cpu"), 1, "the sample of the same flow");

    // Only `event_type` is a tag; the field types follow the trait types.
    let tag_keys: Vec<Value> = influx
        .rows(&db, "SHOW TAG KEYS FROM \"events\"")
        .into_iter()
        .map(|r| r["tagKey"].clone())
        .collect();
    assert_eq!(tag_keys, [json!("event_type")]);
    let field_types: BTreeMap<String, String> = influx
        .rows(&db, "SHOW FIELD KEYS FROM \"events\"")
        .into_iter()
        .map(|r| {
            let key = r["fieldKey"].as_str().expect("key").to_owned();
            (key, r["fieldType"].as_str().expect("type").to_owned())
        })
        .collect();
    let expected_types: BTreeMap<String, String> = [
        ("big", "integer"),
        ("launched_at", "string"),
        ("memory_mb", "integer"),
        ("message_id", "string"),
        ("odd key, with=signs \"quoted\" back\\slash", "string"),
        ("ratio", "float"),
        ("state", "string"),
        ("trait_time", "string"),
        ("whole", "float"),
    ]
    .into_iter()
    .map(|(k, t)| (k.to_owned(), t.to_owned()))
    .collect();
    assert_eq!(field_types, expected_types);

    // Every event comes back in its event_type's series, at its time, with its values.
    let result = influx.query(&db, "SELECT * FROM \"events\" GROUP BY *");
    let series = series(&result);
    println!("events in InfluxDB: {series:?}");
    assert_eq!(series.len(), 2, "one series per event type");
    for e in &events {
        let s = series
            .iter()
            .find(|s| s.tags["event_type"] == json!(e.event_type))
            .unwrap_or_else(|| panic!("no series for {}", e.event_type));
        assert_eq!(s.name, "events");
        assert_eq!(s.rows.len(), 1);
        let row = &s.rows[0];
        assert_eq!(row["time"], json!(ns(e.generated)));
        assert_eq!(row["message_id"], json!(e.message_id));
        for t in &e.traits {
            let column = if t.name == "time" {
                "trait_time"
            } else {
                t.name.as_str()
            };
            assert!(
                same(&row[column], &t.value),
                "trait {:?} of {}: {} for {:?}",
                t.name,
                e.message_id,
                row[column],
                t.value
            );
        }
        let fields = row.iter().filter(|(_, v)| !v.is_null()).count();
        assert_eq!(
            fields,
            e.traits.len() + 2,
            "time, message_id and the traits: {row:?}"
        );
    }
}

#[test]
fn a_partial_write_dead_letters_only_the_refused_events() {
    let influx = Influxd::launch();
    let db = unique("hb");
    influx.create_database(&db);
    let at = Utc::now() - TimeDelta::minutes(1) + TimeDelta::nanoseconds(987_654_321);
    // `memory_mb` is a string on `events` in this shard: integer memory_mb lines are refused.
    let seeded = influx.write_raw(
        &db,
        &format!("events,event_type=seed memory_mb=\"text\" {}", ns(at)),
    );
    assert_eq!(seeded.status, 204);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("influxdb://{}?db={db}&precision=us", influx.host_port());
    let config = config(dir.path(), &url);
    let state = |s: &str| ("state", TraitValue::Text(s.into()));
    let events: Vec<Event> = (0..5)
        .map(|i| {
            let mut traits = vec![state(&format!("s{i}"))];
            match i {
                1 | 3 => traits.insert(0, ("memory_mb", TraitValue::Int(512))),
                4 => traits.insert(0, ("memory_mb", TraitValue::Text("1 GB".into()))),
                _ => {}
            }
            let generated = at + TimeDelta::milliseconds(i);
            event(
                &format!("m-{i}"),
                "compute.instance.update",
                generated,
                traits,
            )
        })
        .collect();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (delivery, stats) = runtime.block_on(async {
        let pipeline = Pipeline::open(&config).expect("pipeline");
        let delivery = pipeline.publish_events(events.clone()).await;
        let (_, stats, _) = pipeline.sinks().into_iter().next().expect("sink");
        let stats = (
            stats.published_events.load(Ordering::Relaxed),
            stats.dead_lettered.load(Ordering::Relaxed),
        );
        pipeline.close(Duration::from_secs(1)).await;
        (delivery, stats)
    });
    let expected = Delivery {
        delivered: 5,
        failed: 0,
        unrouted: 0,
    };
    assert_eq!(
        delivery, expected,
        "refused events are dead letters, not failures"
    );
    assert_eq!(stats, (5, 2));

    let text = std::fs::read_to_string(dir.path().join("dead/influx.jsonl")).expect("dead letters");
    let entries: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    println!("dead letters: {entries:?}");
    let dead: Vec<Event> = entries
        .iter()
        .map(|e| serde_json::from_str(e["data"].as_str().expect("data")).expect("an event"))
        .collect();
    assert_eq!(
        dead,
        vec![events[1].clone(), events[3].clone()],
        "the events, as JSON"
    );
    for entry in &entries {
        let reason = entry["reason"].as_str().expect("reason");
        assert!(reason.contains("field type conflict"), "{entry}");
        assert_eq!(entry["sink"], "influx");
    }

    let rows = influx.rows(
        &db,
        "SELECT \"message_id\", \"state\", \"memory_mb\" FROM \"events\" WHERE \"event_type\" = 'compute.instance.update'",
    );
    let stored: Vec<(i64, Value, Value, Value)> = rows
        .iter()
        .map(|r| {
            let time = r["time"].as_i64().expect("time");
            (
                time,
                r["message_id"].clone(),
                r["state"].clone(),
                r["memory_mb"].clone(),
            )
        })
        .collect();
    let us = |e: &Event| ns(e.generated).div_euclid(1000) * 1000;
    let expected: Vec<(i64, Value, Value, Value)> = [0, 2, 4]
        .iter()
        .map(|&i| {
            let e = &events[i];
            let memory = if i == 4 { json!("1 GB") } else { Value::Null };
            (us(e), json!(e.message_id), json!(format!("s{i}")), memory)
        })
        .collect();
    assert_eq!(
        stored, expected,
        "the rest is stored, at microsecond precision"
    );
}
