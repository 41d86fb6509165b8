//! The `redis` pollster against the local Redis (127.0.0.1:6379): INFO read into samples, the
//! keys of db0 counted, keyspace hits and misses growing between runs, and servers that cannot
//! be read reported as `redis.up` 0, without ever showing a password.

mod support;

use std::path::Path;
use std::process::Output;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use support::{run, samples, text};

const URL: &str = "redis://127.0.0.1:6379";
const SERVER: &str = "redis://127.0.0.1:6379";

fn once(dir: &Path, namespaces: &Path) -> Output {
    let namespaces = namespaces.to_str().expect("utf-8");
    let args = [
        "--namespaces-dir",
        namespaces,
        "--polling-namespaces",
        "central",
        "--pollster-list",
        "redis",
        "--once",
        "--format",
        "json",
    ];
    run(dir, &args)
}

/// The one sample of `name` for target `target` (and, for a database, resource `resource`).
fn one<'a>(samples: &'a [Value], name: &str, target: &str, resource: Option<&str>) -> &'a Value {
    let found: Vec<&Value> = samples
        .iter()
        .filter(|s| s["name"] == name && s["resource_metadata"]["target"] == target)
        .filter(|s| resource.is_none_or(|r| s["resource_id"] == r))
        .collect();
    assert_eq!(found.len(), 1, "{name} of {target}: {samples:#?}");
    found[0]
}

fn volume(samples: &[Value], name: &str) -> f64 {
    one(samples, name, "local", None)["volume"]
        .as_f64()
        .expect("a number")
}

const METERS: &str = "    meters:
      - {name: redis.up, type: gauge, unit: status}
      - {name: redis.clients.connected, type: gauge, unit: client}
      - {name: redis.memory.used, type: gauge, unit: B}
      - {name: redis.ops, type: gauge, unit: op/s}
      - {name: redis.keyspace.hits, type: cumulative, unit: request}
      - {name: redis.keyspace.misses, type: cumulative, unit: request}
      - {name: redis.keys.evicted, type: cumulative, unit: key}
      - {name: redis.db.keys, type: gauge, unit: key}
";

struct Keys {
    connection: redis::Connection,
    names: Vec<String>,
}

impl Keys {
    /// `n` keys of a prefix no one else uses, in db 0, expiring in two minutes.
    fn write(n: usize) -> Self {
        let client = redis::Client::open(URL).expect("redis URL");
        let mut connection = client.get_connection().expect("the local Redis answers");
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_nanos();
        let prefix = format!("hb-test-redis-info-{}-{nanos}", std::process::id());
        let names: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
        for name in &names {
            redis::cmd("SET")
                .arg(name)
                .arg("v")
                .arg("EX")
                .arg(120)
                .query::<()>(&mut connection)
                .expect("SET");
        }
        Self { connection, names }
    }

    fn get(&mut self, name: &str) -> Option<String> {
        redis::cmd("GET")
            .arg(name)
            .query(&mut self.connection)
            .expect("GET")
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        let _ = redis::cmd("DEL")
            .arg(&self.names)
            .query::<()>(&mut self.connection);
    }
}

