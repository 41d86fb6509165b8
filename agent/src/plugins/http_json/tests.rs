//! Tests of definitions and entries, and the property test of the expression evaluator.

use std::time::Duration;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::measure::{Extract, Tally};
use super::path::Expr;
use super::*;
use crate::pollster::Measurement;

fn ctx(name: &str) -> Context<'_> {
    Context {
        name,
        file: std::path::Path::new("/nonexistent/ns.yaml"),
        timeout: Duration::from_secs(2),
        shared: crate::plugins::test_shared(),
    }
}

fn def(fields: Value) -> Map<String, Value> {
    let mut base = json!({
        "type": "gauge", "unit": "message", "url": "http://127.0.0.1:1/api",
        "value": "$.v", "resource_id": "$.id",
    });
    let obj = base.as_object_mut().expect("object");
    for (k, v) in fields.as_object().expect("object") {
        obj.insert(k.clone(), v.clone());
    }
    obj.clone()
}

fn refusal(name: &str, fields: Value) -> FieldError {
    match build(def(fields), &ctx(name)) {
        Ok(_) => panic!("accepted: {name}"),
        Err(e) => e,
    }
}

#[test]
fn definitions_declare_a_meter_or_a_family() {
    let built = build(def(json!({})), &ctx("q.messages")).expect("valid");
    assert_eq!(built.meters[0].name, "q.messages");
    assert!(built.meters[0].family.is_none());
    let built = build(def(json!({})), &ctx("disk.{dev}.used")).expect("valid");
    assert_eq!(built.meters[0].name, "disk.*.used");
    assert!(built.meters[0].covers("disk.sda.used"));
}

#[test]
fn refusals_name_the_field() {
    let cases = [
        (
            "m",
            json!({"metadata": {"vhost": "$.a["}}),
            "metadata.vhost",
            "invalid JSONPath",
        ),
        (
            "m",
            json!({"value": "$.a | eval('x')"}),
            "value",
            "unknown operation",
        ),
        (
            "m",
            json!({"resource_id": ["$.a", "b"]}),
            "resource_id[1]",
            "starts with `$`",
        ),
        (
            "m",
            json!({"resource_id": []}),
            "resource_id",
            "at least one",
        ),
        ("m", json!({"url": "/relative"}), "url", "invalid URL"),
        (
            "m",
            json!({"url": "ftp://h/x"}),
            "url",
            "not an absolute http",
        ),
        (
            "m",
            json!({"url": "http://u:p@h/x"}),
            "url",
            "credentials do not belong",
        ),
        (
            "m",
            json!({"type": "rate"}),
            "type",
            "unknown variant `rate`",
        ),
        (
            "m",
            json!({"colour": 1}),
            "colour",
            "unknown field `colour`",
        ),
        (
            "m",
            json!({"entries": "$.a | trim"}),
            "entries",
            "without operations",
        ),
        ("m", json!({"max_pages": 0}), "max_pages", "at least 1"),
        (
            "m",
            json!({"skip_values": [1, [2]]}),
            "skip_values[1]",
            "number or a string",
        ),
        (
            "m",
            json!({"headers": {"Authorization": "Bearer x"}}),
            "headers.Authorization",
            "not written inline",
        ),
        (
            "m",
            json!({"headers": {"bad name": "x"}}),
            "headers.bad name",
            "header name",
        ),
        (
            "m",
            json!({"headers": {"X-A": "line\nbreak"}}),
            "headers.X-A",
            "header value",
        ),
        (
            "m",
            json!({"basic_auth": {"username": "u"}}),
            "basic_auth.password",
            "missing",
        ),
        (
            "m",
            json!({"basic_auth": {"username": "u", "password": "p"}}),
            "basic_auth.password",
            "inline",
        ),
        ("m.{a", json!({}), "name", "`{` without `}`"),
        ("m.{a b}", json!({}), "name", "placeholder"),
        ("m}", json!({}), "name", "`}` without `{`"),
    ];
    for (name, fields, field, message) in cases {
        let e = refusal(name, fields.clone());
        assert_eq!(e.field, field, "{fields}: {e:?}");
        assert!(e.message.contains(message), "{fields}: {e:?}");
    }
    let e = refusal("m", json!({"unit": ""}));
    assert_eq!(
        (e.field.as_str(), e.message.as_str()),
        ("unit", "must not be empty")
    );
}

