//! The InfluxDB publisher's writer against real servers: a private InfluxDB 1.x (`influxd`)
//! for the v1 API and a private VictoriaMetrics for the v2 API, each started by the test that
//! uses it (`scripts/influxdb` installs both; a missing binary fails the test with that hint).

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use hb_pipeline::publisher::influx::{Encoder, InfluxError, InfluxSpec, InfluxWriter, Written};
use hb_sample::{Sample, SampleType};
use hb_tests::influx::{ADMIN, Influxd, InfluxdOptions, VictoriaMetrics, series};
use serde_json::{Map, Value, json};

fn spec(url: &str) -> InfluxSpec {
    let (scheme, rest) = url.split_once("://").expect("scheme://");
    let (target, query) = rest.split_once('?').unwrap_or((rest, ""));
    let options = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    InfluxSpec::parse(scheme, target, options).unwrap_or_else(|e| panic!("{url}: {e}"))
}

/// A writer whose secrets come from `secrets` instead of the environment.
fn writer(url: &str, secrets: &[(&str, &str)]) -> (InfluxWriter, Encoder) {
    let spec = spec(url);
    let secrets: Vec<(String, String)> = secrets
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let writer = InfluxWriter::with_env(&spec, |var| {
        secrets
            .iter()
            .find(|(k, _)| k == var)
            .map(|(_, v)| v.clone())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    (writer, spec.encoder())
}

fn encode(encoder: &Encoder, samples: &[Sample]) -> (Vec<u8>, usize) {
    let mut body = Vec::new();
    let encoded = encoder.encode(samples, &mut body);
    assert!(encoded.refused.is_empty(), "{:?}", encoded.refused);
    (body, encoded.lines)
}

async fn write(
    writer: &InfluxWriter,
    encoder: &Encoder,
    samples: &[Sample],
) -> Result<Written, InfluxError> {
    let (body, lines) = encode(encoder, samples);
    writer.write(&body, lines).await
}

/// A time InfluxDB and VictoriaMetrics both keep (recent, in the past), with nanoseconds.
fn now() -> DateTime<Utc> {
    let now = Utc::now();
    Utc.timestamp_opt(now.timestamp() - 1, 123_456_789).unwrap()
}

fn sample(name: &str, volume: f64, resource: &str, at: DateTime<Utc>) -> Sample {
    Sample::new(name, SampleType::Gauge, "B", volume, resource, at).expect("sample")
}

fn meta(value: Value) -> Map<String, Value> {
    value.as_object().expect("object").clone()
}

fn nanos(at: DateTime<Utc>) -> i64 {
    at.timestamp_nanos_opt().expect("in range")
}

type Tags = BTreeMap<String, String>;
type Row = Map<String, Value>;

fn string_map(map: &Map<String, Value>) -> BTreeMap<String, String> {
    map.iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect()
}

/// Names, tag keys and tag values holding every character line protocol escapes, at the
/// start, middle and end, go through InfluxDB 1.x and come back exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escaping_round_trips_through_influxdb() {
    let server = Influxd::launch();
    server.create_database("esc");
    // Metadata keys written as tags, themselves full of specials.
    // (`tags=` is comma-separated and trimmed: keys with commas or edge spaces cannot be listed.)
    let keys = [
        "k space", "k=equals", "k\"quote", "k\\back", "=k", "k=", "k\\=be", "k\\ bs", "\"k\"",
    ];
    let url = format!(
        "influxdb://{}?db=esc&tags={}",
        server.host_port(),
        form_urlencoded::byte_serialize(keys.join(",").as_bytes()).collect::<String>()
    );
    let (writer, encoder) = writer(&url, &[]);
    // InfluxDB 1.x mangles a measurement with a backslash right before `,`, space, `=` or `"`
    // (documented in `line::Backslash`), so names put backslashes elsewhere.
    let names = [
        "m,comma",
        "m space",
        "m=equals",
        "m\"quote",
        "m\\back",
        ",lead",
        " lead",
        "=lead",
        "\"lead",
        "\\lead",
        "trail,",
        "trail ",
        "trail=",
        "trail\"",
        "all ,=\"\\x mixed",
    ];
    let values = [
        "v,comma",
        "v space",
        "v=equals",
        "\"quoted\"",
        "v\\back",
        "v\\,bc",
        "v\\ bs",
        "v\\=be",
        ",= \"\\x",
        " ",
        "=",
        ",",
        "\\\\double",
    ];
    let at = now();
    let mut samples = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let mut s = sample(name, i as f64 + 0.5, values[i % values.len()], at);
        s.project_id = Some(values[(i + 1) % values.len()].to_owned());
        s.user_id = Some(values[(i + 2) % values.len()].to_owned());
        let mut m = Map::new();
        m.insert("host".into(), json!(values[(i + 3) % values.len()]));
        for (j, key) in keys.iter().enumerate() {
            m.insert((*key).to_owned(), json!(values[(i + j + 4) % values.len()]));
        }
        m.insert("not_a_tag".into(), json!("never written"));
        s.resource_metadata = m;
        samples.push(s);
    }
    // What the encoder changes on purpose: newlines become spaces, trailing backslashes go.
    let mut changed = sample("newline\nname", 99.0, "C:\\dir\\", at);
    changed.project_id = Some("two\nlines".into());
    samples.push(changed);

    let written = write(&writer, &encoder, &samples).await.expect("write");
    assert_eq!(written.written, samples.len());
    assert!(written.rejected.is_empty(), "{:?}", written.rejected);

    let result = server.query("esc", "SELECT * FROM /.*/ GROUP BY *");
    let mut got: BTreeMap<String, (Tags, Vec<Row>)> = series(&result)
        .into_iter()
        .map(|s| (s.name.clone(), (string_map(&s.tags), s.rows)))
        .collect();
    for (i, s) in samples.iter().enumerate().take(names.len()) {
        let (tags, rows) = got
            .remove(&s.name)
            .unwrap_or_else(|| panic!("measurement {:?} not found in {result}", s.name));
        let mut want = BTreeMap::new();
        want.insert("resource_id".to_owned(), s.resource_id.clone());
        want.insert("project_id".to_owned(), s.project_id.clone().unwrap());
        want.insert("user_id".to_owned(), s.user_id.clone().unwrap());
        for (k, v) in &s.resource_metadata {
            if *k != "not_a_tag" {
                want.insert(k.clone(), v.as_str().unwrap().to_owned());
            }
        }
        assert_eq!(tags, want, "tags of {:?}", s.name);
        assert_eq!(rows.len(), 1, "{:?}", s.name);
        assert_eq!(rows[0]["value"].as_f64(), Some(i as f64 + 0.5));
        assert_eq!(rows[0]["time"], json!(nanos(at)));
    }
    let (tags, rows) = got.remove("newline name").expect("newline became a space");
    assert_eq!(tags["resource_id"], "C:\\dir");
    assert_eq!(tags["project_id"], "two lines");
    assert_eq!(rows[0]["value"].as_f64(), Some(99.0));
    assert!(got.is_empty(), "unexpected series: {got:?}");
}

