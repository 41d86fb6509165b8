//! Replay protection (DESIGN §4): a signed envelope captured and sent again is refused.
//!
//! Per producer (agent id), stream and partition the collector keeps the sequence numbers it
//! has *acknowledged* within [`WINDOW`] of the highest, and refuses an envelope whose number is
//! one of them, or more than [`WINDOW`] below the highest, or whose `sent_at` is older than
//! `max_age_s`. Marking at acknowledgement, not at decoding, keeps at-least-once intact: a
//! message redelivered because it was never acknowledged is accepted again, even after newer
//! ones were (a dead collector's pending Redis entries are claimed after its lease, while the
//! stream has moved on). Agents number their envelopes from the time they started, in
//! microseconds, one number per envelope, so a restarted agent continues above its previous
//! sequence without keeping state; its spooled envelopes, sent in order, come first.
//!
//! Only with a secret: without one anybody can write a new envelope, and there is nothing to
//! protect. Where the numbers are kept:
//! - **shared**, in the coordination backend (`coordination:`, or the Redis of a `redis://`
//!   bus; [`hb_coordination::seen`]), when there is one: every collector of the group refuses
//!   what any of them acknowledged, a partition that moves keeps its marks, and a restarted
//!   collector forgets nothing. Looked up once per batch and recorded once per
//!   acknowledgement; while the backend cannot be reached the batch is left unacknowledged
//!   (the consumer backs off and the broker hands it out again), never taken unchecked.
//! - **in memory** otherwise (RabbitMQ or Kafka without `coordination:`), at most
//!   [`MAX_NUMBERS`] numbers: a partition handed to another collector starts there with an
//!   empty table, and one this collector lets go is forgotten here with its transformer state
//!   (see [`Replays::forget`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hb_bus::{Backoff, Partition, Topic};
use hb_coordination::CoordinationError;
use hb_coordination::seen::{Lookup, Seen};

/// How many of a producer's envelopes (its sequence numbers advance by one per envelope, over
/// all its streams and partitions) an envelope may come behind the newest acknowledged one
/// and still be taken, when it was not taken before: far more than a collector has in flight
/// when it dies, and so than a redelivery ever comes late.
pub const WINDOW: u64 = 8192;

/// The most sequence numbers kept in memory; past it half the producers, arbitrary ones, are
/// forgotten (their replays are then caught by the age check only until their next envelopes).
pub const MAX_NUMBERS: usize = 1_000_000;

/// Key space of the shared numbers (`hb:replays:<group>:<key>`).
const SPACE: &str = "replays";

/// Attempts at recording the numbers of one acknowledgement in the shared store.
const RECORD_ATTEMPTS: u32 = 3;

/// Whose sequence a number is in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    agent_id: String,
    topic: Topic,
    partition: Option<Partition>,
}

impl Key {
    /// The key of an envelope from `agent_id` received on `topic`, `partition`.
    pub fn new(agent_id: &str, topic: Topic, partition: Option<Partition>) -> Self {
        Self {
            agent_id: agent_id.to_owned(),
            topic,
            partition,
        }
    }

    /// The key's name in the shared store: the agent id last, as it may hold any character.
    fn shared(&self) -> String {
        let partition = self.partition.map_or("-".to_owned(), |p| p.to_string());
        format!("{}:{partition}:{}", self.topic.suffix(), self.agent_id)
    }
}

/// An envelope's claim to be new: whose sequence it is in, its number and when it was sent.
#[derive(Debug, Clone)]
pub struct Claim {
    /// Whose sequence.
    pub key: Key,
    /// Its sequence number.
    pub seq: u64,
    /// When it was sent.
    pub sent_at: DateTime<Utc>,
}

