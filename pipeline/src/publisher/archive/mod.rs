//! Object-store archive: batches of samples and events as compressed JSON-lines objects,
//! partitioned by hour.
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
//! Every [`publish_batch`](ArchivePublisher::publish_batch) writes one object per hour its
//! samples fall in (UTC, by sample `timestamp`) and one per hour its events fall in (UTC, by
//! event `generated`), in one PUT each, so a reader never sees half an object (S3 PUTs are
//! atomic; the local store writes a temporary file and renames it). Samples and events never
//! share an object:
//!
//! ```text
//! [PREFIX/]samples/dt=2026-11-22/hour=10/<writer>-<start µs, 17 digits>-<batch, 10 digits>.jsonl.gz
//! [PREFIX/]events/dt=2026-11-22/hour=10/<writer>-<start µs, 17 digits>-<batch, 10 digits>.jsonl.gz
//! ```
//!
//! `<start µs>` is when this process named its first archive object and `<batch>` counts batches in
//! the process, so within one writer names sort in write order and never repeat after a
//! restart; the sample and event objects of one batch have the same name. Each line of a
//! `samples/` object is one [`Sample`](hb_sample::Sample) as JSON, each line of an `events/`
//! object one [`Event`](hb_sample::Event) as JSON, in the order of the batch. [`reader`] lists
//! and decodes a time range (or a day) of either back.

pub mod reader;
mod spec;
pub mod writer;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;

pub use reader::{
    ArchiveObject, ArchiveReader, BadRecord, EventOutcome, ReadOutcome, day_range,
    read_events_range, read_range,
};
pub use spec::{
    ArchiveLocation, ArchiveSpec, Compression, S3Credentials, S3Location, default_writer,
};
pub use writer::ArchivePublisher;

/// The top-level directory (below the prefix) that holds the sample partitions.
pub const SAMPLES_DIR: &str = "samples";
/// The top-level directory (below the prefix) that holds the event partitions.
pub const EVENTS_DIR: &str = "events";
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
    /// A sample or an event could not be encoded.
    #[error("encode: {0}")]
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
    /// `PREFIX` of an `s3://BUCKET/PREFIX`; empty for the bucket's root and local directories.
    prefix: String,
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
                    prefix: String::new(),
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
                Ok(Self {
                    store: Arc::new(store),
                    prefix: s3.prefix.clone(),
                    display_base: format!("s3://{}", s3.bucket),
                })
            }
        }
    }

    /// `[PREFIX/]DIR`: where the partitions of [`SAMPLES_DIR`] or [`EVENTS_DIR`] are.
    pub(crate) fn root(&self, dir: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(dir)
        } else {
            ObjectPath::from(format!("{}/{dir}", self.prefix))
        }
    }

    /// `path` for messages: `s3://BUCKET/KEY` or `/DIR/KEY`.
    pub(crate) fn display(&self, path: &ObjectPath) -> String {
        format!("{}/{path}", self.display_base)
    }
}
