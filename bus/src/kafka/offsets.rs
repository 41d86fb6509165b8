//! The consumer's bookkeeping: which offsets are in the sinks, the contiguous watermark to
//! commit per partition, and the hand-over of revoked partitions on a rebalance.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};

use super::Quiet;

/// What was handed out and what is done, per (topic, partition).
#[derive(Default)]
pub(super) struct Offsets {
    /// Offsets handed out and not yet acknowledged.
    in_flight: HashMap<(String, i32), BTreeSet<i64>>,
    /// The offset after the last message handed out.
    next: HashMap<(String, i32), i64>,
    /// Revocations of each partition so far: a message taken before the last one is stale.
    revocations: HashMap<(String, i32), u64>,
    /// Partitions revoked since the consumer last asked (for the collector to forget their
    /// transformer state).
    revoked: Vec<(String, i32)>,
}

impl Offsets {
    /// `offset` of `key` was taken from librdkafka; returns the partition's revocation count,
    /// for [`is_current`](Self::is_current).
    pub(super) fn handed_out(&mut self, key: (String, i32), offset: i64) -> u64 {
        self.in_flight
            .entry(key.clone())
            .or_default()
            .insert(offset);
        self.next.insert(key.clone(), offset + 1);
        self.revocations.get(&key).copied().unwrap_or(0)
    }

    /// False for a message taken before its partition was revoked (it waited in the poller's
    /// channel through the revocation): its new owner reads it from the committed offset.
    pub(super) fn is_current(&self, key: &(String, i32), taken_at: u64) -> bool {
        self.revocations.get(key).copied().unwrap_or(0) == taken_at
    }

    /// Gives up the partitions `keys`: their commit positions, and how many of their messages
    /// were still in flight (their new owner reads those again).
    fn revoke(&mut self, keys: &BTreeSet<(String, i32)>) -> (TopicPartitionList, usize) {
        let list = self.watermarks(Some(keys));
        let mut left = 0;
        for k in keys {
            left += self.in_flight.remove(k).map_or(0, |s| s.len());
            self.next.remove(k);
            *self.revocations.entry(k.clone()).or_default() += 1;
            self.revoked.push(k.clone());
        }
        (list, left)
    }

    /// The partitions of `topic` revoked since the last call.
    pub(super) fn take_revoked(&mut self, topic: &str) -> Vec<i32> {
        let revoked = std::mem::take(&mut self.revoked);
        revoked
            .into_iter()
            .filter(|(t, _)| t == topic)
            .map(|(_, p)| p)
            .collect()
    }

    /// Forgets what is in flight once it was committed for the last time (the consumer is
    /// closing), so that the revocation its leaving causes does not wait for it.
    pub(super) fn forget_in_flight(&mut self) {
        self.in_flight.clear();
    }

    /// `offset` of `key` is acknowledged (nothing, if its partition was revoked meanwhile).
    pub(super) fn done(&mut self, key: &(String, i32), offset: i64) {
        if let Some(set) = self.in_flight.get_mut(key) {
            set.remove(&offset);
        }
    }

    /// The first offset still in a sink, or the next one to read.
    fn watermark(&self, key: &(String, i32)) -> Option<i64> {
        match self.in_flight.get(key).and_then(|s| s.first()) {
            Some(&pending) => Some(pending),
            None => self.next.get(key).copied(),
        }
    }

    /// Commit positions of the partitions in `keys`, or of every partition seen.
    pub(super) fn watermarks(&self, keys: Option<&BTreeSet<(String, i32)>>) -> TopicPartitionList {
        let mut list = TopicPartitionList::new();
        let all: Vec<&(String, i32)> = match keys {
            Some(keys) => keys.iter().collect(),
            None => self.next.keys().collect(),
        };
        for key in all {
            if let Some(w) = self.watermark(key) {
                let _ = list.add_partition_offset(&key.0, key.1, Offset::Offset(w));
            }
        }
        list
    }
}