fn extract(name: &str, fields: Value) -> Extract {
    let def: super::Def = super::super::fields(def(fields)).expect("fields");
    let expr = |t: &str| Expr::parse(t).expect(t);
    Extract {
        meter: MeterName::parse(name).expect("name"),
        kind: def.kind,
        unit: def.unit,
        value: expr(&def.value),
        resource_id: match def.resource_id {
            OneOrMany::One(t) => vec![expr(&t)],
            OneOrMany::Many(l) => l.iter().map(|t| expr(t)).collect(),
        },
        project_id: def.project_id.as_deref().map(expr),
        user_id: def.user_id.as_deref().map(expr),
        metadata: def
            .metadata
            .iter()
            .map(|(k, t)| (k.clone(), expr(t)))
            .collect(),
        value_mapping: def.value_mapping,
        default_value: def.default_value,
        skip_values: def
            .skip_values
            .iter()
            .map(|v| match v {
                Value::String(s) => Skip::Text(s.clone()),
                v => Skip::Number(v.as_f64().expect("number")),
            })
            .collect(),
    }
}

fn measure(x: &Extract, entries: Value) -> (Vec<Measurement>, Tally) {
    let (mut out, mut tally) = (Vec::new(), Tally::default());
    for e in entries.as_array().expect("list") {
        x.entry(e, &mut out, &mut tally);
    }
    (out, tally)
}

fn volumes(out: &[Measurement]) -> Vec<(String, f64)> {
    out.iter()
        .map(|m| (format!("{}@{}", m.meter, m.resource_id), m.volume))
        .collect()
}

#[test]
fn mapping_default_and_skips() {
    let x = extract(
        "svc.state",
        json!({"value": "$.state", "value_mapping": {"up": 1, "down": 0, "3": 30},
               "default_value": -1, "skip_values": [0, "maintenance"]}),
    );
    let (out, tally) = measure(
        &x,
        json!([{"id": "a", "state": "up"}, {"id": "b", "state": "down"},
               {"id": "c", "state": "weird"}, {"id": "d"}, {"id": "e", "state": "maintenance"},
               {"id": "f", "state": 3}, {"state": "up"}]),
    );
    let want = [
        ("svc.state@a", 1.0),
        ("svc.state@c", -1.0),
        ("svc.state@d", -1.0),
        ("svc.state@f", 30.0),
    ];
    assert_eq!(volumes(&out), want.map(|(k, v)| (k.to_owned(), v)));
    assert_eq!((tally.skipped, tally.no_resource, tally.entries), (2, 1, 7));
}

#[test]
fn values_without_mapping_must_be_numbers() {
    let x = extract("m", json!({"resource_id": ["$.vh", "$.id"]}));
    let (out, tally) = measure(
        &x,
        json!([{"vh": "/", "id": "a", "v": "12.5"}, {"vh": "x", "id": 7, "v": true},
               {"vh": "x", "id": "b", "v": "lots"}, {"vh": "x", "id": "c", "v": {"n": 1}},
               {"vh": "x", "id": "d", "v": null}, {"vh": "x", "id": "e"}]),
    );
    let want = [("m@//a", 12.5), ("m@x/7", 1.0)];
    assert_eq!(volumes(&out), want.map(|(k, v)| (k.to_owned(), v)));
    assert_eq!((tally.not_numeric, tally.no_value), (2, 2));
    assert_eq!(
        tally.first_not_numeric,
        Some(("x/b".into(), "\"lots\"".into()))
    );
}

