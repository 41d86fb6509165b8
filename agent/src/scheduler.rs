//! The run loop: one timer per distinct source interval. Each tick starts a cycle that polls,
//! in its own task and under its timeout, every pollster whose meters a source wants at that
//! interval, and publishes each pollster's samples as soon as it returns, so neither a slow
//! pollster nor a slow broker delays anybody. One summary line per cycle.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use hb_pipeline::config::Source;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::coordination::{self, Coordinator, Share};
use crate::destination::{Destination, Published};
use crate::host::Host;
use crate::model::{LoadedPollster, Wanted};
use crate::pollster::{Kind, PollError, Split};
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
    pub wanted: Arc<Wanted>,
    /// For info pollsters: collected already, never polled again.
    collected: AtomicBool,
}

impl Plan {
    /// What runs at which interval: a pollster runs at every interval of a source that
    /// selects one of its meters (a family is selected by a source whose filter matches its
    /// pattern, `*` for instance), once per cycle however many sources want it; a pollster
    /// with its own `interval` runs at that one only. An info pollster runs only in the
    /// shortest of those intervals, until it has succeeded once.
    pub fn new(pollsters: &[Arc<LoadedPollster>], sources: &[Source]) -> Self {
        let mut groups: BTreeMap<Duration, Vec<Entry>> = BTreeMap::new();
        for p in pollsters {
            let selecting: Vec<&Source> = sources
                .iter()
                .filter(|s| p.meters.iter().any(|m| s.meters.matches(&m.name)))
                .collect();
            let Some(shortest) = selecting.iter().map(|s| s.interval).min() else {
                continue;
            };
            let intervals: BTreeSet<Duration> = match (p.interval, p.kind) {
                (Some(own), _) => BTreeSet::from([own]),
                (None, Kind::Info) => BTreeSet::from([shortest]),
                (None, Kind::Monitor) => selecting.iter().map(|s| s.interval).collect(),
            };
            for interval in intervals {
                let at_this: Vec<&Source> = if p.interval.is_some() || p.kind == Kind::Info {
                    selecting.clone()
                } else {
                    selecting
                        .iter()
                        .copied()
                        .filter(|s| s.interval == interval)
                        .collect()
                };
                let wanted = Wanted::of(p, &at_this);
                if wanted.is_empty() {
                    continue;
                }
                groups.entry(interval).or_default().push(Entry {
                    pollster: Arc::clone(p),
                    wanted: Arc::new(wanted),
                    collected: AtomicBool::new(false),
                });
            }
        }
        Self {
            groups: groups
                .into_iter()
                .map(|(interval, entries)| Group { interval, entries })
                .collect(),
        }
    }

