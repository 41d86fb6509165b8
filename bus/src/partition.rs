//! Partitioned consumption: every sample belongs to one of the bus's `partitions` by its
//! resource id, and a collector consumes only the partitions it is assigned, so that every
//! series (meter + resource) is processed by one collector at a time and stateful transformers
//! stay correct with several collectors (DESIGN §4).
//!
//! - **The key.** A sample's partition is `crc32(resource_id) mod partitions` (CRC-32/IEEE of
//!   the UTF-8 bytes, as Python's `zlib.crc32`). Every meter of a resource is in the same
//!   partition, so `arithmetic` sees all of its operands. Agents split each pollster run into
//!   one envelope per partition.
//! - **Where.** RabbitMQ: one durable queue `<prefix>samples.<p>` per partition, bound to the
//!   routing key `samples.<p>.#` and declared with `x-single-active-consumer`, so the broker
//!   itself never delivers a partition to two collectors at once. Redis Streams: one stream
//!   `<prefix>samples.<p>` per partition, consumed only under a lease (a key with a time to
//!   live that its holder renews). Kafka: partition `p` of `<prefix>samples` (the topic must
//!   have exactly `partitions` partitions).
//! - **Who.** An [`Assignment`] says which partitions a collector wants; the collector derives
//!   it from the membership and hash ring it shares with the other collectors (Redis), and
//!   the consumer follows its changes. Kafka assigns partitions through its consumer group and
//!   ignores it.
//! - **Hand-over.** A partition given up is released only once every message of it that was
//!   handed out is acknowledged; the consumer then reports it ([`Consumer::released`]) so that
//!   the collector forgets the transformer state of its series.
//!
//! [`Consumer::released`]: crate::Consumer::released

use std::collections::BTreeSet;

/// A partition number, `0..partitions`.
pub type Partition = u32;

/// Partitions when the transport URL does not say (`partitions=`).
pub const DEFAULT_PARTITIONS: u32 = 16;

/// The partition of a sample of `resource_id` on a bus of `partitions` partitions.
pub fn of(resource_id: &str, partitions: u32) -> Partition {
    crc32fast::hash(resource_id.as_bytes()) % partitions.max(1)
}

/// The partitions a collector consumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignment {
    /// Every partition (one collector alone, or several that stand by for one another).
    All,
    /// These partitions only (possibly none).
    Only(BTreeSet<Partition>),
}

impl Assignment {
    /// True when `partition` is assigned.
    pub fn has(&self, partition: Partition) -> bool {
        match self {
            Self::All => true,
            Self::Only(set) => set.contains(&partition),
        }
    }

    /// The assigned partitions among `0..partitions`.
    pub fn within(&self, partitions: u32) -> BTreeSet<Partition> {
        (0..partitions).filter(|p| self.has(*p)).collect()
    }
}

/// The assignment a consumer follows: its changes reach the consumer at its next `recv`.
pub type Assigned = tokio::sync::watch::Receiver<Assignment>;

/// An assignment that never changes.
pub fn fixed(assignment: Assignment) -> Assigned {
    let (tx, rx) = tokio::sync::watch::channel(assignment);
    // The receiver keeps the last value once the sender is gone.
    drop(tx);
    rx
}

/// Messages of each partition handed out and not acknowledged yet, shared by a consumer and
/// its acker: a partition is released only once it has none.
#[derive(Debug, Clone, Default)]
pub(crate) struct InFlight(
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<Partition, usize>>>,
);

impl InFlight {
    fn map(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<Partition, usize>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A message of `partition` was handed out.
    pub(crate) fn out(&self, partition: Partition) {
        *self.map().entry(partition).or_default() += 1;
    }

    /// A message of `partition` was acknowledged.
    pub(crate) fn done(&self, partition: Partition) {
        if let Some(n) = self.map().get_mut(&partition) {
            *n = n.saturating_sub(1);
        }
    }

    /// Messages of `partition` still in the sinks.
    pub(crate) fn of(&self, partition: Partition) -> usize {
        self.map().get(&partition).copied().unwrap_or(0)
    }

    /// Marks the partitions of `parts` not in `wanted` as given up (through `releasing`, the
    /// flag of a consumed partition) and returns those given up whose messages are all
    /// acknowledged: ready to be released.
    pub(crate) fn give_up<T>(
        &self,
        parts: &mut std::collections::BTreeMap<Partition, T>,
        wanted: &BTreeSet<Partition>,
        releasing: impl Fn(&mut T) -> &mut bool,
    ) -> Vec<Partition> {
        let mut ready = Vec::new();
        for (p, part) in parts.iter_mut() {
            let flag = releasing(part);
            if !wanted.contains(p) && !*flag {
                *flag = true;
                tracing::info!(
                    partition = p,
                    in_flight = self.of(*p),
                    "giving up partition once its messages are acknowledged"
                );
            }
            if *flag && self.of(*p) == 0 {
                ready.push(*p);
            }
        }
        ready
    }

    /// Forgets `partition` (its messages will never be acknowledged here).
    pub(crate) fn clear(&self, partition: Partition) {
        self.map().remove(&partition);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_partition_of_a_resource_is_crc32_mod_partitions() {
        // python3 -c 'import zlib; print(zlib.crc32(b"host-a") % 16)'
        assert_eq!(crc32fast::hash(b"host-a"), 0x7eea_08d7);
        assert_eq!(of("host-a", 16), 7);
        assert_eq!(of("anything", 1), 0);
        let spread: BTreeSet<Partition> = (0..200).map(|i| of(&format!("r{i}"), 16)).collect();
        assert_eq!(spread.len(), 16, "200 resources reach every partition");
    }

    #[test]
    fn a_partition_given_up_is_ready_once_its_messages_are_acknowledged() {
        let in_flight = InFlight::default();
        let mut parts: std::collections::BTreeMap<Partition, bool> =
            [(1, false), (2, false)].into();
        in_flight.out(1);
        in_flight.out(1);
        let wanted = BTreeSet::from([2]);
        assert!(in_flight.give_up(&mut parts, &wanted, |r| r).is_empty());
        assert!(parts[&1], "1 is given up, 2 is kept");
        assert!(!parts[&2]);
        in_flight.done(1);
        assert!(in_flight.give_up(&mut parts, &wanted, |r| r).is_empty());
        in_flight.done(1);
        assert_eq!(in_flight.give_up(&mut parts, &wanted, |r| r), [1]);
    }

    #[test]
    fn an_assignment_lists_what_it_has() {
        let only = Assignment::Only(BTreeSet::from([1, 3]));
        assert!(only.has(3) && !only.has(2));
        assert_eq!(only.within(3), BTreeSet::from([1]));
        assert_eq!(Assignment::All.within(3), BTreeSet::from([0, 1, 2]));
        let fixed = fixed(Assignment::All);
        assert_eq!(*fixed.borrow(), Assignment::All);
    }
}
