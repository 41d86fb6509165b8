//! Partition leases on Redis: a key `<prefix>samples.<p>:lease` holding the consumer's name
//! with a time to live (`lease_ms`). It is taken with `SET NX PX`, renewed every third of its
//! time to live by a task of its own (so that a consumer waiting on its sinks keeps it) and
//! released with a compare-and-delete, both as small scripts that only touch a key that still
//! holds this consumer's name. A lease not renewed in time is lost: the consumer stops
//! reading the partition, and another may take it once the key expired.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{RedisError, cmd};

use super::unreachable;
use crate::{BusError, Partition};

/// `PEXPIRE` the key if it still holds our name.
const RENEW: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then \
                     return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end";
/// `DEL` the key if it still holds our name.
const RELEASE: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then \
                       return redis.call('del', KEYS[1]) else return 0 end";

#[derive(Default)]
struct Held {
    /// Lease key and last successful renewal of each partition held.
    leases: BTreeMap<Partition, (String, Instant)>,
    lost: BTreeSet<Partition>,
}

/// The leases one consumer holds, and the task that renews them.
pub(super) struct Leases {
    name: String,
    ttl: Duration,
    held: Arc<Mutex<Held>>,
    keeper: tokio::task::JoinHandle<()>,
}

fn lock(held: &Mutex<Held>) -> MutexGuard<'_, Held> {
    held.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Leases {
    /// Starts renewing, on `commands`, the leases of consumer `name`.
    pub(super) fn start(commands: MultiplexedConnection, name: String, ttl: Duration) -> Self {
        let held: Arc<Mutex<Held>> = Arc::default();
        let keeper = tokio::spawn(keep(commands, name.clone(), ttl, Arc::clone(&held)));
        Self {
            name,
            ttl,
            held,
            keeper,
        }
    }

    /// Takes the lease `key` of `partition` if it is free (or still ours from a previous
    /// life under the same name).
    pub(super) async fn acquire(
        &self,
        commands: &mut MultiplexedConnection,
        key: &str,
        partition: Partition,
    ) -> Result<bool, BusError> {
        let ttl = self.ttl.as_millis() as u64;
        let set: Option<String> = cmd("SET")
            .arg(key)
            .arg(&self.name)
            .arg("NX")
            .arg("PX")
            .arg(ttl)
            .query_async(commands)
            .await
            .map_err(unreachable)?;
        let taken = match set {
            Some(_) => true,
            None => {
                let renewed: i64 = script(RENEW, key, &self.name, ttl)
                    .query_async(commands)
                    .await
                    .map_err(unreachable)?;
                renewed == 1
            }
        };
        if taken {
            let mut held = lock(&self.held);
            held.leases
                .insert(partition, (key.to_owned(), Instant::now()));
            held.lost.remove(&partition);
        }
        Ok(taken)
    }

    /// Gives the lease of `partition` back (the key is deleted only if it still holds our
    /// name).
    pub(super) async fn release(
        &self,
        commands: &mut MultiplexedConnection,
        key: &str,
        partition: Partition,
    ) -> Result<(), BusError> {
        lock(&self.held).leases.remove(&partition);
        let _: i64 = script(RELEASE, key, &self.name, 0)
            .query_async(commands)
            .await
            .map_err(unreachable)?;
        Ok(())
    }

    /// Partitions whose lease was lost since the last call.
    pub(super) fn take_lost(&self) -> BTreeSet<Partition> {
        std::mem::take(&mut lock(&self.held).lost)
    }

    /// Stops renewing.
    pub(super) fn stop(&self) {
        self.keeper.abort();
    }
}

impl Drop for Leases {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

fn script(body: &str, key: &str, name: &str, ttl_ms: u64) -> redis::Cmd {
    let mut c = cmd("EVAL");
    c.arg(body).arg(1).arg(key).arg(name).arg(ttl_ms);
    c
}

/// Renews every held lease every third of `ttl`; a lease found held by another, or not
/// renewed for `ttl`, is lost.
async fn keep(
    mut commands: MultiplexedConnection,
    name: String,
    ttl: Duration,
    held: Arc<Mutex<Held>>,
) {
    let mut tick = tokio::time::interval(ttl / 3);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let leases: Vec<(Partition, String)> = lock(&held)
            .leases
            .iter()
            .map(|(p, (key, _))| (*p, key.clone()))
            .collect();
        for (p, key) in leases {
            let renewed: Result<i64, RedisError> =
                script(RENEW, &key, &name, ttl.as_millis() as u64)
                    .query_async(&mut commands)
                    .await;
            let mut h = lock(&held);
            match renewed {
                Ok(1) => {
                    if let Some(lease) = h.leases.get_mut(&p) {
                        lease.1 = Instant::now();
                    }
                }
                Ok(_) => {
                    h.leases.remove(&p);
                    h.lost.insert(p);
                }
                Err(error) => {
                    tracing::debug!(partition = p, %error, "lease renewal failed; trying again");
                    if h.leases.get(&p).is_some_and(|(_, at)| at.elapsed() >= ttl) {
                        h.leases.remove(&p);
                        h.lost.insert(p);
                    }
                }
            }
        }
    }
}