/// Why an envelope was refused as stale.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Stale {
    /// Its sequence number was acknowledged already.
    #[error("replayed envelope: seq {seq} was acknowledged already")]
    Replayed {
        /// The envelope's sequence number.
        seq: u64,
    },
    /// Its sequence number is too far below the highest acknowledged.
    #[error(
        "replayed envelope: seq {seq} is more than {window} below {highest}, the highest acknowledged"
    )]
    Behind {
        /// The envelope's sequence number.
        seq: u64,
        /// The highest acknowledged.
        highest: u64,
        /// How far behind one may be.
        window: u64,
    },
    /// Sent longer ago than the maximum age.
    #[error("envelope sent {age_s} s ago, more than max_age_s ({max_s})")]
    TooOld {
        /// How long ago it was sent.
        age_s: i64,
        /// The maximum age.
        max_s: u64,
    },
}

/// The acknowledged sequence numbers per key, within [`WINDOW`] of the highest.
#[derive(Debug)]
pub struct Replays {
    max_age: Duration,
    store: Store,
}

#[derive(Debug)]
enum Store {
    Memory(Mutex<Table>),
    Shared(Box<Seen>),
}

#[derive(Debug)]
struct Table {
    keys: HashMap<Key, BTreeSet<u64>>,
    /// How many numbers `keys` holds, and how many it may.
    numbers: usize,
    max: usize,
}

impl Table {
    fn new(max: usize) -> Self {
        Self {
            keys: HashMap::new(),
            numbers: 0,
            max,
        }
    }
}

impl Replays {
    /// A guard keeping its numbers in memory, refusing envelopes older than `max_age`.
    pub fn new(max_age: Duration) -> Self {
        Self::in_memory(max_age, MAX_NUMBERS)
    }

    fn in_memory(max_age: Duration, max: usize) -> Self {
        Self {
            max_age,
            store: Store::Memory(Mutex::new(Table::new(max))),
        }
    }

    /// A guard keeping its numbers in the coordination backend `config`, shared by its group
    /// (each set kept for `max_age` after its last envelope).
    pub fn shared(
        max_age: Duration,
        config: &hb_pipeline::config::Coordination,
    ) -> Result<Self, CoordinationError> {
        Ok(Self {
            max_age,
            store: Store::Shared(Box::new(Seen::new(config, SPACE, max_age)?)),
        })
    }

    /// Whether the numbers are shared by a group of collectors.
    pub fn is_shared(&self) -> bool {
        matches!(self.store, Store::Shared(_))
    }

    /// Whether each claim may be taken, in order; `Err` when the shared store cannot say.
    pub async fn check(
        &self,
        claims: &[Claim],
        now: DateTime<Utc>,
    ) -> Result<Vec<Result<(), Stale>>, CoordinationError> {
        let found: Vec<Lookup> = match &self.store {
            Store::Memory(table) => {
                let table = lock(table);
                claims
                    .iter()
                    .map(|c| {
                        let numbers = table.keys.get(&c.key);
                        Lookup {
                            largest: numbers.and_then(|n| n.last().copied()),
                            recorded: numbers.is_some_and(|n| n.contains(&c.seq)),
                        }
                    })
                    .collect()
            }
            Store::Shared(seen) => {
                let asked: Vec<(String, u64)> =
                    claims.iter().map(|c| (c.key.shared(), c.seq)).collect();
                seen.lookup(&asked).await?
            }
        };
        Ok(claims
            .iter()
            .zip(found)
            .map(|(claim, found)| self.verdict(claim, found, now))
            .collect())
    }

    fn verdict(&self, claim: &Claim, found: Lookup, now: DateTime<Utc>) -> Result<(), Stale> {
        let age_s = (now - claim.sent_at).num_seconds();
        if age_s > 0 && age_s as u64 > self.max_age.as_secs() {
            return Err(Stale::TooOld {
                age_s,
                max_s: self.max_age.as_secs(),
            });
        }
        if found.recorded {
            return Err(Stale::Replayed { seq: claim.seq });
        }
        match found.largest {
            Some(highest) if claim.seq.saturating_add(WINDOW) < highest => Err(Stale::Behind {
                seq: claim.seq,
                highest,
                window: WINDOW,
            }),
            _ => Ok(()),
        }
    }

