//! hb-polling's run mode as a user starts it: pipeline.yaml refusals, environment overrides,
//! the embedded pipeline writing samples, and graceful shutdown on SIGTERM.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{hb, run, text};

#[test]
fn a_broken_pipeline_yaml_is_refused_with_file_line_and_key() {
    let dir = support::workdir();
    std::fs::write(
        dir.path().join("pipeline.yaml"),
        "sources:\n  - name: host\n    interval: 10\n    meters: [\"*\"]\n    sinks: [lcoal]\nsinks:\n  - name: local\n    publishers: [\"file://out.jsonl\"]\n",
    )
    .expect("write");
    let out = run(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr).trim(),
        "hb-polling: pipeline.yaml:5:13: sources[0].sinks[0]: unknown sink `lcoal` (defined sinks: local)"
    );

    std::fs::write(
        dir.path().join("pipeline.yaml"),
        "sources:\n  - name: host\n    intervall: 10\n",
    )
    .expect("write");
    let out = run(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    // The misspelt key and what its absence leaves missing, together.
    let stderr = text(&out.stderr);
    assert!(
        stderr.lines().any(|l| l.starts_with(
            "hb-polling: pipeline.yaml:3:5: sources[0].intervall: unknown field `intervall`"
        )) && stderr.contains("missing field `interval`"),
        "{stderr}"
    );
}

#[test]
fn the_environment_overrides_the_transport() {
    let dir = support::workdir();
    std::fs::write(
        dir.path().join("pipeline.yaml"),
        "sources:\n  - {name: host, interval: 10, meters: [\"*\"], sinks: [local]}\nsinks:\n  - {name: local, publishers: [\"file://out.jsonl\"]}\n",
    )
    .expect("write");
    let out = hb(dir.path(), &[])
        .env("HB_TRANSPORT", "nats://127.0.0.1:4222")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr).trim(),
        "hb-polling: environment variable HB_TRANSPORT: unsupported transport scheme `nats` (available: memory://, rabbit://, amqp://, amqps://, kafka://, redis://, rediss://)"
    );
}

