//! Object-store archive: batches of samples as compressed JSON-lines objects, partitioned by hour.
//!
//! | URL | store |
//! |---|---|
//! | `archive+file:///var/lib/hb/archive` | a local directory (a relative path is resolved against the configuration file's directory) |
//! | `s3://BUCKET[/PREFIX]?endpoint=&region=&allow_http=` | an S3 bucket, or any S3-compatible server |
//!
//! Options of both: `writer=ID` (default: this host's name and process id, see
//! [`default_writer`]; names the objects this process writes, so it must differ between
//! processes writing to the same archive) and `compression=gzip|none` (default `gzip`).
//! `s3://` only: `endpoint=http://HOST:PORT` (an S3-compatible server, addressed path-style:
//! `ENDPOINT/BUCKET/KEY`; without it, AWS itself, virtual-hosted style), `region=` (default:
//! `AWS_REGION` or `AWS_DEFAULT_REGION`, else `us-east-1`), `allow_http=true|false` (default
//! `false`; needed for an `http://` endpoint).
//!
//! Credentials are never part of the URL: by default they come from the environment when the
//! store is opened (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`; for AWS
//! itself also the other standard sources: web identity token, container or instance
//! credentials); with an `endpoint=`, opening without an access key is refused. A program may
//! give them instead with [`ArchiveSpec::with_credentials`]. Of the other `AWS_` variables only
//! `AWS_DEFAULT_REGION`/`AWS_REGION` count (when there is no `region=`): the URL alone says
//! where the objects go. Neither [`ArchiveSpec::describe`] nor an error ever contains secrets.
//!
//! # Layout
//!
//! Every [`publish`](ArchivePublisher::publish) writes one object per hour its samples fall in
//! (UTC, by sample timestamp), in one PUT each, so a reader never sees half an object (S3 PUTs
//! are atomic; the local store writes a temporary file and renames it):
//!
//! ```text
//! [PREFIX/]samples/dt=2026-11-22/hour=10/<writer>-<start µs, 17 digits>-<batch, 10 digits>.jsonl.gz
//! ```
//!
//! `<start µs>` is when this process named its first archive object and `<batch>` counts batches in
//! the process, so within one writer names sort in write order and never repeat after a
//! restart. Each line of an object is one [`Sample`](hb_sample::Sample) as JSON, in the order
//! of the batch. [`reader`] lists and decodes a time range back.

pub mod reader;
pub mod writer;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;

pub use reader::{ArchiveObject, ArchiveReader, BadRecord, ReadOutcome, read_range};
pub use writer::ArchivePublisher;

use super::PublisherUrlError;

const FILE_OPTIONS: &str = "writer, compression";
const S3_OPTIONS: &str = "endpoint, region, allow_http, writer, compression";
/// The top-level directory (below the prefix) that holds the sample partitions.
pub const SAMPLES_DIR: &str = "samples";
const WRITER_MAX_LEN: usize = 64;
/// The environment variables an `s3://` archive takes from the environment: who it is and
/// the default region, never where the objects go.
const AWS_ENV: [&str; 12] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_ENDPOINT_URL_STS",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
];

/// A validated archive URL (`archive+file://` or `s3://`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveSpec {
    /// Where the objects go.
    pub location: ArchiveLocation,
    /// Names the objects this process writes (`writer=`).
    pub writer: String,
    /// How objects are compressed (`compression=`).
    pub compression: Compression,
}

/// The store of an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveLocation {
    /// `archive+file://DIR`: a local directory (absolute, or resolved against the config's).
    Local(PathBuf),
    /// `s3://BUCKET/PREFIX`.
    S3(S3Location),
}

/// A bucket, a key prefix and how to reach them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix without leading or trailing `/` (empty: the bucket's root).
    pub prefix: String,
    /// `endpoint=`: an S3-compatible server, addressed path-style; `None` = AWS.
    pub endpoint: Option<String>,
    /// `region=`; `None` = `AWS_REGION`, `AWS_DEFAULT_REGION` or `us-east-1`.
    pub region: Option<String>,
    /// `allow_http=`.
    pub allow_http: bool,
    /// Credentials given by the program (never by the URL); `None` = from the environment.
    pub credentials: Option<S3Credentials>,
}

