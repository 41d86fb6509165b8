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
    /// Starts renewing, on `commands`, the leases of consumer `consumer`. The value of its
    /// keys is the consumer's name and a random token of this process: two collectors given
    /// the same `consumer=` (or host name and pid, in containers) never both hold a lease.
    pub(super) fn start(commands: MultiplexedConnection, consumer: &str, ttl: Duration) -> Self {
        use std::hash::BuildHasher;
        let token = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
        let name = format!("{consumer}#{token:016x}");
        let held: Arc<Mutex<Held>> = Arc::default();
        let keeper = tokio::spawn(keep(commands, name.clone(), ttl, Arc::clone(&held)));
        Self {
            name,
            ttl,
            held,
            keeper,
        }
    }

    /// Takes the lease `key` of `partition` if it is free (or already ours).
    pub(super) async fn acquire(
        &self,
        commands: &mut MultiplexedConnection,
        key: &str,
        partition: Partition,
    ) -> Result<bool, BusError> {
        let ttl = self.ttl.as_millis() as u64;
        // Timed from before asking: the key cannot live longer than that.
        let sent = Instant::now();
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
            held.leases.insert(partition, (key.to_owned(), sent));
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

    /// True while the lease of `partition` is held and was renewed (or taken) less than two
    /// thirds of its time to live ago: reading is safe, since nobody else can have it yet.
    pub(super) fn fresh(&self, partition: Partition) -> bool {
        lock(&self.held)
            .leases
            .get(&partition)
            .is_some_and(|(_, at)| at.elapsed() < self.ttl * 2 / 3)
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

/// Renews every held lease every third of `ttl`, all at once, each renewal timed from before
/// it was sent and given a third of `ttl`; a lease found held by another, or not renewed for
/// `ttl`, is lost.
async fn keep(
    commands: MultiplexedConnection,
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
        let sent = Instant::now();
        let renewals = leases.iter().map(|(_, key)| {
            let mut commands = commands.clone();
            let renew = script(RENEW, key, &name, ttl.as_millis() as u64);
            async move {
                let reply: Result<i64, RedisError> =
                    match tokio::time::timeout(ttl / 3, renew.query_async(&mut commands)).await {
                        Ok(reply) => reply,
                        Err(_) => Err(RedisError::from(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "lease renewal timed out",
                        ))),
                    };
                reply
            }
        });
        let replies = futures_util::future::join_all(renewals).await;
        let mut h = lock(&held);
        for ((p, _), renewed) in leases.into_iter().zip(replies) {
            match renewed {
                Ok(1) => {
                    if let Some(lease) = h.leases.get_mut(&p) {
                        lease.1 = sent;
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
