//! Publishers: where a sink's batches (samples and events) go, chosen by the URL scheme (one
//! scheme, one meaning).
//!
//! | URL | publisher | events |
//! |---|---|---|
//! | `file://PATH?max_bytes=N&backup_count=M` | [JSON lines file](mod@file), rotated like a rotating log | refused (dead letters) |
//! | `archive+file:///DIR`, `s3://BUCKET/PREFIX?endpoint=&region=` | [archive]: time-partitioned, compressed JSON-lines objects | `events/` objects |
//! | `influxdb://HOST:PORT?db=hb`, `influxdb2://HOST:PORT?org=&bucket=` (and `+https`) | [InfluxDB](influx) v1 / v2 write API | measurement `events` |
//!
//! Every publisher takes a [`Batch`]: the samples and the events a sink gathered together. The
//! configuration lets only archive and InfluxDB publishers take events; a file publisher handed
//! events anyway refuses them as dead letters rather than drop them.
//!
//! A relative `PATH` (`file://data/samples.jsonl`) is resolved against the directory of the
//! configuration file, so a configuration means the same thing from any working directory.

pub mod archive;
pub mod file;
pub mod influx;

use std::path::{Path, PathBuf};

use hb_sample::{Event, Sample};

pub use archive::ArchivePublisher;
pub use file::FilePublisher;
pub use influx::InfluxPublisher;

use crate::dead_letter::Rejected;

/// Schemes this build understands, for error messages.
pub const AVAILABLE: &str =
    "file, archive+file, s3, influxdb, influxdb+https, influxdb2, influxdb2+https";

/// A validated publisher URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublisherSpec {
    /// `file://`.
    File(file::FileSpec),
    /// `archive+file://` and `s3://`.
    Archive(archive::ArchiveSpec),
    /// `influxdb://`, `influxdb2://` and their `+https` forms.
    Influx(influx::InfluxSpec),
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
    /// The URL with its options, as logs and `GET /plugins/config` show it: never a secret
    /// (InfluxDB credentials are named by the variables holding them, S3 keys left out).
    pub fn describe(&self) -> String {
        match self {
            Self::File(spec) => format!(
                "file://{}?max_bytes={}&backup_count={}",
                spec.path.display(),
                spec.max_bytes,
                spec.backup_count
            ),
            Self::Archive(spec) => spec.describe(),
            Self::Influx(spec) => spec.describe(),
        }
    }

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
            "archive+file" | "s3" => {
                archive::ArchiveSpec::parse(scheme, target, options, base).map(Self::Archive)
            }
            "influxdb" | "influxdb+https" | "influxdb2" | "influxdb2+https" => {
                influx::InfluxSpec::parse(scheme, target, options).map(Self::Influx)
            }
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
    /// A sample or an event could not be encoded.
    #[error("encode: {0}")]
    Encode(#[from] serde_json::Error),
    /// The blocking task that performs the I/O was lost.
    #[error("publisher task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The archive refused a batch.
    #[error(transparent)]
    Archive(Box<archive::ArchiveError>),
    /// An InfluxDB write failed.
    #[error(transparent)]
    Influx(#[from] influx::InfluxError),
    /// An InfluxDB publisher could not be built.
    #[error(transparent)]
    InfluxSetup(#[from] influx::InfluxSetupError),
}

impl From<archive::ArchiveError> for PublishError {
    fn from(error: archive::ArchiveError) -> Self {
        Self::Archive(Box::new(error))
    }
}

impl PublishError {
    /// The least time to wait before trying again, when the destination said so.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Self::Influx(influx::InfluxError::Retryable { retry_after, .. }) => *retry_after,
            _ => None,
        }
    }

    /// True when retrying the same batch can never succeed (the destination refuses its
    /// content): the batch is dead-lettered instead of blocking the sink forever. Refused
    /// credentials are not permanent: an operator fixes them and the batch goes through.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Influx(e) => matches!(e, influx::InfluxError::Permanent { .. }),
            // A batch the store refuses for a reason other than the network or the server
            // being away (a bucket that does not exist, access denied) is kept retrying too:
            // an operator fixes those, and the archive must not lose the batch meanwhile.
            _ => false,
        }
    }
}

/// What a sink hands its publishers at once: samples (after the sink's transformers) and
/// events, in the order they were submitted within each kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    /// Samples.
    pub samples: Vec<Sample>,
    /// Events.
    pub events: Vec<Event>,
}

impl Batch {
    /// A batch of samples only.
    pub fn samples(samples: Vec<Sample>) -> Self {
        Self {
            samples,
            events: Vec::new(),
        }
    }

