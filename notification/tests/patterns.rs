//! Event type patterns: globs with `!` exclusions, directly and through the match cache.

mod common;

use common::{convert, definitions, notification};
use hb_notification::{EventTypes, Unmatched};
use serde_json::json;

#[test]
fn event_type_patterns_with_exclusions() {
    for (patterns, event_type, want) in [
        (
            &["compute.instance.create.end"][..],
            "compute.instance.create.end",
            true,
        ),
        (
            &["compute.instance.create.end"],
            "compute.instance.create.start",
            false,
        ),
        (&["compute.instance.*"], "compute.instance.create.end", true),
        (&["compute.instance.*"], "compute.instance", false),
        (&["*"], "anything.at.all", true),
        (
            &["compute.instance.create.????"],
            "compute.instance.create.end",
            false,
        ),
        (
            &["compute.instance.create.???"],
            "compute.instance.create.end",
            true,
        ),
        (&["volume.[cd]*"], "volume.create.end", true),
        (&["volume.[cd]*"], "volume.resize.end", false),
        (&["volume.[!cd]*"], "volume.resize.end", true),
        (
            &["compute.instance.*", "!compute.instance.exists"],
            "compute.instance.exists",
            false,
        ),
        (
            &["compute.instance.*", "!compute.instance.exists"],
            "compute.instance.update",
            true,
        ),
        (
            &["compute.instance.*", "!*.start"],
            "compute.instance.create.start",
            false,
        ),
        (
            &["compute.instance.*", "!*.start"],
            "compute.instance.create.end",
            true,
        ),
        (&["!*.start"], "image.upload", true),
        (&["!*.start"], "volume.create.start", false),
        (&["!*.start", "!*.end"], "volume.create.end", false),
        (&["!*.start", "!*.end"], "volume.exists", true),
        (&["image.upload", "image.delete"], "image.delete", true),
        (&["image.upload", "image.delete"], "image.update", false),
    ] {
        let types = EventTypes::new(patterns).expect("valid");
        assert_eq!(types.matches(event_type), want, "{patterns:?} {event_type}");
    }
    for (patterns, want) in [
        (&[][..], "at least one event type pattern is needed"),
        (&["!"], "empty event type pattern"),
        (&["a", ""], "empty event type pattern"),
        (
            &["volume.[c"],
            "invalid event type pattern `volume.[c`: invalid range pattern",
        ),
    ] {
        assert_eq!(
            EventTypes::new(patterns)
                .map(|_| ())
                .unwrap_err()
                .to_string(),
            want
        );
    }
}

#[test]
fn patterns_select_meters_through_the_match_cache() {
    let meters = r#"
metric:
  - {name: all-but-exists, event_type: ["compute.*", "!compute.instance.exists"], type: delta, unit: n, volume: 1, resource_id: r}
  - {name: exists, event_type: compute.instance.exists, type: delta, unit: n, volume: 1, resource_id: r}
"#;
    let d = definitions(meters, "[]", Unmatched::Drop);
    // More event types than the cache holds: answers stay right when it starts over.
    for round in 0..2 {
        for i in 0..(hb_notification::CACHE_CAPACITY + 100) {
            let event_type = if i % 2 == 0 {
                format!("compute.e{i}")
            } else {
                "compute.instance.exists".to_owned()
            };
            let c = convert(&d, notification(&event_type, json!({})));
            let names: Vec<&str> = c.samples.iter().map(|s| s.name.as_str()).collect();
            let want = if i % 2 == 0 {
                "all-but-exists"
            } else {
                "exists"
            };
            assert_eq!(names, [want], "round {round}, {event_type}");
        }
    }
}