/// How long a revocation waits for the messages of the revoked partitions that are still in
/// the sinks, so that their offsets are committed before the new owner starts reading.
const REVOKE_GRACE: Duration = Duration::from_secs(3);

/// The consumer's context: quiet logging, and on a rebalance, the commit of what was done in
/// the partitions being taken away. Without it, the new owner (possibly this same member)
/// re-reads from the last asynchronous commit and writes again what was already written.
///
/// The callback runs on the poller's thread (`poller.rs`), never on the collector's runtime:
/// while it waits, the sinks go on writing and the acknowledgements come in.
pub(super) struct Member {
    pub(super) offsets: Arc<Mutex<Offsets>>,
}

impl ClientContext for Member {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        Quiet.log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        Quiet.error(error, reason);
    }
}

impl ConsumerContext for Member {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(revoked) = rebalance else {
            return;
        };
        let keys: BTreeSet<(String, i32)> = revoked
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        // Runs on the poller's thread: the sinks and their acknowledgements go on meanwhile.
        let deadline = Instant::now() + REVOKE_GRACE;
        let pending = || {
            let offsets = lock(&self.offsets);
            keys.iter()
                .map(|k| offsets.in_flight.get(k).map_or(0, BTreeSet::len))
                .sum::<usize>()
        };
        while pending() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let (list, left) = lock(&self.offsets).revoke(&keys);
        if list.count() > 0
            && let Err(error) = consumer.commit(&list, CommitMode::Sync)
        {
            tracing::warn!(%error, "kafka: offsets of revoked partitions not committed; their new owner may read some messages again");
        }
        if left > 0 {
            tracing::info!(
                messages = left,
                "kafka: partitions revoked with messages still in the sinks; their new owner will read them again"
            );
        }
        tracing::info!(partitions = keys.len(), "kafka: partitions revoked");
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(assigned) = rebalance {
            tracing::info!(partitions = assigned.count(), "kafka: partitions assigned");
        }
    }
}

pub(super) fn lock(offsets: &Mutex<Offsets>) -> MutexGuard<'_, Offsets> {
    offsets.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(partition: i32) -> (String, i32) {
        ("hb.samples".to_owned(), partition)
    }

    fn positions(list: &TopicPartitionList) -> Vec<(i32, Offset)> {
        list.elements()
            .iter()
            .map(|e| (e.partition(), e.offset()))
            .collect()
    }

    #[test]
    fn the_watermark_stops_at_the_first_message_still_in_a_sink() {
        let mut o = Offsets::default();
        for offset in 10..13 {
            o.handed_out(key(0), offset);
        }
        o.done(&key(0), 11);
        let all = o.watermarks(None);
        assert_eq!(positions(&all), [(0, Offset::Offset(10))]);
        o.done(&key(0), 10);
        o.done(&key(0), 12);
        assert_eq!(positions(&o.watermarks(None)), [(0, Offset::Offset(13))]);
    }

    #[test]
    fn a_message_taken_before_its_partition_was_revoked_is_stale() {
        let mut o = Offsets::default();
        let early = o.handed_out(key(0), 5);
        let other = o.handed_out(key(1), 7);
        o.done(&key(0), 5);
        let (list, left) = o.revoke(&BTreeSet::from([key(0)]));
        assert_eq!((positions(&list), left), (vec![(0, Offset::Offset(6))], 0));
        // Taken by the poller before the revocation, still waiting in the channel.
        assert!(!o.is_current(&key(0), early));
        assert!(
            o.is_current(&key(1), other),
            "another partition is untouched"
        );
        // Assigned again: what is taken from now on is current.
        let again = o.handed_out(key(0), 6);
        assert!(o.is_current(&key(0), again));
        // A late acknowledgement of a revoked message changes nothing.
        o.done(&key(0), 5);
        let (_, left) = o.revoke(&BTreeSet::from([key(0), key(1)]));
        assert_eq!(left, 2, "6 and 7 were still in flight");
    }
}
