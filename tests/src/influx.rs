//! Private InfluxDB 1.x and VictoriaMetrics servers for tests: each [`Influxd`] or
//! [`VictoriaMetrics`] is a process of its own on free 127.0.0.1 ports with its data in a
//! temporary directory, killed when dropped. The binaries come from Debian's packages, which
//! `scripts/influxdb` installs (`/usr/bin/influxd`, `/usr/bin/victoria-metrics`).
//!
//! The helpers talk plain HTTP/1.0 over a `TcpStream` (one request per connection): enough for
//! `/ping`, `/query` and `/api/v1/export`, and independent of the client under test.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use crate::bus::free_port;
use crate::log_tail as tail;

/// How long a server may take to answer its health check after start.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A binary installed by `scripts/influxdb`; panics with what to run when it is missing.
pub fn installed(name: &str) -> PathBuf {
    let path = Path::new("/usr/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/influxdb (installs Debian's influxdb and victoria-metrics)",
        path.display()
    );
    path
}

/// The answer to one plain HTTP request.
#[derive(Debug)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as JSON; panics (with the body) if it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}), status {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// One HTTP/1.0 request to 127.0.0.1:`port`; `Err` if nothing answers.
pub fn http(
    port: u16,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let head = format!(
        "{method} {path_and_query} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no end of headers"))?;
    let status_line = String::from_utf8_lossy(&raw[..split]);
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line: {status_line}")))?;
    Ok(Response {
        status,
        body: raw[split + 4..].to_vec(),
    })
}

fn encode(pairs: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        query.append_pair(k, v);
    }
    query.finish()
}

