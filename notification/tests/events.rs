//! Event definitions: typed traits, plugins, the last matching definition, unmatched
//! notifications.

mod common;

use std::path::Path;

use common::{convert, definitions, notification, trait_of};
use hb_notification::{Converted, Definitions, Miss, MissKind, Unmatched};
use hb_sample::TraitValue;
use serde_json::json;

#[test]
fn map_and_split_plugins() {
    let events = r#"
- event_type: "*"
  traits:
    state_code:
      fields: payload.state
      plugin: {name: map, parameters: {values: {active: 1, error: 2}, default: 0}}
      type: int
    severity:
      fields: priority
      plugin: {name: map, parameters: {values: {warn: warning, Error: error}, case_sensitive: false}}
    exact:
      fields: priority
      plugin: {name: map, parameters: {values: {warn: warning}}}
    host:
      fields: publisher_id
      plugin: {name: split, parameters: {separator: ".", segment: 1, max_split: 1}}
    service_name:
      fields: publisher_id
      plugin: split
    last:
      fields: payload.path
      plugin: {name: split, parameters: {separator: "/", segment: -1}}
    tenth:
      fields: payload.path
      plugin: {name: split, parameters: {separator: "/", segment: 10}}
"#;
    let d = definitions("metric: []", events, Unmatched::Drop);
    let n = |state: &str, priority: &str, publisher: &str| {
        let mut n = notification("x", json!({"state": state, "path": "/v1/acct/c/o"}));
        n["priority"] = json!(priority);
        n["publisher_id"] = json!(publisher);
        convert(&d, n)
    };
    let c = n("error", "WARN", "compute.host-1.example.org");
    assert_eq!(trait_of(&c, "state_code"), Some(TraitValue::Int(2)));
    assert_eq!(
        trait_of(&c, "severity"),
        Some(TraitValue::Text("warning".into()))
    );
    assert_eq!(
        trait_of(&c, "exact"),
        None,
        "case sensitive, no default: no trait"
    );
    assert_eq!(
        trait_of(&c, "host"),
        Some(TraitValue::Text("host-1.example.org".into()))
    );
    assert_eq!(
        trait_of(&c, "service_name"),
        Some(TraitValue::Text("compute.host".into()))
    );
    assert_eq!(trait_of(&c, "last"), Some(TraitValue::Text("o".into())));
    assert_eq!(trait_of(&c, "tenth"), None);
    let c = n("building", "error", "compute");
    assert_eq!(
        trait_of(&c, "state_code"),
        Some(TraitValue::Int(0)),
        "the default"
    );
    assert_eq!(
        trait_of(&c, "severity"),
        Some(TraitValue::Text("error".into()))
    );
    assert_eq!(trait_of(&c, "host"), None, "no segment 1");
    assert_eq!(c.misses, vec![]);
}

