//! Changing a running collector on a real broker while a real agent sends 2,500 samples a
//! second: ten reloads of a sink lose and double nothing and show `reloading` while the old
//! instance drains; a PUT with a bad publisher URL is a 400 naming the key, one that cannot
//! start rolls back with the old instance still writing; SIGHUP with a broken file keeps the
//! collector running and counts the failure, SIGHUP with a sink added starts it with no gap
//! at the others (and every run whole from the second after its first sample).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use hb_tests::bus::{Broker, Kind};
use hb_tests::management::{address, call, get, metric, send};
use hb_tests::node::{Node, wait_until};

const TOKEN: &str = "reload-T0KEN";
/// Samples the agent's program prints per run, one run a second.
const PER_SECOND: usize = 2500;

/// Prints PER_SECOND samples numbered on from the last run (the number first written down, so
/// that a run killed half-way cannot number twice).
const GENERATE: &str = r#"import json, os
n = int(open("counter").read()) if os.path.exists("counter") else 0
open("counter", "w").write(str(n + COUNT))
for i in range(n, n + COUNT):
    print(json.dumps({"name": "load.seq", "volume": i, "unit": "1", "resource_id": "seq-%d" % (i % 50)}))
"#;

fn agent(transport: &str) -> Node {
    let yaml = format!(
        "transport: \"{transport}\"\nsecret_file: secret\n\
         sources:\n  - {{name: load, interval: 1, meters: [\"load.*\"], sinks: [none]}}\n\
         sinks:\n  - {{name: none, publishers: [\"file://unused.jsonl\"]}}\n"
    );
    let exec = "exec:\n  - name: seq\n    timeout: 5\n    command: [/usr/bin/python3, gen.py]\n    meters: [\"load.*\"]\n";
    let generate = GENERATE.replace("COUNT", &PER_SECOND.to_string());
    Node::agent_args(
        &yaml,
        &[("ns/load/exec.yaml", exec), ("ns/load/gen.py", &generate)],
        &["--namespaces-dir", "ns", "--polling-namespaces", "load"],
    )
}

fn collector_yaml(transport: &str, slow: &str, extra: &str) -> String {
    format!(
        "transport: \"{transport}\"\nsecret_file: secret\n\
         management: {{listen: \"127.0.0.1:0\", token_file: token, drain_timeout: 30}}\n\
         sources:\n  - {{name: all, interval: 1, meters: [\"*\"], sinks: [out, slow{}]}}\n\
         sinks:\n  - {{name: out, publishers: [\"file://out.jsonl\"], batch: {{timeout: 0.2}}}}\n  \
         - {{name: slow, publishers: [\"{slow}\"], batch: {{timeout: 0.2}}}}\n{extra}",
        if extra.is_empty() { "" } else { ", added" }
    )
}

/// An InfluxDB 1.x write endpoint that takes its time: every write answered 204 after
/// 400 ms, so that a replaced instance is seen draining.
fn slow_influx() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut stream = stream;
                loop {
                    let mut length = 0;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(400));
                    let answer = "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n";
                    if stream.write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("influxdb://127.0.0.1:{port}?db=hb")
}

/// Volumes of the samples in `file` of `node`, with how often each was written.
fn volumes(node: &Node, file: &str) -> HashMap<u64, usize> {
    let mut seen = HashMap::new();
    for s in node.samples_in(file).0 {
        *seen.entry(s.volume() as u64).or_default() += 1;
    }
    seen
}

/// Every number below the highest written exactly once: nothing lost, nothing doubled.
fn exactly_once(seen: &HashMap<u64, usize>) -> Result<usize, String> {
    let top = seen.keys().max().map_or(0, |m| m + 1);
    let missing = (0..top).filter(|v| !seen.contains_key(v)).count();
    let doubled = seen.values().filter(|&&c| c > 1).count();
    if missing == 0 && doubled == 0 {
        Ok(top as usize)
    } else {
        Err(format!("{missing} missing, {doubled} doubled of {top}"))
    }
}

