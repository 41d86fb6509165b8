//! The management server of a running node, asked over HTTP as an operator's curl would.

use std::time::Duration;

use crate::node::{Node, wait_until};

/// An HTTP answer: status code and body.
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The body as text.
    pub body: String,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// The address the node's management server logged it listens on (waits up to 30 s).
pub fn address(node: &Node) -> String {
    let mut found = None;
    let listening = wait_until(Duration::from_secs(30), || {
        found = node
            .log()
            .lines()
            .filter(|l| l.contains("management server listening"))
            .find_map(|l| l.split("addr=").nth(1))
            .map(|a| a.split_whitespace().next().unwrap_or_default().to_owned());
        found.is_some()
    });
    assert!(listening, "no management server:\n{}", node.log());
    found.unwrap_or_default()
}

/// `method` on `http://<addr><path>`, with `Authorization: Bearer <token>` when given.
pub fn call(method: &str, addr: &str, path: &str, token: Option<&str>) -> Answer {
    send(method, addr, path, token, None)
}

/// [`call`] with a request body.
pub fn send(
    method: &str,
    addr: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Answer {
    // reqwest is built without a TLS provider of its own (plain HTTP here).
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
    crate::bus::block_on(async {
        let client = reqwest::Client::new();
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = client
            .request(method, format!("http://{addr}{path}"))
            .timeout(Duration::from_secs(10));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.body(body.to_owned());
        }
        let response = request.send().await.expect("management server answers");
        let status = response.status().as_u16();
        let body = response.text().await.expect("body");
        Answer { status, body }
    })
}

/// `GET`, without a token.
pub fn get(addr: &str, path: &str) -> Answer {
    call("GET", addr, path, None)
}

/// The value of a metric line `name{labels} value` (labels written exactly as exposed).
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// What `promtool check metrics` says of `text` (from Debian's `prometheus` package): its
/// exit status and output (problems and lint warnings; none when clean).
pub fn promtool(text: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/test installs it)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}
