//! The README's first command: `hb-polling` with no arguments, in a copy of the repository's
//! pipeline.yaml and namespaces/, on the embedded default. After 25 s at interval 10 it must
//! have written JSON-lines samples of both namespaces, three cycles' worth, with no failed
//! pollster. And the default configuration on a machine where nothing listens (every port it
//! checks closed): `--once` exits 0 and no pollster fails.

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
    assert!(
        stderr
            .lines()
            .filter(|l| l.contains("cycle done"))
            .all(|l| l.contains(" failed_pollsters= ")),
        "no pollster of the default configuration fails: {stderr}"
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

/// `text` with the port of every `127.0.0.1:PORT` replaced by `port`.
fn with_port(text: &str, port: u16) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("127.0.0.1:") {
        let (head, tail) = rest.split_at(i + "127.0.0.1:".len());
        out.push_str(head);
        let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            out.push_str(&port.to_string());
        }
        rest = &tail[digits..];
    }
    out.push_str(rest);
    out
}

#[test]
fn the_default_configuration_polls_without_failure_where_nothing_listens() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(
        &hb_tests::repo().join("namespaces"),
        &dir.path().join("namespaces"),
    );
    // Where nothing listens: every local address the namespace files name (RabbitMQ's 5672
    // and management API's 15672, Redis's 6379, ...) moved to one closed port, whatever runs
    // on this machine.
    let closed = hb_tests::bus::free_port();
    let mut rewritten = 0;
    for ns in std::fs::read_dir(dir.path().join("namespaces")).expect("namespaces") {
        for file in std::fs::read_dir(ns.expect("ns").path()).expect("files") {
            let path = file.expect("file").path();
            let text = std::fs::read_to_string(&path).expect("read");
            let moved = with_port(&text, closed);
            rewritten += usize::from(moved != text);
            std::fs::write(&path, moved).expect("write");
        }
    }
    assert!(rewritten > 0, "the default checks local services");

    let out = Command::new(hb_tests::binary("hb-polling"))
        .current_dir(dir.path())
        .args(["--once", "--format", "json"])
        .env_remove("HB_TRANSPORT")
        .env_remove("HB_LOG")
        .output()
        .expect("hb-polling runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        !stderr.contains("pollster `"),
        "no failed pollster: {stderr}"
    );
    let samples: Vec<Sample> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a sample per line"))
        .collect();
    let names: BTreeSet<&str> = samples.iter().map(|s| s.name.as_str()).collect();
    assert!(
        names.contains("cpu") && names.contains("host.info"),
        "{names:?}"
    );
    // The central checks say that nothing answered.
    let down = samples
        .iter()
        .filter(|s| s.name == "tcp.connect.status" || s.name == "http.response.status")
        .collect::<Vec<_>>();
    assert!(!down.is_empty(), "{names:?}");
    assert!(down.iter().all(|s| s.volume() == 0.0), "{down:?}");
}
