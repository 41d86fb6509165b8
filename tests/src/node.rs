//! Agents and collectors as real processes for the bus tests, each in its own directory with
//! its log kept for the counts the tests print; and a publisher of test envelopes.

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use hb_bus::{Outgoing, Producer, Transport};
use hb_sample::{Envelope, Sample, SampleType, Secret};

use crate::{binary, repo};

/// The signing secret the bus tests share between agents and collectors.
pub const SECRET: &str = "a shared secret for tests";

/// An hb process (agent or collector) in its own directory, logging to a file there.
pub struct Node {
    /// Its directory: pipeline.yaml, secret, samples.jsonl, spool/, log.
    pub dir: tempfile::TempDir,
    program: &'static str,
    args: Vec<String>,
    env: Vec<(String, String)>,
    child: Option<Child>,
    runs: usize,
}

/// Writes a pipeline.yaml for `transport`, signed with [`SECRET`], polling every `interval`
/// seconds, writing to `samples.jsonl`.
fn write_config(dir: &Path, transport: &str, interval: u32) {
    std::fs::write(dir.join("secret"), SECRET).expect("secret");
    let yaml = format!(
        "transport: \"{transport}\"\nsecret_file: secret\nspool: {{dir: spool, max_bytes: 50000000}}\n\
         sources:\n  - {{name: all, interval: {interval}, meters: [\"*\"], sinks: [out]}}\n\
         sinks:\n  - {{name: out, publishers: [\"file://samples.jsonl\"]}}\n"
    );
    std::fs::write(dir.join("pipeline.yaml"), yaml).expect("pipeline.yaml");
}

/// A collector's pipeline.yaml like [`Node::collector`]'s, with a `coordination:` section (a
/// group of its own on the local Redis), so that several such collectors divide the
/// partitions of a RabbitMQ bus.
pub fn coordinated_collector(transport: &str) -> String {
    let group = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "transport: \"{transport}\"\nsecret_file: secret\n\
         coordination: {{backend_url: \"redis://127.0.0.1:6379/0\", group: \"{group}\"}}\n\
         sources:\n  - {{name: all, interval: 10, meters: [\"*\"], sinks: [out]}}\n\
         sinks:\n  - {{name: out, publishers: [\"file://samples.jsonl\"]}}\n"
    )
}

/// What the test agents poll: three compute pollsters.
const AGENT_ARGS: [&str; 6] = [
    "--polling-namespaces",
    "compute",
    "--pollster-list",
    "cpu",
    "memory",
    "load",
];

fn agent_args() -> Vec<String> {
    let namespaces = repo().join("namespaces").display().to_string();
    AGENT_ARGS
        .iter()
        .map(|s| s.to_string())
        .chain(["--namespaces-dir".to_owned(), namespaces])
        .collect()
}

fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (name, content) in files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("directory");
        }
        std::fs::write(path, content).expect("file");
    }
}

fn custom_dir(yaml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("secret"), SECRET).expect("secret");
    std::fs::write(dir.path().join("pipeline.yaml"), yaml).expect("pipeline.yaml");
    dir
}

impl Node {
    /// An `hb-collector` consuming from `transport`.
    pub fn collector(transport: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        write_config(dir.path(), transport, 10);
        Self::spawn(dir, "hb-collector", vec![])
    }