    /// True when nothing would ever be polled.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

/// Cycles of one group that may be publishing at once; past it, polls are skipped (and
/// counted) until one finishes.
const MAX_CYCLES_IN_FLIGHT: usize = 8;

/// Runs every group until `shutdown` is cancelled; a cycle in flight is finished first. With a
/// `coordinator`, cycles start on wall-clock multiples of their interval and poll only this
/// agent's share (see [`crate::coordination`]).
pub async fn run(
    plan: Plan,
    host: Arc<Host>,
    destination: Arc<Destination>,
    coordinator: Option<Arc<Coordinator>>,
    shutdown: CancellationToken,
) {
    let mut loops = JoinSet::new();
    for group in plan.groups {
        let (host, destination, shutdown, coordinator) = (
            Arc::clone(&host),
            Arc::clone(&destination),
            shutdown.clone(),
            coordinator.clone(),
        );
        loops.spawn(async move {
            let group = Arc::new(group);
            let mut ticker = match &coordinator {
                None => tokio::time::interval(group.interval),
                Some(_) => {
                    let wait = coordination::until_next_cycle(SystemTime::now(), group.interval);
                    tokio::time::interval_at(tokio::time::Instant::now() + wait, group.interval)
                }
            };
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
                        let (group, host, destination, coordinator) = (
                            Arc::clone(&group),
                            Arc::clone(&host),
                            Arc::clone(&destination),
                            coordinator.clone(),
                        );
                        cycles.spawn(async move {
                            let share = share(&group, coordinator.as_deref()).await;
                            cycle(&group, &host, &destination, &share).await
                        });
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
    /// Pollsters another agent of the coordination group polls this cycle.
    not_ours: usize,
}

/// This agent's share for the cycle starting now: everything without coordination, or when
/// nothing in the group is divided.
async fn share(group: &Group, coordinator: Option<&Coordinator>) -> Share {
    let divided = group
        .entries
        .iter()
        .any(|e| e.pollster.split != Split::Local);
    match coordinator {
        Some(c) if divided => {
            c.share(coordination::cycle_start(SystemTime::now(), group.interval))
                .await
        }
        _ => Share::all(),
    }
}

async fn cycle(group: &Group, host: &Arc<Host>, destination: &Arc<Destination>, share: &Share) {
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    let mut names = HashMap::new();
    for (index, entry) in group.entries.iter().enumerate() {
        if entry.collected.load(Ordering::Relaxed) {
            continue;
        }
        let p = Arc::clone(&entry.pollster);
        let (host, destination, wanted, share) = (
            Arc::clone(host),
            Arc::clone(destination),
            Arc::clone(&entry.wanted),
            share.clone(),
        );
        let timeout = p.timeout.min(group.interval);
        let handle = tasks.spawn(async move {
            let namespace = p.namespace.clone();
            let run = runner::run(Arc::clone(&p), host, timeout, Some(wanted), share).await;
            let polled = run.samples.len();
            if !run.not_ours {
                account(&p, run.took, polled, run.error.as_ref());
            }
            let published = if polled > 0 {
                destination.publish(&namespace, run.samples).await
            } else {
                Published::default()
            };
            (
                index,
                run.error,
                polled,
                run.rejected,
                published,
                run.not_ours,
            )
        });
        names.insert(handle.id(), entry.pollster.name.clone());
    }
    let mut summary = Summary::default();
    while let Some(joined) = tasks.join_next_with_id().await {
        match joined {
            Ok((_, (index, error, polled, rejected, published, not_ours))) => {
                let entry = &group.entries[index];
                if not_ours {
                    summary.not_ours += 1;
                    continue;
                }
                summary.samples += polled;
                summary.rejected += rejected;
                summary.published += published;
                if error.is_some() {
                    summary.failed.push(entry.pollster.name.clone());
                } else {
                    if entry.pollster.kind == Kind::Info {
                        entry.collected.store(true, Ordering::Relaxed);
                    }
                }
            }
            Err(error) => {
                let name = names.get(&error.id()).cloned().unwrap_or_default();
                tracing::error!(pollster = %name, %error, "pollster task failed");
                if let Some(entry) = group.entries.iter().find(|e| e.pollster.name == name) {
                    let failed = PollError::Task(error.to_string());
                    account(&entry.pollster, Duration::ZERO, 0, Some(&failed));
                }
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
        left_to_others = summary.not_ours,
        members = share.members().len(),
        failed_pollsters = %summary.failed.join(","),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "cycle done"
    );
}

/// Records a finished run in the pollster's state and logs a failure: the first, then the
/// 2nd, 4th, 8th... in a row, so a pollster that keeps failing stays visible without flooding
/// the log (the cycle summary names it every time); and a recovery.
fn account(p: &LoadedPollster, took: Duration, samples: usize, error: Option<&PollError>) {
    let message = error.map(ToString::to_string);
    let in_a_row = p.state.finished(took, samples, message.as_deref());
    match error {
        Some(error) if in_a_row.is_power_of_two() => {
            tracing::warn!(pollster = %p.name, namespace = %p.namespace, %error, failures_in_a_row = in_a_row, "pollster failed");
        }
        None if in_a_row > 0 => {
            tracing::info!(pollster = %p.name, after_failures = in_a_row, "pollster recovered");
        }
        _ => {}
    }
}
