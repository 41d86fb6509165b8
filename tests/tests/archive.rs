//! The object-store archive against real stores: a private s3s-fs (`s3://`) and a local
//! directory (`archive+file://`). Batches spanning two hours are written through
//! `ArchivePublisher`, the objects listed independently, and the range read back with
//! `read_range` must give exactly the samples sent.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Timelike, Utc};
use futures_util::TryStreamExt;
use hb_pipeline::publisher::archive::{
    ArchiveError, ArchivePublisher, ArchiveSpec, S3Credentials, read_range,
};
use hb_sample::{Sample, SampleType};
use hb_tests::s3::{ACCESS_KEY, REGION, S3Server, SECRET_KEY};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutOptions, PutPayload};

const PREFIX: &str = "hb/archive";

fn credentials() -> S3Credentials {
    S3Credentials {
        access_key_id: ACCESS_KEY.into(),
        secret_access_key: SECRET_KEY.into(),
        session_token: None,
    }
}

fn s3_spec(server: &S3Server, bucket: &str, writer: &str) -> ArchiveSpec {
    let options = vec![
        ("endpoint".to_owned(), server.endpoint()),
        ("region".to_owned(), REGION.to_owned()),
        ("allow_http".to_owned(), "true".to_owned()),
        ("writer".to_owned(), writer.to_owned()),
    ];
    ArchiveSpec::parse("s3", &format!("{bucket}/{PREFIX}"), options, Path::new("/"))
        .expect("valid s3:// URL")
        .with_credentials(credentials())
}

/// The bucket, read with object_store directly (not through the archive's own code).
fn bucket_store(server: &S3Server, bucket: &str) -> Arc<dyn ObjectStore> {
    let store = AmazonS3Builder::new()
        .with_endpoint(server.endpoint())
        .with_allow_http(true)
        .with_region(REGION)
        .with_bucket_name(bucket)
        .with_access_key_id(ACCESS_KEY)
        .with_secret_access_key(SECRET_KEY)
        .build()
        .expect("S3 client");
    Arc::new(store)
}

async fn keys(store: &dyn ObjectStore) -> Vec<String> {
    let listed: Vec<_> = store.list(None).try_collect().await.expect("list bucket");
    let mut keys: Vec<String> = listed.into_iter().map(|m| m.location.to_string()).collect();
    keys.sort();
    keys
}

/// 10:50 to 11:10 on 2026-11-22 (UTC), nanosecond timestamps.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 10, 50, 0).unwrap() + TimeDelta::nanoseconds(123_456_789)
}

fn sample(minute: i64, volume: f64) -> Sample {
    let t = t0() + TimeDelta::minutes(minute);
    let mut s = Sample::new(
        "disk.device.read.bytes",
        SampleType::Cumulative,
        "B",
        volume,
        format!("host-a/sd{minute}"),
        t,
    )
    .expect("valid sample");
    s.project_id = Some("project-1".into());
    s.monotonic_time = Some(1_000_000_007 * u64::try_from(minute + 1).unwrap());
    s.resource_metadata
        .insert("host".into(), serde_json::json!("host-a"));
    s
}

/// Three batches: 10:50-10:55, 10:58-11:02 (across the hour), 11:05-11:10.
fn batches() -> Vec<Vec<Sample>> {
    let batch = |minutes: &[i64]| -> Vec<Sample> {
        minutes
            .iter()
            .map(|&m| sample(m, m as f64 * 1000.5 + 0.25))
            .collect()
    };
    vec![
        batch(&[0, 1, 2, 5]),
        batch(&[8, 9, 10, 12]),
        batch(&[15, 17, 20]),
    ]
}

/// What a reader must return for the whole range: hour 10 before hour 11, each hour's objects
/// in write order, each object's samples in batch order.
fn expected(batches: &[Vec<Sample>]) -> Vec<Sample> {
    let all: Vec<&Sample> = batches.iter().flatten().collect();
    let hour = |h| all.iter().filter(move |s| s.timestamp.hour() == h);
    hour(10).chain(hour(11)).map(|s| (*s).clone()).collect()
}

fn assert_same(got: &[Sample], want: &[Sample]) {
    let ids = |s: &[Sample]| s.iter().map(|s| s.id).collect::<Vec<_>>();
    assert_eq!(ids(got), ids(want), "ids, in order");
    let values = |s: &[Sample]| {
        s.iter()
            .map(|s| (s.volume(), s.timestamp))
            .collect::<Vec<_>>()
    };
    assert_eq!(values(got), values(want), "volumes and timestamps");
    assert_eq!(got, want, "every field");
}