/// InfluxDB 1.x refuses the lines of a measurement whose `value` field is already a string
/// (and lines it cannot parse): exactly those come back in `rejected`, the rest is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_writes_name_the_refused_lines() {
    let server = Influxd::launch();
    server.create_database("pw");
    // Field types are per shard: the string point goes in the same shard (same time).
    let at = now();
    let seed = format!("conflict value=\"text\" {}\n", nanos(at));
    assert_eq!(server.write_raw("pw", &seed).status, 204);
    let (writer, encoder) = writer(&format!("influxdb://{}?db=pw", server.host_port()), &[]);

    let mut samples = Vec::new();
    for i in 0..40 {
        let name = if i % 8 == 3 { "conflict" } else { "fine" };
        samples.push(sample(name, f64::from(i), &format!("r{i}"), at));
    }
    let (body, lines) = encode(&encoder, &samples);
    let expected: Vec<String> = String::from_utf8(body.clone())
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("conflict,"))
        .map(str::to_owned)
        .collect();
    assert_eq!(expected.len(), 5);
    let written = writer.write(&body, lines).await.expect("write");
    eprintln!(
        "field type conflict: {:?}, {} requests",
        written.rejected.first(),
        written.requests
    );
    assert!(written.requests <= 1 + 2 * 5 * 6, "bisection is bounded");
    let mut rejected: Vec<String> = written.rejected.iter().map(|r| r.line.clone()).collect();
    rejected.sort();
    let mut expected_sorted = expected.clone();
    expected_sorted.sort();
    assert_eq!(rejected, expected_sorted);
    for r in &written.rejected {
        assert!(r.reason.contains("field type conflict"), "{}", r.reason);
        assert!(!r.reason.contains("dropped="), "{}", r.reason);
    }
    assert_eq!(written.written, 35);
    let count = server.rows("pw", "SELECT COUNT(value) FROM fine");
    assert_eq!(count[0]["count"], json!(35));
    let conflict = server.rows("pw", "SELECT * FROM conflict");
    assert_eq!(
        conflict.len(),
        1,
        "only the seeded string point: {conflict:?}"
    );

    // Lines the server cannot parse are named by the server itself.
    let more: Vec<Sample> = (0..6)
        .map(|i| sample("more", f64::from(i), &format!("m{i}"), at))
        .collect();
    let (mut body, lines) = encode(&encoder, &more);
    body.extend_from_slice(b"garbage line\n");
    let written = writer.write(&body, lines + 1).await.expect("write");
    eprintln!("unparsable line: {:?}", written.rejected);
    assert_eq!(written.rejected.len(), 1);
    assert_eq!(written.rejected[0].line, "garbage line");
    assert_eq!(written.rejected[0].reason, "invalid field format");
    assert_eq!(written.written, 6);
    assert_eq!(
        written.requests, 1,
        "the rest was confirmed written (dropped=0)"
    );
    let count = server.rows("pw", "SELECT COUNT(value) FROM more");
    assert_eq!(count[0]["count"], json!(6));

    // A whole batch refused: every line comes back, in one request's worth of answer.
    let all: Vec<Sample> = (0..3)
        .map(|i| sample("conflict", f64::from(i), "x", at))
        .collect();
    let written = write(&writer, &encoder, &all).await.expect("write");
    assert_eq!(written.rejected.len(), 3);
    assert_eq!(written.written, 0);
    assert_eq!(written.requests, 1, "dropped=3 of 3 needs no bisection");
}

