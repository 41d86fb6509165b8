//! Replay protection (DESIGN §4): a signed envelope captured and sent again is refused.
//!
//! Per producer (agent id), stream and partition the collector keeps the highest sequence
//! number it has *acknowledged*, and refuses an envelope whose sequence number is not above
//! it, or whose `sent_at` is older than `max_age_s`. Marking at acknowledgement, not at
//! decoding, keeps at-least-once intact: a message redelivered because it was never
//! acknowledged is accepted again. Agents number their envelopes from the time they started,
//! in microseconds, so a restarted agent continues above its previous sequence without
//! keeping state; its spooled envelopes, sent in order, come first.
//!
//! Only with a secret: without one anybody can write a new envelope, and there is nothing to
//! protect. The table is in this collector's memory, bounded by [`MAX_PRODUCERS`] entries; a
//! partition handed to another collector starts there with an empty one, and a partition this
//! collector releases is forgotten here with its transformer state (see [`Replays::forget`]).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hb_bus::{Partition, Topic};

/// The most (producer, stream, partition) entries kept; past it an arbitrary one is forgotten
/// (that producer's replays are then caught by the age check only).
pub const MAX_PRODUCERS: usize = 100_000;

/// Whose sequence a mark is about.
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
}

/// Why an envelope was refused as stale.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Stale {
    /// Its sequence number was acknowledged already (or a later one was).
    #[error("replayed envelope: seq {seq} is not above {highest}, already acknowledged")]
    Replayed {
        /// The envelope's sequence number.
        seq: u64,
        /// The highest acknowledged.
        highest: u64,
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

/// The highest acknowledged sequence number per key.
#[derive(Debug)]
pub struct Replays {
    max_age: Duration,
    highest: Mutex<HashMap<Key, u64>>,
}

impl Replays {
    /// A guard refusing envelopes older than `max_age`.
    pub fn new(max_age: Duration) -> Self {
        Self {
            max_age,
            highest: Mutex::default(),
        }
    }

    /// Whether an envelope of `key` numbered `seq`, sent at `sent_at`, may be taken.
    pub fn check(
        &self,
        key: &Key,
        seq: u64,
        sent_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), Stale> {
        let age_s = (now - sent_at).num_seconds();
        if age_s > 0 && age_s as u64 > self.max_age.as_secs() {
            return Err(Stale::TooOld {
                age_s,
                max_s: self.max_age.as_secs(),
            });
        }
        match self.table().get(key) {
            Some(&highest) if seq <= highest => Err(Stale::Replayed { seq, highest }),
            _ => Ok(()),
        }
    }

    /// Records that these envelopes were acknowledged.
    pub fn acknowledged(&self, marks: Vec<(Key, u64)>) {
        let mut table = self.table();
        for (key, seq) in marks {
            if table.len() >= MAX_PRODUCERS
                && !table.contains_key(&key)
                && let Some(any) = table.keys().next().cloned()
            {
                table.remove(&any);
            }
            let highest = table.entry(key).or_insert(seq);
            *highest = (*highest).max(seq);
        }
    }

    /// Forgets the marks of the partitions in `released`, as the sinks forget their state.
    ///
    /// A released partition may come back to this collector with messages it had acknowledged
    /// but the broker had not recorded (Kafka offsets whose commit a rebalance refused). Taken
    /// again, they prime `delta` and `rate_of_change`, whose state went with the partition;
    /// refused as replays, every series of the partition would lose one more interval.
    pub fn forget(&self, released: &[Partition]) {
        self.table()
            .retain(|key, _| !key.partition.is_some_and(|p| released.contains(&p)));
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<Key, u64>> {
        self.highest.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_acknowledged_envelope_is_refused_again_and_an_unacknowledged_one_is_not() {
        let replays = Replays::new(Duration::from_secs(3600));
        let now = Utc::now();
        let key = Key::new("h/compute", Topic::Samples, Some(3));
        assert_eq!(replays.check(&key, 10, now, now), Ok(()));
        // Not acknowledged yet (a redelivery after a crash): taken again.
        assert_eq!(replays.check(&key, 10, now, now), Ok(()));
        replays.acknowledged(vec![(key.clone(), 10), (key.clone(), 9)]);
        assert_eq!(
            replays.check(&key, 10, now, now),
            Err(Stale::Replayed {
                seq: 10,
                highest: 10
            })
        );
        assert!(replays.check(&key, 3, now, now).is_err());
        assert_eq!(replays.check(&key, 11, now, now), Ok(()));
        // Another partition, stream or producer has its own sequence.
        let other = Key::new("h/compute", Topic::Samples, Some(4));
        assert_eq!(replays.check(&other, 1, now, now), Ok(()));
        let heartbeats = Key::new("h/compute", Topic::Heartbeats, None);
        assert_eq!(replays.check(&heartbeats, 1, now, now), Ok(()));
    }

    #[test]
    fn an_envelope_older_than_the_maximum_age_is_refused() {
        let replays = Replays::new(Duration::from_secs(60));
        let now = Utc::now();
        let key = Key::new("h", Topic::Samples, None);
        let old = now - chrono::Duration::seconds(61);
        assert_eq!(
            replays.check(&key, 1, old, now),
            Err(Stale::TooOld {
                age_s: 61,
                max_s: 60
            })
        );
        let future = now + chrono::Duration::seconds(30);
        assert_eq!(replays.check(&key, 1, future, now), Ok(()));
    }

    #[test]
    fn a_released_partition_is_forgotten_and_the_others_are_kept() {
        let replays = Replays::new(Duration::from_secs(3600));
        let now = Utc::now();
        let (p0, p1) = (
            Key::new("h", Topic::Samples, Some(0)),
            Key::new("h", Topic::Heartbeats, Some(1)),
        );
        let unpartitioned = Key::new("h", Topic::Samples, None);
        replays.acknowledged(vec![
            (p0.clone(), 5),
            (p1.clone(), 5),
            (unpartitioned.clone(), 5),
        ]);
        replays.forget(&[1, 2]);
        assert!(replays.check(&p0, 5, now, now).is_err());
        assert_eq!(replays.check(&p1, 5, now, now), Ok(()));
        assert!(replays.check(&unpartitioned, 5, now, now).is_err());
    }

    #[test]
    fn the_table_stays_bounded() {
        let replays = Replays::new(Duration::from_secs(60));
        let marks = (0..MAX_PRODUCERS + 10)
            .map(|i| (Key::new(&format!("h{i}"), Topic::Samples, None), 1))
            .collect();
        replays.acknowledged(marks);
        assert_eq!(replays.table().len(), MAX_PRODUCERS);
    }
}
