//! The shipped definitions (meters.d/, events.d/) against the notification fixtures
//! (tests/fixtures/*.yaml, each saying what the definitions must make of it, exactly).

mod common;

use common::{fixture_files, root};
use hb_notification::{Definitions, Loaded, Notification, Unmatched};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    notification: String,
    #[serde(default)]
    samples: Vec<Value>,
    #[serde(default)]
    event: Option<Value>,
    #[serde(default)]
    misses: Vec<String>,
}

fn shipped() -> Loaded {
    let root = root();
    Definitions::load(
        Some(&root.join("meters.d")),
        Some(&root.join("events.d")),
        Unmatched::Keep,
    )
    .expect("shipped directories")
}

fn fixtures() -> Vec<(String, Fixture)> {
    fixture_files()
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read fixture");
            let options = serde_saphyr::options! { strict_booleans: true };
            let fixture: Fixture = serde_saphyr::from_str_with_options(&text, options)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            (name, fixture)
        })
        .collect()
}

/// Every number as a float, so that `1` in a fixture equals the `1.0` hb writes.
fn numbers_as_floats(v: Value) -> Value {
    match v {
        Value::Number(n) => n.as_f64().map_or(Value::Number(n), Value::from),
        Value::Array(a) => Value::Array(a.into_iter().map(numbers_as_floats).collect()),
        Value::Object(o) => Value::Object(
            o.into_iter()
                .map(|(k, v)| (k, numbers_as_floats(v)))
                .collect(),
        ),
        other => other,
    }
}

#[test]
fn shipped_definitions_all_load() {
    let loaded = shipped();
    let skipped: Vec<String> = loaded.skipped.iter().map(ToString::to_string).collect();
    assert_eq!(skipped, Vec::<String>::new());
    assert_eq!(loaded.definitions.meter_count(), 12);
    assert_eq!(loaded.definitions.event_count(), 8);
}

#[test]
fn each_fixture_makes_exactly_what_it_says() {
    let definitions = shipped().definitions;
    let mut failures = Vec::new();
    for (name, fixture) in fixtures() {
        let n = Notification::decode(fixture.notification.as_bytes())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let converted = definitions.convert(&n);
        let samples: Vec<Value> = converted
            .samples
            .iter()
            .map(|s| serde_json::to_value(s).expect("sample"))
            .collect();
        let event = converted
            .event
            .as_ref()
            .map(|e| serde_json::to_value(e).expect("event"));
        let misses: Vec<String> = converted.misses.iter().map(ToString::to_string).collect();
        let got = (
            numbers_as_floats(Value::from(samples)),
            event.map(numbers_as_floats),
            misses,
        );
        let want = (
            numbers_as_floats(Value::from(fixture.samples)),
            fixture.event.map(numbers_as_floats),
            fixture.misses,
        );
        if got != want {
            failures.push(format!("{name}:\n got: {got:#?}\nwant: {want:#?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_shipped_definition_is_exercised_by_a_fixture() {
    let definitions = shipped().definitions;
    let mut meters = std::collections::BTreeSet::new();
    let mut events = Vec::new();
    for (_, fixture) in fixtures() {
        let n = Notification::decode(fixture.notification.as_bytes()).expect("decodes");
        let converted = definitions.convert(&n);
        meters.extend(converted.samples.into_iter().map(|s| s.name));
        events.extend(converted.event);
    }
    let want = [
        "compute.instance.booting.time",
        "disk.ephemeral.size",
        "disk.root.size",
        "image.delete",
        "image.size",
        "image.upload",
        "instance",
        "memory",
        "storage.api.request",
        "storage.objects.incoming.bytes",
        "storage.objects.outgoing.bytes",
        "vcpus",
        "volume.size",
    ];
    assert_eq!(meters.iter().map(String::as_str).collect::<Vec<_>>(), want);
    // Each event definition, recognized by a trait only it has.
    for (definition, event_type, trait_name) in [
        ("00-generic.yaml *", "identity.authenticate", "priority"),
        (
            "compute.yaml compute.instance.*",
            "compute.instance.delete.end",
            "instance_id",
        ),
        (
            "compute.yaml create.end",
            "compute.instance.create.end",
            "boot_time",
        ),
        (
            "compute.yaml update",
            "compute.instance.update",
            "old_state",
        ),
        (
            "compute.yaml exists",
            "compute.instance.exists",
            "audit_period_ending",
        ),
        ("volume.yaml", "volume.resize.end", "volume_id"),
        ("image.yaml", "image.upload", "image_id"),
        ("objectstore.yaml", "objectstore.http.request", "outcome"),
    ] {
        assert!(
            events
                .iter()
                .any(|e| e.event_type == event_type && e.get(trait_name).is_some()),
            "{definition}: no fixture makes a {event_type} event with {trait_name}"
        );
    }
}

#[test]
fn a_redelivery_makes_the_same_samples_and_event() {
    let definitions = shipped().definitions;
    for (name, fixture) in fixtures() {
        let once = definitions
            .convert(&Notification::decode(fixture.notification.as_bytes()).expect("decodes"));
        let again = definitions
            .convert(&Notification::decode(fixture.notification.as_bytes()).expect("decodes"));
        assert_eq!(once, again, "{name}");
        let mut ids: Vec<_> = once.samples.iter().map(|s| s.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(
            ids.len(),
            once.samples.len(),
            "{name}: sample ids are distinct"
        );
    }
}

#[test]
fn threads_share_one_set_of_definitions() {
    let definitions = shipped().definitions;
    let notifications: Vec<Notification> = fixtures()
        .iter()
        .map(|(_, f)| Notification::decode(f.notification.as_bytes()).expect("decodes"))
        .collect();
    let alone: Vec<_> = notifications
        .iter()
        .map(|n| definitions.convert(n))
        .collect();
    std::thread::scope(|scope| {
        let runs: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    notifications
                        .iter()
                        .map(|n| definitions.convert(n))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for run in runs {
            assert_eq!(run.join().expect("no panic"), alone);
        }
    });
}