#[test]
fn a_collector_is_changed_while_it_runs_and_loses_nothing() {
    let broker = Broker::start(Kind::Rabbit);
    let transport = broker.direct("");
    let slow = slow_influx();
    let yaml = collector_yaml(&transport, &slow, "");
    let mut collector = Node::collector_files(&yaml, &[("token", TOKEN)]);
    let addr = address(&collector);
    let mut agent = agent(&transport);
    let flowing = wait_until(Duration::from_secs(60), || {
        volumes(&collector, "out.jsonl").len() > 2 * PER_SECOND
    });
    assert!(flowing, "{}\n{}", agent.log(), collector.log());

    // Ten reloads of `out` under load; `slow` is reloaded too, to be seen draining.
    let mut reloading_seen = false;
    for _ in 0..10 {
        for sink in ["out", "slow"] {
            let path = format!("/plugins/reload?plugin={sink}");
            let answer = call("POST", &addr, &path, Some(TOKEN));
            assert_eq!(answer.status, 200, "{}", answer.body);
            assert_eq!(answer.json()["status"], "success", "{}", answer.body);
        }
        let status = get(&addr, "/plugins/status").json();
        reloading_seen |= status["plugin_system"]["plugin_states"]["slow"] == "reloading";
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(reloading_seen, "`reloading` never seen on /plugins/status");
    let config = get(&addr, "/plugins/config?plugin=out").json();
    assert_eq!(config["version"], 10, "{config}");
    assert_eq!(config["config"]["batch"]["timeout"], 0.2, "{config}");

    // A bad publisher URL: 400 naming the key; nothing changed.
    let bad = "{name: out, publishers: [\"nope://x\"]}";
    let answer = send(
        "PUT",
        &addr,
        "/plugins/config?plugin=out",
        Some(TOKEN),
        Some(bad),
    );
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert!(
        answer.body.contains("sinks[0].publishers[0]"),
        "{}",
        answer.body
    );
    // Valid, but it cannot start (its directory is a file): rolled back, the old one writes.
    std::fs::write(collector.dir().join("blocked"), "a file").expect("file");
    let unstartable = "{name: out, publishers: [\"file://blocked/out.jsonl\"]}";
    let answer = send(
        "PUT",
        &addr,
        "/plugins/config?plugin=out",
        Some(TOKEN),
        Some(unstartable),
    );
    assert_eq!(answer.status, 500, "{}", answer.body);
    assert_eq!(answer.json()["status"], "rolled_back", "{}", answer.body);
    // A good one: applied, version 11.
    let good = "{name: out, publishers: [\"file://out.jsonl\"], batch: {timeout: 0.3}}";
    let answer = send(
        "PUT",
        &addr,
        "/plugins/config?plugin=out",
        Some(TOKEN),
        Some(good),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["version"], 11, "{}", answer.body);
    let before = volumes(&collector, "out.jsonl").len();
    let writing = wait_until(Duration::from_secs(30), || {
        volumes(&collector, "out.jsonl").len() > before + PER_SECOND
    });
    assert!(writing, "out stopped writing:\n{}", collector.log());

    // SIGHUP with a broken file: still running, the failure logged with its place and counted.
    let path = collector.dir().join("pipeline.yaml");
    std::fs::write(&path, "sources: [\n  {name: all\n").expect("broken");
    collector.signal("HUP");
    let counted = wait_until(Duration::from_secs(30), || {
        metric(
            &get(&addr, "/metrics").body,
            "hb_config_reload_failures_total",
        ) == Some(1.0)
    });
    assert!(counted, "{}", collector.log());
    assert!(collector.running(), "{}", collector.log());
    let log = collector.log();
    assert!(
        log.lines()
            .any(|l| l.contains("configuration reload refused") && l.contains("pipeline.yaml:")),
        "{log}"
    );

    // SIGHUP with a sink added: it receives samples, the others see no gap.
    let extra = "  - {name: added, publishers: [\"file://added.jsonl\"], batch: {timeout: 0.2}}\n";
    std::fs::write(&path, collector_yaml(&transport, &slow, extra)).expect("yaml");
    collector.signal("HUP");
    let added = wait_until(Duration::from_secs(30), || {
        volumes(&collector, "added.jsonl").len() > PER_SECOND
    });
    assert!(added, "{}", collector.log());
    let text = get(&addr, "/metrics").body;
    assert_eq!(
        metric(&text, "hb_config_reloads_total"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "hb_plugin_reloads_total"),
        Some(21.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "hb_plugin_reload_failures_total"),
        Some(2.0),
        "{text}"
    );

    // Stop the agent, let the collector catch up, then count.
    assert!(agent.term().success(), "{}", agent.log());
    let sent: usize = std::fs::read_to_string(agent.dir().join("ns/load/counter"))
        .expect("counter")
        .trim()
        .parse()
        .expect("number");
    let caught_up = wait_until(Duration::from_secs(60), || {
        volumes(&collector, "out.jsonl").len() >= sent
    });
    assert!(
        caught_up,
        "{} of {sent}:\n{}",
        volumes(&collector, "out.jsonl").len(),
        collector.log()
    );
    assert!(collector.term().success(), "{}", collector.log());
    let out = exactly_once(&volumes(&collector, "out.jsonl"));
    assert_eq!(out, Ok(sent), "out.jsonl");
    // The new sink from its start: partitions are consumed side by side, so the samples of
    // the run in flight at the swap reached it in part; every run two after its first sample
    // reached it whole.
    let added = volumes(&collector, "added.jsonl");
    let per = PER_SECOND as u64;
    let first = added.keys().min().map_or(0, |m| (m / per + 2) * per);
    let tail: HashMap<u64, usize> = added
        .into_iter()
        .filter(|&(v, _)| v >= first)
        .map(|(v, c)| (v - first, c))
        .collect();
    assert_eq!(
        exactly_once(&tail),
        Ok(sent - first as usize),
        "added.jsonl from its second run"
    );
    let log = collector.log();
    assert!(!log.contains(TOKEN), "the token in the log");
}