#[test]
fn traits_are_typed_and_unconvertible_ones_are_misses() {
    let events = r#"
- event_type: compute.instance.*
  traits:
    memory_mb: {fields: payload.memory_mb, type: int}
    vcpus: {fields: payload.vcpus, type: int}
    ratio: {fields: payload.ratio, type: float}
    launched_at: {fields: payload.launched_at, type: datetime}
    deleted_at: {fields: payload.deleted_at, type: datetime}
    display_name: {fields: [payload.display_name, payload.hostname]}
    fixed_ips: {fields: payload.fixed_ips}
    user_id: {fields: payload.user_id}
"#;
    let d = definitions("metric: []", events, Unmatched::Drop);
    let c = convert(
        &d,
        notification(
            "compute.instance.create.end",
            json!({"memory_mb": "abc", "vcpus": "2", "ratio": "0.5", "launched_at": "2026-11-22T09:59:58.000000",
                   "deleted_at": "", "hostname": "web-1", "fixed_ips": [{"address": "10.0.0.5"}], "user_id": "u-1"}),
        ),
    );
    let event = c.event.expect("event");
    let names: Vec<&str> = event.traits.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "display_name",
            "fixed_ips",
            "launched_at",
            "project_id",
            "ratio",
            "request_id",
            "service",
            "user_id",
            "vcpus"
        ]
    );
    assert_eq!(event.get("vcpus"), Some(&TraitValue::Int(2)));
    assert_eq!(event.get("ratio"), Some(&TraitValue::Float(0.5)));
    assert_eq!(
        event.get("display_name"),
        Some(&TraitValue::Text("web-1".into()))
    );
    assert_eq!(
        event.get("fixed_ips"),
        Some(&TraitValue::Text(r#"[{"address":"10.0.0.5"}]"#.into()))
    );
    assert_eq!(
        event.get("user_id"),
        Some(&TraitValue::Text("u-1".into())),
        "the definition's, not the context's"
    );
    assert_eq!(
        event.get("project_id"),
        Some(&TraitValue::Text("p-ctx".into()))
    );
    assert_eq!(
        event.get("service"),
        Some(&TraitValue::Text("compute.host-1".into()))
    );
    assert_eq!(
        event.get("request_id"),
        Some(&TraitValue::Text("req-1".into()))
    );
    match event.get("launched_at") {
        Some(TraitValue::Datetime(t)) => assert_eq!(t.to_rfc3339(), "2026-11-22T09:59:58+00:00"),
        other => panic!("{other:?}"),
    }
    assert_eq!(event.message_id, "m-1");
    assert_eq!(event.generated.to_rfc3339(), "2026-11-22T10:00:00+00:00");
    assert_eq!(
        c.misses,
        vec![Miss {
            kind: MissKind::Event,
            definition: "compute.instance.*".into(),
            field: "traits.memory_mb".into(),
            message_id: "m-1".into(),
            reason: "\"abc\" is not an int".into(),
        }]
    );
}

#[test]
fn the_last_matching_event_definition_wins() {
    let first = r#"
- event_type: "*"
  traits: {which: {fields: payload.a}}
- event_type: compute.instance.*
  traits: {which: {fields: payload.b}}
"#;
    let second = r#"
- event_type: [compute.instance.create.*, "!compute.instance.create.start"]
  traits: {which: {fields: payload.c}}
"#;
    let loaded = Definitions::parse(
        &[],
        &[
            (Path::new("events.d/a.yaml"), first),
            (Path::new("events.d/b.yaml"), second),
        ],
        Unmatched::Drop,
    );
    assert!(loaded.skipped.is_empty());
    let d = loaded.definitions;
    let payload = json!({"a": "first", "b": "second", "c": "third"});
    for (event_type, want) in [
        ("identity.authenticate", "first"),
        ("compute.instance.delete.end", "second"),
        ("compute.instance.create.start", "second"),
        ("compute.instance.create.end", "third"),
    ] {
        let c = convert(&d, notification(event_type, payload.clone()));
        assert_eq!(
            trait_of(&c, "which"),
            Some(TraitValue::Text(want.into())),
            "{event_type}"
        );
    }
}

#[test]
fn unmatched_notifications_are_kept_bare_or_dropped() {
    let events = "- event_type: compute.*\n  traits: {x: {fields: payload.x}}\n";
    let n = notification("identity.authenticate", json!({"x": 1}));
    let kept = convert(&definitions("", events, Unmatched::Keep), n.clone());
    let event = kept.event.expect("kept");
    assert_eq!(event.event_type, "identity.authenticate");
    let traits: Vec<(&str, &TraitValue)> = event
        .traits
        .iter()
        .map(|t| (t.name.as_str(), &t.value))
        .collect();
    assert_eq!(
        traits,
        [
            ("project_id", &TraitValue::Text("p-ctx".into())),
            ("request_id", &TraitValue::Text("req-1".into())),
            ("service", &TraitValue::Text("compute.host-1".into())),
            ("user_id", &TraitValue::Text("u-ctx".into())),
        ]
    );
    let dropped = convert(&definitions("", events, Unmatched::Drop), n);
    assert_eq!(dropped, Converted::default());
}
