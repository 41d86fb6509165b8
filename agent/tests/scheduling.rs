//! Runs and cycles: timeouts, overlapping runs, panics, undeclared meters, and a slow pollster
//! that must not delay the others.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hb_agent::coordination::Share;
use hb_agent::destination::Destination;
use hb_agent::host::{FsUsage, Host};
use hb_agent::model::{LoadedPollster, RunState};
use hb_agent::pollster::{
    HostPollster, Implementation, Kind, Measurement, MeterDef, PollError, PollResult, Split,
};
use hb_agent::runner;
use hb_agent::scheduler::{self, Plan};
use hb_pipeline::{Config, Pipeline};
use hb_sample::SampleType;
use tokio_util::sync::CancellationToken;

struct Sleepy(Duration);
impl HostPollster for Sleepy {
    fn poll(&self, _: &Host) -> PollResult {
        std::thread::sleep(self.0);
        Ok(vec![Measurement::new("slow.value", 1.0, "r")])
    }
}

struct Fixed(Vec<(&'static str, f64)>);
impl HostPollster for Fixed {
    fn poll(&self, _: &Host) -> PollResult {
        Ok(self
            .0
            .iter()
            .map(|&(m, v)| Measurement::new(m, v, "r"))
            .collect())
    }
}

struct Panics;
impl HostPollster for Panics {
    fn poll(&self, _: &Host) -> PollResult {
        panic!("pollster bug")
    }
}

fn pollster(
    name: &str,
    kind: Kind,
    meters: &[&str],
    imp: impl HostPollster,
) -> Arc<LoadedPollster> {
    Arc::new(LoadedPollster {
        namespace: "test".into(),
        name: name.into(),
        kind,
        description: String::new(),
        meters: meters
            .iter()
            .map(|m| MeterDef::new(*m, SampleType::Gauge, "x"))
            .collect(),
        timeout: Duration::from_secs(10),
        interval: None,
        implementation: Implementation::Host(Arc::new(imp)),
        split: Split::Local,
        source: "test.yaml".into(),
        state: RunState::default(),
    })
}

fn host() -> Arc<Host> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/host-a");
    let statfs = Arc::new(|_: &std::path::Path| {
        Ok(FsUsage {
            size: 0,
            used: 0,
            free: 0,
        })
    });
    Arc::new(Host::at(root, statfs, 100).expect("host"))
}

#[tokio::test]
async fn a_run_past_its_timeout_fails_and_is_not_started_again_until_it_returns() {
    let p = pollster(
        "slow",
        Kind::Monitor,
        &["slow.value"],
        Sleepy(Duration::from_millis(600)),
    );
    let run = runner::run(
        Arc::clone(&p),
        host(),
        Duration::from_millis(100),
        None,
        Share::all(),
    )
    .await;
    assert!(
        matches!(run.error, Some(PollError::Timeout(_))),
        "{:?}",
        run.error
    );
    let run = runner::run(
        Arc::clone(&p),
        host(),
        Duration::from_millis(100),
        None,
        Share::all(),
    )
    .await;
    assert!(
        matches!(run.error, Some(PollError::StillRunning(_))),
        "{:?}",
        run.error
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    let run = runner::run(p, host(), Duration::from_secs(2), None, Share::all()).await;
    assert!(run.error.is_none(), "{:?}", run.error);
    assert_eq!(run.samples.len(), 1);
}

#[tokio::test]
async fn a_panicking_pollster_is_a_failed_run_and_runs_again_next_time() {
    let p = pollster("bug", Kind::Monitor, &["x"], Panics);
    for _ in 0..2 {
        // Generous: with RUST_BACKTRACE set (as in CI) the panic hook symbolizes a backtrace
        // from the debug info first, which took over a second on a loaded machine.
        let run = runner::run(
            Arc::clone(&p),
            host(),
            Duration::from_secs(30),
            None,
            Share::all(),
        )
        .await;
        assert!(
            matches!(&run.error, Some(PollError::Task(m)) if m.contains("panicked")),
            "{:?}",
            run.error
        );
    }
}

#[tokio::test]
async fn samples_are_stamped_from_the_declaration_and_bad_measurements_are_refused() {
    let p = pollster(
        "mixed",
        Kind::Monitor,
        &["a", "b"],
        Fixed(vec![("a", 1.5), ("b", f64::NAN), ("undeclared", 1.0)]),
    );
    let run = runner::run(p, host(), Duration::from_secs(1), None, Share::all()).await;
    assert!(run.error.is_none());
    assert_eq!(run.rejected, 2);
    let [s] = &run.samples[..] else {
        panic!("{:?}", run.samples)
    };
    assert_eq!(
        (s.name.as_str(), s.kind, s.unit.as_str(), s.volume()),
        ("a", SampleType::Gauge, "x", 1.5)
    );
    assert_eq!(s.resource_metadata["host"], "host-a");
    assert!(s.monotonic_time.is_some());
}

fn config(dir: &std::path::Path, yaml: &str) -> Config {
    Config::parse(yaml, &dir.join("pipeline.yaml"), |_| None).expect("config")
}

/// A pollster name and the meters wanted from it.
type Polled = (String, Vec<String>);

#[test]
fn the_plan_polls_each_pollster_once_per_interval_and_info_pollsters_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(
        dir.path(),
        r#"
sources:
  - {name: a, interval: 10, meters: ["m.one", "info"], sinks: [s]}
  - {name: b, interval: 10, meters: ["m.*"], sinks: [s]}
  - {name: c, interval: 60, meters: ["m.two", "info"], sinks: [s]}
sinks:
  - {name: s, publishers: ["file://out.jsonl"]}
"#,
    );
    let pollsters = vec![
        pollster(
            "m",
            Kind::Monitor,
            &["m.one", "m.two", "m.three"],
            Fixed(vec![]),
        ),
        pollster("info", Kind::Info, &["info"], Fixed(vec![])),
        pollster("unwanted", Kind::Monitor, &["other"], Fixed(vec![])),
    ];
    let plan = Plan::new(&pollsters, &cfg.sources);
    let summary: Vec<(u64, Vec<Polled>)> = plan
        .groups
        .iter()
        .map(|g| {
            let entries = g
                .entries
                .iter()
                .map(|e| {
                    let wanted: Vec<String> =
                        e.wanted.names().into_iter().map(str::to_owned).collect();
                    (e.pollster.name.clone(), wanted)
                })
                .collect();
            (g.interval.as_secs(), entries)
        })
        .collect();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        summary,
        vec![
            (
                10,
                vec![
                    ("m".into(), s(&["m.one", "m.three", "m.two"])),
                    ("info".into(), s(&["info"]))
                ]
            ),
            (60, vec![("m".into(), s(&["m.two"]))]),
        ]
    );
}

