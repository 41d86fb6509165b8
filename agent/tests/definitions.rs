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
