//! pipeline.yaml: what loads, and every refusal with its exact message and position.

use std::path::Path;

use hb_pipeline::Transport;
use hb_pipeline::config::{Config, ConfigErrors};
use hb_pipeline::publisher::PublisherSpec;

const GOOD: &str = r#"
transport: memory://
sources:
  - name: cpu
    interval: 10
    meters: ["cpu"]
    sinks: [archive, local]
  - name: host
    interval: 60
    meters: ["*", "!cpu", "!disk.device.*.requests"]
    sinks: [local]
sinks:
  - name: archive
    publishers: ["file:///var/lib/hb/samples.jsonl?max_bytes=1000000&backup_count=5"]
  - name: local
    publishers: ["file://data/samples.jsonl"]
"#;

fn no_env(_: &str) -> Option<String> {
    None
}

fn load(text: &str) -> Result<Config, ConfigErrors> {
    Config::parse(text, Path::new("/etc/hb/pipeline.yaml"), no_env)
}

#[test]
fn a_valid_file_loads_with_sink_references_resolved() {
    let config = load(GOOD).expect("valid");
    assert_eq!(config.transport, Transport::Memory);
    assert_eq!(config.sources.len(), 2);
    assert_eq!(config.sources[0].sinks, vec![0, 1]);
    assert_eq!(config.sources[1].interval.as_secs(), 60);
    assert!(config.sources[1].meters.matches("memory.usage"));
    assert!(
        !config.sources[1]
            .meters
            .matches("disk.device.read.requests")
    );
    let PublisherSpec::File(local) = &config.sinks[1].publishers[0] else {
        panic!("a file publisher: {:?}", config.sinks[1].publishers[0]);
    };
    assert_eq!(local.path, Path::new("/etc/hb/data/samples.jsonl"));
    assert_eq!(config.sinks[1].batch.request_concurrency, 2);
    let four = GOOD.replace(
        "publishers: [\"file://data/samples.jsonl\"]",
        "publishers: [\"file://data/samples.jsonl\"]\n    batch: {request_concurrency: 4}",
    );
    assert_eq!(
        load(&four).expect("valid").sinks[1]
            .batch
            .request_concurrency,
        4
    );
}

#[test]
fn transport_defaults_to_memory_and_the_environment_overrides_it() {
    let without = GOOD.replace("transport: memory://\n", "");
    assert_eq!(load(&without).expect("valid").transport, Transport::Memory);

    let env = |var: &str| (var == "HB_TRANSPORT").then(|| "nats://localhost/".to_owned());
    let err = Config::parse(GOOD, Path::new("p.yaml"), env).expect_err("refused");
    assert_eq!(
        err.to_string(),
        "environment variable HB_TRANSPORT: unsupported transport scheme `nats` (available: memory://, rabbit://, amqp://, amqps://, kafka://, redis://, rediss://)"
    );
    let env = |var: &str| {
        (var == "HB_TRANSPORT").then(|| "rabbit://guest:s3cret@mq:5672/prod?prefetch=5".to_owned())
    };
    let config = Config::parse(GOOD, Path::new("p.yaml"), env).expect("valid");
    assert_eq!(
        config.transport.to_string(),
        "amqp://guest:***@mq:5672/prod?prefetch=5",
        "the password never shows"
    );
    let env = |var: &str| (var == "HB_TRANSPORT").then(|| "memory://".to_owned());
    let bad_file = GOOD.replace("transport: memory://", "transport: nats://x");
    assert_eq!(
        Config::parse(&bad_file, Path::new("p.yaml"), env)
            .expect("env wins")
            .transport,
        Transport::Memory
    );
}

