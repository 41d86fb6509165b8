//! Helpers shared by the agent's integration tests: a real HTTP server, namespace trees.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// `hb-polling` with `args`, run in `dir`, without the caller's HB_ settings, its management
/// server on a free port (so that agents of parallel tests never compete for 8043).
pub fn hb(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hb-polling"));
    cmd.current_dir(dir)
        .args(args)
        .env_remove("HB_LOG")
        .env_remove("HB_TRANSPORT")
        .env("HB_MANAGEMENT_LISTEN", "127.0.0.1:0");
    cmd
}

/// Runs `hb-polling` to completion.
pub fn run(dir: &Path, args: &[&str]) -> Output {
    hb(dir, args).output().expect("hb-polling runs")
}

/// The samples `hb-polling --format json` printed, one JSON object per line.
pub fn samples(out: &Output) -> Vec<serde_json::Value> {
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON sample per line"))
        .collect()
}

/// Lossy UTF-8 of a process's output.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A tiny HTTP/1.1 server on 127.0.0.1:0: `/ok` → 200, `/slow` → 200 after 5 s, else 404.
pub fn http_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve(stream));
        }
    });
    port
}

fn serve(stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
        line.clear();
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_owned();
    let (status, body) = match path.as_str() {
        "/ok" => ("200 OK", "ok\n"),
        "/slow" => {
            std::thread::sleep(Duration::from_secs(5));
            ("200 OK", "late\n")
        }
        _ => ("404 Not Found", "no\n"),
    };
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// A port on 127.0.0.1 where nothing listens.
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// The repository's namespaces directory.
pub fn repo_namespaces() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../namespaces")
}

/// The repository's example namespace files (`examples/namespaces`), off by default.
pub fn example_namespaces() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/namespaces")
}

/// A namespaces tree in `dir`: the repository's compute namespace plus a central namespace
/// with `central_yaml` as its only file.
pub fn namespaces(dir: &Path, central_yaml: &str) -> PathBuf {
    let root = dir.join("namespaces");
    std::fs::create_dir_all(root.join("compute")).expect("mkdir");
    std::fs::create_dir_all(root.join("central")).expect("mkdir");
    std::fs::copy(
        repo_namespaces().join("compute/host.yaml"),
        root.join("compute/host.yaml"),
    )
    .expect("copy");
    std::fs::write(root.join("central/checks.yaml"), central_yaml).expect("write");
    root
}

/// A working directory holding a namespaces tree whose central namespace checks one TCP port.
pub fn workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    namespaces(
        dir.path(),
        &central_yaml(&[], &[("x", "127.0.0.1:1".into())], 1.0),
    );
    dir
}

/// A central namespace file checking the given HTTP URLs and TCP addresses (a pollster with no
/// targets is left out).
pub fn central_yaml(
    urls: &[(&str, String)],
    addresses: &[(&str, String)],
    pollster_timeout: f64,
) -> String {
    let mut y = String::from("pollsters:\n");
    if !urls.is_empty() {
        y += &format!(
            "  - name: http.response\n    timeout: {pollster_timeout}\n    meters:\n      - {{name: http.response.time, type: gauge, unit: s}}\n      - {{name: http.response.status, type: gauge, unit: status}}\n    targets:\n"
        );
        for (name, url) in urls {
            y += &format!("      - {{name: {name}, url: \"{url}\", timeout: 2}}\n");
        }
    }
    if !addresses.is_empty() {
        y += "  - name: tcp.connect\n    meters:\n      - {name: tcp.connect.time, type: gauge, unit: s}\n      - {name: tcp.connect.status, type: gauge, unit: status}\n    targets:\n";
        for (name, address) in addresses {
            y += &format!("      - {{name: {name}, address: \"{address}\", timeout: 2}}\n");
        }
    }
    y
}
