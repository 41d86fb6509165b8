//! The runtime model of the agent: a pollster as loaded and as it runs (its declaration, how
//! it runs, its bookkeeping across runs) and what the sources want of it. The loader
//! (`namespaces`) builds these; the runner, the scheduler, the outbox and the output use them
//! without depending on the loader.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

/// Per-pollster bookkeeping across runs: the overlap guard, and the figures the management
/// server shows (its health, `/metrics`) and the log lines print.
#[derive(Debug)]
pub struct RunState {
    /// Set while a host pollster's blocking work is running (it may outlive its timeout).
    pub(crate) running_since: Mutex<Option<Instant>>,
    /// Failed runs in a row.
    pub consecutive_failures: AtomicU32,
    /// Runs finished, failed ones included.
    pub runs: AtomicU64,
    /// Runs that failed.
    pub failures: AtomicU64,
    /// Samples its runs produced.
    pub samples: AtomicU64,
    /// Runs going on now.
    pub in_flight: AtomicU64,
    /// When a run last succeeded (Unix seconds; 0: never).
    pub last_success: AtomicU64,
    /// Why the last failed run failed.
    pub last_error: Mutex<Option<String>>,
    /// How long its runs took, in seconds.
    pub durations: prometheus::Histogram,
}

/// Bucket bounds of [`RunState::durations`], in seconds: from a /proc read to a slow HTTP API.
const DURATION_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

impl Default for RunState {
    fn default() -> Self {
        let opts = prometheus::HistogramOpts::new("hb_pollster_duration_seconds", "run time")
            .buckets(DURATION_BUCKETS.to_vec());
        Self {
            running_since: Mutex::default(),
            consecutive_failures: AtomicU32::default(),
            runs: AtomicU64::default(),
            failures: AtomicU64::default(),
            samples: AtomicU64::default(),
            in_flight: AtomicU64::default(),
            last_success: AtomicU64::default(),
            last_error: Mutex::default(),
            durations: prometheus::Histogram::with_opts(opts)
                .expect("constant histogram options are valid"),
        }
    }
}

impl RunState {
    /// Records a finished run: after a failure, returns the failed runs in a row including
    /// this one; after a success, the failed runs in a row that it ended (0 if none).
    pub fn finished(&self, took: Duration, samples: usize, error: Option<&str>) -> u32 {
        self.runs.fetch_add(1, Ordering::Relaxed);
        self.samples.fetch_add(samples as u64, Ordering::Relaxed);
        self.durations.observe(took.as_secs_f64());
        match error {
            Some(error) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                *self
                    .last_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(error.to_owned());
                self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1
            }
            None => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                self.last_success.store(now, Ordering::Relaxed);
                self.consecutive_failures.swap(0, Ordering::Relaxed)
            }
        }
    }

    /// Why the last failed run failed, if one did.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
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
