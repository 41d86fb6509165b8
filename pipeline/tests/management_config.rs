//! `management:` in pipeline.yaml: defaults, the environment, and what is refused.

use std::net::SocketAddr;
use std::path::Path;

use hb_pipeline::config::{Config, ConfigErrors, Listen};

const GOOD: &str = r#"
transport: memory://
sources:
  - name: cpu
    interval: 10
    meters: ["cpu"]
    sinks: [local]
sinks:
  - name: local
    publishers: ["file://data/samples.jsonl"]
"#;

fn load_in(dir: &Path, section: &str, env: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
    let text = GOOD.replace("sources:\n", &format!("{section}\nsources:\n"));
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Config::parse(&text, &dir.join("pipeline.yaml"), move |var| {
        env.iter().find(|(k, _)| k == var).map(|(_, v)| v.clone())
    })
}

fn load(section: &str, env: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
    load_in(Path::new("/etc/hb"), section, env)
}

#[test]
fn defaults_without_the_section_and_with_it() {
    let m = load("", &[]).expect("valid").management;
    assert_eq!(m.listen, Listen::Default);
    assert_eq!(
        m.listen.address(8042),
        Some("127.0.0.1:8042".parse().unwrap())
    );
    assert!(m.token.is_none());
    assert_eq!(m.drain_timeout.as_secs(), 60);
    let m = load(
        "management: {listen: \"[::1]:9000\", drain_timeout: 500ms}",
        &[],
    )
    .expect("valid")
    .management;
    assert_eq!(m.listen.address(8042), Some("[::1]:9000".parse().unwrap()));
    assert_eq!(m.drain_timeout.as_millis(), 500);
    let off = load("management: {listen: off}", &[]).expect("valid");
    assert_eq!(off.management.listen.address(8042), None);
}

#[test]
fn the_token_comes_from_a_file_or_the_environment_and_is_never_shown() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("token"), "s3cret-T0KEN\n").expect("write");
    let config = load_in(
        dir.path(),
        "management: {listen: \"0.0.0.0:8042\", token_file: token}",
        &[],
    )
    .expect("a token makes any address acceptable");
    let token = config.management.token.clone().expect("token");
    assert!(token.matches("s3cret-T0KEN"));
    assert!(!token.matches("s3cret-T0KEN\n") && !token.matches("s3cret") && !token.matches(""));
    let shown = format!("{config:?} {token}");
    assert!(!shown.contains("s3cret"), "{shown}");
    let from_env = load("", &[("HB_MANAGEMENT_TOKEN", "other")]).expect("valid");
    assert!(from_env.management.token.expect("token").matches("other"));
}

#[test]
fn the_environment_overrides_listen() {
    let config = load(
        "management: {listen: \"127.0.0.1:1\"}",
        &[("HB_MANAGEMENT_LISTEN", "127.0.0.1:0")],
    )
    .expect("valid");
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    assert_eq!(config.management.listen, Listen::At(addr));
    let off = load("", &[("HB_MANAGEMENT_LISTEN", "off")]).expect("valid");
    assert_eq!(off.management.listen, Listen::Off);
}

#[test]
fn refusals_name_the_key_or_the_variable() {
    /// The section, the environment, the refusal.
    type Case = (
        &'static str,
        &'static [(&'static str, &'static str)],
        &'static str,
    );
    let refusals: [Case; 6] = [
        (
            "management: {listen: \"0.0.0.0:8042\"}",
            &[],
            "/etc/hb/pipeline.yaml:3:22: management.listen: 0.0.0.0:8042 is not a loopback address and no token is configured: set management.token_file or HB_MANAGEMENT_TOKEN, or listen on 127.0.0.1",
        ),
        (
            "",
            &[("HB_MANAGEMENT_LISTEN", "10.1.2.3:8042")],
            "environment variable HB_MANAGEMENT_LISTEN: 10.1.2.3:8042 is not a loopback address and no token is configured: set management.token_file or HB_MANAGEMENT_TOKEN, or listen on 127.0.0.1",
        ),
        (
            "management: {listen: \"localhost:8042\"}",
            &[],
            "/etc/hb/pipeline.yaml:3:22: management.listen: must be host:port with an IP address (127.0.0.1:8042, [::1]:8042, 0.0.0.0:8042) or off (got `localhost:8042`)",
        ),
        (
            "management: {token_file: /nonexistent/token}",
            &[],
            "/etc/hb/pipeline.yaml:3:26: management.token_file: cannot read /nonexistent/token: No such file or directory (os error 2)",
        ),
        (
            "management: {drain_timeout: 0}",
            &[],
            "/etc/hb/pipeline.yaml:3:29: management.drain_timeout: must be greater than 0 and at most 365 days (got 0)",
        ),
        (
            "management: {listen: \"127.0.0.1:1\", port: 2}",
            &[],
            "/etc/hb/pipeline.yaml:3:37: management.port: unknown field `port`, expected one of listen, token_file, drain_timeout",
        ),
    ];
    for (section, env, expected) in refusals {
        assert_eq!(
            load(section, env).expect_err(section).to_string(),
            expected,
            "{section}"
        );
    }
    let empty = load("", &[("HB_MANAGEMENT_TOKEN", " ")]).expect_err("empty token");
    assert_eq!(
        empty.to_string(),
        "environment variable HB_MANAGEMENT_TOKEN: the token must not be empty"
    );
}