/// A batch above the server's `max-body-size` is split until every part fits; a single line
/// that can never fit is rejected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_large_batches_are_split() {
    let server = Influxd::launch_with(InfluxdOptions {
        max_body_size: 2_000,
        ..InfluxdOptions::default()
    });
    server.create_database("big");
    let url = format!("influxdb://{}?db=big&gzip=false", server.host_port());
    let (writer, encoder) = writer(&url, &[]);
    let at = now();
    let mut samples: Vec<Sample> = (0..200)
        .map(|i| sample("split", f64::from(i), &format!("resource-{i:04}"), at))
        .collect();
    samples.push(sample("split", 1.0, &"x".repeat(3_000), at));
    let written = write(&writer, &encoder, &samples).await.expect("write");
    assert_eq!(written.written, 200);
    assert_eq!(written.rejected.len(), 1);
    assert!(written.rejected[0].line.contains(&"x".repeat(3_000)));
    assert!(
        written.rejected[0].reason.contains("maximum request size"),
        "{}",
        written.rejected[0].reason
    );
    let count = server.rows("big", "SELECT COUNT(value) FROM split");
    assert_eq!(count[0]["count"], json!(200));
}

/// Missing, wrong or insufficient credentials are `Unauthorized`, naming the URL and never
/// the secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_are_unauthorized() {
    let server = Influxd::launch_with(InfluxdOptions {
        auth: true,
        ..InfluxdOptions::default()
    });
    server.create_database("secure");
    server.query("", "CREATE USER reader WITH PASSWORD 'reader-password'");
    server.query("", "GRANT READ ON secure TO reader");
    let host = server.host_port();
    let samples = [sample("auth", 1.0, "r", now())];

    let cases: [(String, &str, u16); 3] = [
        (format!("influxdb://{host}?db=secure"), "", 401),
        (
            format!("influxdb://{host}?db=secure&user=admin&password_env=PW"),
            "wrong-password",
            401,
        ),
        (
            format!("influxdb://{host}?db=secure&user=reader&password_env=PW"),
            "reader-password",
            403,
        ),
    ];
    for (url, password, want_status) in cases {
        let (writer, encoder) = writer(&url, &[("PW", password)]);
        let error = write(&writer, &encoder, &samples).await.unwrap_err();
        eprintln!("{want_status}: {error}");
        match &error {
            InfluxError::Unauthorized { url, status, .. } => {
                assert_eq!(*status, want_status);
                assert_eq!(url, writer.url());
            }
            other => panic!("{url}: expected Unauthorized, got {other:?}"),
        }
        assert!(!error.is_retryable());
        let text = error.to_string();
        assert!(
            text.contains(&format!("http://{host}/write?db=secure")),
            "{text}"
        );
        if !password.is_empty() {
            assert!(!text.contains(password), "{text}");
        }
    }

    let url = format!("influxdb://{host}?db=secure&user=admin&password_env=PW");
    let (writer, encoder) = writer(&url, &[("PW", ADMIN.1)]);
    let written = write(&writer, &encoder, &samples)
        .await
        .expect("admin writes");
    assert_eq!(written.written, 1);
}

