use super::*;

fn parse(url: &str) -> Result<InfluxSpec, PublisherUrlError> {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (target, query) = rest.split_once('?').unwrap_or((rest, ""));
    let options = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    InfluxSpec::parse(scheme, target, options)
}

fn err(url: &str) -> String {
    parse(url).unwrap_err().to_string()
}

#[test]
fn v1_defaults() {
    let spec = parse("influxdb://db.example:8087?db=hb").unwrap();
    assert_eq!(spec.base_url, "http://db.example:8087");
    assert_eq!(
        spec.api,
        InfluxApi::V1 {
            db: "hb".into(),
            rp: None,
            user: None,
            password_env: None
        }
    );
    assert_eq!(spec.precision, Precision::Ns);
    assert_eq!(spec.timeout, Duration::from_secs(10));
    assert!(spec.gzip);
    assert_eq!(spec.backslash, Backslash::Literal);
    assert!(spec.tags.is_empty());
    assert_eq!(
        spec.write_url(),
        "http://db.example:8087/write?db=hb&precision=n"
    );
}

#[test]
fn v1_all_options() {
    let spec = parse(
        "influxdb+https://[::1]/proxy/influx/?db=my%20db&rp=week&precision=ms&\
         tags=flavor,%20az&timeout_ms=2500&gzip=false&backslash=escape&user=hb&\
         password_env=HB_PW",
    )
    .unwrap();
    assert_eq!(spec.base_url, "https://[::1]:8086/proxy/influx");
    assert_eq!(spec.tags, ["flavor", "az"]);
    assert_eq!(spec.timeout, Duration::from_millis(2500));
    assert!(!spec.gzip);
    assert_eq!(spec.backslash, Backslash::Escape);
    assert_eq!(
        spec.write_url(),
        "https://[::1]:8086/proxy/influx/write?db=my+db&rp=week&precision=ms"
    );
    let described = spec.describe();
    assert_eq!(
        described,
        "influxdb+https://[::1]:8086/proxy/influx?db=my+db&rp=week&user=hb&\
         password_env=HB_PW&precision=ms&tags=flavor%2Caz"
    );
}

#[test]
fn v2_defaults_and_options() {
    let spec = parse("influxdb2://127.0.0.1:9999?org=acme&bucket=hb").unwrap();
    assert_eq!(
        spec.api,
        InfluxApi::V2 {
            org: "acme".into(),
            bucket: "hb".into(),
            token_env: Some("INFLUX_TOKEN".into())
        }
    );
    assert_eq!(
        spec.write_url(),
        "http://127.0.0.1:9999/api/v2/write?org=acme&bucket=hb&precision=ns"
    );
    assert_eq!(
        spec.describe(),
        "influxdb2://127.0.0.1:9999?org=acme&bucket=hb&token_env=INFLUX_TOKEN&precision=ns"
    );
    let spec = parse("influxdb2+https://h?org=o&bucket=b&token_env=&precision=us").unwrap();
    assert_eq!(spec.base_url, "https://h:8086");
    assert!(matches!(
        spec.api,
        InfluxApi::V2 {
            token_env: None,
            ..
        }
    ));
    assert!(spec.write_url().ends_with("precision=us"));
    let spec = parse("influxdb2://h?org=o&bucket=b&token_env=MY_TOKEN").unwrap();
    assert!(spec.describe().contains("token_env=MY_TOKEN"));
}

