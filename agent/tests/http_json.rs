//! `http_json:` pollsters end to end: `hb-polling --once` against a local HTTP server this test
//! starts (paginated JSON, credentials, failures), and the loading of wrong definitions.

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use support::{hb, text};

const API_KEY: &str = "k-123";
const TOKEN: &str = "tok-456";
/// `user:pw` in base64.
const BASIC: &str = "Basic dXNlcjpwdw==";

/// Requests the server received: `GET target`.
type Log = Arc<Mutex<Vec<String>>>;

/// A JSON API on 127.0.0.1:0; see `respond` for its routes.
fn api_server() -> (u16, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let log = Log::default();
    let served = Arc::clone(&log);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let log = Arc::clone(&served);
            std::thread::spawn(move || serve(stream, port, &log));
        }
    });
    (port, log)
}

fn serve(stream: TcpStream, port: u16, log: &Log) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut headers = Vec::new();
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
        if let Some((name, value)) = line.trim_end().split_once(':') {
            headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
        }
        line.clear();
    }
    let target = request_line.split_whitespace().nth(1).unwrap_or("/");
    log.lock().expect("log").push(format!("GET {target}"));
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let mut stream = stream;
    if target == "/api/v1/huge" {
        // Announces more than the 16 MiB the pollster reads, then hangs up.
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 17000000\r\n\r\n["
        );
        return;
    }
    let (status, body) = respond(target, port, header);
    let body = body.to_string();
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn respond<'h>(
    target: &str,
    port: u16,
    header: impl Fn(&str) -> Option<&'h str>,
) -> (&'static str, Value) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let page = |q: &str| q.strip_prefix("page=").and_then(|p| p.parse::<u32>().ok());
    let denied = ("401 Unauthorized", json!({"error": "credentials"}));
    match (path, page(query)) {
        ("/api/v1/hosts", Some(n)) => {
            let token = format!("Bearer {TOKEN}");
            if header("x-api-key") != Some(API_KEY)
                || header("authorization") != Some(token.as_str())
                || header("x-client") != Some("hb-test")
            {
                return denied;
            }
            ("200 OK", hosts_page(n))
        }
        ("/api/v1/summary", _) if header("authorization") != Some(BASIC) => denied,
        ("/api/v1/summary", _) => (
            "200 OK",
            json!([{"region": "eu", "dc": "a", "hosts": "3"}, {"region": "us", "dc": 2, "hosts": 4.5}]),
        ),
        ("/api/v1/object", _) => ("200 OK", json!({"hosts": 3})),
        ("/api/v1/loop", _) => (
            "200 OK",
            json!({"items": [{"id": "l", "v": 1}], "next": "/api/v1/loop"}),
        ),
        ("/api/v1/endless", Some(n)) => (
            "200 OK",
            json!({"items": [{"id": format!("e{n}"), "v": n}], "next": format!("endless?page={}", n + 1)}),
        ),
        ("/api/v1/away", _) => (
            "200 OK",
            json!({"items": [{"id": "a", "v": 1}], "next": format!("http://localhost:{port}/api/v1/away?page=2")}),
        ),
        _ => ("404 Not Found", json!({"error": "no such page"})),
    }
}

/// Three pages of hosts: the first links to the second with an absolute path, the second to
/// the third relative to the first URL, the third ends with `null`.
fn hosts_page(n: u32) -> Value {
    match n {
        1 => json!({
            "data": [
                {"id": "h1", "zone": "eu-1", "tags": "web,prod", "owner": {"project": "p1", "user": "u1"},
                 "state": "up", "disks": [{"dev": "sda", "used": 2048}, {"dev": "sdb", "used": 1024}]},
                {"id": "h2", "zone": "eu-2", "tags": "db", "owner": {"project": "p2"},
                 "state": "DOWN", "disks": []},
            ],
            "links": {"next": "/api/v1/hosts?page=2"},
        }),
        2 => json!({
            "data": [
                {"id": "h3", "zone": "us-1", "state": "degraded",
                 "disks": [{"dev": "nvme0n1", "used": 512}, {"used": 1}]},
                {"zone": "nowhere", "state": "up"},
            ],
            "links": {"next": "hosts?page=3"},
        }),
        3 => json!({
            "data": [
                {"id": "h4", "state": "maintenance", "disks": [{"dev": "sda", "used": "n/a"}]},
                {"id": "h5", "state": "exploded"},
            ],
            "links": {"next": null},
        }),
        _ => json!({"data": [], "links": {}}),
    }
}

/// A namespaces tree with `yaml` as `central/api.yaml` (and the credentials it reads).
fn tree(dir: &Path, yaml: &str) -> PathBuf {
    let central = dir.join("namespaces/central");
    std::fs::create_dir_all(&central).expect("mkdir");
    std::fs::write(central.join("token"), format!("Bearer {TOKEN}\n")).expect("write");
    std::fs::write(central.join("password"), "pw").expect("write");
    std::fs::write(central.join("api.yaml"), yaml).expect("write");
    dir.join("namespaces")
}

