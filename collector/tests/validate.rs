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
        "hb-collector: p.yaml:2:25: sources[0].interval: interval must be a whole number of seconds greater than 0 (got 0)\n\
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
