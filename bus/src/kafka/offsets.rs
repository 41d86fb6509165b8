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
}

impl Offsets {
    pub(super) fn handed_out(&mut self, key: (String, i32), offset: i64) {
        self.in_flight
            .entry(key.clone())
            .or_default()
            .insert(offset);
        self.next.insert(key, offset + 1);
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
        let (list, left) = {
            let mut offsets = lock(&self.offsets);
            let list = offsets.watermarks(Some(&keys));
            let left: usize = keys
                .iter()
                .map(|k| offsets.in_flight.remove(k).map_or(0, |s| s.len()))
                .sum();
            for k in &keys {
                offsets.next.remove(k);
            }
            (list, left)
        };
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
