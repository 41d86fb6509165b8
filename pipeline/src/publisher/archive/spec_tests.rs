use super::super::{ArchiveError, http_status, writer};
use super::*;

fn parse(url: &str) -> Result<ArchiveSpec, PublisherUrlError> {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (target, query) = rest.split_once('?').unwrap_or((rest, ""));
    let options = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    ArchiveSpec::parse(scheme, target, options, Path::new("/etc/hb"))
}

#[test]
fn archive_file_urls_resolve_relative_directories() {
    let spec = parse("archive+file:///var/lib/hb/archive").unwrap();
    assert_eq!(
        spec.location,
        ArchiveLocation::Local(PathBuf::from("/var/lib/hb/archive"))
    );
    assert_eq!(spec.compression, Compression::Gzip);
    assert_eq!(spec.writer, default_writer());
    let spec = parse("archive+file://data/archive?writer=c-1&compression=none").unwrap();
    assert_eq!(
        spec.location,
        ArchiveLocation::Local(PathBuf::from("/etc/hb/data/archive"))
    );
    assert_eq!(spec.writer, "c-1");
    assert_eq!(spec.compression, Compression::None);
    assert_eq!(
        spec.describe(),
        "archive+file:///etc/hb/data/archive?writer=c-1&compression=none"
    );
}

#[test]
fn s3_urls_take_endpoint_region_and_allow_http() {
    let spec = parse(
        "s3://hb-archive/prod/samples-v1/?endpoint=http://127.0.0.1:9000/&region=eu-west-3\
         &allow_http=true&writer=collector-a",
    )
    .unwrap();
    let ArchiveLocation::S3(s3) = &spec.location else {
        panic!("{spec:?}")
    };
    assert_eq!(s3.bucket, "hb-archive");
    assert_eq!(s3.prefix, "prod/samples-v1");
    assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
    assert_eq!(s3.region.as_deref(), Some("eu-west-3"));
    assert!(s3.allow_http);
    assert_eq!(
        spec.describe(),
        "s3://hb-archive/prod/samples-v1?endpoint=http%3A%2F%2F127.0.0.1%3A9000\
         &region=eu-west-3&allow_http=true&writer=collector-a&compression=gzip"
    );
    let spec = parse("s3://bucket").unwrap();
    assert_eq!(spec.base_url(), "s3://bucket");
}

#[test]
fn archive_credentials_never_show() {
    let spec = parse("s3://bucket/p")
        .unwrap()
        .with_credentials(S3Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "very-secret".into(),
            session_token: Some("token-secret".into()),
        });
    let shown = format!("{spec:?} {}", spec.describe());
    assert!(!shown.contains("secret"), "{shown}");
    assert!(shown.contains("AKIDEXAMPLE"), "{shown}");
}

#[test]
fn archive_urls_refuse_what_they_do_not_understand() {
    let err = |url| parse(url).unwrap_err().to_string();
    assert_eq!(
        err("archive+file:///a?endpoint=x"),
        "unknown option `endpoint` for archive+file:// (valid: writer, compression)"
    );
    assert_eq!(
        err("s3://bucket?max_bytes=1"),
        "unknown option `max_bytes` for s3:// (valid: endpoint, region, allow_http, writer, \
         compression)"
    );
    assert_eq!(
        err("s3://bucket?compression=zstd"),
        "invalid compression `zstd`: expected gzip or none"
    );
    assert_eq!(
        err("s3://bucket?allow_http=yes"),
        "invalid allow_http `yes`: expected true or false"
    );
    assert!(err("s3://bucket?writer=a/b").starts_with("invalid writer `a/b`: expected"));
    assert!(err("s3://bucket?writer=").starts_with("invalid writer ``"));
    assert_eq!(
        err("s3://bucket?endpoint=http://127.0.0.1:9000"),
        "s3:// endpoint `http://127.0.0.1:9000` is plain http: add allow_http=true to use it"
    );
    assert!(err("s3://bucket?endpoint=ftp://x").starts_with("invalid endpoint `ftp://x`"));
    assert!(err("s3://bucket?endpoint=https://k:s@host").contains("must not contain credentials"));
    assert!(!err("s3://bucket?endpoint=https://k:s@host").contains("k:s"));
    assert_eq!(err("s3://"), "s3:// needs a bucket: s3://BUCKET[/PREFIX]");
    assert!(err("s3://Bad_Bucket").starts_with("invalid bucket `Bad_Bucket`"));
    assert!(err("s3://bucket/a//b").starts_with("invalid s3:// prefix `a//b`"));
    assert!(err("s3://bucket/a/../b").starts_with("invalid s3:// prefix"));
    assert!(err("archive+file://").starts_with("archive+file:// needs a directory"));
    assert!(err("gcs://bucket").starts_with("`gcs` is not an archive scheme"));
}

#[test]
fn archive_s3_with_an_endpoint_needs_credentials() {
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
        return; // this environment has some
    }
    let spec = parse("s3://bucket/p?endpoint=https://s3.example.net").unwrap();
    let err = writer::ArchivePublisher::open(&spec).unwrap_err();
    assert_eq!(
        err.to_string(),
        "s3://bucket/p: no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    );
    assert!(!err.is_retryable());
    let spec = spec.with_credentials(S3Credentials {
        access_key_id: "k".into(),
        secret_access_key: "s".into(),
        session_token: None,
    });
    assert!(writer::ArchivePublisher::open(&spec).is_ok());
}

#[test]
fn archive_default_writer_is_host_and_pid() {
    let w = default_writer();
    assert!(w.ends_with(&format!("-{}", std::process::id())), "{w}");
    assert!(parse_writer(w.clone()).is_ok(), "{w}");
}

#[test]
fn archive_errors_know_what_is_worth_retrying() {
    assert_eq!(
        http_status("Server returned non-2xx status code: 503 Service Unavailable: x"),
        Some(503)
    );
    let generic = |msg: &str| ArchiveError::Store {
        action: "put",
        object: "s3://b/k".into(),
        source: object_store::Error::Generic {
            store: "S3",
            source: msg.to_owned().into(),
        },
    };
    assert!(generic("Server returned non-2xx status code: 503 Service Unavailable").is_retryable());
    assert!(generic("Server returned non-2xx status code: 429 Too Many Requests").is_retryable());
    assert!(!generic("Server returned non-2xx status code: 400 Bad Request").is_retryable());
    let denied = ArchiveError::Store {
        action: "put",
        object: "s3://b/k".into(),
        source: object_store::Error::PermissionDenied {
            path: "k".into(),
            source: "403".into(),
        },
    };
    assert!(!denied.is_retryable());
    let io = |kind| ArchiveError::CreateDir {
        path: "/x".into(),
        source: std::io::Error::from(kind),
    };
    assert!(!io(std::io::ErrorKind::PermissionDenied).is_retryable());
    assert!(io(std::io::ErrorKind::StorageFull).is_retryable());
}
