//! The collector's management server against a real broker: every read endpoint, the token
//! rules, /metrics through promtool with counters that match what was sent, readiness while
//! the bus is away, and the start-up refusal of an exposed listen address without a token.

use std::process::Command;
use std::time::Duration;

use hb_tests::bus::{Broker, Kind};
use hb_tests::management::{address, call, get, metric, promtool};
use hb_tests::node::{Node, publish, wait_until};
use hb_tests::{binary, bus};

const TOKEN: &str = "mgmt-T0KEN-for-tests";

fn collector_yaml(transport: &str, management: &str) -> String {
    format!(
        "transport: \"{transport}\"\nsecret_file: secret\nmanagement: {management}\n\
         sources:\n  - {{name: all, interval: 10, meters: [\"*\"], sinks: [out]}}\n\
         sinks:\n  - {{name: out, publishers: [\"file://samples.jsonl\"]}}\n"
    )
}

#[test]
fn every_endpoint_of_a_consuming_collector() {
    let broker = Broker::start(Kind::Rabbit);
    let transport = broker.direct("");
    let yaml = collector_yaml(&transport, "{listen: \"127.0.0.1:0\", token_file: token}");
    let mut collector = Node::collector_files(&yaml, &[("token", TOKEN)]);
    let addr = address(&collector);

    let (envelopes, per) = (40, 25);
    publish(&transport, 4, envelopes, per);
    let done = wait_until(Duration::from_secs(60), || {
        collector.samples().0.len() == envelopes * per
    });
    assert!(done, "{}", collector.log());

    let healthz = get(&addr, "/healthz");
    assert_eq!(
        (healthz.status, healthz.json()["status"].as_str()),
        (200, Some("ok"))
    );
    let ready = get(&addr, "/readyz");
    assert_eq!(ready.status, 200, "{}", ready.body);

    let status = get(&addr, "/plugins/status").json();
    assert_eq!(status["plugin_system"]["total_plugins"], 2, "{status}");
    assert_eq!(status["plugin_system"]["active_plugins"], 2, "{status}");
    assert_eq!(
        status["plugin_system"]["plugin_states"]["consumer"],
        "active"
    );
    assert_eq!(status["plugin_system"]["plugin_states"]["out"], "active");
    assert_eq!(status["health_status"]["overall_status"], "healthy");
    assert!(
        status["uptime"].as_str().is_some_and(|u| u.ends_with('s')),
        "{status}"
    );
    assert!(status["timestamp"].as_u64().is_some(), "{status}");

    let list = get(&addr, "/plugins/list").json();
    assert_eq!(list["total_count"], 2, "{list}");
    let out = &list["plugins"][1];
    assert_eq!(
        (out["name"].as_str(), out["kind"].as_str()),
        (Some("out"), Some("sink"))
    );
    assert_eq!(out["health"]["status"], "healthy", "{list}");
    assert_eq!(out["health"]["checks"]["consecutive_failures"], 0, "{list}");
    assert_eq!(
        out["health"]["checks"]["samples_published"],
        envelopes * per,
        "{list}"
    );
    assert_eq!(list["plugins"][0]["kind"], "consumer", "{list}");

    let health = get(&addr, "/plugins/health");
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(
        health.json()["plugins"]["consumer"]["checks"]["connected"],
        true
    );

    let text = get(&addr, "/metrics").body;
    let (clean, said) = promtool(&text);
    assert!(clean && said.trim().is_empty(), "promtool: {said}\n{text}");
    let acked = metric(
        &text,
        "hb_collector_messages_acknowledged_total{transport=\"rabbit\"}",
    );
    assert_eq!(acked, Some(envelopes as f64), "{text}");
    let published = metric(&text, "hb_sink_samples_published_total{sink=\"out\"}");
    assert_eq!(published, Some((envelopes * per) as f64), "{text}");
    assert_eq!(
        metric(&text, "hb_collector_connected{transport=\"rabbit\"}"),
        Some(1.0)
    );
    assert!(
        metric(&text, "process_resident_memory_bytes").is_some_and(|b| b > 1e6),
        "{text}"
    );
    assert!(
        text.contains("hb_build_info{binary=\"hb-collector\",version=\""),
        "{text}"
    );

    // Changes need the token: missing or wrong is 401; with it the request reaches routing.
    assert_eq!(
        call("POST", &addr, "/plugins/reload?plugin=out", None).status,
        401
    );
    assert_eq!(
        call("POST", &addr, "/plugins/reload?plugin=out", Some("wrong")).status,
        401
    );
    let unknown = call("POST", &addr, "/nothing", Some(TOKEN));
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    assert_eq!(get(&addr, "/nothing").status, 404);

    let _ = collector.term();
    let log = collector.log();
    for secret in [TOKEN, ":guest@"] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
        assert!(!text.contains(secret) && !list.to_string().contains(secret));
    }
}

