//! TLS with real handshakes (issue 13): each test makes a private CA ([`Pki`]) and starts
//! its own TLS server with a certificate of it — `redis-server --tls-port`, a RabbitMQ node of
//! its own with an ssl listener, `influxd` with `https-enabled`, and `openssl s_server` for
//! Kafka's TLS (no TLS or SASL Kafka broker is installable here: tansu, the Kafka broker the
//! other tests run, has no TLS listener; so the Kafka test checks librdkafka's handshake
//! against the listener, not the Kafka protocol after it).
//!
//! Each shows that certificate verification is on by default (the private CA is not trusted:
//! the connection fails), that `tls_ca` makes it trusted, that the wrong CA still fails, that
//! `tls_insecure=true` skips verification, and that client certificates are presented
//! (`tls_cert` + `tls_key`) where the server demands them.

use std::time::{Duration, Instant};

use hb_bus::{BusError, Outgoing, Producer, Transport};
use hb_pipeline::config::Coordination;
use hb_pipeline::publisher::influx::{InfluxSpec, InfluxWriter};
use hb_tests::influx::Influxd;
use hb_tests::node::{Node, wait_until};
use hb_tests::tls::{Pki, RabbitTls, RedisTls, TlsListener};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn heartbeat() -> Outgoing {
    Outgoing::heartbeat("tls-test-host", b"{\"kind\":\"not-really\"}".to_vec())
}

/// One send through hb's producer for `url`: `Ok` when the broker confirmed it.
fn send_once(url: &str) -> Result<(), BusError> {
    let transport = Transport::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    runtime().block_on(async {
        let producer = Producer::new(&transport)?;
        let result = producer.send(&heartbeat()).await;
        producer.close().await;
        result
    })
}

fn certificate_error(e: &BusError) -> bool {
    let text = e.to_string().to_lowercase();
    text.contains("certificate") || text.contains("unknownissuer") || text.contains("unknown ca")
}

/// Redis: `rediss://` to a server of a private CA that also demands client certificates.
#[test]
fn rediss_trusts_a_private_ca_only_with_tls_ca() {
    let started = Instant::now();
    let pki = Pki::new();
    let redis = RedisTls::start(&pki, Some("S3CRETPW"), true);
    let base = format!("rediss://:S3CRETPW@127.0.0.1:{}/0", redis.port());
    let client = pki.client_options();
    let ca = pki.ca().display().to_string();
    let other = pki.other_ca().display().to_string();

    // Verification on by default: the private CA is not among the public roots.
    let e = send_once(&format!("{base}?{client}")).expect_err("an unknown CA is refused");
    assert!(certificate_error(&e), "not a certificate error: {e}");
    assert!(!e.to_string().contains("S3CRETPW"), "{e}");
    // The wrong CA: refused too.
    let e = send_once(&format!("{base}?tls_ca={other}&{client}")).expect_err("wrong CA");
    assert!(certificate_error(&e), "not a certificate error: {e}");
    // The right CA: verified, and the client certificate presented.
    send_once(&format!("{base}?tls_ca={ca}&{client}")).expect("verified against tls_ca");
    // The right CA without a client certificate: the server refuses the connection.
    send_once(&format!("{base}?tls_ca={ca}")).expect_err("the server demands a client cert");
    // No verification at all.
    send_once(&format!("{base}?tls_insecure=true&{client}")).expect("tls_insecure connects");
    eprintln!("rediss: {:?}", started.elapsed());
}

