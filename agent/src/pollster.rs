//! What a pollster is: its kind, the meters it declares, what it returns, how it fails.

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hb_sample::{Metadata, SampleType};

use crate::host::Host;

/// Info pollsters gather static facts once; monitor pollsters run every interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Collected once and not polled again.
    Info,
    /// Polled at every interval of the sources that want its meters.
    Monitor,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Info => "info",
            Self::Monitor => "monitor",
        })
    }
}

/// A meter as declared in `namespaces/<ns>/*.yaml`: the one place that says what a meter is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterDef {
    /// Dotted name.
    pub name: String,
    /// Gauge, delta or cumulative.
    pub kind: SampleType,
    /// Unit of the volume.
    pub unit: String,
    /// One line for `--list`.
    pub description: String,
}

/// One value a pollster read, before the runner stamps it into a sample with the meter's
/// declared type and unit, the run's timestamp and a fresh id.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// Declared meter name.
    pub meter: &'static str,
    /// The value.
    pub volume: f64,
    /// What was measured.
    pub resource_id: String,
    /// Descriptive attributes (the runner adds `host`).
    pub metadata: Metadata,
}

impl Measurement {
    /// A measurement without metadata.
    pub fn new(meter: &'static str, volume: f64, resource_id: impl Into<String>) -> Self {
        Self {
            meter,
            volume,
            resource_id: resource_id.into(),
            metadata: Metadata::new(),
        }
    }

    /// Adds one metadata attribute.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.metadata.insert(key.to_owned(), value.into());
        self
    }
}

/// Why a pollster run produced nothing.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// A file of the measured machine could not be read or parsed.
    #[error("read {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The run took longer than its timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The previous run has not returned yet (a blocked system call, for instance).
    #[error("previous run still in progress after {0:?}; not started again")]
    StillRunning(Duration),
    /// The run panicked or its task was lost.
    #[error("pollster task failed: {0}")]
    Task(String),
    /// Anything else, described.
    #[error("{0}")]
    Other(String),
}

impl PollError {
    /// A read failure of `path`.
    pub fn read(path: &Path, reason: impl fmt::Display) -> Self {
        Self::Read {
            path: path.display().to_string(),
            reason: reason.to_string(),
        }
    }
}

/// The result of one run.
pub type PollResult = Result<Vec<Measurement>, PollError>;

/// A pollster that reads the local machine (files, system calls): runs on the blocking pool,
/// so a hung `statvfs` on a dead NFS mount never stalls anything else.
pub trait HostPollster: Send + Sync + 'static {
    /// Reads the machine once.
    fn poll(&self, host: &Host) -> PollResult;
}

/// A boxed future returned by network pollsters.
pub type PollFuture<'a> = Pin<Box<dyn Future<Output = PollResult> + Send + 'a>>;

/// A pollster that talks to the network: runs as an async task.
pub trait NetPollster: Send + Sync + 'static {
    /// Checks its targets once.
    fn poll(&self) -> PollFuture<'_>;
}

/// The two ways a pollster runs.
#[derive(Clone)]
pub enum Implementation {
    /// Reads the local machine.
    Host(Arc<dyn HostPollster>),
    /// Talks to the network.
    Net(Arc<dyn NetPollster>),
}

impl fmt::Debug for Implementation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Host(_) => "Implementation::Host",
            Self::Net(_) => "Implementation::Net",
        })
    }
}
