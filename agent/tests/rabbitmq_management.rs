//! The shipped example `examples/namespaces/central/rabbitmq.yaml` against the local RabbitMQ's management API
//! (127.0.0.1:15672, guest/guest): a queue this test declares and fills through the same API.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{example_namespaces, hb, text};

const API: &str = "http://127.0.0.1:15672/api";

/// A queue on the default vhost, deleted when dropped; the management API is called through
/// a runtime of its own so that the queue can be deleted in `Drop`.
struct Queue {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
    name: String,
}

impl Queue {
    fn declare() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let queue = Self {
            runtime,
            client: reqwest::Client::new(),
            name: format!(
                "hb-test-http-json-{}-{}",
                std::process::id(),
                fastrand::u32(..)
            ),
        };
        let body = json!({"durable": false, "auto_delete": false});
        let status = queue
            .call(reqwest::Method::PUT, &queue.path(), Some(body))
            .0;
        assert!(status.is_success(), "declare {}: {status}", queue.name);
        queue
    }

    fn path(&self) -> String {
        format!("queues/%2F/{}", self.name)
    }

    fn publish(&self, payload: &str) {
        let body = json!({"properties": {}, "routing_key": self.name, "payload": payload,
                          "payload_encoding": "string"});
        let (status, answer) = self.call(
            reqwest::Method::POST,
            "exchanges/%2F/amq.default/publish",
            Some(body),
        );
        assert!(status.is_success(), "publish: {status}");
        let answer: Value = serde_json::from_slice(&answer).expect("JSON");
        assert_eq!(answer["routed"], true, "{answer}");
    }

    fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (reqwest::StatusCode, Vec<u8>) {
        self.runtime.block_on(async {
            let mut request = self
                .client
                .request(method, format!("{API}/{path}"))
                .basic_auth("guest", Some("guest"));
            if let Some(body) = body {
                request = request
                    .header("content-type", "application/json")
                    .body(body.to_string());
            }
            let response = request.send().await.expect(
                "the management API answers on 127.0.0.1:15672 (scripts/brokers enables it)",
            );
            let status = response.status();
            (status, response.bytes().await.expect("body").to_vec())
        })
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        let (status, _) = self.call(reqwest::Method::DELETE, &self.path(), None);
        if !status.is_success() && !std::thread::panicking() {
            panic!("delete {}: {status}", self.name);
        }
    }
}

/// The samples of one `--once` run of the shipped file, for `queue` (resource `%2F/<queue>`).
/// A run whose pollsters failed gives no samples and its stderr: the management API answers
/// 500 now and then while other tests create and delete queues, and the caller polls again.
fn poll(dir: &std::path::Path, queue: &str) -> (Vec<Value>, String) {
    let ns = dir.join("namespaces");
    let out = hb(
        dir,
        &[
            "--namespaces-dir",
            ns.to_str().expect("utf-8"),
            "--polling-namespaces",
            "central",
            "--once",
            "--format",
            "json",
        ],
    )
    .env_remove("HB_RABBITMQ_PASSWORD")
    .output()
    .expect("hb-polling runs");
    let stderr = text(&out.stderr);
    if !out.status.success() {
        return (Vec::new(), stderr);
    }
    let resource = format!("%2F/{queue}");
    let samples = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON sample"))
        .filter(|s| s["resource_id"] == resource.as_str())
        .collect();
    (samples, stderr)
}

fn volume(samples: &[Value], meter: &str) -> Option<f64> {
    samples
        .iter()
        .find(|s| s["name"] == meter)
        .and_then(|s| s["volume"].as_f64())
}

#[test]
fn shipped_definitions_read_queue_depth_consumers_and_rates() {
    let queue = Queue::declare();
    for i in 0..3 {
        queue.publish(&format!("message {i}"));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let central = dir.path().join("namespaces/central");
    std::fs::create_dir_all(&central).expect("mkdir");
    std::fs::copy(
        example_namespaces().join("central/rabbitmq.yaml"),
        central.join("rabbitmq.yaml"),
    )
    .expect("copy the shipped file");

    // The management statistics are refreshed every few seconds: poll until they show the
    // three messages.
    let deadline = Instant::now() + Duration::from_secs(30);
    let samples = loop {
        let (samples, stderr) = poll(dir.path(), &queue.name);
        // Each meter is its own request: under load one listing can lag the others (a
        // queue not in it yet), so wait until all four meters show the queue.
        let all = [
            "rabbitmq.queue.consumers",
            "rabbitmq.queue.publish.rate",
            "rabbitmq.queue.deliver.rate",
        ]
        .iter()
        .all(|m| volume(&samples, m).is_some());
        if volume(&samples, "rabbitmq.queue.messages") == Some(3.0) && all {
            break samples;
        }
        assert!(
            Instant::now() < deadline,
            "no rabbitmq.queue.messages = 3 for {}: {samples:?}\n{stderr}",
            queue.name
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(volume(&samples, "rabbitmq.queue.consumers"), Some(0.0));
    assert!(volume(&samples, "rabbitmq.queue.publish.rate").is_some_and(|r| r >= 0.0));
    assert_eq!(volume(&samples, "rabbitmq.queue.deliver.rate"), Some(0.0));
    for s in &samples {
        let (meter, unit) = (
            s["name"].as_str().expect("name"),
            s["unit"].as_str().expect("unit"),
        );
        let want = match meter {
            "rabbitmq.queue.messages" => "message",
            "rabbitmq.queue.consumers" => "consumer",
            _ => "message/s",
        };
        assert_eq!((s["type"].as_str(), unit), (Some("gauge"), want), "{s}");
        let m = &s["resource_metadata"];
        assert_eq!(
            (&m["vhost"], &m["queue"]),
            (&json!("/"), &json!(queue.name)),
            "{s}"
        );
        assert_eq!(m["state"], "running", "{s}");
    }
    assert_eq!(samples.len(), 4, "{samples:?}");
}