/// An access key pair; its `Debug` shows the key id only.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Credentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token of temporary credentials.
    pub session_token: Option<String>,
}

impl fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// How each object is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// gzip (`.jsonl.gz`), the default.
    #[default]
    Gzip,
    /// None (`.jsonl`).
    None,
}

impl Compression {
    /// The option value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::None => "none",
        }
    }

    /// The object name suffix.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Gzip => ".jsonl.gz",
            Self::None => ".jsonl",
        }
    }
}

impl ArchiveSpec {
    /// Validates an archive URL already split by [`PublisherSpec::parse`](super::PublisherSpec::parse):
    /// `scheme` is `archive+file` or `s3`, `target` what follows `://` up to `?`, `options` the
    /// query; a relative `archive+file://` directory is resolved against `base`.
    pub fn parse(
        scheme: &str,
        target: &str,
        options: Vec<(String, String)>,
        base: &Path,
    ) -> Result<Self, PublisherUrlError> {
        let (scheme, valid): (&'static str, &'static str) = match scheme {
            "archive+file" => ("archive+file", FILE_OPTIONS),
            "s3" => ("s3", S3_OPTIONS),
            other => {
                return Err(PublisherUrlError::Invalid(format!(
                    "`{other}` is not an archive scheme (available: archive+file, s3)"
                )));
            }
        };
        let mut writer = None;
        let mut compression = Compression::default();
        let mut endpoint = None;
        let mut region = None;
        let mut allow_http = None;
        for (option, value) in options {
            match (option.as_str(), scheme) {
                ("writer", _) => writer = Some(parse_writer(value)?),
                ("compression", _) => compression = parse_compression(value)?,
                ("endpoint", "s3") => endpoint = Some(parse_endpoint(value)?),
                ("region", "s3") => region = Some(parse_region(value)?),
                ("allow_http", "s3") => allow_http = Some(parse_bool("allow_http", value)?),
                _ => {
                    return Err(PublisherUrlError::UnknownOption {
                        scheme,
                        option,
                        valid,
                    });
                }
            }
        }
        let location = if scheme == "s3" {
            let allow_http = allow_http.unwrap_or(false);
            if let Some(e) = &endpoint
                && e.starts_with("http://")
                && !allow_http
            {
                return Err(PublisherUrlError::Invalid(format!(
                    "s3:// endpoint `{e}` is plain http: add allow_http=true to use it"
                )));
            }
            let (bucket, prefix) = parse_bucket_prefix(target)?;
            ArchiveLocation::S3(S3Location {
                bucket,
                prefix,
                endpoint,
                region,
                allow_http,
                credentials: None,
            })
        } else {
            if target.is_empty() {
                let msg = "archive+file:// needs a directory (archive+file:///var/lib/hb/archive, \
                           or a path relative to the configuration file)";
                return Err(PublisherUrlError::Invalid(msg.to_owned()));
            }
            ArchiveLocation::Local(super::resolve(base, target))
        };
        Ok(Self {
            location,
            writer: writer.unwrap_or_else(default_writer),
            compression,
        })
    }

    /// The spec as a URL for logs: location and options, never credentials.
    pub fn describe(&self) -> String {
        let mut url = self.base_url();
        let mut query = form_urlencoded::Serializer::new(String::new());
        if let ArchiveLocation::S3(s3) = &self.location {
            if let Some(endpoint) = &s3.endpoint {
                query.append_pair("endpoint", endpoint);
            }
            if let Some(region) = &s3.region {
                query.append_pair("region", region);
            }
            if s3.allow_http {
                query.append_pair("allow_http", "true");
            }
        }
        query.append_pair("writer", &self.writer);
        query.append_pair("compression", self.compression.as_str());
        url.push('?');
        url.push_str(&query.finish());
        url
    }

