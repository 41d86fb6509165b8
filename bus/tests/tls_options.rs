//! The TLS and SASL options of transport URLs: where they are taken, how they are refused.

use hb_bus::{Transport, TransportError};

fn err(url: &str) -> String {
    Transport::parse(url).expect_err(url).to_string()
}

/// A PEM file with one (syntactically valid) certificate block.
fn pem_file(name: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(
        &path,
        "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ3Jt\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let path = path.to_str().unwrap().to_owned();
    (dir, path)
}

#[test]
fn verification_is_on_unless_tls_insecure() {
    for url in [
        "rediss://127.0.0.1:6380/0",
        "amqps://guest:guest@mq/%2f",
        "kafka://k:9093?tls=true",
    ] {
        let t = Transport::parse(url).unwrap();
        let tls = match &t {
            Transport::Redis(s) => &s.tls,
            Transport::Rabbit(s) => &s.tls,
            Transport::Kafka(s) => &s.tls_options,
            Transport::Memory => unreachable!(),
        };
        assert!(tls.is_default() && !tls.insecure, "{url}");
    }
    let Transport::Redis(r) = Transport::parse("rediss://h:6380/0?tls_insecure=true").unwrap()
    else {
        panic!()
    };
    assert!(r.tls.insecure);
    assert_eq!(
        r.backend_url().expose(),
        "rediss://h:6380/0?tls_insecure=true"
    );
}

#[test]
fn tls_options_need_a_tls_connection() {
    assert_eq!(
        err("redis://h:6379/0?tls_insecure=true"),
        "invalid redis:// option tls_insecure: is for TLS connections: use rediss://"
    );
    let (_dir, ca) = pem_file("ca.pem");
    assert_eq!(
        err(&format!("amqp://h/%2f?tls_ca={ca}")),
        "invalid rabbit:// option tls_ca: is for TLS connections: use amqps://"
    );
    assert_eq!(
        err(&format!("kafka://k:9093?tls_ca={ca}")),
        "invalid kafka:// option tls_ca: is for TLS connections: add tls=true"
    );
    assert!(
        err("amqps://h/%2f?tls_insecure=true")
            .starts_with("invalid rabbit:// option tls_insecure: is not supported")
    );
}

#[test]
fn missing_or_bad_files_are_refused_naming_option_and_file() {
    let e = err("rediss://:S3CRETPW@h:6380/0?tls_ca=/nonexistent/hb/ca.pem");
    assert!(
        e.starts_with(
            "invalid redis:// option tls_ca: cannot read /nonexistent/hb/ca.pem: no such file"
        ),
        "{e}"
    );
    assert!(!e.contains("S3CRETPW"));
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let e = err(&format!(
        "kafka://k:9093?tls=true&tls_ca={}",
        junk.display()
    ));
    assert_eq!(
        e,
        format!(
            "invalid kafka:// option tls_ca: {} holds no PEM certificate",
            junk.display()
        )
    );
    let (_d, cert) = pem_file("cert.pem");
    let e = err(&format!("rediss://h/0?tls_cert={cert}"));
    assert_eq!(
        e,
        "invalid redis:// option tls_cert: needs tls_key (its private key)"
    );
    let e = err(&format!("rediss://h/0?tls_cert={cert}&tls_key={cert}"));
    assert!(
        e.contains("tls_key: ") && e.contains("holds no PEM private key"),
        "{e}"
    );
    assert!(matches!(
        Transport::parse("rediss://h/0?tls_insecure=maybe"),
        Err(TransportError::Tls { .. })
    ));
}

#[test]
fn kafka_sasl_password_env_must_be_set() {
    let var = "HB_TEST_KAFKA_SASL_PASSWORD_NEVER_SET";
    let url = format!(
        "kafka://k:9093?tls=true&sasl_mechanism=SCRAM-SHA-512&sasl_username=hb&sasl_password_env={var}"
    );
    assert_eq!(
        err(&url),
        format!(
            "invalid kafka:// option sasl_password_env=`{var}`: sasl_password_env: the \
             environment variable {var} is not set"
        )
    );
}

#[test]
fn kafka_sasl_is_all_or_nothing() {
    assert_eq!(
        err("kafka://k:9093?sasl_mechanism=PLAIN"),
        "invalid kafka:// option sasl_mechanism=`PLAIN`: SASL also needs sasl_username and \
         sasl_password_env"
    );
    assert_eq!(
        err("kafka://k:9093?sasl_mechanism=GSSAPI&sasl_username=u&sasl_password_env=PATH"),
        "invalid kafka:// option sasl_mechanism=`GSSAPI`: expected one of PLAIN, \
         SCRAM-SHA-256, SCRAM-SHA-512"
    );
    let Transport::Kafka(k) = Transport::parse(
        "kafka://k:9093?sasl_mechanism=PLAIN&sasl_username=u&sasl_password_env=PATH",
    )
    .unwrap() else {
        panic!()
    };
    let sasl = k.sasl.unwrap();
    assert_eq!(
        (sasl.mechanism.as_str(), sasl.username.as_str()),
        ("PLAIN", "u")
    );
    assert_eq!(sasl.password_env, "PATH");
}
