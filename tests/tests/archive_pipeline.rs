//! The collector into the S3 archive of a real S3-compatible server, then `hb-collector
//! replay` of that archive into a real InfluxDB: the objects decode to exactly the samples sent,
//! and the replay lands the same number of points.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hb_bus::{Outgoing, Transport};
use hb_pipeline::publisher::PublisherSpec;
use hb_pipeline::publisher::archive::{ArchiveSpec, S3Credentials, read_range};
use hb_sample::{Envelope, Sample, SampleType, Secret};
use hb_tests::bus::{Broker, Kind};
use hb_tests::influx::Influxd;
use hb_tests::node::{Node, SECRET, send, wait_until};
use hb_tests::s3::{ACCESS_KEY, REGION, S3Server, SECRET_KEY};

const ENVELOPES: usize = 40;
const PER: usize = 100;

/// Signed envelopes of samples spread over two hours, one series per sample.
fn envelopes(t0: DateTime<Utc>) -> (Vec<Outgoing>, Vec<Sample>) {
    let secret = Secret::new(SECRET);
    let mut all = Vec::new();
    let messages = (0..ENVELOPES)
        .map(|e| {
            let samples: Vec<Sample> = (0..PER)
                .map(|i| {
                    let at = t0 + chrono::Duration::seconds((e * PER + i) as i64 * 2);
                    let resource = format!("host-{e}/dev{i}");
                    Sample::new(
                        "disk.usage",
                        SampleType::Gauge,
                        "B",
                        (e * i) as f64,
                        resource,
                        at,
                    )
                    .expect("sample")
                })
                .collect();
            all.extend(samples.iter().cloned());
            let producer = hb_sample::Producer {
                host: format!("host-{e}"),
                agent_id: format!("host-{e}/test"),
                namespaces: vec!["test".into()],
            };
            let payload = Envelope::samples(producer, e as u64, samples)
                .encode(Some(&secret))
                .expect("encode");
            Outgoing::samples("test", &format!("host-{e}"), (e % 3) as u32, payload)
        })
        .collect();
    (messages, all)
}

#[test]
fn collector_archives_to_s3_and_replay_backfills_influxdb() {
    let server = S3Server::launch();
    let bucket = server.unique_bucket("archive");
    let archive = format!(
        "s3://{bucket}/hb?endpoint={}&region={REGION}&allow_http=true",
        server.endpoint()
    );
    let broker = Broker::start(Kind::Redis);
    let url = broker.direct("");
    let yaml = format!(
        "transport: \"{url}\"\nsecret_file: secret\n\
         sources:\n  - {{name: all, interval: 10, meters: [\"*\"], sinks: [archive]}}\n\
         sinks:\n  - {{name: archive, batch: {{max_events: 1000, timeout: 0.2}}, publishers: [\"{archive}\"]}}\n"
    );
    let env = [
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
    ];
    let mut collector = Node::collector_with_env(&yaml, &env);
    let t0 = "2026-11-22T09:30:00Z".parse::<DateTime<Utc>>().expect("t0");
    let (messages, sent) = envelopes(t0);
    send(&Transport::parse(&url).expect("url"), &messages);
    let acked = wait_until(Duration::from_secs(60), || {
        collector.log().contains(&format!("acked={}", ENVELOPES))
    });
    assert!(collector.term().success(), "{}", collector.log());
    let log = collector.log();
    assert!(
        acked || log.contains(&format!("acked={ENVELOPES}")),
        "not every envelope acknowledged:\n{log}"
    );

    // Read the archive back (the reader lists the hour partitions of the range).
    let spec = match PublisherSpec::parse(&archive, std::path::Path::new("/")).expect("url") {
        PublisherSpec::Archive(spec) => spec,
        other => panic!("{other:?}"),
    };
    let spec: ArchiveSpec = spec.with_credentials(S3Credentials {
        access_key_id: ACCESS_KEY.into(),
        secret_access_key: SECRET_KEY.into(),
        session_token: None,
    });
    let (from, to) = (t0, t0 + chrono::Duration::hours(3));
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let read = runtime
        .block_on(read_range(&spec, from, to))
        .expect("read the archive");
    let by_id = |samples: &[Sample]| -> BTreeMap<String, Sample> {
        samples
            .iter()
            .map(|s| (s.id.to_string(), s.clone()))
            .collect()
    };
    println!(
        "s3 archive: sent {} samples, {} objects, read back {}, unreadable {}",
        sent.len(),
        read.objects,
        read.samples.len(),
        read.bad.len()
    );
    assert!(read.bad.is_empty(), "{:?}", read.bad);
    assert!(read.objects >= 2, "two hour partitions at least");
    assert_eq!(
        by_id(&read.samples),
        by_id(&sent),
        "decoded objects equal the samples sent"
    );

    // Replay the archive into InfluxDB through a sink of another configuration.
    let influx = Influxd::launch();
    let db = format!("replay_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    influx.create_database(&db);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("pipeline.yaml"),
        format!(
            "sources:\n  - {{name: all, interval: 10, meters: [\"*\"], sinks: [influx]}}\n\
             sinks:\n  - {{name: influx, publishers: [\"influxdb://{}?db={db}\"]}}\n",
            influx.host_port()
        ),
    )
    .expect("config");
    let out = Command::new(hb_tests::binary("hb-collector"))
        .current_dir(dir.path())
        .args(["replay", "--archive", &archive, "--sink", "influx"])
        .args(["--from", &from.to_rfc3339(), "--to", &to.to_rfc3339()])
        .envs(env)
        .env("HB_LOG", "info")
        .output()
        .expect("hb-collector replay runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let points = influx.count(&db, "disk.usage");
    println!("replay: {points} points in InfluxDB");
    assert_eq!(points as usize, sent.len(), "{stderr}");
}
