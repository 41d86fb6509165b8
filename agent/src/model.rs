//! The runtime model of the agent: a pollster as loaded and as it runs (its declaration, how
//! it runs, its bookkeeping across runs) and what the sources want of it. The loader
//! (`namespaces`) builds these; the runner, the scheduler, the outbox and the output use them
//! without depending on the loader.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use hb_pipeline::MeterFilter;
use hb_pipeline::config::Source;

use crate::pollster::{Implementation, Kind, MeterDef, Split};

/// A pollster ready to run.
#[derive(Debug)]
pub struct LoadedPollster {
    /// Namespace that declared it.
    pub namespace: String,
    /// Unique name.
    pub name: String,
    /// Info or monitor.
    pub kind: Kind,
    /// One line for `--list`.
    pub description: String,
    /// Declared meters.
    pub meters: Vec<MeterDef>,
    /// Run timeout.
    pub timeout: Duration,
    /// Its own interval, when it sets one (else the intervals of the sources that want it).
    pub interval: Option<Duration>,
    /// How it runs.
    pub implementation: Implementation,
    /// How coordinated agents divide its work.
    pub split: Split,
    /// The namespace file that declares it.
    pub source: PathBuf,
    /// In-flight and failure bookkeeping.
    pub state: RunState,
}

impl LoadedPollster {
    /// The declaration that covers `meter`: its own, else a family it belongs to.
    pub fn meter(&self, meter: &str) -> Option<&MeterDef> {
        self.meters
            .iter()
            .find(|m| m.family.is_none() && m.name == meter)
            .or_else(|| self.meters.iter().find(|m| m.covers(meter)))
    }
}

/// Per-pollster bookkeeping across runs.
#[derive(Debug, Default)]
pub struct RunState {
    /// Set while a host pollster's blocking work is running (it may outlive its timeout).
    pub(crate) running_since: Mutex<Option<Instant>>,
    /// Failed runs in a row.
    pub consecutive_failures: AtomicU32,
}

/// The meters wanted from one pollster in one group.
#[derive(Debug, Default)]
pub struct Wanted {
    /// Declared meters some source selects.
    names: HashSet<String>,
    /// For meters of a family (named as the pollster runs): the filters of the sources that
    /// select the family, each name checked as it comes.
    filters: Vec<MeterFilter>,
}

impl Wanted {
    /// What `sources` want of `pollster`.
    pub(crate) fn of(pollster: &LoadedPollster, sources: &[&Source]) -> Self {
        let selects =
            |m: &crate::pollster::MeterDef| sources.iter().any(|s| s.meters.matches(&m.name));
        Self {
            names: pollster
                .meters
                .iter()
                .filter(|m| m.family.is_none() && selects(m))
                .map(|m| m.name.clone())
                .collect(),
            filters: sources
                .iter()
                .filter(|s| {
                    pollster
                        .meters
                        .iter()
                        .any(|m| m.family.is_some() && s.meters.matches(&m.name))
                })
                .map(|s| s.meters.clone())
                .collect(),
        }
    }

    /// The declared meters wanted, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.names.iter().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// True when `meter` is wanted.
    pub fn contains(&self, meter: &str) -> bool {
        self.names.contains(meter) || self.filters.iter().any(|f| f.matches(meter))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.names.is_empty() && self.filters.is_empty()
    }
}