    /// Records that these envelopes were acknowledged. A shared store that keeps refusing is
    /// logged at error level: those envelopes' replays are then caught by the age check and
    /// the window only.
    pub async fn acknowledged(&self, marks: Vec<(Key, u64)>) {
        match &self.store {
            Store::Memory(table) => lock(table).record(marks),
            Store::Shared(seen) => {
                let numbers: Vec<(String, u64)> =
                    marks.iter().map(|(k, seq)| (k.shared(), *seq)).collect();
                let mut backoff = Backoff::default();
                for attempt in 1..=RECORD_ATTEMPTS {
                    match seen.record(&numbers, WINDOW).await {
                        Ok(()) => return,
                        Err(error) if attempt == RECORD_ATTEMPTS => tracing::error!(
                            %error,
                            envelopes = numbers.len(),
                            attempts = RECORD_ATTEMPTS,
                            "acknowledged sequence numbers not recorded in the coordination backend; replays of these envelopes are refused by age only"
                        ),
                        Err(_) => tokio::time::sleep(backoff.next(None)).await,
                    }
                }
            }
        }
    }

    /// Forgets the numbers of the partitions in `released`, as the sinks forget their state
    /// (in memory only: shared numbers stay with the group).
    ///
    /// A released partition may come back to this collector with messages it had acknowledged
    /// but the broker had not recorded (Kafka offsets whose commit a rebalance refused). Taken
    /// again, they prime `delta` and `rate_of_change`, whose state went with the partition;
    /// refused as replays, every series of the partition would lose one more interval.
    pub fn forget(&self, released: &[Partition]) {
        if let Store::Memory(table) = &self.store {
            lock(table).forget(|key| key.partition.is_some_and(|p| released.contains(&p)));
        }
    }
}

impl Table {
    fn record(&mut self, marks: Vec<(Key, u64)>) {
        for (key, seq) in marks {
            if self.numbers >= self.max {
                // Half the producers, arbitrary ones: amortised, each forgets in constant time.
                let mut flip = false;
                self.forget(|k| {
                    flip = !flip;
                    *k != key && flip
                });
            }
            let numbers = self.keys.entry(key).or_default();
            let before = numbers.len();
            numbers.insert(seq);
            if let (Some(&lowest), Some(&highest)) = (numbers.first(), numbers.last())
                && lowest.saturating_add(WINDOW) < highest
            {
                *numbers = numbers.split_off(&(highest - WINDOW));
            }
            self.numbers = self.numbers + numbers.len() - before;
        }
    }

    fn forget(&mut self, mut drop: impl FnMut(&Key) -> bool) {
        let mut gone = 0;
        self.keys.retain(|key, numbers| {
            let keep = !drop(key);
            if !keep {
                gone += numbers.len();
            }
            keep
        });
        self.numbers -= gone;
    }
}

