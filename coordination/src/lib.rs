//! Coordination through Redis (`coordination:` in pipeline.yaml): the members of a group
//! divide work with a consistent hash ring, so that each piece has exactly one owner. Central
//! agents divide the resources of their shared pollsters (key space `coordination`); collectors
//! divide the samples partitions of the bus (key space `collectors`, see
//! `hb_bus::partition`), each calling [`Coordinator::share`] every heartbeat.
//!
//! - **Membership.** Each member is a key `hb:<space>:<group>:<member>` holding
//!   `<joined_ms> <last_seen_ms>` (wall clock), written every `heartbeat` with a time to live
//!   of twice `timeout`.
//! - **Cycles.** With coordination, cycles start on wall-clock multiples of their interval, so
//!   the agents of a group poll at the same moments. At each cycle start `T` an agent lists
//!   the group and keeps the members that are *active at `T`*: joined at least one heartbeat
//!   before `T` and seen within `timeout` before `T`. Every agent computes that from the same
//!   stored values and the same `T`, so they agree on the ring: a newcomer starts polling at
//!   the first cycle everybody counts it in, and a dead agent's share is taken over by all at
//!   the same cycle, `timeout` after its last heartbeat.
//! - **Ring.** The active members form a [`ring::Ring`]; a pollster whose `Split` is
//!   `Whole` is polled by the owner of its name, one with `Targets` polls the targets it owns
//!   (`<pollster>/<target>`). Pollsters that read the local machine are never divided.
//! - **Outages.** When Redis cannot be reached the agent keeps the last membership it knew
//!   (alone, if it never knew one), says so once, and says when Redis is back.
//!
//! - **Shared marks.** [`seen::Seen`] keeps, for a group, the numbers seen per
//!   key (the collectors' replay protection) in the same backend.
//!
//! (`Split` is the agent's `hb_agent::pollster::Split`.)

mod conn;
pub mod ring;
pub mod seen;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hb_pipeline::config::Coordination;
use redis::aio::MultiplexedConnection;
use redis::{RedisError, cmd};
use tokio_util::sync::CancellationToken;

pub use ring::Ring;

/// The part of the work this agent does.
#[derive(Debug, Clone, Default)]
pub struct Share(Option<Arc<Owned>>);

#[derive(Debug)]
struct Owned {
    ring: Ring,
    me: String,
}

impl Share {
    /// Everything: no coordination.
    pub fn all() -> Self {
        Self(None)
    }

    /// What `me` owns on `ring`.
    pub fn of(ring: Ring, me: impl Into<String>) -> Self {
        Self(Some(Arc::new(Owned {
            ring,
            me: me.into(),
        })))
    }

    /// True when this agent polls the resource `key`.
    pub fn owns(&self, key: &str) -> bool {
        match &self.0 {
            None => true,
            Some(o) => o.ring.owner(key) == Some(o.me.as_str()),
        }
    }

    /// The members sharing the work (empty without coordination).
    pub fn members(&self) -> &[String] {
        self.0.as_ref().map_or(&[], |o| o.ring.members())
    }
}

/// Why the coordinator could not start.
#[derive(Debug, thiserror::Error)]
pub enum CoordinationError {
    /// The backend URL (or one of its TLS options) was refused.
    #[error("coordination backend: {0}")]
    Backend(String),
}

/// One agent's membership of its group.
pub struct Coordinator {
    config: Coordination,
    member: String,
    key: String,
    /// `SCAN` pattern of the group's keys.
    pattern: String,
    conn: conn::Lazy,
    joined_ms: AtomicU64,
    last: Mutex<Option<Share>>,
    unreachable: AtomicBool,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The backend URL may hold a password: never printed.
        f.debug_struct("Coordinator")
            .field("group", &self.config.group)
            .field("member", &self.member)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn millis(d: Duration) -> u64 {
    d.as_millis() as u64
}

impl Coordinator {
    /// A member called `member` (unique per process) of the configured group of central
    /// agents; connects lazily.
    pub fn new(config: Coordination, member: String) -> Result<Self, CoordinationError> {
        Self::in_space(config, "coordination", member)
    }

    /// A member of the configured group in the key space `space` (`hb:<space>:<group>:...`):
    /// groups of different spaces never see each other.
    pub fn in_space(
        config: Coordination,
        space: &str,
        member: String,
    ) -> Result<Self, CoordinationError> {
        // The same client as the Redis bus's, TLS options (`?tls_ca=...`) included.
        let client = hb_bus::redis_client_from_url(&config.backend_url)
            .map_err(CoordinationError::Backend)?;
        let budget = config.heartbeat.max(Duration::from_millis(500));
        let key = format!("hb:{space}:{}:{member}", config.group);
        let pattern = format!("hb:{space}:{}:*", config.group);
        Ok(Self {
            config,
            member,
            key,
            pattern,
            conn: conn::Lazy::new(client, budget),
            joined_ms: AtomicU64::new(now_ms()),
            last: Mutex::new(None),
            unreachable: AtomicBool::new(false),
        })
    }

    /// This member's name.
    pub fn member(&self) -> &str {
        &self.member
    }

    /// The group's name.
    pub fn group(&self) -> &str {
        &self.config.group
    }

    async fn connection(&self) -> Result<MultiplexedConnection, RedisError> {
        self.conn.get().await
    }

