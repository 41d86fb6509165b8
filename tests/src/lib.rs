//! End-to-end tests of hb as a user meets it: the real binaries, run the way the README says,
//! on the repository's own pipeline.yaml and namespaces. The tests live in `tests/`; this
//! library holds what they share: [`bus`] (brokers), [`node`] (agents and collectors as
//! processes), [`hostile`] (hostile-input scenarios), [`management`] (the management server over HTTP), [`proxy`] (a TCP proxy whose connections a test can cut) and [`scenarios`]
//! (the bus acceptance scenarios, run per broker).
#![warn(missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Path of a workspace binary (`hb-polling`, `hb-collector`). On first use the workspace's
/// binaries are built, or brought up to date, with the cargo, profile and target directory
/// that built these tests.
pub fn binary(name: &str) -> PathBuf {
    static PROFILE_DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = PROFILE_DIR.get_or_init(|| {
        // target/<profile>/deps/<this test> -> target/<profile>
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe
            .ancestors()
            .nth(2)
            .expect("target/<profile>")
            .to_path_buf();
        let mut cmd = Command::new(env!("CARGO"));
        cmd.current_dir(repo()).args(["build", "--quiet", "--bins"]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        if let Some(target_dir) = profile_dir.parent() {
            cmd.env("CARGO_TARGET_DIR", target_dir);
        }
        assert!(
            cmd.status().expect("cargo runs").success(),
            "building the workspace binaries failed"
        );
        profile_dir
    });
    let path = dir.join(name);
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// The last 2 KB of a server's log file, for a panic message saying why it did not start.
pub fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let start = text.len().saturating_sub(2000);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    format!("{} says:\n{}", log.display(), &text[start..])
}

pub mod bus;
pub mod hostile;
pub mod influx;
pub mod management;
pub mod node;
pub mod partitions;
pub mod proxy;
pub mod s3;
pub mod scenarios;
pub mod tls;
