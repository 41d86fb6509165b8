//! Decoding notifications: every shape OpenStack publishes, and every way bytes are refused.

use chrono::{DateTime, Utc};
use hb_notification::Notification;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const PLAIN: &str = r#"{
  "message_id": "m-1",
  "event_type": "compute.instance.create.end",
  "publisher_id": "compute.host-1",
  "priority": "INFO",
  "timestamp": "2026-11-22 10:00:00.123456",
  "payload": {"instance_id": "i-1", "memory_mb": 512},
  "_context_request_id": "req-1",
  "_context_user_id": "u-1",
  "_context_project_id": "p-1",
  "_context_roles": ["member"]
}"#;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("valid")
        .with_timezone(&Utc)
}

fn error(bytes: &str) -> String {
    Notification::decode(bytes.as_bytes())
        .expect_err(bytes)
        .to_string()
}

#[test]
fn the_plain_object_with_flattened_context() {
    let n = Notification::decode(PLAIN.as_bytes()).expect("decodes");
    assert_eq!(n.message_id(), "m-1");
    assert_eq!(n.event_type(), "compute.instance.create.end");
    assert_eq!(n.publisher_id(), Some("compute.host-1"));
    assert_eq!(n.priority(), Some("INFO"));
    assert_eq!(n.timestamp(), at("2026-11-22T10:00:00.123456Z"));
    assert_eq!(
        Value::Object(n.context().clone()),
        json!({"request_id": "req-1", "user_id": "u-1", "project_id": "p-1", "roles": ["member"]})
    );
    assert_eq!(
        (n.project_id(), n.user_id(), n.request_id()),
        (Some("p-1"), Some("u-1"), Some("req-1"))
    );
    assert_eq!(n.document()["payload"]["memory_mb"], json!(512));
    assert_eq!(n.document()["ctxt"]["user_id"], json!("u-1"));
}

#[test]
fn the_oslo_v2_envelope_decodes_to_the_same_notification() {
    let wrapped = json!({"oslo.version": "2.0", "oslo.message": PLAIN}).to_string();
    let plain = Notification::decode(PLAIN.as_bytes()).expect("plain");
    let unwrapped = Notification::decode(wrapped.as_bytes()).expect("wrapped");
    assert_eq!(unwrapped, plain);
}

#[test]
fn the_kafka_driver_shape_brings_its_context() {
    let message: Value = serde_json::from_str(PLAIN).expect("json");
    let mut message = message.as_object().expect("object").clone();
    message.retain(|k, _| !k.starts_with("_context_"));
    let kafka = json!({"message": message, "context": {"request_id": "req-k", "user": "u-k", "tenant": "p-k"}});
    let n = Notification::decode(kafka.to_string().as_bytes()).expect("kafka");
    assert_eq!(n.event_type(), "compute.instance.create.end");
    assert_eq!(
        (n.project_id(), n.user_id(), n.request_id()),
        (Some("p-k"), Some("u-k"), Some("req-k"))
    );
    // The message may also travel as JSON text, and hold an oslo envelope.
    let text = json!({"message": json!({"oslo.version": "2.0", "oslo.message": PLAIN}).to_string(), "context": {}});
    let n = Notification::decode(text.to_string().as_bytes()).expect("kafka text");
    assert_eq!(n.message_id(), "m-1");
    assert_eq!(n.request_id(), Some("req-1"));
}

#[test]
fn context_objects_merge_over_flattened_keys() {
    let n = Notification::decode(
        br#"{"event_type": "x", "_context_user_id": "flat", "_context_request_id": "r-flat",
             "context": {"user_id": "from-context", "tenant_id": "t-1"},
             "ctxt": {"user_id": "from-ctxt"}}"#,
    )
    .expect("decodes");
    assert_eq!(n.user_id(), Some("from-ctxt"));
    assert_eq!(n.request_id(), Some("r-flat"));
    assert_eq!(n.project_id(), Some("t-1"));
    assert_eq!(n.context().len(), 3);
}

