//! Envelope signing proven against independent implementations (openssl, Python) and tampering.

use std::process::Command;

use hb_sample::{Body, Envelope, EnvelopeError, Metadata, Producer, Sample, SampleType, Secret};
use serde_json::Value;

const SECRET: &str = "correct horse battery staple";

fn envelope() -> Envelope {
    let at = hb_sample::timestamp::parse("2026-11-22T10:00:00.123456789Z").expect("time");
    let mut meta = Metadata::new();
    meta.insert("cpu_number".into(), 4.into());
    meta.insert("host".into(), "host-a".into());
    meta.insert("note".into(), "tab\there, \"quoted\", é".into());
    let cpu = Sample::new("cpu", SampleType::Cumulative, "ns", 120e9, "host-a", at)
        .expect("sample")
        .with_monotonic_time(5_000_000_000)
        .with_metadata(meta);
    let load =
        Sample::new("load.1", SampleType::Gauge, "task", 0.25, "host-a", at).expect("sample");
    let producer = Producer {
        host: "host-a".into(),
        agent_id: "agent-1".into(),
        namespaces: vec!["compute".into()],
    };
    Envelope::samples(producer, 7, vec![cpu, load])
}

fn signed() -> (Envelope, Value) {
    let env = envelope();
    let bytes = env.encode(Some(&Secret::new(SECRET))).expect("encode");
    (env, serde_json::from_slice(&bytes).expect("json"))
}

fn decode(value: &Value, secret: &str) -> Result<Envelope, EnvelopeError> {
    Envelope::decode(
        &serde_json::to_vec(value).expect("json"),
        Some(&Secret::new(secret)),
    )
}

#[test]
fn openssl_computes_the_same_hmac_over_the_canonical_bytes() {
    let (env, wire) = signed();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("canonical.json");
    std::fs::write(&path, env.canonical_bytes().expect("canonical")).expect("write");
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", SECRET, "-r"])
        .arg(&path)
        .output()
        .expect("openssl runs (Debian package openssl)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let openssl_hex = stdout.split_whitespace().next().expect("digest");
    assert_eq!(wire["signature"].as_str(), Some(openssl_hex));
}

#[test]
fn python_reproduces_canonical_form_and_signature_from_the_wire_bytes() {
    let (_, wire) = signed();
    let script = r#"
import hashlib, hmac, json, sys
env = json.loads(sys.stdin.read())
sig = env.pop("signature")
canonical = json.dumps(env, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
mine = hmac.new(sys.argv[1].encode(), canonical, hashlib.sha256).hexdigest()
print(mine == sig, mine)
"#;
    let mut child = Command::new("python3")
        .args(["-c", script, SECRET])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&serde_json::to_vec_pretty(&wire).expect("json"))
        .expect("write");
    let out = child.wait_with_output().expect("python3 finishes");
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    assert!(stdout.starts_with("True "), "python disagrees: {stdout}");
}

#[test]
fn a_signature_in_sorted_position_verifies_but_reformatting_after_signing_does_not() {
    let (env, wire) = signed();
    // What `json.dumps(envelope, sort_keys=True, separators=(",", ":"))` writes: the signature
    // between `sent_at` and `version`.
    let sorted = serde_json::to_vec(&wire).expect("json");
    let back = Envelope::decode(&sorted, Some(&Secret::new(SECRET))).expect("valid");
    assert_eq!(back, env);
    // The signature covers the bytes as sent: whitespace added afterwards changes them.
    let pretty = serde_json::to_vec_pretty(&wire).expect("json");
    assert!(matches!(
        Envelope::decode(&pretty, Some(&Secret::new(SECRET))),
        Err(EnvelopeError::BadSignature)
    ));
    assert_eq!(Envelope::decode(&pretty, None).expect("unsigned use"), env);
}

#[test]
fn limits_refuse_large_messages_before_reading_and_long_payloads_while_reading() {
    use hb_sample::Limits;
    let secret = Secret::new(SECRET);
    let env = envelope();
    let bytes = env.encode(Some(&secret)).expect("encode");
    let tight = Limits {
        max_bytes: bytes.len() - 1,
        max_samples: 100,
    };
    let err = Envelope::decode_within(&bytes, Some(&secret), &tight).expect_err("too large");
    assert_eq!(
        err.to_string(),
        format!(
            "message of {} bytes refused (max_message_bytes is {})",
            bytes.len(),
            bytes.len() - 1
        )
    );
    let one = Limits {
        max_bytes: 1 << 20,
        max_samples: 1,
    };
    for bytes in [
        bytes.clone(),
        env.encode(None).expect("encode"),
        serde_json::to_vec_pretty(&env).expect("general path"),
    ] {
        let secret = bytes.ends_with(b"\"}").then_some(&secret);
        let err = Envelope::decode_within(&bytes, secret, &one).expect_err("too many");
        assert!(
            matches!(err, EnvelopeError::TooManySamples { max: 1 }),
            "{err}"
        );
    }
    let fits = Limits {
        max_bytes: bytes.len(),
        max_samples: 2,
    };
    assert_eq!(
        Envelope::decode_within(&bytes, Some(&secret), &fits).expect("fits"),
        env
    );
}

#[test]
fn tampering_is_rejected() {
    let (_, wire) = signed();

    let mut changed_volume = wire.clone();
    changed_volume["payload"][0]["volume"] = serde_json::json!(121e9);
    assert!(matches!(
        decode(&changed_volume, SECRET),
        Err(EnvelopeError::BadSignature)
    ));

    let mut changed_seq = wire.clone();
    changed_seq["seq"] = 8.into();
    assert!(matches!(
        decode(&changed_seq, SECRET),
        Err(EnvelopeError::BadSignature)
    ));

    let mut changed_producer = wire.clone();
    changed_producer["producer"]["host"] = "host-b".into();
    assert!(matches!(
        decode(&changed_producer, SECRET),
        Err(EnvelopeError::BadSignature)
    ));

    let mut unsigned = wire.clone();
    unsigned
        .as_object_mut()
        .expect("object")
        .remove("signature");
    assert!(matches!(
        decode(&unsigned, SECRET),
        Err(EnvelopeError::MissingSignature)
    ));

    let mut garbage = wire.clone();
    garbage["signature"] = "not hex".into();
    assert!(matches!(
        decode(&garbage, SECRET),
        Err(EnvelopeError::BadSignature)
    ));

    assert!(matches!(
        decode(&wire, "wrong secret"),
        Err(EnvelopeError::BadSignature)
    ));
    decode(&wire, SECRET).expect("the untouched envelope still verifies");
}

#[test]
fn unsigned_envelopes_decode_without_a_secret() {
    let env = envelope();
    let bytes = env.encode(None).expect("encode");
    assert!(!String::from_utf8_lossy(&bytes).contains("signature"));
    assert_eq!(Envelope::decode(&bytes, None).expect("decode"), env);
}

#[test]
fn bad_input_names_what_is_wrong() {
    let err = Envelope::decode(b"{not json", None).unwrap_err();
    assert!(err.to_string().starts_with("malformed envelope: "), "{err}");

    // With a secret, nothing about the content is said before the signature verified.
    let (_, mut wire) = signed();
    wire["version"] = 2.into();
    let err = decode(&wire, SECRET).unwrap_err();
    assert!(matches!(err, EnvelopeError::BadSignature), "{err}");
    let unsigned = |wire: &Value| Envelope::decode(&serde_json::to_vec(wire).expect("json"), None);
    let err = unsigned(&wire).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unsupported envelope version 2 (this build reads version 1)"
    );

    let (_, mut wire) = signed();
    wire.as_object_mut().expect("object").remove("version");
    let err = unsigned(&wire).unwrap_err();
    assert_eq!(
        err.to_string(),
        "malformed envelope: missing field `version`"
    );

    let (_, mut wire) = signed();
    wire["payload"][1]["volume"] = "high".into();
    let err = Envelope::decode(&serde_json::to_vec(&wire).expect("json"), None).unwrap_err();
    assert!(
        err.to_string().contains("invalid type: string \"high\""),
        "{err}"
    );
}