/// Checks `key` is `PREFIX/samples/dt=2026-11-22/hour=HH/WRITER-<17 digits>-<10 digits>.jsonl.gz`
/// and returns HH.
fn check_layout(key: &str, prefix: &str, writer: &str) -> u32 {
    let rest = key
        .strip_prefix(prefix)
        .and_then(|k| k.strip_prefix("samples/dt=2026-11-22/hour="))
        .unwrap_or_else(|| panic!("{key} is not below {prefix}samples/dt=2026-11-22/"));
    let (hour, name) = rest.split_once('/').expect("hour=HH/NAME");
    let seq = name
        .strip_prefix(&format!("{writer}-"))
        .and_then(|n| n.strip_suffix(".jsonl.gz"))
        .unwrap_or_else(|| panic!("{name} is not {writer}-SEQ.jsonl.gz"));
    let (start, batch) = seq.split_once('-').expect("START-BATCH");
    assert!(
        start.len() == 17 && batch.len() == 10,
        "{name}: zero-padded sequence"
    );
    assert!(
        start
            .chars()
            .chain(batch.chars())
            .all(|c| c.is_ascii_digit()),
        "{name}"
    );
    hour.parse().expect("two-digit hour")
}

async fn publish_all(publisher: &ArchivePublisher, batches: &[Vec<Sample>]) {
    for batch in batches {
        publisher.publish(batch).await.expect("publish");
    }
}

#[tokio::test]
async fn s3_archive_round_trip() {
    let server = S3Server::launch();
    let bucket = server.unique_bucket("archive");
    let spec = s3_spec(&server, &bucket, "collector-a");
    let publisher = ArchivePublisher::open(&spec).expect("open");
    let batches = batches();
    publish_all(&publisher, &batches).await;

    // One object per batch and hour: 10 (batches 1, 2) and 11 (batches 2, 3), in write order.
    let store = bucket_store(&server, &bucket);
    let keys = keys(store.as_ref()).await;
    assert_eq!(keys.len(), 4, "{keys:#?}");
    let hours: Vec<u32> = keys
        .iter()
        .map(|k| check_layout(k, &format!("{PREFIX}/"), "collector-a"))
        .collect();
    assert_eq!(hours, [10, 10, 11, 11]);
    let name = |k: &str| k.rsplit('/').next().unwrap().to_owned();
    assert_eq!(
        name(&keys[1]),
        name(&keys[2]),
        "one batch, one name per hour"
    );
    let raw = store
        .get_opts(&ObjectPath::from(keys[0].as_str()), Default::default())
        .await
        .expect("get")
        .bytes()
        .await
        .expect("body");
    assert_eq!(&raw[..2], &[0x1f, 0x8b], "gzip");

    let all = read_range(
        &spec,
        t0() - TimeDelta::hours(1),
        t0() + TimeDelta::hours(2),
    )
    .await
    .expect("read");
    assert!(all.bad.is_empty(), "{:?}", all.bad);
    assert_eq!(all.objects, 4);
    assert_same(&all.samples, &expected(&batches));

    // A range inside the two hours: [10:55, 11:02) of the sample clock.
    let (from, to) = (t0() + TimeDelta::minutes(5), t0() + TimeDelta::minutes(12));
    let part = read_range(&spec, from, to).await.expect("read");
    let want: Vec<Sample> = expected(&batches)
        .into_iter()
        .filter(|s| s.timestamp >= from && s.timestamp < to)
        .collect();
    assert_eq!(want.len(), 4);
    assert_same(&part.samples, &want);
}

#[tokio::test]
async fn s3_archive_writers_never_overwrite_each_other() {
    let server = S3Server::launch();
    let bucket = server.unique_bucket("writers");
    // Two collectors, and a second publisher of the same writer id in this process: object
    // names still differ.
    let a = ArchivePublisher::open(&s3_spec(&server, &bucket, "collector-a")).expect("open");
    let b = ArchivePublisher::open(&s3_spec(&server, &bucket, "collector-b")).expect("open");
    let a2 = ArchivePublisher::open(&s3_spec(&server, &bucket, "collector-a")).expect("open");
    let batches = batches();
    a.publish(&batches[0]).await.expect("publish");
    b.publish(&batches[0]).await.expect("publish");
    a2.publish(&batches[0]).await.expect("publish");
    let keys = keys(bucket_store(&server, &bucket).as_ref()).await;
    assert_eq!(keys.len(), 3, "{keys:#?}");
    let spec = s3_spec(&server, &bucket, "reader");
    let all = read_range(&spec, t0(), t0() + TimeDelta::hours(1))
        .await
        .expect("read");
    assert_eq!(all.samples.len(), 3 * batches[0].len());
}

