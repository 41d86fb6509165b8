//! The run loop: one timer per distinct source interval. Each tick starts a cycle that polls,
//! in its own task and under its timeout, every pollster whose meters a source wants at that
//! interval, and publishes each pollster's samples as soon as it returns, so neither a slow
//! pollster nor a slow broker delays anybody. One summary line per cycle.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hb_pipeline::config::Source;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::destination::{Destination, Published};
use crate::host::Host;
use crate::namespaces::LoadedPollster;
use crate::pollster::{Kind, PollError};
use crate::runner;

/// What runs at which interval.
#[derive(Debug, Default)]
pub struct Plan {
    /// One group per distinct interval, shortest first.
    pub groups: Vec<Group>,
}

/// The pollsters polled together at one interval.
#[derive(Debug)]
pub struct Group {
    /// How often.
    pub interval: Duration,
    /// What.
    pub entries: Vec<Entry>,
}

/// One pollster in a group, with the meters wanted from it at this interval.
#[derive(Debug)]
pub struct Entry {
    /// The pollster.
    pub pollster: Arc<LoadedPollster>,
    /// Meters some source with this interval selects.
    pub wanted: Arc<HashSet<String>>,
    /// For info pollsters: collected already, never polled again.
    collected: AtomicBool,
}

impl Plan {
    /// Which pollsters run at which interval: a pollster runs at every interval of a source that
    /// selects one of its meters, once per cycle however many sources want it. An info
    /// pollster runs only in the shortest of those intervals, until it has succeeded once.
    pub fn new(pollsters: &[Arc<LoadedPollster>], sources: &[Source]) -> Self {
        let mut wanted: BTreeMap<Duration, Vec<HashSet<String>>> = BTreeMap::new();
        for source in sources {
            let slots = wanted
                .entry(source.interval)
                .or_insert_with(|| vec![HashSet::new(); pollsters.len()]);
            for (slot, p) in slots.iter_mut().zip(pollsters) {
                slot.extend(
                    p.meters
                        .iter()
                        .filter(|m| source.meters.matches(&m.name))
                        .map(|m| m.name.clone()),
                );
            }
        }
        let mut info_placed = vec![false; pollsters.len()];
        let mut groups = Vec::new();
        for (interval, slots) in wanted {
            let mut entries = Vec::new();
            for (i, meters) in slots.into_iter().enumerate() {
                let p = &pollsters[i];
                if meters.is_empty() || (p.kind == Kind::Info && info_placed[i]) {
                    continue;
                }
                let meters = if p.kind == Kind::Info {
                    info_placed[i] = true;
                    p.meters
                        .iter()
                        .map(|m| m.name.clone())
                        .filter(|m| sources.iter().any(|s| s.meters.matches(m)))
                        .collect()
                } else {
                    meters
                };
                entries.push(Entry {
                    pollster: Arc::clone(p),
                    wanted: Arc::new(meters),
                    collected: AtomicBool::new(false),
                });
            }
            if !entries.is_empty() {
                groups.push(Group { interval, entries });
            }
        }
        Self { groups }
    }