#[test]
fn the_bytes_as_sent_verify_directly_and_any_changed_byte_is_refused() {
    let env = envelope();
    let secret = Secret::new(SECRET);
    let bytes = env.encode(Some(&secret)).expect("encode");
    let text = String::from_utf8(bytes.clone()).expect("utf8");
    assert!(text.ends_with("\"}"), "{text}");
    assert!(
        text.contains(",\"signature\":\""),
        "the signature is the last member: {text}"
    );
    assert_eq!(Envelope::decode(&bytes, Some(&secret)).expect("valid"), env);
    let tampered = text.replacen("\"volume\":0.25", "\"volume\":0.26", 1);
    assert_ne!(tampered, text);
    assert!(matches!(
        Envelope::decode(tampered.as_bytes(), Some(&secret)),
        Err(EnvelopeError::BadSignature)
    ));
    let wrong = Secret::new("another secret");
    assert!(matches!(
        Envelope::decode(&bytes, Some(&wrong)),
        Err(EnvelopeError::BadSignature)
    ));
    let heartbeat = Envelope::heartbeat(
        env.producer.clone(),
        8,
        hb_sample::Heartbeat {
            version: "0.1.0".into(),
            uptime_s: 3,
            interval_s: 10,
            pollsters: vec![],
            spooled: 0,
        },
    );
    let bytes = heartbeat.encode(Some(&secret)).expect("encode");
    assert_eq!(
        Envelope::decode(&bytes, Some(&secret)).expect("valid"),
        heartbeat
    );
}

/// A volume written with more digits than an f64 holds (found by the envelope fuzz target):
/// decoding rounds it to the nearest f64, and that f64 survives any number of re-encodings.
/// Without serde_json's correctly rounded float parsing the shortest form of the first
/// decoding read back one unit in the last place off, so a sample changed on its way.
#[test]
fn volumes_survive_decode_and_re_encode_to_the_bit() {
    let secret = Secret::new("s");
    let mut value = serde_json::to_value(envelope()).expect("value");
    for volume in [
        "1500000000000777777777777777777777777777777777777777777777.0",
        "1.5000000000007777e57",
        "0.30000000000000004",
        "2.2250738585072011e-308",
        "179769313486231570000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    ] {
        let exact: f64 = volume.parse().expect("f64");
        let text = serde_json::to_string(&value).expect("text");
        let at = text.find("\"volume\":").expect("volume") + "\"volume\":".len();
        let end = at + text[at..].find([',', '}']).expect("end of the volume");
        let bytes = format!("{}{volume}{}", &text[..at], &text[end..]).into_bytes();
        let first = Envelope::decode(&bytes, None).expect("decode");
        let Body::Samples(samples) = &first.body else {
            panic!("samples")
        };
        assert_eq!(samples[0].volume().to_bits(), exact.to_bits(), "{volume}");
        for secret in [None, Some(&secret)] {
            let again = first.encode(secret).expect("encode");
            assert_eq!(
                Envelope::decode(&again, secret).expect("decode"),
                first,
                "{volume}"
            );
        }
        value = serde_json::to_value(&first).expect("value");
    }
}