#[test]
fn refusals_name_the_problem_and_the_choices() {
    assert_eq!(
        err("influxdb://h?db=hb&org=x"),
        "unknown option `org` for influxdb:// (valid: db, rp, precision, tags, timeout_ms, \
         gzip, backslash, user, password_env, tls_ca, tls_cert, tls_key, tls_insecure)"
    );
    assert_eq!(
        err("influxdb2+https://h?org=o&bucket=b&db=x"),
        "unknown option `db` for influxdb2+https:// (valid: org, bucket, token_env, \
         precision, tags, timeout_ms, gzip, backslash, tls_ca, tls_cert, tls_key, tls_insecure)"
    );
    assert_eq!(
        err("influxdb://h"),
        "influxdb:// needs db= (influxdb://127.0.0.1:8086?db=hb)"
    );
    assert_eq!(
        err("influxdb2://h?org=o"),
        "influxdb2:// needs org= and bucket= (influxdb2://127.0.0.1:8086?org=ORG&bucket=BUCKET)"
    );
    assert_eq!(
        err("influxdb://?db=hb"),
        "influxdb:// needs a host (influxdb://127.0.0.1:8086)"
    );
    assert_eq!(
        err("influxdb://h?db=hb&precision=n"),
        "invalid precision `n`: expected ns, us, ms or s"
    );
    assert_eq!(
        err("influxdb://h?db=hb&timeout_ms=0"),
        "invalid timeout_ms `0`: expected a whole number of milliseconds > 0"
    );
    assert_eq!(
        err("influxdb://h?db=hb&gzip=yes"),
        "invalid gzip `yes`: expected true or false"
    );
    assert_eq!(
        err("influxdb://h?db=hb&backslash=double"),
        "invalid backslash `double`: expected literal or escape"
    );
    assert_eq!(err("influxdb://h?db="), "invalid db ``: must not be empty");
    assert!(err("influxdb://h?db=hb&user=u").starts_with("user= and password_env= go"));
    assert!(err("influxdb://h?db=hb&password_env=P").starts_with("user= and password_env="));
    assert!(err("influxdb://u:secret@h?db=hb").contains("credentials in the URL are not accepted"));
    assert!(err("influxdb://h:99999?db=hb").starts_with("influxdb://h:99999: "));
}

#[test]
fn tags_are_validated() {
    assert_eq!(
        err("influxdb://h?db=hb&tags=a,,b"),
        "invalid tags `a,,b`: expected metadata keys separated by commas, none empty"
    );
    assert!(err("influxdb://h?db=hb&tags=a,host").contains("are always written"));
    assert!(err("influxdb://h?db=hb&tags=value").contains("reserved by InfluxDB"));
    assert_eq!(
        err("influxdb://h?db=hb&tags=a,b,a"),
        "invalid tags `a,b,a`: a metadata key is listed twice"
    );
    assert!(parse("influxdb://h?db=hb&tags=").unwrap().tags.is_empty());
}

#[test]
fn other_schemes_are_refused() {
    assert!(
        InfluxSpec::parse("influx", "h", vec![])
            .unwrap_err()
            .to_string()
            .contains("valid: influxdb, influxdb+https, influxdb2, influxdb2+https")
    );
}

#[test]
fn tls_options_are_for_https_and_their_files_are_checked() {
    assert_eq!(
        err("influxdb://h?db=hb&tls_insecure=true"),
        "influxdb:// takes no tls_ca, tls_cert, tls_key or tls_insecure: they are for https \
         (use influxdb+https://)"
    );
    let e = err("influxdb+https://h?db=hb&tls_ca=/nonexistent/hb-ca.pem");
    assert!(
        e.starts_with("influxdb+https:// option tls_ca: cannot read /nonexistent/hb-ca.pem: "),
        "{e}"
    );
    let e = err("influxdb+https://h?db=hb&tls_cert=/nonexistent/c.pem");
    assert_eq!(
        e,
        "influxdb+https:// option tls_cert: needs tls_key (its private key)"
    );
    let spec = parse("influxdb+https://h?db=hb&tls_insecure=true").unwrap();
    assert!(spec.tls.insecure);
    assert!(
        spec.describe().ends_with("&tls_insecure=true"),
        "{}",
        spec.describe()
    );
    let spec = parse("influxdb+https://h?db=hb").unwrap();
    assert!(spec.tls.is_default(), "verification on by default");
}