#[test]
fn families_take_names_from_the_parent_and_carry_type_and_unit() {
    let x = extract(
        "disk.{dev}.used",
        json!({"value": "$.disks[*].used | div(1024)", "type": "cumulative", "unit": "KiB",
               "project_id": "$.owner.project", "user_id": "$.owner.user",
               "metadata": {"zone": "$.zone | uppercase", "none": "$.nothing"}}),
    );
    let (out, tally) = measure(
        &x,
        json!([{"id": "h1", "zone": "z1", "owner": {"project": "p", "user": 5},
                "disks": [{"dev": "sda", "used": 2048}, {"used": 1}, {"dev": "sdb", "used": "x"}]}]),
    );
    assert_eq!(out.len(), 1, "{out:?}");
    let m = &out[0];
    assert_eq!(
        (m.meter.as_ref(), m.volume, m.resource_id.as_str()),
        ("disk.sda.used", 2.0, "h1")
    );
    assert_eq!(m.typed, Some((SampleType::Cumulative, "KiB".into())));
    assert_eq!(
        (m.project_id.as_deref(), m.user_id.as_deref()),
        (Some("p"), Some("5"))
    );
    assert_eq!(Value::Object(m.metadata.clone()), json!({"zone": "Z1"}));
    assert_eq!((tally.no_field, tally.no_value), (1, 1));
}

/// JSON documents up to a few levels deep, with the keys the paths use.
fn document() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| super::ops::number(f).unwrap_or(Value::Null)),
        "[a-c/ ,.|'0-9-]{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(("[a-c]{1,2}", inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Expressions: mostly well-formed paths and operations, some noise.
fn expression() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        3 => "\\.[a-c]{1,2}",
        3 => Just("[*]".to_owned()),
        3 => Just("..".to_owned()),
        3 => Just("..*".to_owned()),
        3 => (-3i32..4).prop_map(|i| format!("[{i}]")),
        3 => Just("[1:3]".to_owned()),
        3 => Just("[::-1]".to_owned()),
        3 => Just("[?@.a > 1 || @.b == 'x|y']".to_owned()),
        3 => Just("[?length(@) > 1]".to_owned()),
        3 => Just("['a','b']".to_owned()),
        1 => "[\\[\\]()'\"|?@$.a-c0-9 ]{1,4}",
    ];
    let op = prop_oneof![
        1 => "[a-z_]{1,9}",
        3 => Just("split('/')".to_owned()),
        3 => Just("split(',')".to_owned()),
        3 => (-3i64..3).prop_map(|i| format!("index({i})")),
        3 => Just("trim".to_owned()),
        3 => Just("lowercase".to_owned()),
        3 => Just("replace('a', '')".to_owned()),
        3 => prop_oneof![Just("add"), Just("sub"), Just("mul"), Just("div")]
            .prop_flat_map(|f| prop_oneof![any::<f64>(), -1e3..1e3f64].prop_map(move |n| format!("{f}({n})"))),
        3 => Just("to_number".to_owned()),
        3 => Just("length".to_owned()),
        3 => Just("default(0)".to_owned()),
        1 => "[a-z]{1,6}\\([\\-0-9.e'\",a-z ]{0,8}\\)?",
    ];
    (
        prop::collection::vec(segment, 0..5),
        prop::collection::vec(op, 0..4),
        prop_oneof![8 => Just(String::new()), 1 => "\\PC{1,3}"],
    )
        .prop_map(|(segments, ops, noise)| {
            let mut text = format!("${}", segments.concat());
            for op in ops {
                text += &format!(" | {op}");
            }
            text + &noise
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    #[test]
    fn evaluating_any_expression_on_any_document_never_panics(
        doc in document(),
        text in expression(),
        name in prop_oneof![Just("m".to_owned()), Just("m.{a}".to_owned()), Just("{b}.{a}x".to_owned())],
    ) {
        let Ok(expr) = Expr::parse(&text) else { return Ok(()) };
        let _ = expr.first(&doc);
        let _ = expr.nodes(&doc);
        for found in expr.all(&doc) {
            let _ = found.value.as_ref().map(super::path::scalar_text);
        }
        let fields = json!({"value": text, "resource_id": [text, "$.a"], "project_id": text,
                            "metadata": {"k": text}, "value_mapping": {"1": 2},
                            "skip_values": [0, "x"], "default_value": 0});
        let x = extract(&name, fields);
        let (mut out, mut tally) = (Vec::new(), Tally::default());
        x.entry(&doc, &mut out, &mut tally);
        prop_assert!(out.iter().all(|m| m.volume.is_finite()));
    }

    #[test]
    fn any_text_parses_or_is_refused_without_panicking(text in "\\PC{0,40}") {
        let _ = Expr::parse(&text);
        let _ = Expr::parse(&format!("$.a | {text}"));
    }
}
