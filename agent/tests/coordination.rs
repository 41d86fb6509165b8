//! Central agents sharing work through the real local Redis: three `hb-polling` processes, one
//! HTTP server whose 210 URLs are the resources, and the server's own record of which URL was
//! requested in which two-second cycle (two seconds, not one, so that a slow moment of a
//! loaded machine does not push a cycle's requests into the next).

mod support;

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hb_agent::coordination::Coordinator;
use hb_pipeline::config::Coordination;

const RESOURCES: usize = 210;
const REDIS: &str = "redis://127.0.0.1:6379/0";
/// The agents' polling interval, in seconds; cycles start on its wall-clock multiples.
const INTERVAL: u64 = 2;
/// The pollster's timeout, in seconds: most of the interval, so that a machine slowed by other
/// work still completes each cycle's requests within the cycle.
const POLL_TIMEOUT: f64 = 1.8;

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis()
}

/// Requests seen by the test server: (cycle, resource index).
type Seen = Arc<Mutex<Vec<(u64, usize)>>>;

/// An HTTP server on 127.0.0.1:0 answering `/r/<i>` with 200 and recording each request.
/// Its accept queue holds every agent's connections of a cycle at once (std's listener
/// queues 128; 210 connections arriving together would have some SYNs dropped and retried a
/// second later, a miss that says nothing about coordination).
fn recording_server() -> (u16, Seen) {
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let seen: Seen = Arc::default();
    let record = Arc::clone(&seen);
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let socket = tokio::net::TcpSocket::new_v4().expect("socket");
            socket
                .bind("127.0.0.1:0".parse().expect("address"))
                .expect("bind");
            let listener = socket.listen(4096).expect("listen");
            port_tx
                .send(listener.local_addr().expect("addr").port())
                .expect("port");
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer(stream, Arc::clone(&record)));
            }
        });
    });
    (port_rx.recv().expect("port"), seen)
}

async fn answer(stream: tokio::net::TcpStream, record: Seen) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let mut stream = tokio::io::BufReader::new(stream);
    let mut request = String::new();
    if stream.read_line(&mut request).await.is_err() {
        return;
    }
    let cycle = cycle();
    let mut line = String::new();
    while stream.read_line(&mut line).await.is_ok_and(|n| n > 2) {
        line.clear();
    }
    let path = request.split_whitespace().nth(1).unwrap_or("/");
    if let Some(i) = path.strip_prefix("/r/").and_then(|i| i.parse().ok()) {
        record.lock().expect("lock").push((cycle, i));
    }
    let _ = stream
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n")
        .await;
}

fn workdir(port: u16, group: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let urls: Vec<(String, String)> = (0..RESOURCES)
        .map(|i| (format!("r{i}"), format!("http://127.0.0.1:{port}/r/{i}")))
        .collect();
    let urls: Vec<(&str, String)> = urls.iter().map(|(n, u)| (n.as_str(), u.clone())).collect();
    support::namespaces(dir.path(), &support::central_yaml(&urls, &[], POLL_TIMEOUT));
    let yaml = format!(
        "transport: memory://\n\
         coordination: {{backend_url: \"{REDIS}\", group: \"{group}\", heartbeat: 1, timeout: 3}}\n\
         sources:\n  - {{name: checks, interval: {INTERVAL}, meters: [http.response.status], sinks: [out]}}\n\
         sinks:\n  - {{name: out, publishers: [\"file://samples.jsonl\"]}}\n"
    );
    std::fs::write(dir.path().join("pipeline.yaml"), yaml).expect("pipeline.yaml");
    dir
}

fn start(dir: &std::path::Path) -> Child {
    let log = std::fs::File::create(dir.join("log")).expect("log");
    support::hb(
        dir,
        &[
            "--namespaces-dir",
            "namespaces",
            "--polling-namespaces",
            "central",
            // Selection and coordination combine: the agents divide what they were told to poll.
            "--pollster-list",
            "http.*",
        ],
    )
    .env("HB_LOG", "info")
    .stdout(Stdio::null())
    .stderr(log)
    .spawn()
    .expect("hb-polling starts")
}

/// Polls per resource in each cycle of `[from, to)`.
fn cycles(seen: &Seen, from: u64, to: u64) -> BTreeMap<u64, HashMap<usize, usize>> {
    let mut out: BTreeMap<u64, HashMap<usize, usize>> =
        (from..to).map(|s| (s, HashMap::new())).collect();
    for &(second, i) in seen.lock().expect("lock").iter() {
        if let Some(c) = out.get_mut(&second) {
            *c.entry(i).or_default() += 1;
        }
    }
    out
}

