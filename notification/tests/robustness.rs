//! No input makes decoding, converting or loading panic: random bytes, mutated fixtures,
//! fixtures with random values in random places, and mutated definition files.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{fixture_notifications, root, yaml_files};
use hb_notification::{Definitions, Notification, Unmatched};
use proptest::prelude::*;
use serde_json::Value;

fn shipped() -> &'static Definitions {
    static D: OnceLock<Definitions> = OnceLock::new();
    D.get_or_init(|| {
        Definitions::load(
            Some(&root().join("meters.d")),
            Some(&root().join("events.d")),
            Unmatched::Keep,
        )
        .expect("shipped")
        .definitions
    })
}

/// The notification bytes of every fixture.
fn fixtures() -> &'static [String] {
    static F: OnceLock<Vec<String>> = OnceLock::new();
    F.get_or_init(fixture_notifications)
}

/// Decodes and converts, checking what must hold of any result.
fn decode_and_convert(bytes: &[u8]) {
    let Ok(n) = Notification::decode(bytes) else {
        return;
    };
    assert!(!n.event_type().is_empty());
    let converted = shipped().convert(&n);
    for s in &converted.samples {
        assert!(s.volume().is_finite() && !s.name.is_empty(), "{s:?}");
        assert_eq!(s.source, "notification");
    }
    if let Some(e) = &converted.event {
        assert!(
            e.traits.windows(2).all(|w| w[0].name < w[1].name),
            "traits sorted: {e:?}"
        );
    }
    for m in &converted.misses {
        assert!(!m.reason.is_empty() && !m.field.is_empty(), "{m:?}");
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop_oneof![
            "[a-z0-9 .:+-]{0,12}",
            Just("2026-11-22 10:00:00".to_owned()),
            Just("1e400".to_owned()),
            Just("-0".to_owned()),
            Just(String::new()),
            Just("NaN".to_owned()),
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every path to a value in `v`, as lists of object keys and array indexes.
fn paths(v: &Value, here: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(here.clone());
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                here.push(Step::Key(k.clone()));
                paths(child, here, out);
                here.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                here.push(Step::Index(i));
                paths(child, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

fn at<'a>(v: &'a mut Value, path: &[Step]) -> Option<&'a mut Value> {
    let mut node = v;
    for step in path {
        node = match step {
            Step::Key(k) => node.get_mut(k.as_str())?,
            Step::Index(i) => node.get_mut(*i)?,
        };
    }
    Some(node)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        decode_and_convert(&bytes);
    }

    #[test]
    fn mutated_fixture_bytes(
        which in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        let mut bytes = which.get(fixtures()).clone().into_bytes();
        for (at, byte, kind) in edits {
            if bytes.is_empty() { break; }
            let i = at.index(bytes.len());
            match kind {
                0 => bytes[i] = byte,
                1 => { bytes.remove(i); }
                _ => bytes.insert(i, byte),
            }
        }
        decode_and_convert(&bytes);
    }

    #[test]
    fn fixtures_with_random_values_in_random_places(
        which in any::<prop::sample::Index>(),
        replacements in prop::collection::vec((any::<prop::sample::Index>(), json_value()), 1..6),
    ) {
        let text = which.get(fixtures());
        let mut doc: Value = serde_json::from_str(text).expect("fixture json");
        // Unwrap an oslo envelope so that the replacements reach the notification itself.
        if let Some(inner) = doc.get("oslo.message").and_then(Value::as_str) {
            doc = serde_json::from_str(inner).expect("inner json");
        }
        for (place, value) in replacements {
            let mut all = Vec::new();
            paths(&doc, &mut Vec::new(), &mut all);
            let path = place.get(&all).clone();
            // Keep the event type most of the time, so that definitions still match.
            if matches!(path.first(), Some(Step::Key(k)) if k == "event_type") && path.len() == 1 {
                continue;
            }
            if let Some(slot) = at(&mut doc, &path) {
                *slot = value;
            }
        }
        decode_and_convert(doc.to_string().as_bytes());
    }

    #[test]
    fn mutated_definition_files(
        which in 0usize..9,
        edits in prop::collection::vec((any::<prop::sample::Index>(), "[ -~\n]{0,3}", any::<bool>()), 1..6),
    ) {
        let files: Vec<PathBuf> = ["events.d", "meters.d"]
            .iter()
            .flat_map(|d| yaml_files(&root().join(d)))
            .collect();
        let path = &files[which % files.len()];
        let mut text = std::fs::read_to_string(path).expect("read");
        for (at, insert, delete) in edits {
            let mut i = at.index(text.len() + 1);
            while !text.is_char_boundary(i) { i -= 1; }
            if delete && i < text.len() {
                let mut end = i + 1;
                while !text.is_char_boundary(end) { end += 1; }
                text.replace_range(i..end, "");
            }
            text.insert_str(i.min(text.len()), &insert);
        }
        let is_meters = path.parent().is_some_and(|p| p.ends_with("meters.d"));
        let file: &[(&Path, &str)] = &[(path.as_path(), text.as_str())];
        let loaded = if is_meters {
            Definitions::parse(file, &[], Unmatched::Keep)
        } else {
            Definitions::parse(&[], file, Unmatched::Keep)
        };
        for s in &loaded.skipped {
            prop_assert!(!s.message.is_empty());
        }
        for bytes in fixtures() {
            if let Ok(n) = Notification::decode(bytes.as_bytes()) {
                loaded.definitions.convert(&n);
            }
        }
    }
}
