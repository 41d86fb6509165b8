//! Helpers shared by the definition tests (and the benchmark, which includes this file).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use hb_notification::{Converted, Definitions, Notification, Unmatched};
use hb_sample::TraitValue;
use serde_json::{Value, json};

/// Definitions from one meters file and one events file, refusing any skipped definition.
pub fn definitions(meters: &str, events: &str, unmatched: Unmatched) -> Definitions {
    let loaded = Definitions::parse(
        &[(Path::new("meters.d/test.yaml"), meters)],
        &[(Path::new("events.d/test.yaml"), events)],
        unmatched,
    );
    let skipped: Vec<String> = loaded.skipped.iter().map(ToString::to_string).collect();
    assert_eq!(skipped, Vec::<String>::new());
    loaded.definitions
}

pub fn convert(d: &Definitions, notification: Value) -> Converted {
    let n = Notification::decode(notification.to_string().as_bytes()).expect("decodes");
    d.convert(&n)
}

pub fn notification(event_type: &str, payload: Value) -> Value {
    json!({
        "message_id": "m-1",
        "event_type": event_type,
        "publisher_id": "compute.host-1",
        "timestamp": "2026-11-22 10:00:00",
        "payload": payload,
        "_context_request_id": "req-1",
        "_context_tenant": "p-ctx",
        "_context_user": "u-ctx",
    })
}

pub fn trait_of(c: &Converted, name: &str) -> Option<TraitValue> {
    c.event.as_ref().and_then(|e| e.get(name).cloned())
}

/// The repository's root, where the shipped `meters.d/` and `events.d/` are.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `*.yaml` files of `dir`, in name order.
pub fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// The notification fixtures (`tests/fixtures/*.yaml`), in name order.
pub fn fixture_files() -> Vec<PathBuf> {
    yaml_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"))
}

/// The notification of every fixture, as written.
pub fn fixture_notifications() -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Fixture {
        notification: String,
    }
    fixture_files()
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).expect("read fixture");
            serde_saphyr::from_str::<Fixture>(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
                .notification
        })
        .collect()
}