/// The coordination backend opens its client through the same function as the bus.
#[test]
fn coordination_backend_takes_the_same_tls_options() {
    let pki = Pki::new();
    let redis = RedisTls::start(&pki, None, false);
    let base = format!("rediss://127.0.0.1:{}/0", redis.port());
    let coordinator = |url: String| {
        let config = Coordination {
            backend_url: hb_bus::SecretUrl::new(url),
            group: "tls".to_owned(),
            heartbeat: Duration::from_secs(1),
            timeout: Duration::from_secs(3),
        };
        hb_coordination::Coordinator::in_space(config, "tls-test", "member-1".to_owned())
    };
    let rt = runtime();
    let trusted = coordinator(format!("{base}?tls_ca={}", pki.ca().display())).expect("client");
    rt.block_on(trusted.heartbeat())
        .expect("a heartbeat through rediss:// with tls_ca");
    let untrusted = coordinator(base.clone()).expect("client");
    let e = rt
        .block_on(untrusted.heartbeat())
        .expect_err("the private CA is not trusted by default");
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
    let missing = coordinator(format!("{base}?tls_ca=/nonexistent/ca.pem"))
        .expect_err("a missing CA file is refused when the client is made");
    assert!(
        missing
            .to_string()
            .contains("tls_ca: cannot read /nonexistent/ca.pem"),
        "{missing}"
    );
}

/// `tls_insecure=true` is said loudly at start-up, with the URL's password redacted: the
/// agent binary's log, black box.
#[test]
fn tls_insecure_is_logged_at_start_up_naming_the_transport() {
    let pki = Pki::new();
    let redis = RedisTls::start(&pki, Some("S3CRETPW"), false);
    let url = format!(
        "rediss://:S3CRETPW@127.0.0.1:{}/0?tls_insecure=true",
        redis.port()
    );
    let mut agent = Node::agent(&url, 1);
    let warned = wait_until(Duration::from_secs(30), || {
        agent.log().contains("TLS CERTIFICATE VERIFICATION IS OFF")
            && agent.log().contains("delivered")
    });
    agent.term();
    let log = agent.log();
    assert!(warned, "no warning: {log}");
    let line = log
        .lines()
        .find(|l| l.contains("TLS CERTIFICATE VERIFICATION IS OFF"))
        .expect("the warning");
    assert!(line.contains("WARN"), "{line}");
    assert!(
        line.contains(&format!("rediss://:***@127.0.0.1:{}/0", redis.port())),
        "{line}"
    );
    assert!(!log.contains("S3CRETPW"), "a password in the log: {log}");
}

fn influx_spec(url: &str) -> InfluxSpec {
    let (scheme, rest) = url.split_once("://").expect("scheme://");
    let (target, query) = rest.split_once('?').unwrap_or((rest, ""));
    let options = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    InfluxSpec::parse(scheme, target, options).unwrap_or_else(|e| panic!("{url}: {e}"))
}

/// InfluxDB over https: the publisher's writer against `influxd` with `https-enabled`.
#[test]
fn influxdb_https_trusts_a_private_ca_only_with_tls_ca() {
    let started = Instant::now();
    let pki = Pki::new();
    let mut influx = Influxd::launch();
    influx.create_database("hb");
    influx.stop();
    influx.set_https(Some(pki.server()));
    influx.start();
    let base = format!("influxdb+https://127.0.0.1:{}?db=hb", influx.port());
    let rt = runtime();
    let write = |url: &str, line: &str| {
        let spec = influx_spec(url);
        let writer = InfluxWriter::new(&spec).unwrap_or_else(|e| panic!("{e}"));
        rt.block_on(writer.write(line.as_bytes(), 1))
    };
    let e = write(&base, "tls value=1 1").expect_err("the private CA is not trusted by default");
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
    let other = format!("{base}&tls_ca={}", pki.other_ca().display());
    write(&other, "tls value=2 2").expect_err("the wrong CA");
    let trusted = format!("{base}&tls_ca={}", pki.ca().display());
    write(&trusted, "tls value=3 3").expect("verified against tls_ca");
    let insecure = format!("{base}&tls_insecure=true");
    write(&insecure, "tls value=4 4").expect("tls_insecure");
    influx.stop();
    influx.set_https(None);
    influx.start();
    let rows = influx.rows("hb", "SELECT value FROM tls");
    let values: Vec<f64> = rows.iter().filter_map(|r| r["value"].as_f64()).collect();
    assert_eq!(
        values,
        vec![3.0, 4.0],
        "only the verified and the insecure writes"
    );
    eprintln!("influxdb https: {:?}", started.elapsed());
}