fn lock(table: &Mutex<Table>) -> std::sync::MutexGuard<'_, Table> {
    table.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn one(
        replays: &Replays,
        key: &Key,
        seq: u64,
        sent_at: DateTime<Utc>,
    ) -> Result<(), Stale> {
        let claim = Claim {
            key: key.clone(),
            seq,
            sent_at,
        };
        let mut verdicts = replays.check(&[claim], Utc::now()).await.expect("memory");
        verdicts.remove(0)
    }

    #[tokio::test]
    async fn an_acknowledged_envelope_is_refused_again_and_an_unacknowledged_one_is_not() {
        let replays = Replays::new(Duration::from_secs(3600));
        let now = Utc::now();
        let key = Key::new("h/compute", Topic::Samples, Some(3));
        assert_eq!(one(&replays, &key, 10, now).await, Ok(()));
        // Not acknowledged yet (a redelivery after a crash): taken again.
        assert_eq!(one(&replays, &key, 10, now).await, Ok(()));
        replays
            .acknowledged(vec![(key.clone(), 10), (key.clone(), 12)])
            .await;
        assert_eq!(
            one(&replays, &key, 10, now).await,
            Err(Stale::Replayed { seq: 10 })
        );
        // Never acknowledged, and newer ones were: a late redelivery, taken.
        assert_eq!(one(&replays, &key, 11, now).await, Ok(()));
        assert_eq!(one(&replays, &key, 13, now).await, Ok(()));
        // Another partition, stream or producer has its own sequence.
        let other = Key::new("h/compute", Topic::Samples, Some(4));
        assert_eq!(one(&replays, &other, 10, now).await, Ok(()));
        let heartbeats = Key::new("h/compute", Topic::Heartbeats, None);
        assert_eq!(one(&replays, &heartbeats, 10, now).await, Ok(()));
    }

    #[tokio::test]
    async fn an_envelope_far_behind_the_newest_is_refused_and_the_window_stays_bounded() {
        let replays = Replays::new(Duration::from_secs(3600));
        let now = Utc::now();
        let key = Key::new("h", Topic::Samples, Some(0));
        let marks = (1..=3 * WINDOW).map(|seq| (key.clone(), seq)).collect();
        replays.acknowledged(marks).await;
        let highest = 3 * WINDOW;
        assert_eq!(
            one(&replays, &key, highest - WINDOW - 1, now).await,
            Err(Stale::Behind {
                seq: highest - WINDOW - 1,
                highest,
                window: WINDOW
            })
        );
        assert_eq!(
            one(&replays, &key, highest - WINDOW, now).await,
            Err(Stale::Replayed {
                seq: highest - WINDOW
            })
        );
        let Store::Memory(table) = &replays.store else {
            panic!("memory")
        };
        let table = lock(table);
        assert_eq!(table.keys[&key].len(), WINDOW as usize + 1);
        assert_eq!(table.numbers, WINDOW as usize + 1);
    }

    #[tokio::test]
    async fn an_envelope_older_than_the_maximum_age_is_refused() {
        let replays = Replays::new(Duration::from_secs(60));
        let key = Key::new("h", Topic::Samples, None);
        let old = Utc::now() - chrono::Duration::seconds(62);
        assert!(matches!(
            one(&replays, &key, 1, old).await,
            Err(Stale::TooOld { max_s: 60, .. })
        ));
        let future = Utc::now() + chrono::Duration::seconds(30);
        assert_eq!(one(&replays, &key, 1, future).await, Ok(()));
    }

    #[tokio::test]
    async fn a_released_partition_is_forgotten_and_the_others_are_kept() {
        let replays = Replays::new(Duration::from_secs(3600));
        let now = Utc::now();
        let (p0, p1) = (
            Key::new("h", Topic::Samples, Some(0)),
            Key::new("h", Topic::Heartbeats, Some(1)),
        );
        let unpartitioned = Key::new("h", Topic::Samples, None);
        replays
            .acknowledged(vec![
                (p0.clone(), 5),
                (p1.clone(), 5),
                (unpartitioned.clone(), 5),
            ])
            .await;
        replays.forget(&[1, 2]);
        assert!(one(&replays, &p0, 5, now).await.is_err());
        assert_eq!(one(&replays, &p1, 5, now).await, Ok(()));
        assert!(one(&replays, &unpartitioned, 5, now).await.is_err());
    }

    #[tokio::test]
    async fn the_table_stays_bounded() {
        let replays = Replays::in_memory(Duration::from_secs(60), 1000);
        let marks = (0..10_000)
            .map(|i| (Key::new(&format!("h{i}"), Topic::Samples, None), 1))
            .collect();
        replays.acknowledged(marks).await;
        let last = Key::new("h9999", Topic::Samples, None);
        assert!(one(&replays, &last, 1, Utc::now()).await.is_err());
        let Store::Memory(table) = &replays.store else {
            panic!("memory")
        };
        let table = lock(table);
        assert!(
            table.numbers <= 1000 && table.numbers > 400,
            "{}",
            table.numbers
        );
        assert_eq!(table.numbers, table.keys.len());
    }
}
