//! Publishers: where a sink's samples go, chosen by the URL scheme (one scheme, one meaning).
//!
//! | URL | publisher |
//! |---|---|
//! | `file://PATH?max_bytes=N&backup_count=M` | [JSON lines file](file), rotated like a rotating log |
//!
//! A relative `PATH` (`file://data/samples.jsonl`) is resolved against the directory of the
//! configuration file, so a configuration means the same thing from any working directory.

pub mod file;

use std::path::{Path, PathBuf};

use hb_sample::Sample;

pub use file::FilePublisher;

/// Schemes this build understands, for error messages.
pub const AVAILABLE: &str = "file";

/// A validated publisher URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublisherSpec {
    /// `file://`.
    File(file::FileSpec),
}

/// Why a publisher URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublisherUrlError {
    /// No `scheme://`.
    #[error("`{0}` is not a publisher URL (expected scheme://..., available schemes: {AVAILABLE})")]
    NotAUrl(String),
    /// A scheme this build does not have.
    #[error("unknown publisher scheme `{0}` (available: {AVAILABLE})")]
    UnknownScheme(String),
    /// An option the publisher does not take.
    #[error("unknown option `{option}` for {scheme}:// (valid: {valid})")]
    UnknownOption {
        /// The publisher's scheme.
        scheme: &'static str,
        /// The option as written.
        option: String,
        /// The options it takes.
        valid: &'static str,
    },
    /// The same option twice.
    #[error("option `{0}` given twice")]
    DuplicateOption(String),
    /// An option whose value does not parse or is out of range.
    #[error("invalid {option} `{value}`: {reason}")]
    InvalidOption {
        /// The option.
        option: &'static str,
        /// Its value as written.
        value: String,
        /// What a valid value looks like.
        reason: &'static str,
    },
    /// A scheme-specific refusal (missing path, ...).
    #[error("{0}")]
    Invalid(String),
}

impl PublisherSpec {
    /// Parses and validates a publisher URL; relative paths are resolved against `base`.
    pub fn parse(url: &str, base: &Path) -> Result<Self, PublisherUrlError> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(PublisherUrlError::NotAUrl(url.to_owned()));
        };
        let (target, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut options = Vec::new();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            if options.iter().any(|(k, _): &(String, String)| *k == key) {
                return Err(PublisherUrlError::DuplicateOption(key.into_owned()));
            }
            options.push((key.into_owned(), value.into_owned()));
        }
        match scheme {
            "file" => file::FileSpec::parse(target, options, base).map(Self::File),
            other => Err(PublisherUrlError::UnknownScheme(other.to_owned())),
        }
    }
}

/// Resolves `path` against `base` unless it is absolute.
pub(crate) fn resolve(base: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_owned()
    } else {
        base.join(path)
    }
}

/// Why a batch was not accepted by a publisher.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The operating system refused a write, rename or sync.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done (`write to`, `rotate`, `open`, `sync`).
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A sample could not be encoded.
    #[error("encode sample: {0}")]
    Encode(#[from] serde_json::Error),
    /// The blocking task that performs the I/O was lost.
    #[error("publisher task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// A ready publisher.
#[derive(Debug)]
pub enum Publisher {
    /// JSON lines file.
    File(FilePublisher),
}

impl Publisher {
    /// Opens the publisher a spec describes; failures here refuse start-up.
    pub fn open(spec: &PublisherSpec) -> Result<Self, PublishError> {
        match spec {
            PublisherSpec::File(spec) => FilePublisher::open(spec).map(Self::File),
        }
    }

    /// Hands a batch to the publisher; `Ok` means it accepted all of it.
    pub async fn publish(&self, samples: &[Sample]) -> Result<(), PublishError> {
        match self {
            Self::File(p) => p.publish(samples).await,
        }
    }

    /// Makes everything accepted so far durable.
    pub async fn flush(&self) -> Result<(), PublishError> {
        match self {
            Self::File(p) => p.flush().await,
        }
    }

    /// A short description for logs (no secrets).
    pub fn describe(&self) -> String {
        match self {
            Self::File(p) => format!("file://{}", p.path().display()),
        }
    }
}