    /// `archive+file:///DIR` or `s3://BUCKET[/PREFIX]`, without options.
    pub fn base_url(&self) -> String {
        match &self.location {
            ArchiveLocation::Local(dir) => format!("archive+file://{}", dir.display()),
            ArchiveLocation::S3(s3) if s3.prefix.is_empty() => format!("s3://{}", s3.bucket),
            ArchiveLocation::S3(s3) => format!("s3://{}/{}", s3.bucket, s3.prefix),
        }
    }

    /// Uses `credentials` instead of the environment's (`s3://` only; ignored otherwise).
    pub fn with_credentials(mut self, credentials: S3Credentials) -> Self {
        if let ArchiveLocation::S3(s3) = &mut self.location {
            s3.credentials = Some(credentials);
        }
        self
    }
}

/// The default `writer=`: this host's name (characters other than letters, digits, `.`, `_`
/// and `-` replaced by `_`) and the process id, e.g. `host-a-4242`. A pid is unique among the
/// processes running on a host, and object names also carry the process's start time, so two
/// processes never write the same name.
pub fn default_writer() -> String {
    let host = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "hb".to_owned());
    let host: String = host
        .chars()
        .map(|c| if writer_char(c) { c } else { '_' })
        .take(WRITER_MAX_LEN - 11)
        .collect();
    format!("{host}-{}", std::process::id())
}

fn writer_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

fn parse_writer(value: String) -> Result<String, PublisherUrlError> {
    if value.is_empty()
        || value.len() > WRITER_MAX_LEN
        || !value.chars().all(writer_char)
        || value.starts_with('.')
    {
        return Err(PublisherUrlError::InvalidOption {
            option: "writer",
            value,
            reason: "expected 1 to 64 letters, digits, `.`, `_` or `-`, not starting with `.`",
        });
    }
    Ok(value)
}

fn parse_compression(value: String) -> Result<Compression, PublisherUrlError> {
    match value.as_str() {
        "gzip" => Ok(Compression::Gzip),
        "none" => Ok(Compression::None),
        _ => Err(PublisherUrlError::InvalidOption {
            option: "compression",
            value,
            reason: "expected gzip or none",
        }),
    }
}

fn parse_bool(option: &'static str, value: String) -> Result<bool, PublisherUrlError> {
    match value.as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(PublisherUrlError::InvalidOption {
            option,
            value,
            reason: "expected true or false",
        }),
    }
}

fn parse_endpoint(value: String) -> Result<String, PublisherUrlError> {
    let rest = value
        .strip_prefix("http://")
        .or_else(|| value.strip_prefix("https://"));
    let Some(rest) = rest else {
        return Err(PublisherUrlError::InvalidOption {
            option: "endpoint",
            value,
            reason: "expected http://HOST[:PORT] or https://HOST[:PORT]",
        });
    };
    let authority = rest.split('/').next().unwrap_or("");
    if authority.contains('@') {
        let msg = "s3:// endpoint must not contain credentials: they come from the environment \
                   (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)";
        return Err(PublisherUrlError::Invalid(msg.to_owned()));
    }
    if authority.is_empty() || value.contains(['?', '#', ' ']) {
        return Err(PublisherUrlError::InvalidOption {
            option: "endpoint",
            value,
            reason: "expected http://HOST[:PORT] or https://HOST[:PORT]",
        });
    }
    Ok(value.trim_end_matches('/').to_owned())
}

fn parse_region(value: String) -> Result<String, PublisherUrlError> {
    let ok = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        return Err(PublisherUrlError::InvalidOption {
            option: "region",
            value,
            reason: "expected a region name such as us-east-1",
        });
    }
    Ok(value)
}

