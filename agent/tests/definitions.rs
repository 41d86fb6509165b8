//! Plugin definitions as the loader sees them: which namespaces they join, and how a wrong one
//! is reported and skipped while the others load.

mod support;

use support::{run, text};

const CENTRAL: &str = r#"
exec:
  - name: app
    command: [/bin/true]
  - name: shared
    namespaces: [compute, central]
    command: [/bin/true]
  - name: typo
    comand: [/bin/true]
  - name: app
    command: [/bin/true]
"#;

fn tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    support::namespaces(dir.path(), "pollsters: []\n");
    std::fs::write(dir.path().join("namespaces/central/plugins.yaml"), CENTRAL).expect("write");
    dir
}

fn list(dir: &std::path::Path, namespace: &str) -> (Vec<String>, String) {
    let out = run(
        dir,
        &[
            "--namespaces-dir",
            "namespaces",
            "--polling-namespaces",
            namespace,
            "--list",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let pollsters = text(&out.stdout)
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().nth(1).unwrap_or_default().to_owned())
        .collect();
    (pollsters, text(&out.stderr))
}

#[test]
fn a_wrong_definition_is_reported_with_file_line_name_and_field_and_the_others_load() {
    let dir = tree();
    let (pollsters, stderr) = list(dir.path(), "central");
    assert_eq!(pollsters, ["app", "shared"], "{stderr}");
    let file = "namespaces/central/plugins.yaml";
    assert!(
        stderr.contains(&format!(
            "hb-polling: skipped: {file}:8:5: exec[2].comand: definition `typo`: unknown field `comand`, expected one of `command`, `meters`, `env`"
        )),
        "{stderr}"
    );
    assert_eq!(stderr.matches("typo").count(), 1, "reported once: {stderr}");
    assert!(
        stderr.contains(&format!(
            "hb-polling: skipped: {file}:10:5: exec[3].name: definition `app`: duplicate pollster name (also declared in {file})"
        )),
        "{stderr}"
    );
}

#[test]
fn a_definition_joins_the_namespaces_it_names_wherever_its_file_is() {
    let dir = tree();
    let (pollsters, _) = list(dir.path(), "compute");
    assert!(pollsters.contains(&"shared".to_owned()), "{pollsters:?}");
    assert!(!pollsters.contains(&"app".to_owned()), "{pollsters:?}");
    assert!(pollsters.contains(&"cpu".to_owned()), "{pollsters:?}");
}

/// Durations far out of range (they used to panic both binaries with exit 101), one per
/// place a duration is read: a pollster's timeout, a target's timeout, an exec timeout, a
/// Nagios interval. Each is refused with its key; the agent does not panic.
#[test]
fn out_of_range_durations_are_refused_with_their_position_not_a_panic() {
    let tcp = |pollster: &str, target: &str| {
        format!(
            "pollsters:\n  - name: tcp.connect\n{pollster}    meters:\n      - {{name: tcp.connect.status, type: gauge, unit: status}}\n    targets:\n      - {{name: r, address: \"127.0.0.1:6379\"{target}}}\n"
        )
    };
    let plugins = "exec:\n  - name: slow\n    timeout: 1e20\n    command: [/bin/true]\nnagios:\n  - name: load\n    interval: 1e20\n    command: [/usr/lib/nagios/plugins/check_load]\n  - name: units\n    interval: \"10 minutes\"\n    command: [/usr/lib/nagios/plugins/check_load]\n";
    let cases = [
        (
            tcp("    timeout: 1e20\n", ""),
            "",
            vec!["timeout must be greater than 0 and at most 365 days (got 100000000000000000000)"],
        ),
        (
            tcp("", ", timeout: 1e20"),
            "",
            vec!["targets[0].timeout: timeout must be greater than 0 and at most 365 days"],
        ),
        (
            tcp("", ""),
            plugins,
            vec![
                "exec[0].timeout: definition `slow`: must be greater than 0 and at most 365 days",
                "nagios[0].interval: definition `load`: must be greater than 0 and at most 365 days",
                "nagios[1].interval: definition `units`: must be a number of seconds (10, 0.5) or a number with a unit (500ms, 10s, 5m, 2h, 7d) (got `10 minutes`)",
            ],
        ),
    ];
    for (checks, plugins, expected) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        support::namespaces(dir.path(), &checks);
        if !plugins.is_empty() {
            std::fs::write(dir.path().join("namespaces/central/plugins.yaml"), plugins)
                .expect("write");
        }
        let out = run(
            dir.path(),
            &[
                "--namespaces-dir",
                "namespaces",
                "--polling-namespaces",
                "central",
                "--list",
            ],
        );
        let stderr = text(&out.stderr);
        assert_ne!(out.status.code(), Some(101), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        for e in expected {
            assert!(stderr.contains(e), "`{e}` missing from:\n{stderr}");
        }
    }
}
