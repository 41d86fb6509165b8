//! Any key of pipeline.yaml from an `HB_` variable (`__` for nesting, sinks and sources by
//! name): the value takes effect, and a bad one is refused naming the variable.

use std::path::Path;
use std::time::Duration;

use hb_pipeline::config::{Listen, env::Override};
use hb_pipeline::{Config, ConfigErrors};

const FILE: &str = r#"
transport: memory://
sources:
  - {name: cpu, interval: 10, meters: ["cpu"], sinks: [archive, local-disk]}
sinks:
  - name: archive
    publishers: ["file://archive.jsonl"]
    batch: {max_events: 100}
  - name: local-disk
    publishers: ["file://local.jsonl"]
"#;

fn with(vars: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::parse(FILE, Path::new("/etc/hb/pipeline.yaml"), move |var| {
        vars.iter().find(|(k, _)| k == var).map(|(_, v)| v.clone())
    })
}

#[test]
fn nested_keys_take_effect() {
    let config = with(&[
        ("HB_SINKS__ARCHIVE__BATCH__MAX_EVENTS", "1000"),
        ("HB_SINKS__LOCAL_DISK__BATCH__TIMEOUT", "2.5"),
        ("HB_MANAGEMENT__LISTEN", "127.0.0.1:9999"),
        ("HB_SOURCES__CPU__INTERVAL", "30"),
        ("HB_SINKS__ARCHIVE__PUBLISHERS", "[\"file://other.jsonl\"]"),
    ])
    .expect("valid");
    assert_eq!(config.sinks[0].batch.max_events, 1000);
    assert_eq!(config.sinks[1].batch.timeout, Duration::from_millis(2500));
    assert_eq!(
        config.management.listen,
        Listen::At("127.0.0.1:9999".parse().expect("addr"))
    );
    assert_eq!(config.sources[0].interval, Duration::from_secs(30));
    assert_eq!(
        config.sinks[0].publishers[0].describe(),
        "file:///etc/hb/other.jsonl?max_bytes=0&backup_count=0"
    );
    assert!(config.overrides.contains(&Override {
        var: "HB_SINKS__ARCHIVE__BATCH__MAX_EVENTS".into(),
        key: "sinks[0].batch.max_events".into(),
    }));
    // Without variables, the file's values.
    let file = with(&[]).expect("valid");
    assert_eq!(file.sinks[0].batch.max_events, 100);
    assert!(file.overrides.is_empty());
}

#[test]
fn a_bad_value_is_refused_naming_the_variable() {
    let errors = with(&[
        ("HB_SINKS__ARCHIVE__BATCH__MAX_EVENTS", "0"),
        ("HB_SINKS__LOCAL_DISK__BATCH__MAX_BYTES", "lots"),
        ("HB_MANAGEMENT__LISTEN", "0.0.0.0:8042"),
        ("HB_SINKS__ARCHIVE__PUBLISHERS", "[\"nope://x\"]"),
    ])
    .expect_err("refused");
    let text = errors.to_string();
    for expected in [
        "environment variable HB_SINKS__ARCHIVE__BATCH__MAX_EVENTS: sinks[0].batch.max_events: must be at least 1",
        "environment variable HB_SINKS__LOCAL_DISK__BATCH__MAX_BYTES: sinks[1].batch.max_bytes: ",
        "environment variable HB_MANAGEMENT__LISTEN: management.listen: 0.0.0.0:8042 is not a loopback address",
        "environment variable HB_SINKS__ARCHIVE__PUBLISHERS: sinks[0].publishers[0]: ",
    ] {
        assert!(text.contains(expected), "{expected}\nnot in:\n{text}");
    }
    assert!(!text.contains("/etc/hb/pipeline.yaml:"), "{text}");
}

#[test]
fn only_variables_of_the_file_s_sections_must_set_a_key() {
    let config = with(&[("HB_SINKS__ARCHIVE__BATCH__MAX_EVENTS", "7")]).expect("valid");
    let vars = [
        "HB_SINKS__ARCHIVE__BATCH__MAX_EVENTS",
        "HB_SINKS__ARCHIVE__BATCH__MAX_EVENT",
        "HB_MANAGEMENT__LISTN",
        "HB_INFLUX__PASSWORD",
        "HB_LOG",
        "PATH",
    ];
    assert_eq!(
        hb_pipeline::config::env::unused(vars.into_iter(), &config.overrides),
        [
            "HB_SINKS__ARCHIVE__BATCH__MAX_EVENT",
            "HB_MANAGEMENT__LISTN"
        ]
    );
}
