//! Meter definitions: what they make of notifications, and what they count as misses.

mod common;

use common::{convert, definitions, notification, trait_of};
use hb_notification::{Miss, MissKind, Unmatched};
use hb_sample::{SampleType, TraitValue};
use serde_json::{Value, json};

const SWIFT: &str = r#"
metric:
  - name: $.payload.measurements[*].metric.name
    event_type: objectstore.http.request
    type: delta
    unit: $.payload.measurements[*].metric.unit
    volume: $.payload.measurements[*].result
    resource_id: $.payload.target.id
    project_id: $.payload.initiator.project_id
    lookup: [name, unit, volume]
"#;

#[test]
fn lookup_makes_one_sample_per_element() {
    let d = definitions(SWIFT, "[]", Unmatched::Drop);
    let c = convert(
        &d,
        notification(
            "objectstore.http.request",
            json!({
                "target": {"id": "acct"},
                "initiator": {"project_id": "p-1"},
                "measurements": [
                    {"metric": {"name": "storage.objects.incoming.bytes", "unit": "B"}, "result": 10},
                    {"metric": {"name": "storage.objects.outgoing.bytes", "unit": "B"}, "result": "20"},
                ],
            }),
        ),
    );
    assert_eq!(c.misses, vec![]);
    type Row<'a> = (
        &'a str,
        &'a str,
        f64,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
    );
    let got: Vec<Row> = c
        .samples
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.unit.as_str(),
                s.volume(),
                s.resource_id.as_str(),
                s.project_id.as_deref(),
                s.user_id.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "storage.objects.incoming.bytes",
                "B",
                10.0,
                "acct",
                Some("p-1"),
                Some("u-ctx")
            ),
            (
                "storage.objects.outgoing.bytes",
                "B",
                20.0,
                "acct",
                Some("p-1"),
                Some("u-ctx")
            ),
        ]
    );
    assert!(
        c.samples
            .iter()
            .all(|s| s.kind == SampleType::Delta && s.source == "notification")
    );
    assert_ne!(c.samples[0].id, c.samples[1].id);
}

#[test]
fn lookup_lists_of_different_lengths_make_no_sample_and_a_miss() {
    let d = definitions(SWIFT, "[]", Unmatched::Drop);
    let c = convert(
        &d,
        notification(
            "objectstore.http.request",
            json!({
                "target": {"id": "acct"},
                "measurements": [
                    {"metric": {"name": "storage.objects.incoming.bytes", "unit": "B"}, "result": 10},
                    {"metric": {"name": "storage.objects.outgoing.bytes", "unit": "B"}},
                ],
            }),
        ),
    );
    assert_eq!(c.samples, vec![]);
    assert_eq!(
        c.misses,
        vec![Miss {
            kind: MissKind::Meter,
            definition: "$.payload.measurements[*].metric.name".into(),
            field: "lookup".into(),
            message_id: "m-1".into(),
            reason: "lists differ in length (name: 2, unit: 2, volume: 1)".into(),
        }]
    );
    let empty = convert(
        &d,
        notification(
            "objectstore.http.request",
            json!({"target": {"id": "a"}, "measurements": []}),
        ),
    );
    assert_eq!(empty.samples, vec![]);
    assert_eq!(empty.misses[0].reason, "the lists are empty");
}

const MEMORY: &str = r#"
metric:
  - name: memory
    event_type: compute.instance.*
    type: gauge
    unit: MB
    volume: $.payload.memory_mb
    resource_id: $.payload.instance_id
    metadata:
      host: $.payload.host
      flavor: [$.payload.flavor.name, $.payload.instance_type]
      zone: nova
      missing: $.payload.nothing
  - name: instance
    event_type: compute.instance.*
    type: gauge
    unit: instance
    volume: 1
    resource_id: $.payload.instance_id
    project_id: $.payload.tenant_id
    user_id: $.payload.user_id
    timestamp: $.payload.audit_period_ending
"#;