#[test]
fn without_a_token_changes_are_forbidden_and_readiness_follows_the_bus() {
    // Nothing listens on this port: the collector keeps trying, and says so.
    let closed = bus::free_port();
    let transport = format!("redis://:S3CRETPW@127.0.0.1:{closed}/0");
    let mut collector =
        Node::collector_with(&collector_yaml(&transport, "{listen: \"127.0.0.1:0\"}"));
    let addr = address(&collector);
    let ready = get(&addr, "/readyz");
    assert_eq!(ready.status, 503, "{}", ready.body);
    let reasons = ready.json()["reasons"].to_string();
    assert!(reasons.contains("not connected to the bus"), "{reasons}");
    let health = get(&addr, "/plugins/health");
    assert_eq!(health.status, 503, "{}", health.body);
    assert_eq!(health.json()["overall_status"], "unhealthy");
    assert_eq!(get(&addr, "/healthz").status, 200);
    let forbidden = call(
        "POST",
        &addr,
        "/plugins/reload?plugin=out",
        Some("anything"),
    );
    assert_eq!(forbidden.status, 403, "{}", forbidden.body);
    assert!(forbidden.body.contains("no management token is configured"));
    // The errors shown (the bus refused the connection) never carry the URL's password.
    let list = get(&addr, "/plugins/list").body;
    assert!(list.contains("last_error"), "{list}");
    for path in [
        "/readyz",
        "/plugins/list",
        "/plugins/health",
        "/plugins/status",
        "/metrics",
    ] {
        let body = get(&addr, path).body;
        assert!(!body.contains("S3CRETPW"), "{path}: {body}");
    }
    let _ = collector.term();
    assert!(!collector.log().contains("S3CRETPW"), "{}", collector.log());
}

/// Runs a collector in `dir` to its exit, without a token, `HB_MANAGEMENT_LISTEN` set to
/// `listen` if given.
fn start(dir: &std::path::Path, listen: Option<&str>) -> std::process::Output {
    let mut command = Command::new(binary("hb-collector"));
    command
        .current_dir(dir)
        .args(["--config", "pipeline.yaml"])
        .env_remove("HB_MANAGEMENT_TOKEN")
        .env_remove("HB_MANAGEMENT_LISTEN");
    if let Some(listen) = listen {
        command.env("HB_MANAGEMENT_LISTEN", listen);
    }
    command.output().expect("run")
}

#[test]
fn an_exposed_address_without_a_token_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("secret"), "s").expect("secret");
    let yaml = collector_yaml("redis://127.0.0.1:6379/0", "{listen: \"0.0.0.0:0\"}");
    std::fs::write(dir.path().join("pipeline.yaml"), yaml).expect("yaml");
    let out = start(dir.path(), None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "pipeline.yaml:3:22: management.listen: 0.0.0.0:0 is not a loopback address and no \
             token is configured"
        ),
        "{stderr}"
    );
    // The same address given by the environment is refused naming the variable.
    let out = start(dir.path(), Some("10.0.0.1:8042"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "environment variable HB_MANAGEMENT_LISTEN: 10.0.0.1:8042 is not a loopback address"
        ),
        "{stderr}"
    );
}

#[test]
fn an_agent_shows_its_pollsters_and_sinks() {
    let yaml = "transport: memory://\nmanagement: {listen: \"127.0.0.1:0\"}\n\
         sources:\n  - {name: all, interval: 1, meters: [\"*\"], sinks: [out]}\n\
         sinks:\n  - {name: out, publishers: [\"file://samples.jsonl\"], batch: {timeout: 1}}\n";
    let mut agent = Node::agent_with(yaml);
    let addr = address(&agent);
    let polled = wait_until(Duration::from_secs(30), || {
        let list = get(&addr, "/plugins/list").json();
        list["plugins"].as_array().is_some_and(|ps| {
            ps.iter()
                .all(|p| p["health"]["checks"]["runs"].as_u64() != Some(0))
        }) && !agent.samples().0.is_empty()
    });
    assert!(polled, "{}", agent.log());
    let list = get(&addr, "/plugins/list").json();
    let names: Vec<(&str, &str)> = list["plugins"]
        .as_array()
        .expect("plugins")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or(""),
                p["kind"].as_str().unwrap_or(""),
            )
        })
        .collect();
    for expected in [
        ("cpu", "pollster"),
        ("memory", "pollster"),
        ("load", "pollster"),
        ("out", "sink"),
    ] {
        assert!(names.contains(&expected), "{expected:?} in {names:?}");
    }
    let cpu = list["plugins"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "cpu"))
        .expect("cpu");
    assert_eq!(cpu["status"], "active", "{cpu}");
    assert_eq!(cpu["health"]["status"], "healthy", "{cpu}");
    assert_eq!(cpu["health"]["checks"]["namespace"], "compute", "{cpu}");
    assert_eq!(get(&addr, "/readyz").status, 200);
    let text = get(&addr, "/metrics").body;
    let (clean, said) = promtool(&text);
    assert!(clean && said.trim().is_empty(), "promtool: {said}\n{text}");
    let runs = metric(
        &text,
        "hb_pollster_runs_total{namespace=\"compute\",pollster=\"cpu\"}",
    );
    assert!(runs.is_some_and(|r| r >= 1.0), "{text}");
    let timed = metric(
        &text,
        "hb_pollster_duration_seconds_count{namespace=\"compute\",pollster=\"cpu\"}",
    );
    assert_eq!(timed, runs, "{text}");
    assert!(text.contains("hb_pollster_duration_seconds_bucket{namespace=\"compute\",pollster=\"cpu\",le=\"0.001\"}"), "{text}");
    assert!(
        metric(&text, "hb_sink_samples_published_total{sink=\"out\"}").is_some(),
        "{text}"
    );
    assert!(
        text.contains("hb_build_info{binary=\"hb-polling\""),
        "{text}"
    );
    let _ = agent.term();
}