/// A stopped server is `Retryable`; the same instance, restarted on its port and data, takes
/// writes again and still has the earlier ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_is_retryable() {
    let mut server = Influxd::launch();
    server.create_database("outage");
    let url = format!(
        "influxdb://{}?db=outage&timeout_ms=3000",
        server.host_port()
    );
    let (writer, encoder) = writer(&url, &[]);
    let at = now();
    let first = [sample("outage", 1.0, "before", at)];
    write(&writer, &encoder, &first)
        .await
        .expect("before the stop");

    server.stop();
    let second = [sample("outage", 2.0, "during", at)];
    let error = write(&writer, &encoder, &second).await.unwrap_err();
    eprintln!("stopped: {error}");
    assert!(error.is_retryable(), "{error:?}");
    match &error {
        InfluxError::Retryable {
            retry_after,
            reason,
        } => {
            assert_eq!(*retry_after, None);
            assert!(reason.contains(writer.url()), "{reason}");
        }
        other => panic!("{other:?}"),
    }

    server.start();
    write(&writer, &encoder, &second)
        .await
        .expect("after the restart");
    let rows = server.rows("outage", "SELECT * FROM outage");
    let resources: Vec<&str> = rows
        .iter()
        .map(|r| r["resource_id"].as_str().unwrap())
        .collect();
    assert_eq!(resources.len(), 2, "{rows:?}");
    assert!(resources.contains(&"before") && resources.contains(&"during"));
}

/// The v2 API (`influxdb2://`, token header, gzip) against VictoriaMetrics: the points land
/// with their tags, values and (millisecond) timestamps; with `backslash=escape` even names
/// with backslashes round-trip there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_writes_land_in_victoria_metrics() {
    let server = VictoriaMetrics::launch();
    let url = format!(
        "influxdb2://{}?org=hb&bucket=samples&token_env=HB_TEST_TOKEN&tags=flavor&\
         backslash=escape&timeout_ms=5000",
        server.host_port()
    );
    let (writer, encoder) = writer(&url, &[("HB_TEST_TOKEN", "any-token")]);
    let at = now();
    let mut samples = Vec::new();
    for i in 0..50 {
        let mut s = sample("hb_v2.cpu", f64::from(i) / 4.0, &format!("vm-{i}"), at);
        s.project_id = Some("p1".into());
        s.resource_metadata = meta(json!({"flavor": "m1.small", "host": "compute-1", "x": "no"}));
        samples.push(s);
    }
    let odd = ["hb_v2,odd name=\\", "hb_v2\\\\two"];
    for name in odd {
        samples.push(sample(name, 7.0, "C:\\dir\\ ,=", at));
    }
    let written = write(&writer, &encoder, &samples).await.expect("write");
    assert_eq!(written.written, samples.len());
    assert!(written.rejected.is_empty());

    let found = server.export_at_least(r#"{__name__="hb_v2.cpu_value"}"#, 50);
    assert_eq!(found.len(), 50, "{found:?}");
    let ms = nanos(at) / 1_000_000;
    for series in &found {
        let labels = string_map(series["metric"].as_object().unwrap());
        let i: u32 = labels["resource_id"]
            .trim_start_matches("vm-")
            .parse()
            .unwrap();
        let want: BTreeMap<String, String> = [
            ("__name__", "hb_v2.cpu_value".to_owned()),
            ("resource_id", format!("vm-{i}")),
            ("project_id", "p1".to_owned()),
            ("host", "compute-1".to_owned()),
            ("flavor", "m1.small".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        assert_eq!(labels, want);
        assert_eq!(series["values"][0].as_f64(), Some(f64::from(i) / 4.0));
        assert_eq!(series["values"].as_array().map(Vec::len), Some(1));
        assert_eq!(series["timestamps"], json!([ms]));
    }
    // Queries see new points a moment after the export API does (seen empty once in CI under
    // load): ask again for a few seconds.
    let counted = || server.query(r#"count({__name__="hb_v2.cpu_value", flavor="m1.small"})"#);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let mut count = counted();
    while count["data"]["result"][0]["value"][1] != "50" && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        count = counted();
    }
    assert_eq!(count["data"]["result"][0]["value"][1], "50", "{count}");
    for name in odd {
        let selector = format!("{{__name__={}}}", json!(format!("{name}_value")));
        let found = server.export_at_least(&selector, 1);
        assert_eq!(found.len(), 1, "{name:?}: {found:?}");
        assert_eq!(found[0]["metric"]["resource_id"], "C:\\dir\\ ,=");
    }
    // A stopped VictoriaMetrics is retryable too (connection refused).
    drop(server);
    let error = write(&writer, &encoder, &samples[..1]).await.unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
}