    /// True when nothing would ever be polled.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

/// Cycles of one group that may be publishing at once; past it, polls are skipped (and
/// counted) until one finishes.
const MAX_CYCLES_IN_FLIGHT: usize = 8;

/// Runs every group until `shutdown` is cancelled; a cycle in flight is finished first.
pub async fn run(
    plan: Plan,
    host: Arc<Host>,
    destination: Arc<Destination>,
    shutdown: CancellationToken,
) {
    let mut loops = JoinSet::new();
    for group in plan.groups {
        let (host, destination, shutdown) = (
            Arc::clone(&host),
            Arc::clone(&destination),
            shutdown.clone(),
        );
        loops.spawn(async move {
            let group = Arc::new(group);
            let mut ticker = tokio::time::interval(group.interval);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
            // Cycles run as tasks: a broker slow to confirm delays no poll.
            let mut cycles = JoinSet::new();
            let mut skipped = 0u64;
            loop {
                tokio::select! {
                    biased;
                    () = shutdown.cancelled() => break,
                    Some(_) = cycles.join_next(), if !cycles.is_empty() => {}
                    _ = ticker.tick() => {
                        if cycles.len() >= MAX_CYCLES_IN_FLIGHT {
                            // Earlier cycles are still waiting for their samples to be taken
                            // (a sink pushing back, a broker slow to confirm): polling more
                            // would only pile samples up in memory.
                            skipped += 1;
                            tracing::warn!(
                                interval_s = group.interval.as_secs(),
                                in_flight = cycles.len(),
                                skipped_total = skipped,
                                "previous cycles still publishing; skipping this poll"
                            );
                            continue;
                        }
                        let (group, host, destination) =
                            (Arc::clone(&group), Arc::clone(&host), Arc::clone(&destination));
                        cycles.spawn(async move { cycle(&group, &host, &destination).await });
                    }
                }
            }
            while cycles.join_next().await.is_some() {}
        });
    }
    while let Some(done) = loops.join_next().await {
        if let Err(error) = done {
            tracing::error!(%error, "a polling loop ended abnormally");
        }
    }
}

/// Totals of one cycle, for its summary line.
#[derive(Debug, Default)]
struct Summary {
    samples: usize,
    rejected: usize,
    published: Published,
    failed: Vec<String>,
}

async fn cycle(group: &Group, host: &Arc<Host>, destination: &Arc<Destination>) {
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    let mut names = HashMap::new();
    for (index, entry) in group.entries.iter().enumerate() {
        if entry.collected.load(Ordering::Relaxed) {
            continue;
        }
        let p = Arc::clone(&entry.pollster);
        let (host, destination, wanted) = (
            Arc::clone(host),
            Arc::clone(destination),
            Arc::clone(&entry.wanted),
        );
        let timeout = p.timeout.min(group.interval);
        let handle = tasks.spawn(async move {
            let namespace = p.namespace.clone();
            let run = runner::run(p, host, timeout, Some(wanted)).await;
            let polled = run.samples.len();
            let published = if polled > 0 {
                destination.publish(&namespace, run.samples).await
            } else {
                Published::default()
            };
            (index, run.error, polled, run.rejected, published)
        });
        names.insert(handle.id(), entry.pollster.name.clone());
    }
    let mut summary = Summary::default();
    while let Some(joined) = tasks.join_next_with_id().await {
        match joined {
            Ok((_, (index, error, polled, rejected, published))) => {
                let entry = &group.entries[index];
                summary.samples += polled;
                summary.rejected += rejected;
                summary.published += published;
                if let Some(error) = error {
                    summary.failed.push(entry.pollster.name.clone());
                    report_failure(&entry.pollster, &error);
                } else {
                    report_success(&entry.pollster);
                    if entry.pollster.kind == Kind::Info {
                        entry.collected.store(true, Ordering::Relaxed);
                    }
                }
            }
            Err(error) => {
                let name = names.get(&error.id()).cloned().unwrap_or_default();
                tracing::error!(pollster = %name, %error, "pollster task failed");
                summary.failed.push(name);
            }
        }
    }
    summary.failed.sort();
    tracing::info!(
        interval_s = group.interval.as_secs(),
        samples = summary.samples,
        delivered = summary.published.delivered,
        spooled = summary.published.spooled,
        failed_deliveries = summary.published.failed,
        unrouted = summary.published.unrouted,
        rejected = summary.rejected,
        failed_pollsters = %summary.failed.join(","),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "cycle done"
    );
}

/// Logs a failure: the first, then the 2nd, 4th, 8th... in a row, so a pollster that keeps
/// failing stays visible without flooding the log (the cycle summary names it every time).
fn report_failure(p: &LoadedPollster, error: &PollError) {
    let in_a_row = runner::record(p, true);
    if in_a_row.is_power_of_two() {
        tracing::warn!(pollster = %p.name, namespace = %p.namespace, %error, failures_in_a_row = in_a_row, "pollster failed");
    }
}

fn report_success(p: &LoadedPollster) {
    let ended = runner::record(p, false);
    if ended > 0 {
        tracing::info!(pollster = %p.name, after_failures = ended, "pollster recovered");
    }
}
