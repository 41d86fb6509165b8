//! What a pollster is: its kind, the meters it declares, what it returns, how it fails.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hb_sample::{Metadata, SampleType};

use crate::coordination::Share;
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
    /// Dotted name; for a family, its pattern as shown by `--list` (`check_disk.*`).
    pub name: String,
    /// Gauge, delta or cumulative (for a family: of measurements that do not say).
    pub kind: SampleType,
    /// Unit of the volume (for a family: of measurements that do not say).
    pub unit: String,
    /// One line for `--list`.
    pub description: String,
    /// For a family of meters whose names the pollster makes up as it runs (Nagios
    /// performance labels, an external program's output, `prefix.{field}` definitions): the
    /// names it may emit. Each such measurement carries its own type and unit.
    pub family: Option<glob::Pattern>,
}

impl MeterDef {
    /// A meter with a fixed name.
    pub fn new(name: impl Into<String>, kind: SampleType, unit: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            kind,
            unit: unit.into(),
            description: String::new(),
            family: None,
        }
    }

    /// A family of meters named by `pattern`, a glob (`check_disk.*`); `kind` and `unit` apply
    /// to measurements that do not carry their own.
    pub fn family(
        pattern: &str,
        kind: SampleType,
        unit: impl Into<String>,
    ) -> Result<Self, glob::PatternError> {
        Ok(Self {
            family: Some(glob::Pattern::new(pattern)?),
            ..Self::new(pattern, kind, unit)
        })
    }

    /// Sets the `--list` description.
    pub fn describe(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// True when this declaration covers `meter`.
    pub fn covers(&self, meter: &str) -> bool {
        match &self.family {
            None => self.name == meter,
            Some(pattern) => pattern.matches(meter),
        }
    }
}

/// One value a pollster read, before the runner stamps it into a sample with the meter's
/// declared type and unit, the run's timestamp and a fresh id.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// Meter name: declared, or in a declared family.
    pub meter: Cow<'static, str>,
    /// The value.
    pub volume: f64,
    /// What was measured; empty means the agent's host.
    pub resource_id: String,
    /// Descriptive attributes (the runner adds `host`).
    pub metadata: Metadata,
    /// Type and unit the pollster read along with the value (a Nagios unit of measure, an
    /// external program's output); used for meters of a family, where nothing is declared.
    pub typed: Option<(SampleType, String)>,
    /// Owning project, when the pollster knows it.
    pub project_id: Option<String>,
    /// Owning user, when the pollster knows it.
    pub user_id: Option<String>,
}

impl Measurement {
    /// A measurement without metadata.
    pub fn new(
        meter: impl Into<Cow<'static, str>>,
        volume: f64,
        resource_id: impl Into<String>,
    ) -> Self {
        Self {
            meter: meter.into(),
            volume,
            resource_id: resource_id.into(),
            metadata: Metadata::new(),
            typed: None,
            project_id: None,
            user_id: None,
        }
    }

    /// A measurement that carries its own type and unit (for a meter of a family).
    pub fn typed(
        meter: impl Into<Cow<'static, str>>,
        kind: SampleType,
        unit: impl Into<String>,
        volume: f64,
        resource_id: impl Into<String>,
    ) -> Self {
        Self {
            typed: Some((kind, unit.into())),
            ..Self::new(meter, volume, resource_id)
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

/// A pollster that talks to the network or runs programs: runs as an async task.
pub trait NetPollster: Send + Sync + 'static {
    /// Polls once. A pollster with several targets polls those `share` gives this agent
    /// (see [`Split`]).
    fn poll<'a>(&'a self, share: &'a Share) -> PollFuture<'a>;
}

/// How coordinated central agents divide a pollster's work (see [`crate::coordination`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Never divided: it measures the machine the agent runs on.
    Local,
    /// The whole pollster is one resource, polled by the agent that owns its name.
    Whole,
    /// Each target is a resource (`<pollster>/<target>`); the pollster asks [`Share::owns`].
    Targets,
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
