//! Writes the seed corpora made by hb itself: envelopes (hb's encoder, signed and not) for
//! `envelope`, entry files written by `Spool::push` for `spool`. Run from fuzz/:
//! `cargo run --example make_seeds` (the files are committed; rerun when a format changes).

use std::fs;
use std::path::Path;

use chrono::{TimeZone, Utc};
use hb_agent::spool::Spool;
use hb_bus::{Outgoing, Topic};
use hb_sample::{Envelope, Heartbeat, PollsterState, Producer, Sample, SampleType, Secret};

/// The secret of fuzz_targets/envelope.rs.
const SECRET: &[u8] = b"hb-fuzz-secret";

fn main() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let producer = Producer {
        host: "compute-1".into(),
        agent_id: "agent-1".into(),
        namespaces: vec!["compute".into()],
    };
    let at = Utc.timestamp_opt(1_700_000_000, 123_456_789).unwrap();
    let mut cpu = Sample::new("cpu", SampleType::Cumulative, "ns", 1.5e12, "compute-1", at)
        .unwrap()
        .with_monotonic_time(42);
    cpu.resource_metadata
        .insert("host".into(), "compute-1".into());
    cpu.resource_metadata.insert("vcpus".into(), 4.into());
    let mut disk = Sample::new(
        "disk.device.read.bytes",
        SampleType::Delta,
        "B",
        0.25,
        "vm-1/vda",
        at,
    )
    .unwrap();
    disk.project_id = Some("p1".into());
    disk.user_id = Some("u1".into());
    let mut samples = Envelope::samples(producer.clone(), 7, vec![cpu, disk]);
    samples.sent_at = at;
    let mut heartbeat = Envelope::heartbeat(
        producer,
        8,
        Heartbeat {
            version: "0.1.0".into(),
            uptime_s: 3600,
            interval_s: 30,
            pollsters: vec![PollsterState {
                namespace: "compute".into(),
                name: "cpu".into(),
                failures_in_a_row: 0,
            }],
            spooled: 2,
        },
    );
    heartbeat.sent_at = at;
    let secret = Secret::new(SECRET);
    let dir = corpus.join("envelope");
    fs::create_dir_all(&dir).unwrap();
    for (name, envelope) in [("samples", &samples), ("heartbeat", &heartbeat)] {
        // First byte: bit 0 set decodes with the secret.
        let mut signed = vec![1];
        signed.extend(envelope.encode(Some(&secret)).unwrap());
        fs::write(dir.join(format!("{name}-signed")), signed).unwrap();
        let mut plain = vec![0];
        plain.extend(envelope.encode(None).unwrap());
        fs::write(dir.join(format!("{name}-unsigned")), plain).unwrap();
    }

    let dir = corpus.join("spool");
    fs::create_dir_all(&dir).unwrap();
    let spool_dir = std::env::temp_dir().join(format!("hb-make-seeds-{}", std::process::id()));
    let _ = fs::remove_dir_all(&spool_dir);
    let mut spool = Spool::open(&spool_dir, 1 << 20).unwrap();
    let messages = [
        (
            "samples",
            "samples.compute",
            Some(3),
            samples.encode(Some(&secret)).unwrap(),
        ),
        (
            "heartbeat",
            "heartbeat.compute-1",
            None,
            heartbeat.encode(None).unwrap(),
        ),
    ];
    for (i, (name, routing_key, partition, payload)) in messages.into_iter().enumerate() {
        spool
            .push(&Outgoing {
                topic: Topic::Samples,
                routing_key: routing_key.into(),
                key: "compute-1".into(),
                partition,
                payload,
            })
            .unwrap();
        let file = fs::read(spool_dir.join(format!("{i:020}.env"))).unwrap();
        // First byte 0: the file as is; 1: the body, given a valid header by the target.
        let mut raw = vec![0];
        raw.extend_from_slice(&file);
        fs::write(dir.join(format!("{name}-entry")), raw).unwrap();
        let mut body = vec![1];
        body.extend_from_slice(&file[16..]);
        fs::write(dir.join(format!("{name}-body")), body).unwrap();
    }
    fs::remove_dir_all(&spool_dir).unwrap();
}
