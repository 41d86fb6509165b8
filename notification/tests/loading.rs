//! Loading definitions: every kind of wrong definition reported (file, line, column,
//! definition, field) and skipped while the others load; directories.

mod common;

use std::path::Path;

use common::{convert, notification, trait_of};
use hb_notification::{Definitions, Unmatched};
use hb_sample::TraitValue;
use serde_json::json;

#[test]
fn wrong_definitions_are_reported_and_skipped_while_the_others_load() {
    let meters = r#"# compute meters
metric:
  - name: good
    event_type: compute.*
    type: gauge
    unit: B
    volume: $.payload.size
    resource_id: $.payload.id
  - name: colour
    event_type: compute.*
    type: gauge
    unit: B
    volume: 1
    resource_id: x
    colour: red
  - name: badtype
    event_type: compute.*
    type: gauj
    unit: B
    volume: 1
    resource_id: x
  - name: memory
    event_type: compute.*
    type: gauge
    unit: MB
    volume: $.payload[
    resource_id: x
  - name: split
    event_type: compute.*
    type: gauge
    unit: B
    volume: 1
    resource_id: {fields: $.publisher_id, plugin: {name: split, parameters: {segment: first}}}
  - name: lookup
    event_type: compute.*
    type: gauge
    unit: B
    volume: $.payload.v[*]
    resource_id: x
    lookup: [volume, colour]
  - name: plugin
    event_type: compute.*
    type: gauge
    unit: B
    volume: {fields: $.a, plugin: foo}
    resource_id: x
  - name: missing
    event_type: compute.*
    type: gauge
    unit: B
    resource_id: x
  - name: map
    event_type: compute.*
    type: gauge
    unit: B
    volume: {fields: $.a, plugin: {name: map, parameters: {values: {a: 1}, defualt: 1}}}
    resource_id: x
  - name: nodot
    event_type: compute.*
    type: gauge
    unit: B
    volume: $.payload.measurements.[*].result
    resource_id: x
  - 12
"#;
    let events = r#"
- event_type: compute.*
  traits:
    mem: {fields: payload.memory_mb, type: integer}
- event_type: compute.instance.*
  traits:
    mem: {fields: payload.x, plugin: {name: split, parameters: {max_split: -1}}}
- event_type: [compute.*]
  traits:
    mem: payload.memory_mb
- event_type: compute.*
  colour: red
- traits: {}
- event_type: compute.*
  traits:
    mem: {fields: payload.memory_mb, type: int}
"#;
    let loaded = Definitions::parse(
        &[
            (Path::new("meters.d/compute.yaml"), meters),
            (Path::new("meters.d/broken.yaml"), "metric: [\n  {name: x"),
            (Path::new("meters.d/list.yaml"), "- name: x"),
        ],
        &[
            (Path::new("events.d/compute.yaml"), events),
            (Path::new("events.d/map.yaml"), "{a: 1}"),
        ],
        Unmatched::Drop,
    );
    let skipped: Vec<String> = loaded.skipped.iter().map(ToString::to_string).collect();
    assert_eq!(
        skipped,
        [
            "meters.d/compute.yaml:15:5: metric[1] `colour`: unknown field `colour` (available: name, event_type, type, unit, volume, resource_id, project_id, user_id, timestamp, metadata, lookup)",
            "meters.d/compute.yaml:18:11: metric[2] `badtype`: type: unknown type `gauj` (available: gauge, delta, cumulative)",
            "meters.d/compute.yaml:26:13: metric[3] `memory`: volume: invalid json path `$.payload[`: at position 9, parser error",
            "meters.d/compute.yaml:33:87: metric[4] `split`: resource_id.plugin.parameters.segment: `segment` must be an integer, got a string (\"first\")",
            "meters.d/compute.yaml:40:22: metric[5] `lookup`: lookup: unknown field `colour` in lookup (available: name, unit, volume, resource_id, project_id, user_id, timestamp)",
            "meters.d/compute.yaml:45:35: metric[6] `plugin`: volume.plugin: unknown plugin `foo` (available: map, split, timedelta)",
            "meters.d/compute.yaml:47:5: metric[7] `missing`: missing required field `volume`",
            "meters.d/compute.yaml:56:76: metric[8] `map`: volume.plugin.parameters: unknown field `defualt` (available: values, default, case_sensitive)",
            "meters.d/compute.yaml:62:13: metric[9] `nodot`: volume: invalid json path `$.payload.measurements.[*].result`: at position 23, in dot member name, must start with lowercase alpha or '_' (rfc 9535 has no dot before a bracket: `$.a[*]`, not `$.a.[*]`)",
            "meters.d/compute.yaml:64:5: metric[10]: a meter definition must be a mapping, got a number",
            "meters.d/broken.yaml:2:3: not valid yaml: unclosed bracket '{'",
            "meters.d/list.yaml:1:1: a meters file must be a mapping with a `metric:` list, got a list",
            "events.d/compute.yaml:4:44: event[0] `compute.*`: traits.mem.type: unknown type `integer` (available: text, int, float, datetime)",
            "events.d/compute.yaml:7:76: event[1] `compute.instance.*`: traits.mem.plugin.parameters.max_split: `max_split` must be 0 or more, got -1",
            "events.d/compute.yaml:10:10: event[2] `compute.*`: traits.mem: a trait must be a mapping with `fields` and optionally `type` and `plugin`, got a string",
            "events.d/compute.yaml:12:3: event[3] `compute.*`: unknown field `colour` (available: event_type, traits)",
            "events.d/compute.yaml:13:3: event[4]: missing required field `event_type`",
            "events.d/map.yaml:1:1: an events file must be a list of event definitions, got a mapping",
        ]
    );
    let d = loaded.definitions;
    assert_eq!((d.meter_count(), d.event_count()), (1, 1));
    let c = convert(
        &d,
        notification(
            "compute.instance.update",
            json!({"size": 3, "id": "i-1", "memory_mb": 512}),
        ),
    );
    assert_eq!(
        c.samples
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        ["good"]
    );
    assert_eq!(trait_of(&c, "mem"), Some(TraitValue::Int(512)));
}

#[test]
fn plugin_parameters_and_lookups_are_checked_when_loading() {
    let meter = |volume: &str, extra: &str| {
        format!(
            "metric:\n  - name: m\n    event_type: e\n    type: gauge\n    unit: u\n    resource_id: r\n    volume: {volume}\n{extra}"
        )
    };
    for (text, want) in [
        (
            meter(
                "{fields: $.a, plugin: {name: map, parameters: {default: 1}}}",
                "",
            ),
            "volume.plugin.parameters: plugin `map` needs `values` (a mapping of value to result)",
        ),
        (
            meter(
                "{fields: $.a, plugin: {name: map, parameters: {values: [a]}}}",
                "",
            ),
            "volume.plugin.parameters.values: `values` must be a mapping of value to result, got a list",
        ),
        (
            meter(
                "{fields: $.a, plugin: {name: map, parameters: {values: {A: 1, a: 2}, case_sensitive: false}}}",
                "",
            ),
            "volume.plugin.parameters.values: key `a` is given twice (keys are compared ignoring case)",
        ),
        (
            meter(
                "{fields: $.a, plugin: {name: map, parameters: {values: {}, case_sensitive: maybe}}}",
                "",
            ),
            "volume.plugin.parameters.case_sensitive: `case_sensitive` must be true or false, got a string",
        ),
        (
            meter(
                "{fields: $.a, plugin: {name: split, parameters: {separator: \"\"}}}",
                "",
            ),
            "volume.plugin.parameters.separator: `separator` must be non-empty text, got a string",
        ),
        (
            meter(
                "{fields: [$.a, $.b], plugin: {name: timedelta, parameters: {x: 1}}}",
                "",
            ),
            "volume.plugin.parameters: plugin `timedelta` takes no parameters",
        ),
        (
            meter("{fields: $.a, plugin: {parameters: {}}}", ""),
            "volume.plugin: missing `name` of the plugin",
        ),
        (meter("{plugin: timedelta}", ""), "volume: missing `fields`"),
        (meter("[]", ""), "volume: an empty list of json paths"),
        (
            meter("$.a[*]", "    lookup: [volume, timestamp]"),
            "lookup: `timestamp` is in lookup but not set",
        ),
        (
            meter("$.a[*]", "    lookup: [volume, unit]"),
            "lookup: `unit` is in lookup, so it must be a json path or a list of json paths",
        ),
        (
            meter("1", "    metadata: [a]"),
            "metadata: `metadata` must be a mapping of name to value, got a list",
        ),
        (
            meter("1", "    event_type: x"),
            "not valid yaml: duplicate mapping key: event_type",
        ),
    ] {
        let loaded = Definitions::parse(&[(Path::new("m.yaml"), &text)], &[], Unmatched::Drop);
        let [skipped] = loaded.skipped.as_slice() else {
            panic!("{text}: {:?}", loaded.skipped)
        };
        let got = format!(
            "{}{}{}",
            skipped.field,
            if skipped.field.is_empty() { "" } else { ": " },
            skipped.message
        );
        assert_eq!(got, want, "{text}");
        assert_eq!(loaded.definitions.meter_count(), 0);
    }
}

#[test]
fn loading_directories() {
    let dir = std::env::temp_dir().join(format!("hb-notification-test-{}", std::process::id()));
    let meters = dir.join("meters.d");
    let events = dir.join("events.d");
    std::fs::create_dir_all(&meters).expect("mkdir");
    std::fs::create_dir_all(&events).expect("mkdir");
    let def = |name: &str| {
        format!(
            "metric:\n  - {{name: {name}, event_type: x, type: gauge, unit: u, volume: 1, resource_id: r}}\n"
        )
    };
    std::fs::write(meters.join("b.yaml"), def("second")).expect("write");
    std::fs::write(meters.join("a.yaml"), def("first")).expect("write");
    std::fs::write(meters.join("notes.txt"), "not a definition").expect("write");
    std::fs::write(meters.join("c.yaml"), "metric: [").expect("write");
    std::fs::write(events.join("all.yaml"), "- event_type: x\n").expect("write");
    let loaded = Definitions::load(Some(&meters), Some(&events), Unmatched::Drop).expect("loads");
    assert_eq!(loaded.skipped.len(), 1);
    assert!(
        loaded.skipped[0]
            .to_string()
            .starts_with(&format!("{}:1:", meters.join("c.yaml").display())),
        "{}",
        loaded.skipped[0]
    );
    let c = convert(&loaded.definitions, notification("x", json!({})));
    assert_eq!(
        c.samples
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        ["first", "second"]
    );
    assert!(c.event.is_some());
    let none = Definitions::load(None, None, Unmatched::Drop).expect("nothing to load");
    assert_eq!(
        (
            none.definitions.meter_count(),
            none.definitions.event_count()
        ),
        (0, 0)
    );
    let missing =
        Definitions::load(Some(&dir.join("nope")), None, Unmatched::Drop).expect_err("missing");
    assert!(missing.is_not_found());
    assert!(
        missing
            .to_string()
            .starts_with("cannot read definitions directory "),
        "{missing}"
    );
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