fn once(dir: &Path, namespaces: &Path) -> Output {
    let ns = namespaces.to_str().expect("utf-8");
    hb(
        dir,
        &[
            "--namespaces-dir",
            ns,
            "--polling-namespaces",
            "central",
            "--once",
            "--format",
            "json",
        ],
    )
    .env("HB_TEST_HTTP_JSON_KEY", API_KEY)
    .output()
    .expect("hb-polling runs")
}

/// Samples without what changes from run to run: id, timestamps, the host.
fn samples(out: &Output) -> BTreeSet<String> {
    text(&out.stdout)
        .lines()
        .map(|l| {
            let mut s: Value = serde_json::from_str(l).expect("a JSON sample per line");
            let o = s.as_object_mut().expect("object");
            for key in ["id", "timestamp", "monotonic_time", "source"] {
                o.remove(key);
            }
            o["resource_metadata"]
                .as_object_mut()
                .expect("metadata")
                .remove("host");
            s.to_string()
        })
        .collect()
}

fn sample(name: &str, kind: &str, unit: &str, volume: f64, resource: &str, extra: Value) -> String {
    let mut s = json!({"name": name, "type": kind, "unit": unit, "volume": volume,
                       "resource_id": resource, "resource_metadata": {}});
    for (k, v) in extra.as_object().expect("object") {
        s[k] = v.clone();
    }
    s.to_string()
}

#[test]
fn paginated_api_with_families_mapping_skips_metadata_and_credentials() {
    let (port, log) = api_server();
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = format!(
        r#"
http_json:
  - &hosts
    name: "host.disk.{{dev}}.used"
    type: gauge
    unit: KiB
    url: "http://127.0.0.1:{port}/api/v1/hosts?page=1"
    headers:
      X-Client: hb-test
      X-Api-Key: {{env: HB_TEST_HTTP_JSON_KEY}}
      Authorization: {{file: token}}
    entries: $.data
    next: $.links.next
    value: "$.disks[*].used | div(1024)"
    resource_id: $.id
    project_id: $.owner.project
    user_id: $.owner.user
    metadata:
      zone: "$.zone | uppercase"
      role: "$.tags | split(',') | index(0)"
  - <<: *hosts
    name: host.state
    unit: state
    value: "$.state | lowercase"
    value_mapping: {{up: 1, down: 0, degraded: 0.5}}
    default_value: -1
    skip_values: [maintenance, 0.5]
    metadata: {{}}
  - &summary
    name: hosts.count
    type: gauge
    unit: host
    url: "http://127.0.0.1:{port}/api/v1/summary"
    basic_auth: {{username: user, password: {{file: password}}}}
    value: $.hosts
    resource_id: [$.region, $.dc]
  - <<: *summary
    name: hosts.listed
    headers: {{X-Client: another}}
"#
    );
    let ns = tree(dir.path(), &yaml);
    let out = once(dir.path(), &ns);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let owner = |p: &str, u: Option<&str>| match u {
        Some(u) => json!({"project_id": p, "user_id": u}),
        None => json!({"project_id": p}),
    };
    let h1_meta = json!({"zone": "EU-1", "role": "web"});
    let mut h1 = owner("p1", Some("u1"));
    h1["resource_metadata"] = h1_meta;
    let h3 = json!({"resource_metadata": {"zone": "US-1"}});
    let want: BTreeSet<String> = [
        sample("host.disk.sda.used", "gauge", "KiB", 2.0, "h1", h1.clone()),
        sample("host.disk.sdb.used", "gauge", "KiB", 1.0, "h1", h1),
        sample("host.disk.nvme0n1.used", "gauge", "KiB", 0.5, "h3", h3),
        sample(
            "host.state",
            "gauge",
            "state",
            1.0,
            "h1",
            owner("p1", Some("u1")),
        ),
        sample("host.state", "gauge", "state", 0.0, "h2", owner("p2", None)),
        sample("host.state", "gauge", "state", -1.0, "h5", json!({})),
        sample("hosts.count", "gauge", "host", 3.0, "eu/a", json!({})),
        sample("hosts.count", "gauge", "host", 4.5, "us/2", json!({})),
        sample("hosts.listed", "gauge", "host", 3.0, "eu/a", json!({})),
        sample("hosts.listed", "gauge", "host", 4.5, "us/2", json!({})),
    ]
    .into();
    let got = samples(&out);
    assert_eq!(
        got,
        want,
        "missing: {:?}\nextra: {:?}",
        want.difference(&got),
        got.difference(&want)
    );
    let requests = log.lock().expect("log").clone();
    let pages = |n: u32| {
        requests
            .iter()
            .filter(|r| r.ends_with(&format!("hosts?page={n}")))
            .count()
    };
    // The two host definitions read the same request: one listing serves both. The summary
    // definitions differ by a header: a request each.
    assert_eq!(
        (pages(1), pages(2), pages(3), pages(4)),
        (1, 1, 1, 0),
        "{requests:?}"
    );
    let summaries = requests.iter().filter(|r| r.ends_with("/summary")).count();
    assert_eq!(summaries, 2, "{requests:?}");
    let stderr = text(&out.stderr);
    assert!(
        !stderr.contains(TOKEN) && !stderr.contains(API_KEY),
        "{stderr}"
    );
}