/// (what to change in GOOD, the complete expected message).
const REFUSALS: &[(&str, &str, &str)] = &[
    (
        "interval: 10",
        "interval: 0",
        "/etc/hb/pipeline.yaml:5:15: sources[0].interval: must be greater than 0 and at most 365 days (got 0)",
    ),
    (
        "interval: 10",
        "interval: -5",
        "/etc/hb/pipeline.yaml:5:15: sources[0].interval: must be greater than 0 and at most 365 days (got -5)",
    ),
    (
        "interval: 10",
        "interval: 2.5",
        "/etc/hb/pipeline.yaml:5:15: sources[0].interval: must be a whole number of seconds (got 2.5)",
    ),
    (
        "interval: 10",
        "interval: soon",
        "/etc/hb/pipeline.yaml:5:15: sources[0].interval: must be a number of seconds (10, 0.5) or a number with a unit (500ms, 10s, 5m, 2h, 7d) (got `soon`)",
    ),
    (
        "    interval: 10\n",
        "",
        "/etc/hb/pipeline.yaml:6:5: sources[0]: missing field `interval`",
    ),
    (
        "    meters: [\"cpu\"]\n",
        "",
        "/etc/hb/pipeline.yaml:6:5: sources[0]: missing field `meters`",
    ),
    (
        "  - name: cpu\n",
        "  - nam: cpu\n",
        "/etc/hb/pipeline.yaml:4:5: sources[0].nam: unknown field `nam`, expected one of name, interval, meters, sinks\n\
         /etc/hb/pipeline.yaml:7:5: sources[0]: missing field `name`",
    ),
    (
        "    interval: 60\n",
        "    interval: 60\n    transformers: []\n",
        "/etc/hb/pipeline.yaml:10:5: sources[1].transformers: unknown field `transformers`, expected one of name, interval, meters, sinks",
    ),
    (
        "transport: memory://",
        "transport: memory://\nsecrets: x",
        "/etc/hb/pipeline.yaml:3:1: secrets: unknown field `secrets`, expected one of transport, secret_file, spool, dead_letter_dir, coordination, notifications, management, sources, sinks",
    ),
    (
        "publishers: [\"file://data/samples.jsonl\"]",
        "publishers: [\"file://data/samples.jsonl\"]\n    batch: {request_concurrency: 0}",
        "/etc/hb/pipeline.yaml:17:34: sinks[1].batch.request_concurrency: must be between 1 and 64 (got 0)",
    ),
    (
        "meters: [\"cpu\"]",
        "meters: []",
        "/etc/hb/pipeline.yaml:6:13: sources[0].meters: meter list is empty (use [\"*\"] to select every meter)",
    ),
    (
        "meters: [\"cpu\"]",
        "meters: [\"cpu\", \"!disk.*\"]",
        "/etc/hb/pipeline.yaml:6:13: sources[0].meters: cannot mix included meters with excluded ones (`cpu` and `!disk.*`): list only excludes, or \"*\" and excludes",
    ),
    (
        "meters: [\"cpu\"]",
        "meters: [\"*\", \"cpu\"]",
        "/etc/hb/pipeline.yaml:6:13: sources[0].meters: \"*\" already selects every meter; remove `cpu` or remove \"*\"",
    ),
    (
        "meters: [\"cpu\"]",
        "meters: [\"cpu\", \"disk.[x\"]",
        "/etc/hb/pipeline.yaml:6:21: sources[0].meters[1]: invalid pattern `disk.[x`: invalid range pattern",
    ),
    (
        "  - name: host\n",
        "  - name: cpu\n",
        "/etc/hb/pipeline.yaml:8:11: sources[1].name: duplicate source name `cpu` (first defined on line 4)",
    ),
    (
        "  - name: local\n",
        "  - name: archive\n",
        "/etc/hb/pipeline.yaml:7:22: sources[0].sinks[1]: unknown sink `local` (defined sinks: archive)\n/etc/hb/pipeline.yaml:11:13: sources[1].sinks[0]: unknown sink `local` (defined sinks: archive)\n/etc/hb/pipeline.yaml:15:11: sinks[1].name: duplicate sink name `archive` (first defined on line 13)",
    ),
    (
        "sinks: [archive, local]",
        "sinks: [archive, locl]",
        "/etc/hb/pipeline.yaml:7:22: sources[0].sinks[1]: unknown sink `locl` (defined sinks: archive, local)",
    ),
    (
        "sinks: [archive, local]",
        "sinks: []",
        "/etc/hb/pipeline.yaml:7:12: sources[0].sinks: a source needs at least one sink",
    ),
    (
        "publishers: [\"file://data/samples.jsonl\"]",
        "publishers: []",
        "/etc/hb/pipeline.yaml:16:17: sinks[1].publishers: sink `local` needs at least one publisher",
    ),
    (
        "file://data/samples.jsonl",
        "file://data/samples.jsonl?max_bytes=lots&backup_count=2",
        "/etc/hb/pipeline.yaml:16:18: sinks[1].publishers[0]: invalid max_bytes `lots`: expected a whole number >= 0",
    ),
    (
        "file://data/samples.jsonl",
        "gnocchi://",
        "/etc/hb/pipeline.yaml:16:18: sinks[1].publishers[0]: unknown publisher scheme `gnocchi` (available: file, archive+file, s3, influxdb, influxdb+https, influxdb2, influxdb2+https)",
    ),
    (
        "transport: memory://",
        "transport: nats://127.0.0.1:4222",
        "/etc/hb/pipeline.yaml:2:12: transport: unsupported transport scheme `nats` (available: memory://, rabbit://, amqp://, amqps://, kafka://, redis://, rediss://)",
    ),
    (
        "transport: memory://",
        "transport: memory",
        "/etc/hb/pipeline.yaml:2:12: transport: `memory` is not a transport URL (expected scheme://..., available: memory://, rabbit://, amqp://, amqps://, kafka://, redis://, rediss://)",
    ),
    (
        "transport: memory://",
        "transport: kafka://127.0.0.1:9092?acks=1",
        "/etc/hb/pipeline.yaml:2:12: transport: unknown option `acks` for kafka:// (valid: prefix, batch, prefetch, group, partitions, replication, linger_ms, compression, session_timeout_ms, timeout_ms, tls, max_message_bytes, max_samples_per_envelope, prefetch_bytes, max_age_s, tls_ca, tls_cert, tls_key, tls_insecure, sasl_mechanism, sasl_username, sasl_password_env)",
    ),
    (
        "transport: memory://",
        "transport: kafka://127.0.0.1?compression=brotli",
        "/etc/hb/pipeline.yaml:2:12: transport: invalid kafka:// address: `127.0.0.1` is not host:port",
    ),
    (
        "transport: memory://",
        "transport: kafka://127.0.0.1:9092?compression=brotli",
        "/etc/hb/pipeline.yaml:2:12: transport: invalid kafka:// option compression=`brotli`: expected one of none, gzip, snappy, lz4",
    ),
    (
        "transport: memory://",
        "transport: rabbit://guest:guest@127.0.0.1:5672/%2f?prefetch=0",
        "/etc/hb/pipeline.yaml:2:12: transport: invalid rabbit:// option prefetch=`0`: expected a whole number from 1 to 65535",
    ),
    (
        "transport: memory://",
        "transport: redis://127.0.0.1:6379/x?batch=10",
        "/etc/hb/pipeline.yaml:2:12: transport: invalid redis:// address: the path must be a database number (got `/x`)",
    ),
    (
        "transport: memory://",
        "transport: redis://127.0.0.1:6379/0?batch=10&batch=20",
        "/etc/hb/pipeline.yaml:2:12: transport: option `batch` given twice",
    ),
    (
        "transport: memory://",
        "transport: memory://\nsecret_file: /nonexistent/secret",
        "/etc/hb/pipeline.yaml:3:14: secret_file: cannot read /nonexistent/secret: No such file or directory (os error 2)",
    ),
    (
        "transport: memory://",
        "transport: memory://\nspool: {dir: /var/spool/hb, max_bytes: 100}",
        "/etc/hb/pipeline.yaml:3:40: spool.max_bytes: must be at least 65536 (got 100)",
    ),
    (
        "sources:\n",
        "sources: 3\nold:\n",
        "/etc/hb/pipeline.yaml:3:10: sources: expected sequence start\n\
         /etc/hb/pipeline.yaml:4:1: old: unknown field `old`, expected one of transport, secret_file, spool, dead_letter_dir, coordination, notifications, management, sources, sinks",
    ),
    (
        "    sinks: [local]\n",
        "    sinks: [local]\n   bad_indent: 1\n",
        "/etc/hb/pipeline.yaml:12:4: sources: while parsing a block collection, did not find expected '-' indicator",
    ),
];

