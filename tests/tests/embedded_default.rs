//! The README's first command: `hb-polling` with no arguments, in a copy of the repository's
//! pipeline.yaml and namespaces/, on the embedded default. After 25 s at interval 10 it must
//! have written JSON-lines samples of both namespaces, three cycles' worth.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use hb_sample::Sample;

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

#[test]
fn the_readme_command_writes_samples_of_both_namespaces_for_25_seconds() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        hb_tests::repo().join("pipeline.yaml"),
        dir.path().join("pipeline.yaml"),
    )
    .expect("copy");
    copy_dir(
        &hb_tests::repo().join("namespaces"),
        &dir.path().join("namespaces"),
    );

    let child = Command::new(hb_tests::binary("hb-polling"))
        .current_dir(dir.path())
        .env_remove("HB_TRANSPORT")
        .env_remove("HB_LOG")
        .stderr(Stdio::piped())
        .spawn()
        .expect("hb-polling starts");
    std::thread::sleep(Duration::from_secs(25));
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let out = child.wait_with_output().expect("exit");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        stderr.matches("cycle done interval_s=10").count(),
        3,
        "cycles at 0, 10 and 20 s: {stderr}"
    );

    let text =
        std::fs::read_to_string(dir.path().join("data/samples.jsonl")).expect("data/samples.jsonl");
    let samples: Vec<Sample> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a sample per line"))
        .collect();
    let names: BTreeSet<&str> = samples.iter().map(|s| s.name.as_str()).collect();
    for compute in [
        "cpu",
        "memory.usage",
        "load.1",
        "disk.device.read.bytes",
        "network.incoming.bytes",
        "filesystem.used",
        "host.info",
    ] {
        assert!(
            names.contains(compute),
            "no `{compute}` sample in {names:?}"
        );
    }
    for central in ["tcp.connect.status", "http.response.status"] {
        assert!(
            names.contains(central),
            "no `{central}` sample in {names:?}"
        );
    }
    let cpu = samples.iter().filter(|s| s.name == "cpu").count();
    assert_eq!(cpu, 3, "one cpu sample per cycle");
    assert_eq!(
        samples.iter().filter(|s| s.name == "host.info").count(),
        1,
        "info is collected once"
    );
    let timestamps: BTreeSet<_> = samples
        .iter()
        .filter(|s| s.name == "cpu")
        .map(|s| s.timestamp)
        .collect();
    let span = *timestamps.last().expect("t") - *timestamps.first().expect("t");
    assert!(
        (19_500..=20_500).contains(&span.num_milliseconds()),
        "cycles 10 s apart: {timestamps:?}"
    );

    // Rates: cpu.util (%) and byte rates from the second cycle on.
    let rates: Vec<Sample> = std::fs::read_to_string(dir.path().join("data/rates.jsonl"))
        .expect("data/rates.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a sample per line"))
        .collect();
    let util: Vec<f64> = rates
        .iter()
        .filter(|s| s.name == "cpu.util")
        .map(Sample::volume)
        .collect();
    assert_eq!(util.len(), 2, "cpu.util after the first cycle: {rates:?}");
    assert!(util.iter().all(|v| (0.0..=100.0).contains(v)), "{util:?}");
    assert!(
        rates
            .iter()
            .any(|s| s.name == "network.incoming.bytes.rate" && s.unit == "B/s"),
        "{rates:?}"
    );

    // The archive holds the same samples, flushed at shutdown.
    let url = format!(
        "archive+file://{}",
        dir.path().join("data/archive").display()
    );
    let Ok(hb_pipeline::publisher::PublisherSpec::Archive(spec)) =
        hb_pipeline::publisher::PublisherSpec::parse(&url, dir.path())
    else {
        panic!("archive url {url}");
    };
    let (from, to) = (
        *timestamps.first().expect("t") - chrono::Duration::hours(1),
        chrono::Utc::now() + chrono::Duration::hours(1),
    );
    let read = tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(hb_pipeline::publisher::archive::read_range(&spec, from, to))
        .expect("archive");
    let ids = |s: &[Sample]| s.iter().map(|s| s.id).collect::<BTreeSet<_>>();
    assert!(read.bad.is_empty(), "{:?}", read.bad);
    assert_eq!(ids(&read.samples), ids(&samples), "archive = samples.jsonl");
}