/// (cycles where every resource was polled exactly once, most polls of one resource in one cycle).
fn exactly_once(seen: &Seen, from: u64, to: u64) -> (usize, usize) {
    let cycles = cycles(seen, from, to);
    let complete = cycles
        .values()
        .filter(|c| c.len() == RESOURCES && c.values().all(|&n| n == 1))
        .count();
    let most = cycles
        .values()
        .flat_map(|c| c.values().copied())
        .max()
        .unwrap_or(0);
    (complete, most)
}

/// For a failure message: each incomplete cycle of `[from, to)` with what it lacked, then the
/// end of every agent's log (its cycle summaries and any pollster timeout).
fn explain(seen: &Seen, from: u64, to: u64, dirs: &[tempfile::TempDir]) -> String {
    let mut out = String::new();
    for (cycle, polls) in cycles(seen, from, to) {
        let missing = (0..RESOURCES).filter(|i| !polls.contains_key(i)).count();
        let doubled = polls.values().filter(|&&n| n > 1).count();
        if missing + doubled > 0 {
            out += &format!(
                "cycle {cycle}: {missing} resources not polled, {doubled} polled more than once\n"
            );
        }
    }
    for (i, dir) in dirs.iter().enumerate() {
        let log = std::fs::read_to_string(dir.path().join("log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(12).collect();
        out += &format!("--- agent {i}, last lines of its log:\n");
        for line in tail.into_iter().rev() {
            out += line;
            out.push('\n');
        }
    }
    out
}

/// The cycle now: wall-clock time in units of [`INTERVAL`].
fn cycle() -> u64 {
    (now_ms() / u128::from(INTERVAL * 1000)) as u64
}

/// Waits for the cycle after the current one to finish.
fn wait_cycles(n: u64) {
    let next = u128::from((cycle() + n + 1) * INTERVAL * 1000 + 500);
    std::thread::sleep(Duration::from_millis((next - now_ms()) as u64));
}

#[test]
fn three_agents_poll_every_resource_exactly_once_through_a_kill_and_a_return() {
    let (port, seen) = recording_server();
    let group = format!("test-{}-{}", std::process::id(), now_ms());
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| workdir(port, &group)).collect();
    let mut agents: Vec<Child> = dirs.iter().map(|d| start(d.path())).collect();

    // Steady state: the three have joined once a cycle sees every resource exactly once.
    let started = Instant::now();
    let steady_from = loop {
        let s = cycle();
        if s > 0 && exactly_once(&seen, s - 1, s).0 == 1 {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no cycle polled every resource exactly once within 20 s; log of agent 0:\n{}",
            std::fs::read_to_string(dirs[0].path().join("log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    wait_cycles(4);
    let steady_to = cycle();
    let (complete, most) = exactly_once(&seen, steady_from, steady_to);
    let per_agent: Vec<usize> = dirs
        .iter()
        .map(|d| {
            std::fs::read_to_string(d.path().join("samples.jsonl"))
                .unwrap_or_default()
                .lines()
                .count()
        })
        .collect();
    println!(
        "steady: {complete} of {} cycles polled all {RESOURCES} resources exactly once; most polls of one resource in a cycle {most}; samples per agent {per_agent:?}",
        steady_to - steady_from
    );
    assert_eq!(
        complete as u64,
        steady_to - steady_from,
        "{}",
        explain(&seen, steady_from, steady_to, &dirs)
    );
    assert!(per_agent.iter().all(|&n| n > 0), "an agent polled nothing");

    // One agent killed: its share is unpolled until `timeout` passes, then taken over.
    agents[1].kill().expect("kill -9");
    agents[1].wait().expect("reaped");
    let killed = cycle();
    // timeout (3 s) + one interval (2 s) after the kill: the third cycle after the one it
    // happened in starts 4 to 6 s after it.
    let recovered_from = killed + 3;
    std::thread::sleep(Duration::from_millis(
        ((recovered_from * INTERVAL * 1000) as u128 - now_ms()) as u64,
    ));
    wait_cycles(3);
    let recovered_to = cycle();
    let (gap_complete, gap_most) = exactly_once(&seen, killed, recovered_from);
    let (complete, most) = exactly_once(&seen, recovered_from, recovered_to);
    println!(
        "after kill -9: {gap_complete} of {} cycles complete while the dead member timed out (most {gap_most}); then {complete} of {} cycles polled every resource exactly once (most {most})",
        recovered_from - killed,
        recovered_to - recovered_from
    );
    assert!(
        gap_most <= 1,
        "a resource was polled twice in one cycle after the kill\n{}",
        explain(&seen, killed, recovered_from, &dirs)
    );
    assert_eq!(
        complete as u64,
        recovered_to - recovered_from,
        "{}",
        explain(&seen, recovered_from, recovered_to, &dirs)
    );

    // It returns (a new process, a new member): the ring rebalances without double polls.
    let returned = cycle();
    agents[1] = start(dirs[1].path());
    wait_cycles(6);
    let end = cycle();
    let (complete, most) = exactly_once(&seen, returned, end);
    let rebalanced = cycles(&seen, end - 2, end);
    println!(
        "after the return: {complete} of {} cycles complete, most polls of one resource in a cycle {most}",
        end - returned
    );
    assert!(
        most <= 1,
        "a resource was polled twice in one cycle after the return\n{}",
        explain(&seen, returned, end, &dirs)
    );
    assert!(
        rebalanced.values().all(|c| c.len() == RESOURCES),
        "not every resource polled in the last cycles\n{}",
        explain(&seen, end - 2, end, &dirs)
    );
    let returned_samples = std::fs::read_to_string(dirs[1].path().join("samples.jsonl"))
        .unwrap_or_default()
        .lines()
        .count();
    assert!(
        returned_samples > per_agent[1],
        "the returning agent took no share"
    );

    for agent in &mut agents {
        let pid = nix::unistd::Pid::from_raw(agent.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = agent.wait();
    }
}

/// A TCP relay to the local Redis that the test can cut, to play an outage.
struct Relay {
    port: u16,
    cut: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let cut = Arc::new(AtomicBool::new(false));
        let streams: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (c, s) = (Arc::clone(&cut), Arc::clone(&streams));
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if c.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let server = TcpStream::connect("127.0.0.1:6379").expect("redis");
                s.lock().expect("lock").extend([
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                ]);
                for (mut from, mut to) in [
                    (
                        client.try_clone().expect("clone"),
                        server.try_clone().expect("clone"),
                    ),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 8192];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Self { port, cut, streams }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for s in self.streams.lock().expect("lock").drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

fn config(url: &str, group: &str) -> Coordination {
    Coordination {
        backend_url: hb_bus::SecretUrl::new(url),
        group: group.to_owned(),
        heartbeat: Duration::from_millis(200),
        timeout: Duration::from_millis(600),
    }
}

#[tokio::test]
async fn when_redis_is_unreachable_the_last_known_membership_is_kept() {
    let relay = Relay::start();
    let group = format!("outage-{}-{}", std::process::id(), now_ms());
    let me = Coordinator::new(
        config(&format!("redis://127.0.0.1:{}/0", relay.port), &group),
        "me".into(),
    )
    .expect("coordinator");
    let peer = Coordinator::new(config(REDIS, &group), "peer".into()).expect("coordinator");
    me.heartbeat().await.expect("me joins");
    peer.heartbeat().await.expect("peer joins");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let known = me.share(SystemTime::now()).await;
    assert_eq!(known.members(), ["me", "peer"]);
    let mine: Vec<usize> = (0..100).filter(|i| known.owns(&format!("r{i}"))).collect();
    assert!(
        !mine.is_empty() && mine.len() < 100,
        "two members split 100 resources: {}",
        mine.len()
    );

    relay.cut();
    // Long after the peer would have timed out, the outage keeps the last membership.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let during = me.share(SystemTime::now()).await;
    assert_eq!(during.members(), ["me", "peer"]);
    let still: Vec<usize> = (0..100).filter(|i| during.owns(&format!("r{i}"))).collect();
    assert_eq!(still, mine);
}

#[tokio::test]
async fn an_agent_that_never_reached_redis_polls_everything_alone() {
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let me = Coordinator::new(
        config(&format!("redis://127.0.0.1:{port}/0"), "alone"),
        "me".into(),
    )
    .expect("coordinator");
    let share = me.share(SystemTime::now()).await;
    assert_eq!(share.members(), ["me"]);
    assert!((0..50).all(|i| share.owns(&format!("r{i}"))));
}