#[test]
fn sigterm_finishes_the_cycle_flushes_and_exits_zero() {
    let port = support::http_server();
    let dir = tempfile::tempdir().expect("tempdir");
    support::namespaces(
        dir.path(),
        &support::central_yaml(
            &[("ok", format!("http://127.0.0.1:{port}/ok"))],
            &[("up", format!("127.0.0.1:{port}"))],
            5.0,
        ),
    );
    std::fs::write(
        dir.path().join("pipeline.yaml"),
        "sources:\n  - {name: fast, interval: 1, meters: [\"cpu\", \"load.*\", \"http.*\"], sinks: [local]}\n  \
         - {name: slow, interval: 60, meters: [\"*\", \"!cpu\"], sinks: [local]}\n\
         sinks:\n  - {name: local, publishers: [\"file://data/out.jsonl\"]}\n",
    )
    .expect("write");
    let child = hb(dir.path(), &[])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let out = dir.path().join("data/out.jsonl");
    let deadline = Instant::now() + Duration::from_secs(20);
    let count = |name: &str| {
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&format!("\"name\":\"{name}\"")))
            .count()
    };
    while count("cpu") < 3 {
        assert!(Instant::now() < deadline, "no samples after 20 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let output = child.wait_with_output().expect("wait");
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("stopping: finishing the cycle in flight, then flushing"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hb-polling stopped failed_flushes=0"),
        "{stderr}"
    );
    assert!(stderr.contains("cycle done interval_s=1"), "{stderr}");
    // The 60 s source polled everything but cpu once, at start; host.info is collected once.
    assert_eq!(count("memory.total"), 1);
    assert_eq!(count("host.info"), 1);
    assert!(count("load.1") >= 3 && count("http.response.status") >= 3);
    for line in std::fs::read_to_string(&out).expect("out").lines() {
        serde_json::from_str::<hb_sample::Sample>(line).expect("every line is a complete sample");
    }
}

#[test]
fn sighup_is_logged_and_ignored_and_sigterm_still_flushes_everything() {
    let dir = support::workdir();
    // `held` batches for a minute: its file is only written by the flush at shutdown.
    std::fs::write(
        dir.path().join("pipeline.yaml"),
        "sources:\n  - {name: fast, interval: 1, meters: [\"cpu\"], sinks: [local, held]}\n\
         sinks:\n  - {name: local, publishers: [\"file://local.jsonl\"]}\n  \
         - {name: held, batch: {timeout: 60}, publishers: [\"file://held.jsonl\"]}\n",
    )
    .expect("write");
    let log = dir.path().join("log");
    let mut child = hb(dir.path(), &["--polling-namespaces", "compute"])
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("spawn");
    let lines = |file: &str| {
        std::fs::read_to_string(dir.path().join(file))
            .unwrap_or_default()
            .lines()
            .count()
    };
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(Instant::now() < deadline, "{what} within 20 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_for("a first sample", &|| lines("local.jsonl") >= 1);
    let pid = child.id().to_string();
    let signal = |name: &str| {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .expect("kill");
        assert!(status.success());
    };
    signal("HUP");
    let logged = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for("the SIGHUP line", &|| logged().contains("SIGHUP"));
    let after_hup = lines("local.jsonl");
    wait_for("two more cycles after SIGHUP", &|| {
        lines("local.jsonl") >= after_hup + 2
    });
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "{}",
        logged()
    );
    assert_eq!(lines("held.jsonl"), 0, "held until shutdown");

    signal("TERM");
    let status = child.wait().expect("wait");
    let stderr = logged();
    assert_eq!(status.code(), Some(0), "{stderr}");
    let warn = stderr
        .lines()
        .find(|l| l.contains("SIGHUP"))
        .expect("SIGHUP line");
    assert!(
        warn.contains("WARN")
            && warn.contains("SIGHUP: reload is not implemented yet; ignored")
            && warn.contains("signal=\"SIGHUP\"")
            && warn.contains("action=\"ignored\""),
        "{warn}"
    );
    assert!(
        stderr.contains("hb-polling stopped failed_flushes=0"),
        "{stderr}"
    );
    let read = |file: &str| std::fs::read_to_string(dir.path().join(file)).expect(file);
    assert_eq!(
        read("held.jsonl"),
        read("local.jsonl"),
        "flushed at SIGTERM"
    );
}

#[test]
fn a_transport_left_out_of_the_build_is_refused_by_name() {
    // Meaningful in a reduced build, e.g. `cargo test -p hb-agent --no-default-features
    // --features redis`; in the default build every transport is in and nothing is refused.
    let dir = support::workdir();
    for (feature, url) in [
        ("rabbit", "amqp://guest:guest@127.0.0.1:1/"),
        ("kafka", "kafka://127.0.0.1:1"),
        ("redis", "redis://127.0.0.1:1/0"),
    ] {
        if hb_bus::features::BUILT_WITH.contains(&feature) {
            continue;
        }
        std::fs::write(
            dir.path().join("pipeline.yaml"),
            format!("transport: \"{url}\"\nsources:\n  - {{name: host, interval: 10, meters: [\"*\"], sinks: [local]}}\nsinks:\n  - {{name: local, publishers: [\"file://out.jsonl\"]}}\n"),
        )
        .expect("write");
        let out = run(dir.path(), &[]);
        assert_eq!(out.status.code(), Some(2), "{feature}");
        let built = hb_bus::features::BUILT_WITH.join(", ");
        let built = if built.is_empty() {
            "no bus transport, memory:// only".to_owned()
        } else {
            built
        };
        assert_eq!(
            text(&out.stderr).trim(),
            format!(
                "hb-polling: pipeline.yaml:1:12: transport: transport `{feature}://` is not in this build (built with: {built}); rebuild with `--features {feature}`"
            )
        );
        let out = hb(dir.path(), &[])
            .env("HB_TRANSPORT", url)
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(2), "{feature}");
        assert!(
            text(&out.stderr).contains(&format!("transport `{feature}://` is not in this build")),
            "{}",
            text(&out.stderr)
        );
    }
}
