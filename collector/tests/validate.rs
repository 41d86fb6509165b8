//! `hb-collector validate` on good and broken configurations (real process).

use std::process::Command;

fn collector(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hb-collector"))
        .current_dir(dir)
        .args(args)
        .env_remove("HB_TRANSPORT")
        .output()
        .expect("hb-collector runs")
}

#[test]
fn validate_accepts_the_repository_configuration() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = collector(&repo, &["validate", "--config", "pipeline.yaml"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "pipeline.yaml: valid (2 sources, 3 sinks, transport memory://)"
    );
}

#[test]
fn validate_reports_every_error_with_exit_code_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("p.yaml"),
        "sources:\n  - {name: a, interval: 0, meters: [\"*\"], sinks: [b]}\nsinks:\n  - {name: s, publishers: [\"file://x?rotate=1\"]}\n",
    )
    .expect("write");
    let out = collector(dir.path(), &["validate", "--config", "p.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "hb-collector: p.yaml:2:25: sources[0].interval: must be greater than 0 and at most 365 days (got 0)\n\
         hb-collector: p.yaml:2:51: sources[0].sinks[0]: unknown sink `b` (defined sinks: s)\n\
         hb-collector: p.yaml:4:28: sinks[0].publishers[0]: unknown option `rotate` for file:// (valid: max_bytes, backup_count)\n"
    );
}

#[test]
fn running_on_the_embedded_transport_is_refused() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = collector(&repo, &["--config", "pipeline.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("transport memory:// runs the pipeline inside hb-polling")
    );
}

/// A configuration whose meter definitions hold one good and one wrong definition.
fn with_a_wrong_definition() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("p.yaml"),
        "transport: rabbit://guest:guest@127.0.0.1:5672/%2f\n\
         notifications: {exchanges: [nova]}\n\
         sources:\n  - {name: a, interval: 10, meters: [\"*\"], sinks: [s]}\n\
         sinks:\n  - {name: s, publishers: [\"file://x.jsonl\"]}\n",
    )
    .expect("write");
    std::fs::create_dir(dir.path().join("meters.d")).expect("mkdir");
    std::fs::create_dir(dir.path().join("events.d")).expect("mkdir");
    std::fs::write(
        dir.path().join("meters.d/m.yaml"),
        "metric:\n  - {name: memory, event_type: a.b, type: gauge, unit: MB, volume: $.payload.m, resource_id: $.payload.id}\n\
         \x20 - {name: vcpus, event_type: a.b, type: gauge, unit: vcpu, volume: \"$.payload[\", resource_id: $.payload.id}\n",
    )
    .expect("write");
    dir
}

#[test]
fn validate_refuses_a_definition_that_would_be_skipped() {
    let dir = with_a_wrong_definition();
    let out = collector(dir.path(), &["validate", "--config", "p.yaml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[0].starts_with("hb-collector: meters.d/m.yaml:3:")
            && lines[0].contains("metric[1] `vcpus`: volume:"),
        "{stderr}"
    );
    assert_eq!(
        lines[1],
        "hb-collector: p.yaml: 1 notification definition would be skipped (--allow-skipped accepts that)"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn validate_accepts_skipped_definitions_when_asked_and_still_names_them() {
    let dir = with_a_wrong_definition();
    let out = collector(
        dir.path(),
        &["validate", "--allow-skipped", "--config", "p.yaml"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.starts_with("hb-collector: definition skipped: meters.d/m.yaml:3:"),
        "{stderr}"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "p.yaml: valid (1 sources, 1 sinks, transport amqp://guest:***@127.0.0.1:5672/%2f, \
         1 meter and 0 event definitions (1 skipped))"
    );
}

#[test]
fn validate_reports_unknown_keys_with_the_other_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("p.yaml"),
        "sources:\n  - {name: a, intervall: 10, interval: 0, meters: [\"*\"], sinks: [b]}\nsinks:\n  - {name: s, publishers: [\"file://x.jsonl\"]}\n",
    )
    .expect("write");
    let out = collector(dir.path(), &["validate", "--config", "p.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "hb-collector: p.yaml:2:15: sources[0].intervall: unknown field `intervall`, expected one of name, interval, meters, sinks\n\
         hb-collector: p.yaml:2:40: sources[0].interval: must be greater than 0 and at most 365 days (got 0)\n\
         hb-collector: p.yaml:2:66: sources[0].sinks[0]: unknown sink `b` (defined sinks: s)\n"
    );
}

/// `hb-collector ARGS` with `HB_TRANSPORT` set, in a directory with a minimal configuration.
fn with_transport(transport: &str, args: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("p.yaml"),
        "sources:\n  - {name: a, interval: 10, meters: [\"*\"], sinks: [s]}\nsinks:\n  - {name: s, publishers: [\"file://x.jsonl\"]}\n",
    )
    .expect("write");
    let mut all = args.to_vec();
    all.extend(["--config", "p.yaml"]);
    Command::new(env!("CARGO_BIN_EXE_hb-collector"))
        .current_dir(dir.path())
        .args(&all)
        .env("HB_TRANSPORT", transport)
        .output()
        .expect("hb-collector runs")
}

fn all_output(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_mistyped_transport_url_is_refused_without_its_password() {
    let out = with_transport("rabbit:/guest:S3CRETPW@127.0.0.1:5672", &["validate"]);
    let text = all_output(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(!text.contains("S3CRETPW"), "{text}");
    assert!(
        text.contains("`rabbit:/guest:***@127.0.0.1:5672` is not a transport URL"),
        "{text}"
    );
}

#[test]
fn credentials_in_a_kafka_address_are_refused_without_being_shown() {
    let out = with_transport("kafka://user:S3CRETPW@127.0.0.1:9092", &["validate"]);
    let text = all_output(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(!text.contains("S3CRETPW"), "{text}");
    assert!(text.contains("carries credentials"), "{text}");
}

#[test]
fn validate_and_the_started_line_redact_the_password() {
    let url = "amqp://guest:S3CRETPW@127.0.0.1:1/%2f";
    let out = with_transport(url, &["validate"]);
    let text = all_output(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        !text.contains("S3CRETPW") && text.contains("guest:***@"),
        "{text}"
    );

    // Running: the broker is unreachable (port 1), so it logs its start and retries.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("p.yaml"),
        "sources:\n  - {name: a, interval: 10, meters: [\"*\"], sinks: [s]}\nsinks:\n  - {name: s, publishers: [\"file://x.jsonl\"]}\n",
    )
    .expect("write");
    let log = std::fs::File::create(dir.path().join("log")).expect("log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hb-collector"))
        .current_dir(dir.path())
        .args(["--config", "p.yaml"])
        .env("HB_TRANSPORT", url)
        .env("HB_MANAGEMENT_LISTEN", "127.0.0.1:0")
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("hb-collector starts");
    let read = || std::fs::read_to_string(dir.path().join("log")).unwrap_or_default();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !read().contains("cannot consume") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = read();
    assert!(
        text.contains("hb-collector started") && text.contains("cannot consume"),
        "{text}"
    );
    assert!(
        !text.contains("S3CRETPW") && text.contains("guest:***@"),
        "{text}"
    );
}