/// Waits until `GET path` on `port` answers `ok_status`, or panics with `log`'s tail.
fn wait_until_up(port: u16, path: &str, ok_status: u16, child: &mut Child, log: &Path, what: &str) {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(r) = http(port, "GET", path, b"")
            && r.status == ok_status
        {
            return;
        }
        if let Ok(Some(exit)) = child.try_wait() {
            panic!("{what} exited ({exit}) before answering: {}", tail(log));
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not answer {path} on 127.0.0.1:{port} within {START_TIMEOUT:?}: {}",
            tail(log)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `port` accepts connections (a server whose API the plain helpers cannot
/// speak, such as https), or panics with `log`'s tail.
fn wait_until_listening(port: u16, child: &mut Child, log: &Path, what: &str) {
    let deadline = Instant::now() + START_TIMEOUT;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(exit)) = child.try_wait() {
            panic!("{what} exited ({exit}) before listening: {}", tail(log));
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on 127.0.0.1:{port} within {START_TIMEOUT:?}: {}",
            tail(log)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stop_child(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Settings of a private InfluxDB 1.x.
#[derive(Debug, Clone, Default)]
pub struct InfluxdOptions {
    /// `[http] auth-enabled`: with it, an admin user `admin`/`admin-password` is created.
    pub auth: bool,
    /// `[http] max-body-size` in bytes (0: InfluxDB's default, 25 MB).
    pub max_body_size: usize,
    /// `[http] https-enabled` with this certificate and private key (PEM files): the API is
    /// https only, which the plain helpers ([`Influxd::query`], ...) do not speak, so a test
    /// prepares and checks the data with https off ([`Influxd::set_https`] and a restart).
    pub https: Option<(PathBuf, PathBuf)>,
}

/// Name and password of the admin user of an [`Influxd`] started with `auth`.
pub const ADMIN: (&str, &str) = ("admin", "admin-password");

/// A private `influxd` (InfluxDB 1.x): HTTP API on a free port, everything else disabled or
/// on loopback, data in a temporary directory that outlives [`stop`](Influxd::stop).
pub struct Influxd {
    dir: TempDir,
    port: u16,
    options: InfluxdOptions,
    child: Option<Child>,
}

impl Influxd {
    /// Starts a server with default settings (no authentication).
    pub fn launch() -> Self {
        Self::launch_with(InfluxdOptions::default())
    }

    /// Starts a server with `options`.
    pub fn launch_with(options: InfluxdOptions) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("hb-influxd-")
            .tempdir()
            .expect("temporary directory");
        let mut server = Self {
            dir,
            port: free_port(),
            options,
            child: None,
        };
        server.start();
        if server.options.auth {
            let create = format!(
                "CREATE USER {} WITH PASSWORD '{}' WITH ALL PRIVILEGES",
                ADMIN.0, ADMIN.1
            );
            // The first admin user may be created without credentials.
            server.query_as(None, "", &create);
        }
        server
    }

    /// (Re)starts the process on the same port and data directory.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "influxd is already running");
        let binary = installed("influxd");
        let d = self.dir.path();
        let rpc_port = free_port();
        let config = format!(
            "reporting-disabled = true\n\
             bind-address = \"127.0.0.1:{rpc_port}\"\n\
             [meta]\n  dir = \"{meta}\"\n\
             [data]\n  dir = \"{data}\"\n  wal-dir = \"{wal}\"\n  query-log-enabled = false\n\
             [monitor]\n  store-enabled = false\n\
             [http]\n  bind-address = \"127.0.0.1:{port}\"\n  auth-enabled = {auth}\n  \
             log-enabled = false\n  max-body-size = {max_body}\n\
             {https}\
             [ifql]\n  enabled = false\n\
             [continuous_queries]\n  enabled = false\n\
             [subscriber]\n  enabled = false\n\
             [logging]\n  level = \"warn\"\n",
            meta = d.join("meta").display(),
            data = d.join("data").display(),
            wal = d.join("wal").display(),
            port = self.port,
            auth = self.options.auth,
            https = match &self.options.https {
                None => String::new(),
                Some((cert, key)) => format!(
                    "  https-enabled = true\n  https-certificate = \"{}\"\n  \
                     https-private-key = \"{}\"\n",
                    cert.display(),
                    key.display()
                ),
            },
            max_body = if self.options.max_body_size == 0 {
                25_000_000
            } else {
                self.options.max_body_size
            },
        );
        let config_path = d.join("influxdb.conf");
        std::fs::write(&config_path, config).expect("write influxdb.conf");
        let log_path = d.join("influxd.log");
        let log = std::fs::File::create(&log_path).expect("influxd.log");
        let mut child = Command::new(&binary)
            .arg("-config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", binary.display()));
        if self.options.https.is_some() {
            wait_until_listening(self.port, &mut child, &log_path, "influxd (https)");
        } else {
            wait_until_up(self.port, "/ping", 204, &mut child, &log_path, "influxd");
        }
        self.child = Some(child);
    }

    /// Serves https with `cert` and `key` from the next [`start`](Influxd::start) on (`None`:
    /// plain http again).
    pub fn set_https(&mut self, tls: Option<(PathBuf, PathBuf)>) {
        self.options.https = tls;
    }

    /// Kills the process (its data stays for [`start`](Influxd::start)).
    pub fn stop(&mut self) {
        stop_child(&mut self.child);
    }

    /// The HTTP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, the target of an `influxdb://` URL.
    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Runs InfluxQL against `db` (POST `/query`, nanosecond epochs), as the admin user when
    /// the server has authentication; panics unless the server answers 200.
    pub fn query(&self, db: &str, influxql: &str) -> Value {
        let auth = self.options.auth.then_some(ADMIN);
        self.query_as(auth, db, influxql)
    }

    /// [`query`](Influxd::query) with explicit credentials (`None`: none).
    pub fn query_as(&self, auth: Option<(&str, &str)>, db: &str, influxql: &str) -> Value {
        // InfluxDB 1.x reads `u` and `p` from the URL only; the statement goes in the body.
        let credentials = auth.map_or(String::new(), |(u, p)| encode(&[("u", u), ("p", p)]));
        let body = encode(&[("q", influxql), ("db", db), ("epoch", "ns")]);
        let path = format!("/query?{credentials}");
        let r = http(self.port, "POST", &path, body.as_bytes())
            .unwrap_or_else(|e| panic!("influxd on {} does not answer: {e}", self.port));
        let json = r.json();
        assert_eq!(r.status, 200, "{influxql}: {json}");
        if let Some(error) = json["results"][0].get("error") {
            panic!("{influxql}: {error}");
        }
        json
    }

    /// Creates database `db`.
    pub fn create_database(&self, db: &str) {
        self.query("", &format!("CREATE DATABASE \"{db}\""));
    }

    /// POSTs raw line protocol to `/write?db=` (as admin when authenticated), returns the answer.
    pub fn write_raw(&self, db: &str, lines: &str) -> Response {
        let mut pairs = vec![("db", db)];
        if self.options.auth {
            pairs.extend([("u", ADMIN.0), ("p", ADMIN.1)]);
        }
        let path = format!("/write?{}", encode(&pairs));
        http(self.port, "POST", &path, lines.as_bytes()).expect("influxd answers")
    }

    /// Points of `measurement` in `db` (`count("value")`; 0 when there are none).
    pub fn count(&self, db: &str, measurement: &str) -> u64 {
        let query = format!("SELECT count(\"value\") FROM \"{measurement}\"");
        self.rows(db, &query)
            .first()
            .and_then(|r| r["count"].as_u64())
            .unwrap_or(0)
    }

    /// The rows of every series of a query's first result, as `column -> value` maps.
    pub fn rows(&self, db: &str, influxql: &str) -> Vec<serde_json::Map<String, Value>> {
        series(&self.query(db, influxql))
            .into_iter()
            .flat_map(|s| s.rows)
            .collect()
    }
}

impl Drop for Influxd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A point as the end-to-end tests compare them: (measurement, resource_id, time ns, value).
pub type Point = (String, String, i64, String);

/// Every point of every measurement in `db`, as [`Point`]s.
pub fn points(influx: &Influxd, db: &str) -> std::collections::BTreeSet<Point> {
    let result = influx.query(db, "SELECT \"value\", \"resource_id\" FROM /.*/");
    series(&result)
        .into_iter()
        .flat_map(|s| {
            let name = s.name.clone();
            s.rows.into_iter().map(move |row| {
                (
                    name.clone(),
                    row["resource_id"].as_str().unwrap_or_default().to_owned(),
                    row["time"].as_i64().expect("ns time"),
                    format!("{}", row["value"].as_f64().expect("value")),
                )
            })
        })
        .collect()
}

/// The [`Point`] a sample should become.
pub fn point(s: &hb_sample::Sample) -> Point {
    (
        s.name.clone(),
        s.resource_id.clone(),
        s.timestamp.timestamp_nanos_opt().expect("ns"),
        format!("{}", s.volume()),
    )
}

/// One series of an InfluxQL result.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Measurement name.
    pub name: String,
    /// Tags of the series (with `GROUP BY *`), else empty.
    pub tags: serde_json::Map<String, Value>,
    /// Rows as `column -> value` maps.
    pub rows: Vec<serde_json::Map<String, Value>>,
}

/// The series of a query's first result.
pub fn series(result: &Value) -> Vec<Series> {
    let Some(list) = result["results"][0]["series"].as_array() else {
        return Vec::new();
    };
    list.iter()
        .map(|s| {
            let columns: Vec<String> = s["columns"]
                .as_array()
                .map(|c| {
                    c.iter()
                        .map(|c| c.as_str().unwrap_or_default().to_owned())
                        .collect()
                })
                .unwrap_or_default();
            let rows = s["values"]
                .as_array()
                .map(|values| {
                    values
                        .iter()
                        .map(|row| {
                            columns
                                .iter()
                                .cloned()
                                .zip(row.as_array().cloned().unwrap_or_default())
                                .collect()
                        })
                        .collect()
                })
                .unwrap_or_default();
            Series {
                name: s["name"].as_str().unwrap_or_default().to_owned(),
                tags: s["tags"].as_object().cloned().unwrap_or_default(),
                rows,
            }
        })
        .collect()
}

/// A private `victoria-metrics` (single node): HTTP on a free port (it takes InfluxDB line
/// protocol on `/write` and `/api/v2/write`), data in a temporary directory.
pub struct VictoriaMetrics {
    _dir: TempDir,
    port: u16,
    child: Option<Child>,
}

impl VictoriaMetrics {
    /// Starts a server.
    pub fn launch() -> Self {
        let binary = installed("victoria-metrics");
        let dir = tempfile::Builder::new()
            .prefix("hb-victoria-")
            .tempdir()
            .expect("temporary directory");
        let port = free_port();
        let log_path = dir.path().join("victoria-metrics.log");
        let log = std::fs::File::create(&log_path).expect("victoria-metrics.log");
        let mut child = Command::new(&binary)
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg(format!(
                "-storageDataPath={}",
                dir.path().join("data").display()
            ))
            .arg("-retentionPeriod=100y")
            .arg("-loggerLevel=ERROR")
            // Queries see points as soon as they are searchable, not 30 s later.
            .arg("-search.latencyOffset=0s")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", binary.display()));
        wait_until_up(
            port,
            "/health",
            200,
            &mut child,
            &log_path,
            "victoria-metrics",
        );
        Self {
            _dir: dir,
            port,
            child: Some(child),
        }
    }

    /// `127.0.0.1:PORT`, the target of an `influxdb2://` URL.
    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The raw series matching a series selector (`{__name__="m_value"}`), from
    /// `/api/v1/export` after `/internal/force_flush`: one JSON object per series with
    /// `metric` (labels), `values` and `timestamps` (milliseconds).
    pub fn export(&self, selector: &str) -> Vec<Value> {
        let flushed = http(self.port, "GET", "/internal/force_flush", b"").expect("flush");
        assert_eq!(flushed.status, 200, "force_flush");
        let path = format!("/api/v1/export?{}", encode(&[("match[]", selector)]));
        let r = http(self.port, "GET", &path, b"").expect("victoria-metrics answers");
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        String::from_utf8_lossy(&r.body)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("export line is JSON"))
            .collect()
    }

    /// [`export`](VictoriaMetrics::export), polled until it holds at least `series` series
    /// (freshly written rows become searchable within about a second).
    pub fn export_at_least(&self, selector: &str, series: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let found = self.export(selector);
            if found.len() >= series || Instant::now() > deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// An instant query (`/api/v1/query`) in PromQL/MetricsQL, at the current time: sees
    /// points of the last 5 minutes (`-search.latencyOffset=0s`).
    pub fn query(&self, promql: &str) -> Value {
        let path = format!("/api/v1/query?{}", encode(&[("query", promql)]));
        http(self.port, "GET", &path, b"")
            .expect("victoria-metrics answers")
            .json()
    }
}

impl Drop for VictoriaMetrics {
    fn drop(&mut self) {
        stop_child(&mut self.child);
    }
}