#[test]
fn timestamps_in_openstack_and_rfc_3339_shapes() {
    for (text, want) in [
        ("2026-11-22 10:00:00.123456", "2026-11-22T10:00:00.123456Z"),
        ("2026-11-22 10:00:00", "2026-11-22T10:00:00Z"),
        ("2026-11-22T10:00:00.5Z", "2026-11-22T10:00:00.5Z"),
        ("2026-11-22T12:00:00+02:00", "2026-11-22T10:00:00Z"),
    ] {
        let bytes = json!({"event_type": "x", "timestamp": text}).to_string();
        let n = Notification::decode(bytes.as_bytes()).expect(text);
        assert_eq!(n.timestamp(), at(want), "{text}");
    }
    let before = Utc::now();
    let n = Notification::decode(br#"{"event_type": "x"}"#).expect("no timestamp");
    assert!(n.timestamp() >= before && n.timestamp() <= Utc::now());
}

#[test]
fn a_missing_message_id_is_derived_from_the_bytes() {
    let bytes = br#"{"event_type": "image.upload", "payload": {"id": "img-1"}}"#;
    let n = Notification::decode(bytes).expect("decodes");
    let digest = Sha256::digest(bytes);
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    let want = uuid::Builder::from_custom_bytes(first)
        .into_uuid()
        .to_string();
    assert_eq!(n.message_id(), want);
    assert_eq!(n.document()["message_id"], json!(want));
    assert_eq!(
        Notification::decode(bytes).expect("again").message_id(),
        want
    );
    let other = br#"{"event_type": "image.upload", "payload": {"id": "img-2"}}"#;
    assert_ne!(
        Notification::decode(other).expect("other").message_id(),
        want
    );
}

#[test]
fn refusals_say_what_is_wrong() {
    for (bytes, want) in [
        (
            "",
            "invalid json: EOF while parsing a value at line 1 column 0",
        ),
        (
            "{\"event_type\": \"x\",\n  oops}",
            "invalid json: key must be a string at line 2 column 3",
        ),
        (
            "[1, 2]",
            "a notification must be a json object, got an array",
        ),
        ("{\"payload\": {}}", "missing `event_type`"),
        ("{\"event_type\": null}", "missing `event_type`"),
        (
            "{\"event_type\": \"\"}",
            "`event_type` must be a non-empty string, got \"\"",
        ),
        (
            "{\"event_type\": 12}",
            "`event_type` must be a non-empty string, got 12",
        ),
        (
            "{\"event_type\": \"x\", \"message_id\": {}}",
            "`message_id` must be a string, got {}",
        ),
        (
            "{\"event_type\": \"x\", \"timestamp\": \"yesterday\"}",
            "invalid `timestamp` \"yesterday\" (expected rfc 3339 or `yyyy-mm-dd hh:mm:ss[.ffffff]` in utc)",
        ),
        (
            "{\"event_type\": \"x\", \"timestamp\": 1732269600}",
            "invalid `timestamp` 1732269600 (expected rfc 3339 or `yyyy-mm-dd hh:mm:ss[.ffffff]` in utc)",
        ),
        (
            "{\"oslo.version\": \"2.0\", \"oslo.message\": {\"event_type\": \"x\"}}",
            "`oslo.message` must be a string holding the notification as json, got an object",
        ),
        (
            "{\"oslo.version\": \"2.0\", \"oslo.message\": \"{nope\"}",
            "`oslo.message` is not valid json: key must be a string at line 1 column 2",
        ),
        (
            "{\"oslo.message\": \"[]\"}",
            "a notification must be a json object, got an array",
        ),
        (
            "{\"event_type\": \"x\", \"ctxt\": [1]}",
            "`ctxt` must be a json object, got an array",
        ),
        (
            "{\"message\": {\"payload\": {}}, \"context\": {}}",
            "missing `event_type`",
        ),
    ] {
        assert_eq!(error(bytes), want, "{bytes}");
    }
}