fn parse_bucket_prefix(target: &str) -> Result<(String, String), PublisherUrlError> {
    let (bucket, prefix) = target.split_once('/').unwrap_or((target, ""));
    // S3's bucket naming rules.
    let ok = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !ok {
        let msg = if bucket.is_empty() {
            "s3:// needs a bucket: s3://BUCKET[/PREFIX]".to_owned()
        } else {
            format!(
                "invalid bucket `{bucket}`: expected 3 to 63 lowercase letters, digits, `.` or \
                 `-`, starting and ending with a letter or digit"
            )
        };
        return Err(PublisherUrlError::Invalid(msg));
    }
    let prefix = prefix.trim_matches('/');
    if !prefix.is_empty() && ObjectPath::parse(prefix).is_err()
        || prefix.split('/').any(|s| s == "." || s == "..")
    {
        return Err(PublisherUrlError::Invalid(format!(
            "invalid s3:// prefix `{prefix}`: expected /-separated names, none empty, `.` or `..`"
        )));
    }
    Ok((bucket.to_owned(), prefix.to_owned()))
}

/// Why the archive could not be opened, written or read.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The store could not be set up from the spec (bad endpoint, no credentials, ...).
    #[error("{url}: {reason}")]
    Config {
        /// The archive, described without secrets.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The local archive directory could not be created.
    #[error("create archive directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The store refused or failed an operation.
    #[error("{action} {object}: {source}")]
    Store {
        /// `put`, `list` or `get`.
        action: &'static str,
        /// The object or prefix, as `s3://BUCKET/KEY` or a local path.
        object: String,
        /// The store's error.
        source: object_store::Error,
    },
    /// A sample could not be encoded.
    #[error("encode sample: {0}")]
    Encode(#[from] serde_json::Error),
    /// A read range whose end is not after its start.
    #[error("invalid time range: {from} is not before {to}")]
    InvalidRange {
        /// Start (inclusive).
        from: chrono::DateTime<chrono::Utc>,
        /// End (exclusive).
        to: chrono::DateTime<chrono::Utc>,
    },
    /// The blocking task that encodes or decodes was lost.
    #[error("archive task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl ArchiveError {
    /// Whether trying the same operation again later may succeed: network failures, timeouts,
    /// throttling and server errors (5xx) are; refused credentials or permissions, a missing
    /// bucket, invalid configuration and unencodable samples are not.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Config { .. } | Self::Encode(_) | Self::InvalidRange { .. } => false,
            Self::CreateDir { source, .. } => io_retryable(source),
            Self::Task(_) => true,
            Self::Store { source, .. } => store_retryable(source),
        }
    }
}

fn io_retryable(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    !matches!(
        e.kind(),
        PermissionDenied
            | ReadOnlyFilesystem
            | NotADirectory
            | IsADirectory
            | InvalidInput
            | InvalidFilename
            | AlreadyExists
            | Unsupported
    )
}

fn store_retryable(e: &object_store::Error) -> bool {
    use object_store::Error as E;
    match e {
        E::Generic { source, .. } => {
            let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source.as_ref());
            while let Some(c) = cause {
                if c.downcast_ref::<object_store::client::HttpError>()
                    .is_some()
                {
                    return true; // could not connect, timed out, connection dropped
                }
                if let Some(io) = c.downcast_ref::<std::io::Error>() {
                    return io_retryable(io);
                }
                if let Some(status) = http_status(&c.to_string()) {
                    // 408 timeout, 429 throttled, 5xx server error.
                    return status == 408 || status == 429 || status >= 500;
                }
                cause = c.source();
            }
            true
        }
        E::JoinError { .. } => true,
        _ => false,
    }
}

/// The status in object_store's "Server returned non-2xx status code: 503 ..." message.
fn http_status(message: &str) -> Option<u16> {
    let (_, rest) = message.split_once("status code: ")?;
    rest.get(..3)?.parse().ok()
}

/// An open store, the root of the archive in it, and how to name its objects in messages.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    pub(crate) store: Arc<dyn ObjectStore>,
    /// `[PREFIX/]samples`.
    pub(crate) root: ObjectPath,
    /// `s3://BUCKET` or the local directory, prepended to object paths in messages.
    display_base: String,
}