#[tokio::test]
async fn s3_archive_reports_a_corrupt_object_and_reads_the_others() {
    let server = S3Server::launch();
    let bucket = server.unique_bucket("corrupt");
    let spec = s3_spec(&server, &bucket, "collector-a");
    let publisher = ArchivePublisher::open(&spec).expect("open");
    let batches = batches();
    publish_all(&publisher, &batches).await;

    let store = bucket_store(&server, &bucket);
    let hour10 = format!("{PREFIX}/samples/dt=2026-11-22/hour=10");
    let put = |key: String, body: Vec<u8>| {
        let store = Arc::clone(&store);
        async move {
            let path = ObjectPath::from(key.as_str());
            store
                .put_opts(&path, PutPayload::from(body), PutOptions::default())
                .await
                .expect("put");
        }
    };
    // Not gzip at all, and plain JSON lines of which one is not a sample.
    put(
        format!("{hour10}/collector-z-broken.jsonl.gz"),
        b"\x00\x01garbage".to_vec(),
    )
    .await;
    let good = serde_json::to_string(&sample(3, 7.5)).unwrap();
    let lines = format!("{good}\n{{\"name\": \"half\"}}\n");
    put(
        format!("{hour10}/collector-z-lines.jsonl"),
        lines.into_bytes(),
    )
    .await;

    let all = read_range(
        &spec,
        t0() - TimeDelta::hours(1),
        t0() + TimeDelta::hours(2),
    )
    .await
    .expect("read");
    assert_eq!(all.objects, 6);
    let bad: Vec<String> = all.bad.iter().map(ToString::to_string).collect();
    assert_eq!(bad.len(), 2, "{bad:#?}");
    let broken = format!("s3://{bucket}/{hour10}/collector-z-broken.jsonl.gz line 1: ");
    assert!(bad[0].starts_with(&broken), "{bad:#?}");
    let half = format!("s3://{bucket}/{hour10}/collector-z-lines.jsonl line 2: not a sample");
    assert!(bad[1].starts_with(&half), "{bad:#?}");
    // Everything else: the published samples, with the good line of the damaged object after
    // the hour's other objects (collector-a-... < collector-z-...).
    let mut want = expected(&batches);
    let at = want.iter().position(|s| s.timestamp.hour() == 11).unwrap();
    let extra: Sample = serde_json::from_str(&good).unwrap();
    want.insert(at, extra);
    assert_same(&all.samples, &want);
}

#[tokio::test]
async fn s3_archive_errors_say_whether_to_retry() {
    let mut server = Some(S3Server::launch());
    let s = server.as_ref().unwrap();
    let bucket = s.unique_bucket("errors");
    let batch = &batches()[0];

    let mut wrong = s3_spec(s, &bucket, "w");
    wrong = wrong.with_credentials(S3Credentials {
        secret_access_key: "not-the-secret".into(),
        ..credentials()
    });
    let err = publish_error(&wrong, batch).await;
    assert!(!err.is_retryable(), "{err}");
    assert!(!err.to_string().contains("not-the-secret"), "{err}");

    // (s3s-fs creates a missing bucket on PUT, unlike S3; its LIST refuses it with 404.)
    let missing = s3_spec(s, "hb-no-such-bucket", "w");
    let err = read_range(&missing, t0(), t0() + TimeDelta::hours(1))
        .await
        .expect_err("no such bucket");
    assert!(!err.is_retryable(), "{err}");
    assert!(
        err.to_string()
            .starts_with("list s3://hb-no-such-bucket/hb/archive/samples/dt=2026-11-22/hour=10"),
        "{err}"
    );

    let spec = s3_spec(s, &bucket, "w");
    drop(server.take()); // killed: nothing listens on the port any more
    let err = publish_error(&spec, batch).await;
    assert!(err.is_retryable(), "{err}");
    assert!(
        err.to_string().starts_with(&format!(
            "put s3://{bucket}/{PREFIX}/samples/dt=2026-11-22/hour=10/w-"
        )),
        "{err}"
    );
}

async fn publish_error(spec: &ArchiveSpec, batch: &[Sample]) -> ArchiveError {
    let publisher = ArchivePublisher::open(spec).expect("open");
    publisher.publish(batch).await.expect_err("refused")
}

#[tokio::test]
async fn file_archive_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = vec![("writer".to_owned(), "collector-f".to_owned())];
    // Relative to the configuration file's directory.
    let spec = ArchiveSpec::parse("archive+file", "archive", options, dir.path()).expect("URL");
    let publisher = ArchivePublisher::open(&spec).expect("open");
    let batches = batches();
    publish_all(&publisher, &batches).await;

    let root = dir.path().join("archive");
    let files = files(&root);
    assert_eq!(files.len(), 4, "{files:#?}");
    let hours: Vec<u32> = files
        .iter()
        .map(|f| check_layout(f, "", "collector-f"))
        .collect();
    assert_eq!(hours, [10, 10, 11, 11]);
    // No staging file of the write-then-rename is left behind.
    assert!(files.iter().all(|f| !f.contains('#')), "{files:#?}");

    let all = read_range(
        &spec,
        t0() - TimeDelta::hours(1),
        t0() + TimeDelta::hours(2),
    )
    .await
    .expect("read");
    assert!(all.bad.is_empty(), "{:?}", all.bad);
    assert_same(&all.samples, &expected(&batches));

    // A corrupt object is reported with its path and skipped.
    let broken = root.join("samples/dt=2026-11-22/hour=11/collector-a-broken.jsonl.gz");
    std::fs::write(&broken, b"garbage").expect("write");
    let all = read_range(
        &spec,
        t0() - TimeDelta::hours(1),
        t0() + TimeDelta::hours(2),
    )
    .await
    .expect("read");
    assert_eq!(all.bad.len(), 1, "{:?}", all.bad);
    assert_eq!(all.bad[0].object, broken.display().to_string());
    assert_eq!(all.bad[0].line, Some(1));
    assert_same(&all.samples, &expected(&batches));
}

/// Every file below `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}