#[test]
fn info_of_the_local_redis_becomes_samples_and_hits_grow_between_runs() {
    let mut keys = Keys::write(5);
    let dir = tempfile::tempdir().expect("tempdir");
    let closed = support::closed_port();
    let yaml = format!(
        "pollsters:\n  - name: redis\n{METERS}    targets:\n      - {{name: local, url: \"{URL}\", timeout: 5}}\n      - {{name: down, url: \"redis://127.0.0.1:{closed}\", timeout: 2}}\n      - {{name: wrong-password, url: \"redis://:s3cret-pw@127.0.0.1:6379/0\", timeout: 5}}\n"
    );
    let namespaces = support::namespaces(dir.path(), &yaml);

    let out = once(dir.path(), &namespaces);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let first = samples(&out);
    let up = one(&first, "redis.up", "local", None);
    assert_eq!(up["volume"], 1.0);
    assert_eq!(up["resource_id"], SERVER);
    assert_eq!(up["resource_metadata"]["result"], "success");
    assert!(up["resource_metadata"]["version"].is_string(), "{up}");
    assert!(volume(&first, "redis.clients.connected") >= 1.0);
    assert!(volume(&first, "redis.memory.used") > 0.0);
    assert!(volume(&first, "redis.ops") >= 0.0);
    assert!(volume(&first, "redis.keys.evicted") >= 0.0);
    for (name, kind, unit) in [
        ("redis.keyspace.hits", "cumulative", "request"),
        ("redis.keyspace.misses", "cumulative", "request"),
        ("redis.keys.evicted", "cumulative", "key"),
        ("redis.memory.used", "gauge", "B"),
        ("redis.ops", "gauge", "op/s"),
    ] {
        let s = one(&first, name, "local", None);
        assert_eq!(
            (&s["type"], &s["unit"]),
            (&kind.into(), &unit.into()),
            "{s}"
        );
        assert_eq!(s["resource_id"], SERVER);
    }
    let db0 = format!("{SERVER}/db0");
    let keys_db0 = one(&first, "redis.db.keys", "local", Some(&db0));
    assert!(
        keys_db0["volume"].as_f64().expect("a number") >= 5.0,
        "{keys_db0}"
    );
    assert_eq!(keys_db0["resource_metadata"]["db"], "db0");
    assert!(keys_db0["resource_metadata"]["expires"].as_u64() >= Some(5));

    // Two hits and one miss between the runs.
    let name = keys.names[0].clone();
    assert_eq!(keys.get(&name).as_deref(), Some("v"));
    assert_eq!(keys.get(&name).as_deref(), Some("v"));
    assert_eq!(keys.get(&format!("{name}-absent")), None);
    let out = once(dir.path(), &namespaces);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let second = samples(&out);
    let grew = |name: &str| volume(&second, name) - volume(&first, name);
    assert!(grew("redis.keyspace.hits") >= 2.0, "{second:#?}");
    assert!(grew("redis.keyspace.misses") >= 1.0, "{second:#?}");

    // Servers that cannot be read: a status sample each, the password never shown.
    let down = one(&first, "redis.up", "down", None);
    assert_eq!(down["volume"], 0.0);
    assert_eq!(down["resource_id"], format!("redis://127.0.0.1:{closed}"));
    assert_eq!(down["resource_metadata"]["result"], "connection_failed");
    assert!(down["resource_metadata"]["error"].is_string(), "{down}");
    let refused = one(&first, "redis.up", "wrong-password", None);
    assert_eq!(refused["volume"], 0.0);
    assert_eq!(refused["resource_id"], SERVER);
    assert_eq!(
        refused["resource_metadata"]["url"],
        "redis://127.0.0.1:6379/0"
    );
    assert!(
        refused["resource_metadata"]["error"].is_string(),
        "{refused}"
    );
    for t in ["down", "wrong-password"] {
        let only_up = first
            .iter()
            .filter(|s| s["resource_metadata"]["target"] == t)
            .all(|s| s["name"] == "redis.up");
        assert!(only_up, "{t}: {first:#?}");
    }
    assert!(!text(&out.stdout).contains("s3cret"));
    assert!(!stderr.contains("s3cret") && !text(&out.stderr).contains("s3cret"));
}

#[test]
fn the_shipped_example_polls_the_local_redis() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = once(dir.path(), &support::example_namespaces());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let got = samples(&out);
    assert_eq!(one(&got, "redis.up", "local", None)["volume"], 1.0);
    assert!(volume(&got, "redis.clients.connected") >= 1.0);
}

#[test]
fn a_redis_target_with_an_address_or_another_scheme_is_refused_at_start_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (target, message) in [
        (
            "{name: a, address: \"127.0.0.1:6379\"}",
            "redis targets take `url: redis://host:port`, not `address`",
        ),
        (
            "{name: a, url: \"http://:pw-x@127.0.0.1:6379\"}",
            "invalid URL: scheme `http` is not redis:// or rediss://",
        ),
    ] {
        let yaml = format!("pollsters:\n  - name: redis\n{METERS}    targets:\n      - {target}\n");
        let namespaces = support::namespaces(dir.path(), &yaml);
        let out = once(dir.path(), &namespaces);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(message), "{message} not in: {stderr}");
        assert!(!stderr.contains("pw-x"), "{stderr}");
    }
}