#[tokio::test]
async fn a_slow_pollster_does_not_delay_the_samples_of_the_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(
        dir.path(),
        "sources:\n  - {name: all, interval: 2, meters: [\"*\"], sinks: [s]}\nsinks:\n  - {name: s, publishers: [\"file://out.jsonl\"]}\n",
    );
    let pollsters = vec![
        pollster(
            "slow",
            Kind::Monitor,
            &["slow.value"],
            Sleepy(Duration::from_secs(4)),
        ),
        pollster(
            "fast",
            Kind::Monitor,
            &["fast.value"],
            Fixed(vec![("fast.value", 7.0)]),
        ),
    ];
    let plan = Plan::new(&pollsters, &cfg.sources);
    let pipeline = Arc::new(Destination::Embedded(Arc::new(
        Pipeline::open(&cfg).expect("pipeline"),
    )));
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let running = tokio::spawn(scheduler::run(
        plan,
        host(),
        pipeline,
        None,
        shutdown.clone(),
    ));
    let out = dir.path().join("out.jsonl");
    let lines = || std::fs::read_to_string(&out).unwrap_or_default();
    while !lines().contains("fast.value") {
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "fast samples waited for the slow pollster"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(2600)).await;
    shutdown.cancel();
    running
        .await
        .expect("scheduler ends after the cycle in flight");
    let text = lines();
    assert_eq!(
        text.matches("fast.value").count(),
        2,
        "two cycles of the fast pollster: {text}"
    );
    assert!(
        !text.contains("slow.value"),
        "the slow pollster timed out (after 2 s) and then was still running"
    );
}
