//! Runs one pollster once: a guard against overlapping runs, the timeout, and the stamping of
//! measurements into samples (declared type and unit, one timestamp per run, host metadata).

use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use chrono::Utc;
use hb_sample::Sample;

use crate::coordination::Share;
use crate::host::Host;
use crate::model::{LoadedPollster, Wanted};
use crate::pollster::{Implementation, Measurement, PollError, Split};

/// Host pollsters running at once. Each runs on a blocking thread of the runtime, and every
/// thread costs its stack and a malloc arena (a compute cycle of 10 pollsters started 10
/// threads: 170 kB). A pollster holds its slot until it returns or its timeout passes; one that
/// hangs past its timeout keeps its thread but not its slot (and is not started again while
/// it hangs), so hung pollsters never hold up the others.
const HOST_SLOTS: usize = 4;
static HOST_SLOTS_FREE: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(HOST_SLOTS);

/// What one run produced.
#[derive(Debug, Default)]
pub struct Run {
    /// Samples, stamped.
    pub samples: Vec<Sample>,
    /// Why the run failed, if it did.
    pub error: Option<PollError>,
    /// Measurements refused: undeclared meter or non-finite value (each logged).
    pub rejected: usize,
    /// Not polled: another agent of the coordination group owns it this cycle.
    pub not_ours: bool,
    /// How long the pollster worked (a host pollster's wait for a slot not included).
    pub took: Duration,
}

/// Runs `pollster` once within `timeout`. With `wanted`, only those meters are kept; `share`
/// says which of its resources are this agent's (see [`Split`]).
pub async fn run(
    pollster: Arc<LoadedPollster>,
    host: Arc<Host>,
    timeout: Duration,
    wanted: Option<Arc<Wanted>>,
    share: Share,
) -> Run {
    if pollster.split == Split::Whole && !share.owns(&pollster.name) {
        return Run {
            not_ours: true,
            ..Run::default()
        };
    }
    let share = if pollster.split == Split::Local {
        Share::all()
    } else {
        share
    };
    let timestamp = Utc::now();
    let monotonic = monotonic_ns();
    let _counted = InFlight::enter(&pollster.state.in_flight);
    let mut started = Instant::now();
    let polled = match &pollster.implementation {
        Implementation::Host(imp) => {
            let (imp, host) = (Arc::clone(imp), Arc::clone(&host));
            match Guard::enter(&pollster) {
                Err(since) => Err(PollError::StillRunning(since)),
                Ok(guard) => {
                    let run = async {
                        // Never closed, so acquiring only waits.
                        let _slot = HOST_SLOTS_FREE.acquire().await;
                        started = Instant::now();
                        tokio::task::spawn_blocking(move || {
                            let _guard = guard;
                            imp.poll(&host)
                        })
                        .await
                    };
                    match tokio::time::timeout(timeout, run).await {
                        Ok(Ok(result)) => result,
                        Ok(Err(join)) => Err(PollError::Task(join.to_string())),
                        Err(_) => Err(PollError::Timeout(timeout)),
                    }
                }
            }
        }
        Implementation::Net(imp) => match tokio::time::timeout(timeout, imp.poll(&share)).await {
            Ok(result) => result,
            Err(_) => Err(PollError::Timeout(timeout)),
        },
    };
    let mut run = Run {
        took: started.elapsed(),
        ..Run::default()
    };
    match polled {
        Err(e) => run.error = Some(e),
        Ok(measurements) => {
            for m in measurements {
                if wanted.as_ref().is_some_and(|w| !w.contains(&m.meter)) {
                    continue;
                }
                match stamp(&pollster, m, timestamp, monotonic, host.name()) {
                    Some(sample) => run.samples.push(sample),
                    None => run.rejected += 1,
                }
            }
        }
    }
    run
}

fn stamp(
    pollster: &LoadedPollster,
    m: Measurement,
    timestamp: chrono::DateTime<Utc>,
    monotonic: Option<u64>,
    host: &str,
) -> Option<Sample> {
    let Some(def) = pollster.meter(&m.meter) else {
        tracing::warn!(pollster = %pollster.name, meter = %m.meter, "pollster emitted a meter it does not declare; dropped");
        return None;
    };
    let (kind, unit) = match (&def.family, m.typed) {
        (Some(_), Some((kind, unit))) => (kind, unit),
        _ => (def.kind, def.unit.clone()),
    };
    let mut metadata = m.metadata;
    metadata.entry("host").or_insert_with(|| host.into());
    let resource_id = if m.resource_id.is_empty() {
        host.to_owned()
    } else {
        m.resource_id
    };
    match Sample::new(m.meter, kind, unit, m.volume, resource_id, timestamp) {
        Ok(mut sample) => {
            sample.project_id = m.project_id;
            sample.user_id = m.user_id;
            let sample = sample.with_metadata(metadata);
            Some(match monotonic {
                Some(ns) => sample.with_monotonic_time(ns),
                None => sample,
            })
        }
        Err(error) => {
            tracing::warn!(pollster = %pollster.name, %error, "invalid measurement dropped");
            None
        }
    }
}

fn monotonic_ns() -> Option<u64> {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).ok()?;
    u64::try_from(t.tv_sec())
        .ok()?
        .checked_mul(1_000_000_000)?
        .checked_add(u64::try_from(t.tv_nsec()).ok()?)
}

/// Counts a run in flight while it lives (also when the run's task is cancelled).
struct InFlight<'a>(&'a std::sync::atomic::AtomicU64);

impl<'a> InFlight<'a> {
    fn enter(counter: &'a std::sync::atomic::AtomicU64) -> Self {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Marks a host pollster as running until dropped (also when its work panics).
struct Guard(Arc<LoadedPollster>);

impl Guard {
    fn enter(pollster: &Arc<LoadedPollster>) -> Result<Self, Duration> {
        let mut since = pollster
            .state
            .running_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(started) = *since {
            return Err(started.elapsed());
        }
        *since = Some(Instant::now());
        Ok(Self(Arc::clone(pollster)))
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        *self
            .0
            .state
            .running_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }
}