    /// Forgets a connection that failed, so the next call dials again.
    async fn reset(&self) {
        self.conn.reset().await;
    }

    /// Says this member is alive.
    pub async fn heartbeat(&self) -> Result<(), RedisError> {
        let mut conn = self.connection().await?;
        let value = format!("{} {}", self.joined_ms.load(Ordering::Relaxed), now_ms());
        let ttl = millis(self.config.timeout) * 2;
        let done: Result<(), RedisError> = cmd("SET")
            .arg(&self.key)
            .arg(value)
            .arg("PX")
            .arg(ttl)
            .query_async(&mut conn)
            .await;
        if done.is_err() {
            self.reset().await;
        }
        done
    }

    /// Heartbeats every `heartbeat` until `shutdown`, then leaves the group.
    pub async fn run(&self, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(self.config.heartbeat);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = ticker.tick() => {
                    let outcome = self.heartbeat().await;
                    self.note_reachability(outcome.err());
                }
            }
        }
        if let Ok(mut conn) = self.connection().await {
            let left: Result<(), RedisError> =
                cmd("DEL").arg(&self.key).query_async(&mut conn).await;
            if left.is_ok() {
                tracing::info!(group = %self.config.group, member = %self.member, "left the coordination group");
            }
        }
    }

    fn note_reachability(&self, error: Option<RedisError>) {
        match error {
            Some(error) => {
                if !self.unreachable.swap(true, Ordering::Relaxed) {
                    let known = self
                        .last
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .as_ref()
                        .map_or(1, |s| s.members().len().max(1));
                    tracing::warn!(group = %self.config.group, %error, members = known, "coordination backend unreachable; polling with the last known membership");
                }
            }
            None => {
                if self.unreachable.swap(false, Ordering::Relaxed) {
                    tracing::info!(group = %self.config.group, "coordination backend reachable again");
                }
            }
        }
    }

    /// This agent's share for the cycle that starts at `cycle` (a wall-clock interval
    /// boundary): from the group as Redis holds it now, or the last known one if Redis cannot
    /// be reached.
    pub async fn share(&self, cycle: SystemTime) -> Share {
        let at = cycle
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let budget = self.config.heartbeat.max(Duration::from_millis(500));
        let listed = match tokio::time::timeout(budget, self.members()).await {
            Ok(listed) => listed,
            Err(_) => Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {budget:?}"),
            ))),
        };
        match listed {
            Ok(members) => {
                self.note_reachability(None);
                let settle = millis(self.config.heartbeat);
                let timeout = millis(self.config.timeout);
                let mut mine = false;
                let active: Vec<&str> = members
                    .iter()
                    .filter(|m| {
                        mine |= m.name == self.member;
                        m.joined_ms + settle <= at && m.seen_ms + timeout >= at
                    })
                    .map(|m| m.name.as_str())
                    .collect();
                if !mine {
                    // Our key expired (a long pause, or Redis lost it): join again, from now.
                    self.joined_ms.store(now_ms(), Ordering::Relaxed);
                    tracing::warn!(group = %self.config.group, member = %self.member, "not in the group any more; joining again");
                    let again = self.heartbeat().await;
                    self.note_reachability(again.err());
                }
                let share = Share::of(Ring::new(&active), self.member.clone());
                let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
                if last.as_ref().is_none_or(|l| l.members() != share.members()) {
                    tracing::info!(group = %self.config.group, member = %self.member, members = %share.members().join(","), "coordination group changed");
                }
                *last = Some(share.clone());
                share
            }
            Err(error) => {
                self.reset().await;
                self.note_reachability(Some(error));
                let last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
                last.clone().unwrap_or_else(|| {
                    Share::of(Ring::new(&[self.member.as_str()]), self.member.clone())
                })
            }
        }
    }

    async fn members(&self) -> Result<Vec<Member>, RedisError> {
        let mut conn = self.connection().await?;
        let pattern = &self.pattern;
        let prefix_len = pattern.len() - 1;
        let mut keys: Vec<String> = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, batch): (u64, Vec<String>) = cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await?;
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        keys.sort();
        keys.dedup();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<Option<String>> = cmd("MGET").arg(&keys).query_async(&mut conn).await?;
        Ok(keys
            .iter()
            .zip(values)
            .filter_map(|(key, value)| {
                let value = value?;
                let (joined, seen) = value.split_once(' ')?;
                Some(Member {
                    name: key[prefix_len..].to_owned(),
                    joined_ms: joined.parse().ok()?,
                    seen_ms: seen.parse().ok()?,
                })
            })
            .collect())
    }
}

struct Member {
    name: String,
    joined_ms: u64,
    seen_ms: u64,
}

/// The wall-clock start of the cycle of `interval` nearest to `now` (cycles of coordinated
/// agents start on multiples of their interval since the epoch).
pub fn cycle_start(now: SystemTime, interval: Duration) -> SystemTime {
    let since = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let every = interval.as_millis().max(1);
    let nearest = (since + every / 2) / every * every;
    UNIX_EPOCH + Duration::from_millis(nearest as u64)
}

/// How long after `now` the next wall-clock multiple of `interval` comes.
pub fn until_next_cycle(now: SystemTime, interval: Duration) -> Duration {
    let since = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let every = interval.as_millis().max(1);
    let next = (since / every + 1) * every;
    Duration::from_millis((next - since) as u64)
}
