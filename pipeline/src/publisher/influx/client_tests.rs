use super::isolate::{Refusal, dropped, line_count, split_half};
use super::*;

const URL: &str = "http://127.0.0.1:8086/write?db=hb&precision=n";

fn outcome(status: u16, body: &str) -> Result<Outcome, InfluxError> {
    let status = StatusCode::from_u16(status).unwrap();
    classify(status, error_message(body.as_bytes(), status), None, URL)
}

fn refusal(body: &str) -> Refusal {
    match outcome(400, body) {
        Ok(Outcome::Refused(r)) => r,
        other => panic!("not a refusal: {other:?}"),
    }
}

#[test]
fn influxdb_1_partial_writes_as_it_sends_them() {
    // What influxd 1.6 answered in this repository's tests.
    let r = refusal(
        r#"{"error":"partial write: field type conflict: input field \"value\" on measurement \"m1\" is type float, already exists as type string dropped=2"}"#,
    );
    assert!(r.partial);
    assert_eq!(r.dropped, Some(2));
    assert!(r.named_lines(b"m1 value=1.0 5\n").is_empty());

    let r = refusal(
        r#"{"error":"partial write: unable to parse 'bad line here': invalid field format\nunable to parse 'oops=1 x': invalid field format dropped=0"}"#,
    );
    assert_eq!((r.partial, r.dropped), (true, Some(0)));
    let chunk = b"bad line here\nm3 value=1 7\noops=1 x\nm3 value=2 8\n";
    assert_eq!(
        r.named_lines(chunk),
        [
            (&b"bad line here"[..], "invalid field format"),
            (&b"oops=1 x"[..], "invalid field format")
        ]
    );

    let r = refusal(r#"{"error":"unable to parse 'a': b': invalid field format"}"#);
    assert_eq!((r.partial, r.dropped), (false, None));
    assert_eq!(
        r.named_lines(b"a': b\n"),
        [(&b"a': b"[..], "invalid field format")]
    );

    let r = refusal(r#"{"error":"field type conflict"}"#);
    assert_eq!((r.partial, r.dropped), (false, None));
}

#[test]
fn influxdb_2_messages() {
    let r = match outcome(
        422,
        r#"{"code":"unprocessable entity","message":"failure writing points to database: partial write: points beyond retention policy dropped=1"}"#,
    ) {
        Ok(Outcome::Refused(r)) => r,
        other => panic!("{other:?}"),
    };
    assert!(!r.partial);
    assert_eq!(r.dropped, Some(1));
    assert!(r.message.starts_with("failure writing points"));
}

#[test]
fn status_classes() {
    assert!(matches!(
        outcome(413, r#"{"error":"Request Entity Too Large"}"#),
        Ok(Outcome::TooLarge(_))
    ));
    assert_eq!(
        outcome(401, r#"{"error":"authorization failed"}"#),
        Err(InfluxError::Unauthorized {
            url: URL.into(),
            status: 401,
            message: "authorization failed".into()
        })
    );
    assert!(matches!(
        outcome(403, "{}"),
        Err(InfluxError::Unauthorized { status: 403, .. })
    ));
    assert_eq!(
        outcome(404, r#"{"error":"database not found: \"nodb\""}"#),
        Err(InfluxError::Permanent {
            url: URL.into(),
            status: 404,
            message: "database not found: \"nodb\"".into()
        })
    );
    assert!(matches!(
        outcome(400, r#"{"error":"bad precision"}"#),
        Err(InfluxError::Permanent { .. })
    ));
    assert!(matches!(
        outcome(500, r#"{"error":"retention policy not found: nope"}"#),
        Err(InfluxError::Permanent { .. })
    ));
    for code in [429, 500, 502, 503] {
        let e = outcome(code, "busy").unwrap_err();
        assert!(e.is_retryable(), "{code}");
        assert!(e.to_string().starts_with(URL), "{e}");
    }
    let e = outcome(401, "").unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{URL} refused the credentials (401): Unauthorized (check user=/password_env= \
             for influxdb://, token_env= for influxdb2://)"
        )
    );
}

#[test]
fn refusals_reject_what_is_known_and_resend_the_rest() {
    let chunk: Cow<'_, [u8]> = Cow::Borrowed(b"a 1\nbad\nc 3\nd 4\n");
    let run = |message: &str| {
        let (mut pending, mut rejected) = (Vec::new(), Vec::new());
        let refusal = refusal(message);
        refused(chunk.clone(), refusal, &mut pending, &mut rejected);
        let pending: Vec<(String, bool)> = pending
            .into_iter()
            .map(|(c, why)| (String::from_utf8(c.into_owned()).unwrap(), why.is_some()))
            .collect();
        let rejected: Vec<(String, String)> =
            rejected.into_iter().map(|r| (r.line, r.reason)).collect();
        (pending, rejected)
    };
    let bad = ("bad".to_owned(), "invalid field format".to_owned());
    // The server confirms the rest was stored.
    let (pending, rejected) =
        run(r#"{"error":"partial write: unable to parse 'bad': invalid field format dropped=0"}"#);
    assert_eq!((pending, rejected), (vec![], vec![bad.clone()]));
    // It does not: the rest is sent again.
    let (pending, rejected) = run(r#"{"error":"unable to parse 'bad': invalid field format"}"#);
    assert_eq!(pending, [("a 1\nc 3\nd 4\n".to_owned(), true)]);
    assert_eq!(rejected, [bad]);
    // Everything dropped: everything rejected, without `dropped=`.
    let (pending, rejected) = run(r#"{"error":"partial write: conflict dropped=4"}"#);
    assert!(pending.is_empty());
    assert_eq!(rejected.len(), 4);
    assert_eq!(
        rejected[3],
        ("d 4".to_owned(), "partial write: conflict".to_owned())
    );
    // Some dropped, none named: bisect.
    let (pending, rejected) = run(r#"{"error":"partial write: conflict dropped=1"}"#);
    assert_eq!(
        pending,
        [
            ("c 3\nd 4\n".to_owned(), true),
            ("a 1\nbad\n".to_owned(), true)
        ]
    );
    assert!(rejected.is_empty());
}

#[test]
fn long_messages_are_cut() {
    let long = "é".repeat(2000);
    let m = error_message(long.as_bytes(), StatusCode::BAD_REQUEST);
    assert!(m.len() <= MAX_MESSAGE + 3 && m.ends_with("..."));
}

#[test]
fn halves_split_at_line_boundaries() {
    let chunk = b"aaaa\nb\nc\ndddddd\n";
    let (a, b) = split_half(chunk).unwrap();
    assert_eq!(&chunk[a], b"aaaa\nb\nc\n");
    assert_eq!(&chunk[b], b"dddddd\n");
    let chunk = b"a\nbbbbbbbbbbbbbbbb\n";
    let (a, b) = split_half(chunk).unwrap();
    assert_eq!(
        (&chunk[a], &chunk[b]),
        (&b"a\n"[..], &b"bbbbbbbbbbbbbbbb\n"[..])
    );
    assert_eq!(split_half(b"only\n"), None);
    assert_eq!(split_half(b"only"), None);
    assert_eq!(line_count(b"a\nb\n"), 2);
    assert_eq!(line_count(b"a\nb"), 2);
}

#[test]
fn dropped_counts() {
    assert_eq!(dropped("partial write: x dropped=12"), Some(12));
    assert_eq!(dropped("partial write: x"), None);
    assert_eq!(
        strip_dropped("invalid field format dropped=0"),
        "invalid field format"
    );
    assert_eq!(strip_dropped("a dropped=b"), "a dropped=b");
}

#[test]
fn basic_auth_encoding() {
    assert_eq!(base64(b""), "");
    assert_eq!(base64(b"f"), "Zg==");
    assert_eq!(base64(b"fo"), "Zm8=");
    assert_eq!(base64(b"foo"), "Zm9v");
    assert_eq!(base64(b"user:p@ss"), "dXNlcjpwQHNz");
}

#[test]
fn gzip_round_trips() {
    use std::io::Read as _;
    let body = b"m value=1.0 1\n".repeat(100);
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&gzip(&body)[..])
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out, body);
}

#[test]
fn missing_secrets_name_the_variable() {
    let spec = super::super::InfluxSpec::parse(
        "influxdb2",
        "127.0.0.1:1",
        vec![("org".into(), "o".into()), ("bucket".into(), "b".into())],
    )
    .unwrap();
    let e = InfluxWriter::with_env(&spec, |_| None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "influxdb2://127.0.0.1:1?org=o&bucket=b&token_env=INFLUX_TOKEN&precision=ns: \
         environment variable `INFLUX_TOKEN` (named by token_env=) is not set; set it to the \
         API token"
    );
    let e = InfluxWriter::with_env(&spec, |_| Some(String::new())).unwrap_err();
    assert!(e.to_string().contains("is empty"));
    let writer = InfluxWriter::with_env(&spec, |_| Some("s3cret".into())).unwrap();
    assert!(!format!("{writer:?}").contains("s3cret"));
}