impl Store {
    /// Builds the client (S3) or creates the directory (local); makes no request.
    pub(crate) fn open(spec: &ArchiveSpec) -> Result<Self, ArchiveError> {
        match &spec.location {
            ArchiveLocation::Local(dir) => {
                std::fs::create_dir_all(dir).map_err(|source| ArchiveError::CreateDir {
                    path: dir.clone(),
                    source,
                })?;
                let store = LocalFileSystem::new_with_prefix(dir)
                    .map_err(|e| ArchiveError::Config {
                        url: spec.base_url(),
                        reason: e.to_string(),
                    })?
                    .with_fsync(true);
                Ok(Self {
                    store: Arc::new(store),
                    root: ObjectPath::from(SAMPLES_DIR),
                    display_base: dir.display().to_string(),
                })
            }
            ArchiveLocation::S3(s3) => {
                // reqwest's rustls has no crypto provider of its own in this workspace.
                let _already_installed = rustls::crypto::ring::default_provider().install_default();
                let mut builder = AmazonS3Builder::new();
                let mut env_keys = false;
                for var in AWS_ENV {
                    if s3.credentials.is_some() && !var.ends_with("_REGION") {
                        continue; // the program's credentials, not a mix
                    }
                    if let Some(value) = std::env::var(var).ok().filter(|v| !v.is_empty())
                        && let Ok(key) = var.to_ascii_lowercase().parse()
                    {
                        builder = builder.with_config(key, value);
                        env_keys |= var == "AWS_ACCESS_KEY_ID";
                    }
                }
                if s3.endpoint.is_some() && s3.credentials.is_none() && !env_keys {
                    // Only AWS itself has other sources (instance, container credentials).
                    return Err(ArchiveError::Config {
                        url: spec.base_url(),
                        reason: "no credentials: set AWS_ACCESS_KEY_ID and \
                                 AWS_SECRET_ACCESS_KEY"
                            .to_owned(),
                    });
                }
                builder = builder
                    .with_bucket_name(&s3.bucket)
                    .with_allow_http(s3.allow_http)
                    .with_retry(object_store::RetryConfig {
                        backoff: object_store::BackoffConfig::default(),
                        max_retries: 3,
                        retry_timeout: Duration::from_secs(30),
                    });
                if let Some(endpoint) = &s3.endpoint {
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_virtual_hosted_style_request(false);
                } else {
                    builder = builder.with_virtual_hosted_style_request(true);
                }
                if let Some(region) = &s3.region {
                    builder = builder.with_region(region);
                }
                if let Some(c) = &s3.credentials {
                    builder = builder
                        .with_access_key_id(&c.access_key_id)
                        .with_secret_access_key(&c.secret_access_key);
                    if let Some(token) = &c.session_token {
                        builder = builder.with_token(token);
                    }
                }
                let store = builder.build().map_err(|e| ArchiveError::Config {
                    url: spec.base_url(),
                    reason: e.to_string(),
                })?;
                let root = if s3.prefix.is_empty() {
                    ObjectPath::from(SAMPLES_DIR)
                } else {
                    ObjectPath::from(format!("{}/{SAMPLES_DIR}", s3.prefix))
                };
                Ok(Self {
                    store: Arc::new(store),
                    root,
                    display_base: format!("s3://{}", s3.bucket),
                })
            }
        }
    }

    /// `path` for messages: `s3://BUCKET/KEY` or `/DIR/KEY`.
    pub(crate) fn display(&self, path: &ObjectPath) -> String {
        format!("{}/{path}", self.display_base)
    }
}

#[cfg(test)]
mod tests {
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
        assert!(
            err("s3://bucket?endpoint=https://k:s@host").contains("must not contain credentials")
        );
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
        assert!(
            generic("Server returned non-2xx status code: 503 Service Unavailable").is_retryable()
        );
        assert!(
            generic("Server returned non-2xx status code: 429 Too Many Requests").is_retryable()
        );
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
}