#[test]
fn every_refusal_names_file_line_column_key_and_reason() {
    let mut wrong = Vec::new();
    for (from, to, expected) in REFUSALS {
        assert!(GOOD.contains(from), "fixture does not contain {from:?}");
        let text = GOOD.replacen(from, to, 1);
        match load(&text) {
            Ok(_) => wrong.push(format!("{to:?}: accepted, expected {expected}")),
            Err(e) if e.to_string() != *expected => {
                wrong.push(format!("{to:?}:\n   got: {e}\n  want: {expected}"))
            }
            Err(_) => {}
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn all_semantic_refusals_are_reported_together() {
    let text = GOOD
        .replace("interval: 10", "interval: 0")
        .replace("[archive, local]", "[nowhere]");
    let err = load(&text).expect_err("refused");
    assert_eq!(err.0.len(), 2, "{err}");
}

#[test]
fn empty_lists_and_missing_files_are_refused() {
    let err = load("sources: []\nsinks: []\n")
        .expect_err("refused")
        .to_string();
    assert_eq!(
        err,
        "/etc/hb/pipeline.yaml:1:10: sources: at least one source is needed\n\
         /etc/hb/pipeline.yaml:2:8: sinks: at least one sink is needed"
    );
    let err = Config::load(Path::new("/nonexistent/pipeline.yaml"))
        .expect_err("refused")
        .to_string();
    assert_eq!(
        err,
        "/nonexistent/pipeline.yaml: cannot read: No such file or directory (os error 2)"
    );
}

#[test]
fn coordination_loads_with_defaults_and_refuses_what_cannot_work() {
    let with = |section: &str| load(&GOOD.replace("sources:\n", &format!("{section}\nsources:\n")));
    let config = with("coordination: {backend_url: \"redis://127.0.0.1:6379/0\"}").expect("valid");
    let c = config.coordination.expect("coordination");
    assert_eq!(
        (c.group.as_str(), c.heartbeat.as_secs(), c.timeout.as_secs()),
        ("central", 1, 3)
    );
    assert!(load(GOOD).expect("valid").coordination.is_none());
    let with_password = with("coordination: {backend_url: \"redis://:S3CRETPW@h:6379/0\", heartbeat: 500ms, timeout: 5s}")
        .expect("valid");
    let shown = format!("{with_password:?}");
    assert!(
        !shown.contains("S3CRETPW") && shown.contains("redis://:***@h:6379/0"),
        "{shown}"
    );
    let c = with_password.coordination.expect("coordination");
    assert_eq!((c.heartbeat.as_millis(), c.timeout.as_secs()), (500, 5));
    let refusals = [
        (
            "coordination: {backend_url: \"amqp://x/\"}",
            "/etc/hb/pipeline.yaml:3:29: coordination.backend_url: unsupported scheme `amqp` (available: redis, rediss)",
        ),
        (
            "coordination: {backend_url: \"redis://x/\", group: \"a*\"}",
            "/etc/hb/pipeline.yaml:3:50: coordination.group: must be a non-empty name without `*`, `?` or `[`",
        ),
        (
            "coordination: {backend_url: \"redis://x/\", heartbeat: 2, timeout: 2}",
            "/etc/hb/pipeline.yaml:3:66: coordination.timeout: timeout (2s) must be longer than heartbeat (2s), or members would expire between two heartbeats",
        ),
        (
            "coordination: {backend_url: \"redis://x/\", heartbeat: -1}",
            "/etc/hb/pipeline.yaml:3:54: coordination.heartbeat: must be greater than 0 and at most 365 days (got -1)",
        ),
        (
            "coordination: {backend_url: \"redis://x/\", heartbeat: 1e20}",
            "/etc/hb/pipeline.yaml:3:54: coordination.heartbeat: must be greater than 0 and at most 365 days (got 100000000000000000000)",
        ),
        (
            "coordination: {backend_url: \"redis://x/\", heartbeat: 10 s}",
            "/etc/hb/pipeline.yaml:3:54: coordination.heartbeat: must be a number of seconds (10, 0.5) or a number with a unit (500ms, 10s, 5m, 2h, 7d) (got `10 s`)",
        ),
    ];
    for (section, expected) in refusals {
        assert_eq!(with(section).expect_err(section).to_string(), expected);
    }
}

#[test]
fn notifications_load_with_defaults_and_refuse_what_cannot_work() {
    let store = format!(
        "{GOOD}  - name: store\n    publishers: [\"archive+file:///var/lib/hb/archive\"]\n"
    );
    let with =
        |section: &str| load(&store.replace("sources:\n", &format!("{section}\nsources:\n")));
    let config = with("notifications: {event_sinks: [store]}").expect("valid");
    let n = config.notifications.expect("notifications");
    assert_eq!(n.exchanges, hb_pipeline::config::DEFAULT_EXCHANGES);
    assert_eq!(n.topics, ["notifications.info", "notifications.error"]);
    assert_eq!(n.meters, Path::new("/etc/hb/meters.d"));
    assert_eq!(n.events, Path::new("/etc/hb/events.d"));
    assert_eq!(n.event_sinks, [2]);
    assert_eq!(
        n.unmatched_events,
        hb_pipeline::config::UnmatchedEvents::Keep
    );
    let custom = with(
        "notifications: {exchanges: [nova], topics: [notifications.info], meters: /m, events: e, unmatched_events: drop}",
    )
    .expect("valid")
    .notifications
    .expect("notifications");
    assert_eq!((custom.exchanges.len(), custom.topics.len()), (1, 1));
    assert_eq!(custom.meters, Path::new("/m"));
    assert_eq!(custom.events, Path::new("/etc/hb/e"));
    assert!(custom.event_sinks.is_empty());
    assert_eq!(
        custom.unmatched_events,
        hb_pipeline::config::UnmatchedEvents::Drop
    );
    assert!(load(GOOD).expect("valid").notifications.is_none());
    let refusals = [
        (
            "notifications: {event_sinks: [archiv]}",
            "/etc/hb/pipeline.yaml:3:31: notifications.event_sinks[0]: unknown sink `archiv` (defined sinks: archive, local, store)",
        ),
        (
            "notifications: {event_sinks: [local]}",
            "/etc/hb/pipeline.yaml:3:31: notifications.event_sinks[0]: sink `local` cannot take events: its publisher file:///etc/hb/data/samples.jsonl writes samples only (events go to influxdb and archive publishers)",
        ),
        (
            "notifications: {exchanges: []}",
            "/etc/hb/pipeline.yaml:3:28: notifications.exchanges: needs at least one name (default: nova, cinder, glance, swift, neutron, openstack)",
        ),
        (
            "notifications: {topics: [\"a b\"]}",
            "/etc/hb/pipeline.yaml:3:26: notifications.topics[0]: `a b` is not a name (empty or with spaces)",
        ),
        (
            "notifications: {unmatched_events: maybe}",
            "/etc/hb/pipeline.yaml:3:35: notifications.unmatched_events: unknown choice `maybe` (available: keep, drop)",
        ),
    ];
    for (section, expected) in refusals {
        assert_eq!(with(section).expect_err(section).to_string(), expected);
    }
}

#[test]
fn a_configuration_file_past_8_mib_is_refused_before_it_is_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pipeline.yaml");
    let mut text = GOOD.to_owned();
    text.push_str(&format!("# {}\n", "x".repeat(9 << 20)));
    std::fs::write(&path, text).expect("write");
    let err = Config::load(&path).expect_err("refused").to_string();
    assert!(
        err.ends_with("is too large for a configuration (at most 8388608)"),
        "{err}"
    );
}

#[test]
fn one_anchor_may_be_used_many_times_and_a_duplicate_key_gets_no_parser_advice() {
    let aliases = vec!["*m"; 150].join(", ");
    let text = format!(
        "transport: memory://\nsources:\n  - {{name: a, interval: 10, meters: [&m cpu], sinks: [out]}}\n  - {{name: b, interval: 10, meters: [{aliases}], sinks: [out]}}\nsinks:\n  - {{name: out, publishers: [\"file://x.jsonl\"]}}\n"
    );
    let config = load(&text).expect("150 aliases of one anchor are fine");
    assert_eq!(config.sources.len(), 2);
    let err = load(&GOOD.replace(
        "transport: memory://",
        "transport: memory://\ntransport: memory://",
    ))
    .expect_err("duplicate key")
    .to_string();
    assert!(
        err.contains("duplicate") && !err.contains("DuplicateKeyPolicy"),
        "{err}"
    );
}