#[test]
fn an_agent_on_a_bus_counts_envelopes_and_its_spool() {
    let broker = Broker::start(Kind::Redis);
    let yaml = format!(
        "transport: \"{}\"\nsecret_file: secret\nmanagement: {{listen: \"127.0.0.1:0\"}}\n\
         spool: {{dir: spool}}\n\
         sources:\n  - {{name: all, interval: 1, meters: [\"*\"], sinks: [out]}}\n\
         sinks:\n  - {{name: out, publishers: [\"file://samples.jsonl\"]}}\n",
        broker.direct("")
    );
    let mut agent = Node::agent_with(&yaml);
    let addr = address(&agent);
    let confirmed = wait_until(Duration::from_secs(30), || {
        let text = get(&addr, "/metrics").body;
        metric(&text, "hb_agent_envelopes_confirmed_total").is_some_and(|n| n >= 3.0)
            && metric(&text, "hb_agent_heartbeats_total").is_some_and(|n| n >= 1.0)
    });
    assert!(confirmed, "{}", get(&addr, "/metrics").body);
    let text = get(&addr, "/metrics").body;
    let (clean, said) = promtool(&text);
    assert!(clean && said.trim().is_empty(), "promtool: {said}\n{text}");
    assert_eq!(
        metric(&text, "hb_agent_spool_envelopes"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "hb_agent_envelopes_dropped_total"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(get(&addr, "/readyz").status, 200);
    let _ = agent.term();
}

#[test]
fn environment_variables_override_nested_keys_and_a_bad_one_is_refused_naming_it() {
    let broker = Broker::start(Kind::Rabbit);
    let transport = broker.direct("");
    let yaml = collector_yaml(&transport, "{listen: \"127.0.0.1:0\"}");
    // A sink's batch size.
    let collector = Node::collector_with_env(&yaml, &[("HB_SINKS__OUT__BATCH__MAX_EVENTS", "123")]);
    let addr = address(&collector);
    let config = get(&addr, "/plugins/config?plugin=out").json();
    assert_eq!(config["config"]["batch"]["max_events"], 123, "{config}");
    drop(collector);

    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("secret"), "s").expect("secret");
    std::fs::write(dir.path().join("pipeline.yaml"), &yaml).expect("yaml");
    let run = |vars: &[(&str, &str)]| {
        let mut command = Command::new(binary("hb-collector"));
        command
            .current_dir(dir.path())
            .args(["--config", "pipeline.yaml"])
            .env_remove("HB_MANAGEMENT_TOKEN")
            .env_remove("HB_MANAGEMENT_LISTEN")
            .envs(vars.iter().copied())
            .stderr(std::fs::File::create(dir.path().join("log")).expect("log"));
        command
    };
    // The management listen address.
    let port = bus::free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = run(&[("HB_MANAGEMENT__LISTEN", &listen)])
        .spawn()
        .expect("spawn");
    let log = || std::fs::read_to_string(dir.path().join("log")).unwrap_or_default();
    let listening = wait_until(Duration::from_secs(30), || {
        log().contains(&format!("management server listening addr={listen}"))
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(listening, "{}", log());
    // Refused, naming the variable: a bad value, and a variable that sets nothing.
    for (var, value, said) in [
        (
            "HB_MANAGEMENT__LISTEN",
            "10.0.0.1:8042",
            "environment variable HB_MANAGEMENT__LISTEN: management.listen: 10.0.0.1:8042 is not a loopback address",
        ),
        (
            "HB_SINKS__OUT__BATCH__MAX_EVENTS",
            "none",
            "environment variable HB_SINKS__OUT__BATCH__MAX_EVENTS: sinks[0].batch.max_events: ",
        ),
        (
            "HB_SINKS__OUT__BATCH__MAX_EVENT",
            "5",
            "environment variable HB_SINKS__OUT__BATCH__MAX_EVENT: sets no key of pipeline.yaml",
        ),
    ] {
        let status = run(&[(var, value)]).status().expect("run");
        assert_eq!(status.code(), Some(2), "{var}: {}", log());
        assert!(log().contains(said), "{said}\nnot in:\n{}", log());
    }
}