#[test]
fn every_matching_meter_makes_its_sample() {
    let d = definitions(MEMORY, "[]", Unmatched::Drop);
    let c = convert(
        &d,
        notification(
            "compute.instance.exists",
            json!({"memory_mb": "2048", "instance_id": "i-1", "host": "h-1", "instance_type": "m1.small",
                   "tenant_id": "p-1", "user_id": "u-1", "audit_period_ending": "2026-11-22 11:00:00"}),
        ),
    );
    assert_eq!(c.misses, vec![]);
    let [memory, instance] = c.samples.as_slice() else {
        panic!("{:?}", c.samples)
    };
    assert_eq!(
        (memory.name.as_str(), memory.unit.as_str(), memory.volume()),
        ("memory", "MB", 2048.0)
    );
    assert_eq!(
        Value::Object(memory.resource_metadata.clone()),
        json!({"event_type": "compute.instance.exists", "host": "h-1", "flavor": "m1.small", "zone": "nova"})
    );
    assert_eq!(
        (memory.project_id.as_deref(), memory.user_id.as_deref()),
        (Some("p-ctx"), Some("u-ctx"))
    );
    assert_eq!(memory.timestamp.to_rfc3339(), "2026-11-22T10:00:00+00:00");
    assert_eq!(
        (instance.project_id.as_deref(), instance.user_id.as_deref()),
        (Some("p-1"), Some("u-1"))
    );
    assert_eq!(instance.timestamp.to_rfc3339(), "2026-11-22T11:00:00+00:00");
}

#[test]
fn a_required_value_that_is_missing_or_not_a_number_is_a_miss() {
    let d = definitions(MEMORY, "[]", Unmatched::Drop);
    for (payload, field, reason) in [
        (json!({"instance_id": "i-1"}), "volume", "found nothing"),
        (
            json!({"instance_id": "i-1", "memory_mb": null}),
            "volume",
            "found nothing",
        ),
        (
            json!({"instance_id": "i-1", "memory_mb": "lots"}),
            "volume",
            "\"lots\" is not a number",
        ),
        (
            json!({"instance_id": "i-1", "memory_mb": [1]}),
            "volume",
            "[1] is not a number",
        ),
        (json!({"memory_mb": 1}), "resource_id", "found nothing"),
        (
            json!({"memory_mb": 1, "instance_id": {"a": 1}}),
            "resource_id",
            "found an object, not text",
        ),
    ] {
        let c = convert(&d, notification("compute.instance.update", payload.clone()));
        let memory: Vec<_> = c.samples.iter().filter(|s| s.name == "memory").collect();
        assert!(memory.is_empty(), "{payload}");
        let miss = &c.misses[0];
        assert_eq!(
            (
                miss.definition.as_str(),
                miss.field.as_str(),
                miss.reason.as_str()
            ),
            ("memory", field, reason),
            "{payload}"
        );
        assert_eq!(
            miss.to_string(),
            format!("meter `memory`: {field}: {reason} (message m-1)")
        );
    }
    let c = convert(
        &d,
        notification(
            "compute.instance.update",
            json!({"instance_id": "i-1", "audit_period_ending": "soon"}),
        ),
    );
    assert_eq!(
        c.misses.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [
            "meter `memory`: volume: found nothing (message m-1)",
            "meter `instance`: timestamp: \"soon\" is not a timestamp (message m-1)",
        ]
    );
}

#[test]
fn timedelta_of_two_timestamps() {
    let meters = r#"
metric:
  - name: compute.instance.booting.time
    event_type: compute.instance.create.end
    type: gauge
    unit: s
    volume: {fields: [$.payload.created_at, $.payload.launched_at], plugin: timedelta}
    resource_id: $.payload.instance_id
"#;
    let events = r#"
- event_type: compute.instance.create.end
  traits:
    boot_time: {fields: [payload.created_at, payload.launched_at], plugin: timedelta, type: float}
"#;
    let d = definitions(meters, events, Unmatched::Drop);
    let c = convert(
        &d,
        notification(
            "compute.instance.create.end",
            json!({"instance_id": "i-1", "created_at": "2026-11-22 09:59:55+00:00", "launched_at": "2026-11-22T10:00:00.000000"}),
        ),
    );
    assert_eq!(c.samples[0].volume(), 5.0);
    assert_eq!(trait_of(&c, "boot_time"), Some(TraitValue::Float(5.0)));
    let one = convert(
        &d,
        notification(
            "compute.instance.create.end",
            json!({"instance_id": "i-1", "created_at": "2026-11-22 09:59:55"}),
        ),
    );
    assert_eq!(one.samples, vec![]);
    assert_eq!(one.misses[0].reason, "found nothing");
    assert_eq!(trait_of(&one, "boot_time"), None);
    let bad = convert(
        &d,
        notification(
            "compute.instance.create.end",
            json!({"instance_id": "i-1", "created_at": "x", "launched_at": "y"}),
        ),
    );
    assert_eq!(
        bad.misses
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        [
            "meter `compute.instance.booting.time`: volume: timedelta: \"x\" is not a timestamp (message m-1)",
            "event definition `compute.instance.create.end`: traits.boot_time: timedelta: \"x\" is not a timestamp (message m-1)",
        ]
    );
}
