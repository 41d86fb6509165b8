//! Transport URLs: defaults, options, redaction, refusals.

use std::time::Duration;

use hb_bus::{Topic, Transport};

#[test]
fn rabbit_defaults_and_names() {
    let Transport::Rabbit(spec) =
        Transport::parse("rabbit://guest:guest@127.0.0.1:5672/%2f").expect("valid")
    else {
        panic!("rabbit");
    };
    assert_eq!(spec.uri.expose(), "amqp://guest:guest@127.0.0.1:5672/%2f");
    assert_eq!(spec.exchange, "hb");
    assert_eq!((spec.common.batch, spec.common.prefetch), (100, 100));
    assert_eq!(spec.common.name(Topic::Samples), "hb.samples");
    assert_eq!(spec.common.name(Topic::Dead), "hb.dead");
    let amqps =
        Transport::parse("amqps://u:p@mq/prod?exchange=telemetry&batch=500").expect("valid");
    assert_eq!(
        amqps.to_string(),
        "amqps://u:***@mq/prod?exchange=telemetry&batch=500"
    );
}

#[test]
fn kafka_options() {
    let url =
        "kafka://k1:9092,k2:9093?prefix=tel.&partitions=12&linger_ms=20&compression=gzip&tls=true";
    let Transport::Kafka(spec) = Transport::parse(url).expect("valid") else {
        panic!("kafka");
    };
    assert_eq!(spec.brokers, "k1:9092,k2:9093");
    assert_eq!(spec.common.partitions, 12);
    assert_eq!(spec.linger, Duration::from_millis(20));
    assert_eq!(spec.compression, "gzip");
    assert!(spec.tls);
    assert_eq!(spec.session_timeout, Duration::from_secs(45));
    assert_eq!(spec.common.name(Topic::Heartbeats), "tel.heartbeats");
}

#[test]
fn redis_options() {
    let Transport::Redis(spec) =
        Transport::parse("redis://:pw@127.0.0.1:6379/2?maxlen=5000&claim_idle_ms=1000")
            .expect("valid")
    else {
        panic!("redis");
    };
    assert_eq!(spec.maxlen, 5000);
    assert_eq!(spec.claim_idle, Duration::from_secs(1));
    assert_eq!(spec.common.name(Topic::Samples), "hb:samples");
    assert_eq!(
        Transport::Redis(spec).to_string(),
        "redis://:***@127.0.0.1:6379/2?maxlen=5000&claim_idle_ms=1000"
    );
}

#[test]
fn refusals_name_the_option_and_the_valid_choices() {
    let cases = [
        (
            "redis://127.0.0.1:6379/0?stream=x",
            "unknown option `stream` for redis:// (valid: prefix, batch, prefetch, partitions, maxlen, group, consumer, block_ms, claim_idle_ms, lease_ms, max_message_bytes, max_samples_per_envelope, prefetch_bytes, max_age_s, tls_ca, tls_cert, tls_key, tls_insecure)",
        ),
        (
            "rabbit://127.0.0.1?batch=0",
            "invalid rabbit:// option batch=`0`: expected a whole number from 1 to 10000",
        ),
        (
            "kafka://?x=1",
            "invalid kafka:// address: at least one host:port is needed",
        ),
        (
            "kafka://k:9092?tls=yes",
            "invalid kafka:// option tls=`yes`: expected true or false",
        ),
        ("rabbit://:5672/", "invalid amqp:// address: empty host"),
        (
            "memory://x",
            "memory:// takes no host, path or options (got `memory://x`)",
        ),
    ];
    for (url, expected) in cases {
        let err = Transport::parse(url).expect_err(url);
        assert_eq!(err.to_string(), expected, "{url}");
    }
}

#[test]
fn no_debug_or_display_output_shows_a_password() {
    for url in [
        "amqp://guest:S3CRETPW@127.0.0.1:5672/%2f",
        "amqps://guest:S3CRETPW@mq/prod?exchange=x",
        "redis://:S3CRETPW@127.0.0.1:6379/0",
        "rediss://user:S3CRETPW@127.0.0.1:6380/0?prefix=p",
    ] {
        let transport = Transport::parse(url).expect(url);
        let shown = format!("{transport} {transport:?} {:?}", Some(transport.clone()));
        assert!(!shown.contains("S3CRETPW"), "{shown}");
        assert!(shown.contains(":***@"), "{shown}");
    }
}

#[test]
fn refusals_never_echo_a_password() {
    for url in [
        "rabbit:/guest:S3CRETPW@127.0.0.1:5672",
        "redis:S3CRETPW@127.0.0.1",
        "kafka://user:S3CRETPW@127.0.0.1:9092",
        "kafka://k1:9092,user:S3CRETPW@k2:9092",
    ] {
        let error = Transport::parse(url).expect_err(url);
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains("S3CRETPW"), "{shown}");
    }
}