    /// An `hb-polling` of three compute pollsters every `interval` seconds, to `transport`.
    pub fn agent(transport: &str, interval: u32) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        write_config(dir.path(), transport, interval);
        Self::spawn(dir, "hb-polling", agent_args())
    }

    /// An `hb-collector` with the given pipeline.yaml (file `secret` holds [`SECRET`]).
    pub fn collector_with(yaml: &str) -> Self {
        Self::spawn(custom_dir(yaml), "hb-collector", vec![])
    }

    /// [`collector_with`](Self::collector_with), with extra environment variables (such as
    /// credentials a publisher reads).
    pub fn collector_with_env(yaml: &str, env: &[(&str, &str)]) -> Self {
        let mut node = Self {
            dir: custom_dir(yaml),
            program: "hb-collector",
            args: vec![],
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            child: None,
            runs: 0,
        };
        node.start();
        node
    }

    /// An `hb-collector` with the given pipeline.yaml and `files` written into its directory
    /// first (file `secret` holds [`SECRET`]).
    pub fn collector_files(yaml: &str, files: &[(&str, &str)]) -> Self {
        let dir = custom_dir(yaml);
        write_files(dir.path(), files);
        Self::spawn(dir, "hb-collector", vec![])
    }

    /// An agent of the three compute pollsters with the given pipeline.yaml (file `secret`
    /// holds [`SECRET`]).
    pub fn agent_with(yaml: &str) -> Self {
        Self::spawn(custom_dir(yaml), "hb-polling", agent_args())
    }

    /// An agent with the given pipeline.yaml and command-line arguments (file `secret`
    /// holds [`SECRET`]); `files` are written into its directory first.
    pub fn agent_args(yaml: &str, files: &[(&str, &str)], args: &[&str]) -> Self {
        let dir = custom_dir(yaml);
        write_files(dir.path(), files);
        let args = args.iter().map(|a| a.to_string()).collect();
        Self::spawn(dir, "hb-polling", args)
    }

    fn spawn(dir: tempfile::TempDir, program: &'static str, args: Vec<String>) -> Self {
        let mut node = Self {
            dir,
            program,
            args,
            env: Vec::new(),
            child: None,
            runs: 0,
        };
        node.start();
        node
    }

    /// Starts the process again (after [`term`](Self::term) or [`kill9`](Self::kill9)).
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        self.runs += 1;
        let log = std::fs::File::create(self.dir.path().join(format!("log.{}", self.runs)))
            .expect("log file");
        let child = Command::new(binary(self.program))
            .current_dir(self.dir.path())
            .args(["--config", "pipeline.yaml"])
            .args(&self.args)
            .env_remove("HB_TRANSPORT")
            .env_remove("HB_SECRET")
            .env("HB_LOG", "info")
            // Each node's management server on a free port (the defaults 8042 and 8043
            // would let only one node of a test run); a test's own environment overrides it.
            .env("HB_MANAGEMENT_LISTEN", "127.0.0.1:0")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn");
        self.child = Some(child);
    }

    /// SIGTERM, then waits (at most 60 s) for the exit.
    pub fn term(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "{} did not stop within 60 s of SIGTERM:\n{}",
                    self.program,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `signal` (`HUP`, `USR1`, ...) with kill(1).
    pub fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("running");
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal}");
    }

    /// The node's directory (its pipeline.yaml, outputs and logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        let child = self.child.as_mut().expect("started");
        child.try_wait().expect("try_wait").is_none()
    }

    /// The running process's peak resident set (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let child = self.child.as_ref().expect("running");
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
            .expect("/proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM")
    }

    /// SIGKILL: no chance to flush or acknowledge.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("kill -9");
        let _ = child.wait();
    }

    /// Every log of every run so far, in order.
    pub fn log(&self) -> String {
        (1..=self.runs)
            .map(|i| {
                std::fs::read_to_string(self.dir.path().join(format!("log.{i}")))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("")
    }

    /// The samples written to `samples.jsonl`, and how many lines did not parse (a line torn
    /// by `kill -9`).
    pub fn samples(&self) -> (Vec<Sample>, usize) {
        self.samples_in("samples.jsonl")
    }

    /// The samples written to `file` (in the node's directory), and how many lines did not
    /// parse.
    pub fn samples_in(&self, file: &str) -> (Vec<Sample>, usize) {
        let text = std::fs::read_to_string(self.dir.path().join(file)).unwrap_or_default();
        let mut samples = Vec::new();
        let mut torn = 0;
        for line in text.lines() {
            match serde_json::from_str(line) {
                Ok(s) => samples.push(s),
                Err(_) => torn += 1,
            }
        }
        (samples, torn)
    }

    /// Lines of `samples.jsonl` (cheap progress check).
    pub fn lines(&self) -> usize {
        std::fs::read(self.dir.path().join("samples.jsonl"))
            .map(|b| b.iter().filter(|&&c| c == b'\n').count())
            .unwrap_or(0)
    }

    /// Files waiting in the agent's spool.
    pub fn spooled(&self) -> usize {
        std::fs::read_dir(self.dir.path().join("spool"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".env"))
                    .count()
            })
            .unwrap_or(0)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sum of `key=N` over every log line containing `message`.
pub fn sum(log: &str, message: &str, key: &str) -> u64 {
    log.lines()
        .filter(|l| l.contains(message))
        .filter_map(|l| field(l, key))
        .sum()
}

/// `key=N` of the last log line containing `message`.
pub fn last(log: &str, message: &str, key: &str) -> Option<u64> {
    log.lines()
        .rev()
        .find(|l| l.contains(message))
        .and_then(|l| field(l, key))
}

fn field(line: &str, key: &str) -> Option<u64> {
    let at = line.find(&format!(" {key}="))? + key.len() + 2;
    line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Waits until `done` holds, at most `limit`; false on timeout.
pub fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

/// Publishes `envelopes` envelopes of `per` samples, signed with [`SECRET`], round-robin from
/// `hosts` producer hosts; returns the sample ids.
pub fn publish(transport: &str, hosts: usize, envelopes: usize, per: usize) -> Vec<String> {
    let transport = Transport::parse(transport).expect("transport");
    let (ids, messages) = signed_envelopes(&transport, hosts, envelopes, per);
    send(&transport, &messages);
    ids
}

/// The envelopes [`publish`] sends, and their sample ids.
pub fn signed_envelopes(
    transport: &Transport,
    hosts: usize,
    envelopes: usize,
    per: usize,
) -> (Vec<String>, Vec<Outgoing>) {
    let secret = Secret::new(SECRET);
    let start = chrono::Utc::now().timestamp_micros().unsigned_abs();
    let mut ids = Vec::with_capacity(envelopes * per);
    let mut messages = Vec::with_capacity(envelopes);
    for e in 0..envelopes {
        let host = format!("load-{}", e % hosts);
        let samples: Vec<Sample> = (0..per)
            .map(|i| {
                Sample::new(
                    "load.test",
                    SampleType::Gauge,
                    "1",
                    (e * per + i) as f64,
                    host.as_str(),
                    chrono::Utc::now(),
                )
                .expect("sample")
            })
            .collect();
        ids.extend(samples.iter().map(|s| s.id.to_string()));
        let producer = hb_sample::Producer {
            host: host.clone(),
            agent_id: format!("{host}/test"),
            namespaces: vec!["test".into()],
        };
        // Numbered as an agent numbers them: one after the other from the time of the call,
        // so that later calls count on.
        let seq = start + e as u64;
        let payload = Envelope::samples(producer, seq, samples)
            .encode(Some(&secret))
            .expect("encode");
        let partitions = transport.common().map_or(1, |c| c.partitions);
        let partition = hb_bus::partition::of(&host, partitions);
        messages.push(Outgoing::samples("test", &host, partition, payload));
    }
    (ids, messages)
}

/// Sends raw messages and asserts the broker confirmed each.
pub fn send(transport: &Transport, messages: &[Outgoing]) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let producer = Producer::new(transport).expect("producer");
        for chunk in messages.chunks(200) {
            for result in producer.send_all(chunk).await {
                result.expect("broker confirmed");
            }
        }
        producer.close().await;
    });
}