    /// A batch of events only.
    pub fn events(events: Vec<Event>) -> Self {
        Self {
            samples: Vec::new(),
            events,
        }
    }

    /// Samples and events together.
    pub fn len(&self) -> usize {
        self.samples.len() + self.events.len()
    }

    /// Neither samples nor events.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty() && self.events.is_empty()
    }

    /// Every item as a dead letter (its JSON) refused for `reason`.
    pub(crate) fn rejected(&self, reason: &str) -> Vec<Rejected> {
        let mut rejected = dead_letters(&self.samples, reason);
        rejected.extend(dead_letters(&self.events, reason));
        rejected
    }
}

/// `items` as dead letters (their JSON) refused for `reason`.
pub(crate) fn dead_letters<T: serde::Serialize>(items: &[T], reason: &str) -> Vec<Rejected> {
    items
        .iter()
        .map(|item| Rejected {
            data: serde_json::to_string(item).unwrap_or_default(),
            reason: reason.to_owned(),
        })
        .collect()
}

/// Why a file publisher refuses events (configuration validation normally prevents it).
pub const FILE_REFUSES_EVENTS: &str =
    "file:// publishers write samples only (events go to influxdb and archive publishers)";

/// A ready publisher.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // a handful per process, never moved in hot paths
pub enum Publisher {
    /// JSON lines file.
    File(FilePublisher),
    /// Object-store archive.
    Archive(ArchivePublisher),
    /// InfluxDB.
    Influx(InfluxPublisher),
}

impl Publisher {
    /// Opens the publisher a spec describes; failures here refuse start-up.
    pub fn open(spec: &PublisherSpec) -> Result<Self, PublishError> {
        match spec {
            PublisherSpec::File(spec) => FilePublisher::open(spec).map(Self::File),
            PublisherSpec::Archive(spec) => Ok(Self::Archive(ArchivePublisher::open(spec)?)),
            PublisherSpec::Influx(spec) => Ok(Self::Influx(InfluxPublisher::open(spec)?)),
        }
    }

    /// Hands a batch to the publisher; `Ok` means it took the batch, except the items listed,
    /// which it refused for good (they go to the dead-letter directory). A file publisher
    /// writes the samples and refuses every event ([`FILE_REFUSES_EVENTS`]).
    pub async fn publish(&self, batch: &Batch) -> Result<Vec<Rejected>, PublishError> {
        match self {
            Self::File(p) => {
                if !batch.samples.is_empty() {
                    p.publish(&batch.samples).await?;
                }
                Ok(dead_letters(&batch.events, FILE_REFUSES_EVENTS))
            }
            Self::Archive(p) => Ok(p.publish_batch(batch).await.map(|()| Vec::new())?),
            Self::Influx(p) => Ok(p.publish(batch).await?),
        }
    }

    /// Makes everything accepted so far durable.
    pub async fn flush(&self) -> Result<(), PublishError> {
        match self {
            Self::File(p) => p.flush().await,
            Self::Archive(p) => Ok(p.flush().await?),
            Self::Influx(_) => Ok(()),
        }
    }

    /// A short description for logs (no secrets).
    pub fn describe(&self) -> String {
        match self {
            Self::File(p) => format!("file://{}", p.path().display()),
            Self::Archive(p) => p.describe(),
            Self::Influx(p) => p.describe().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use hb_sample::{SampleType, Trait, TraitValue};

    use super::*;

    #[tokio::test]
    async fn a_file_publisher_writes_samples_and_refuses_events_as_dead_letters() {
        let dir = tempfile::tempdir().unwrap();
        let spec = PublisherSpec::parse("file://out.jsonl", dir.path()).unwrap();
        let publisher = Publisher::open(&spec).unwrap();
        let at = chrono::Utc::now();
        let sample = Sample::new("cpu", SampleType::Gauge, "ns", 1.0, "host-a", at).unwrap();
        let event = Event {
            message_id: "m-1".into(),
            event_type: "compute.instance.create.end".into(),
            generated: at,
            traits: vec![Trait {
                name: "memory_mb".into(),
                value: TraitValue::Int(512),
            }],
        };
        let batch = Batch {
            samples: vec![sample.clone()],
            events: vec![event.clone()],
        };
        let rejected = publisher.publish(&batch).await.unwrap();
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].reason, FILE_REFUSES_EVENTS);
        let back: Event = serde_json::from_str(&rejected[0].data).unwrap();
        assert_eq!(back, event);
        let text = std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap();
        let written: Sample = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(written, sample);
        assert_eq!(batch.len(), 2);
        assert!(!batch.is_empty() && Batch::default().is_empty());
    }
}