#[test]
fn failures_fail_the_run_and_pagination_stops_at_loops_limits_and_other_hosts() {
    let (port, log) = api_server();
    let dir = tempfile::tempdir().expect("tempdir");
    let def = |name: &str, path: &str, extra: &str| {
        format!(
            "  - {{name: {name}, type: gauge, unit: x, url: \"http://127.0.0.1:{port}/api/v1/{path}\", value: $.v, resource_id: $.id{extra}}}\n"
        )
    };
    let yaml = String::from("http_json:\n")
        + &def("t.missing", "nothing", "")
        + &def("t.shape", "object", "")
        + &def("t.denied", "hosts?page=1", ", entries: $.data")
        + &def("t.loop", "loop", ", entries: $.items, next: $.next")
        + &def(
            "t.endless",
            "endless?page=1",
            ", entries: \"$.items[*]\", next: $.next, max_pages: 3",
        )
        + &def("t.huge", "huge", "")
        + &def("t.away", "away", ", entries: $.items, next: $.next");
    let ns = tree(dir.path(), &yaml);
    let out = once(dir.path(), &ns);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let base = format!("http://127.0.0.1:{port}/api/v1");
    for expected in [
        format!("pollster `t.missing` failed: GET {base}/nothing: HTTP status 404 Not Found"),
        format!(
            "pollster `t.shape` failed: the response of {base}/object is not a list; set `entries`"
        ),
        format!(
            "pollster `t.denied` failed: GET {base}/hosts?page=1: HTTP status 401 Unauthorized"
        ),
        format!(
            "pollster `t.huge` failed: GET {base}/huge: the response is larger than 16777216 bytes"
        ),
        "pagination stopped: the next page was already read".to_owned(),
        "pagination stopped at `max_pages`".to_owned(),
        format!("leaves http://127.0.0.1:{port}"),
    ] {
        assert!(stderr.contains(&expected), "{expected}\n---\n{stderr}");
    }
    let want: BTreeSet<String> = [
        sample("t.loop", "gauge", "x", 1.0, "l", json!({})),
        sample("t.endless", "gauge", "x", 1.0, "e1", json!({})),
        sample("t.endless", "gauge", "x", 2.0, "e2", json!({})),
        sample("t.endless", "gauge", "x", 3.0, "e3", json!({})),
        sample("t.away", "gauge", "x", 1.0, "a", json!({})),
    ]
    .into();
    assert_eq!(samples(&out), want);
    let requests = log.lock().expect("log").clone();
    let count = |p: &str| requests.iter().filter(|r| r.contains(p)).count();
    assert_eq!(
        (count("/loop"), count("/endless"), count("/away")),
        (1, 3, 1),
        "{requests:?}"
    );
}

#[test]
fn a_wrong_definition_is_reported_with_file_line_and_field_and_the_others_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let common =
        "type: gauge, unit: x, url: \"http://127.0.0.1:1/\", value: $.v, resource_id: $.id";
    let yaml = format!(
        "http_json:\n  - {{name: bad.path, {common}, metadata: {{vhost: \"$.vhost[\"}}}}\n  - {{name: bad.field, {common}, colour: red}}\n  - {{name: bad.secret, {common}, headers: {{X-Key: {{env: HB_TEST_HTTP_JSON_SURELY_UNSET}}}}}}\n  - {{name: good.one, {common}}}\n"
    );
    let ns = tree(dir.path(), &yaml);
    let out = hb(
        dir.path(),
        &[
            "--namespaces-dir",
            ns.to_str().expect("utf-8"),
            "--polling-namespaces",
            "central",
            "--list",
        ],
    )
    .output()
    .expect("hb-polling runs");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    let file = ns.join("central/api.yaml");
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 1, "{stdout}");
    assert_eq!(
        rows[0][..7],
        [
            "central",
            "good.one",
            "monitor",
            "good.one",
            "gauge",
            "x",
            file.to_str().expect("utf-8")
        ]
    );
    let file = file.display();
    for expected in [
        format!(
            "{file}:2:5: http_json[0].metadata.vhost: definition `bad.path`: invalid JSONPath `$.vhost[`"
        ),
        format!("{file}:3:5: http_json[1].colour: definition `bad.field`: unknown field `colour`"),
        format!(
            "{file}:4:5: http_json[2].headers.X-Key: definition `bad.secret`: environment variable `HB_TEST_HTTP_JSON_SURELY_UNSET` is not set"
        ),
    ] {
        assert!(stderr.contains(&expected), "{expected}\n---\n{stderr}");
    }
}