/// Kafka: librdkafka's TLS handshake against a listener of the private CA (the Kafka
/// protocol after it is not served). The listener's log shows what happened: an unknown-CA
/// alert from the client when it does not trust the CA, the client's first Kafka request
/// (ApiVersions, naming `rdkafka`) decrypted when the handshake completed.
#[test]
fn kafka_tls_handshake_verifies_against_tls_ca() {
    let started = Instant::now();
    let pki = Pki::new();
    let attempt = |listener: &TlsListener, query: &str| {
        let url = format!(
            "kafka://127.0.0.1:{}?tls=true&timeout_ms=2000&{query}",
            listener.port()
        );
        let result = send_once(&url);
        assert!(
            result.is_err(),
            "no Kafka broker behind the listener: {url}"
        );
    };

    // The default trust store (librdkafka's probe) does not hold the private CA.
    let listener = TlsListener::start(&pki, false);
    attempt(&listener, "compression=none");
    let log = listener.log();
    assert!(log.contains("unknown ca"), "no unknown-CA alert: {log}");
    assert!(!log.contains("rdkafka"), "a request got through: {log}");
    drop(listener);

    // The wrong CA.
    let listener = TlsListener::start(&pki, false);
    attempt(&listener, &format!("tls_ca={}", pki.other_ca().display()));
    assert!(listener.log().contains("unknown ca"), "{}", listener.log());
    drop(listener);

    // The right CA: the handshake completes and the first request arrives.
    let listener = TlsListener::start(&pki, false);
    attempt(&listener, &format!("tls_ca={}", pki.ca().display()));
    let log = listener.log();
    assert!(
        log.contains("rdkafka"),
        "no request after the handshake: {log}"
    );
    drop(listener);

    // A listener demanding a client certificate: presented with tls_cert + tls_key.
    let listener = TlsListener::start(&pki, true);
    attempt(
        &listener,
        &format!("tls_ca={}&{}", pki.ca().display(), pki.client_options()),
    );
    let log = listener.log();
    assert!(
        log.contains("rdkafka"),
        "no request after mutual TLS: {log}"
    );
    assert!(
        log.contains("hb-client"),
        "the client certificate was not shown: {log}"
    );
    drop(listener);

    // No verification: completes with the untrusted CA.
    let listener = TlsListener::start(&pki, false);
    attempt(&listener, "tls_insecure=true");
    assert!(listener.log().contains("rdkafka"), "{}", listener.log());
    eprintln!("kafka tls: {:?}", started.elapsed());
}

/// RabbitMQ: `amqps://` against a node of the test's own with an ssl listener.
#[test]
fn amqps_trusts_a_private_ca_only_with_tls_ca() {
    let started = Instant::now();
    let pki = Pki::new();
    let rabbit = RabbitTls::start(&pki);
    eprintln!("rabbitmq node up in {:?}", started.elapsed());
    let base = format!(
        "amqps://guest:guest@127.0.0.1:{}/%2f?partitions=1&prefix=tls.",
        rabbit.port()
    );
    let e = send_once(&base).expect_err("the private CA is not trusted by default");
    assert!(certificate_error(&e), "not a certificate error: {e}");
    let e = send_once(&format!("{base}&tls_ca={}", pki.other_ca().display()))
        .expect_err("the wrong CA");
    assert!(certificate_error(&e), "not a certificate error: {e}");
    send_once(&format!(
        "{base}&tls_ca={}&{}",
        pki.ca().display(),
        pki.client_options()
    ))
    .unwrap_or_else(|e| {
        panic!(
            "verified against tls_ca: {e} (node logs in {})",
            rabbit.log_dir().display()
        )
    });
    eprintln!("amqps: {:?}", started.elapsed());
}
