//! Which samples partitions this collector consumes (see `hb_bus::partition`), and what it
//! forgets when one goes.
//!
//! - **Who owns what.** With a Redis backend (`coordination:` in pipeline.yaml, or by default
//!   the Redis of a `redis://` bus) the collectors are members of one group in the key space
//!   `collectors` (`hb:collectors:<group>:<member>`) and place themselves on the hash ring the
//!   central agents use; partition `p` belongs to the owner of the key `partition/<p>`. Every
//!   heartbeat each collector recomputes its share and its consumer follows. Without a
//!   backend (RabbitMQ without `coordination:`), a collector asks for every partition: the
//!   broker's single active consumer gives each queue to one collector, the others stand by.
//!   Kafka's consumer group assigns its partitions itself.
//! - **What moves.** Transformer state does not move with a partition: when the consumer
//!   releases a partition (after acknowledging all it handed out of it), every sink forgets
//!   the state of its resources, so the first sample of each of its series after a move
//!   primes `rate_of_change` and `delta` again (one interval without a value per series and
//!   move) and an aggregator publishes its partial groups at once. The replay guard forgets
//!   the partition too, so that messages the broker hands out again prime that state.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hb_bus::{Assigned, Assignment, Partition, Transport, partition};
use hb_coordination::{Coordinator, Share};
use hb_pipeline::Pipeline;
use hb_pipeline::config::Coordination;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::notify::Notifier;
use crate::replays::Replays;

/// Key space of the collectors' group.
const SPACE: &str = "collectors";

/// The backend collectors coordinate through: the configured one, else the Redis of a
/// `redis://` bus (with the default heartbeat and timeout); none for other buses.
pub fn backend(transport: &Transport, configured: Option<&Coordination>) -> Option<Coordination> {
    if let Some(c) = configured {
        return Some(c.clone());
    }
    match transport {
        // One group per bus: collectors of other prefixes on the same Redis are not members.
        Transport::Redis(spec) => Some(Coordination {
            backend_url: spec.backend_url(),
            group: format!("{}{}", spec.common.prefix, spec.group),
            heartbeat: Duration::from_secs(1),
            timeout: Duration::from_secs(3),
        }),
        _ => None,
    }
}

/// The partitions `share` gives this collector.
pub fn owned(share: &Share, partitions: u32) -> BTreeSet<Partition> {
    (0..partitions)
        .filter(|p| share.owns(&format!("partition/{p}")))
        .collect()
}

/// Starts following the group: the returned assignment changes as members come and go, until
/// `shutdown` (when the collector leaves the group). Without a backend, everything.
pub fn follow(
    transport: &Transport,
    configured: Option<&Coordination>,
    shutdown: &CancellationToken,
) -> Result<Assigned, hb_coordination::CoordinationError> {
    let partitions = transport.common().map_or(1, |c| c.partitions);
    if matches!(transport, Transport::Kafka(_)) {
        tracing::info!(
            partitions,
            "kafka: the consumer group assigns the partitions (coordination: is not used)"
        );
        return Ok(partition::fixed(Assignment::All));
    }
    let Some(config) = backend(transport, configured) else {
        tracing::info!(
            partitions,
            "no coordination backend: asking for every partition (the broker gives each to \
             one collector at a time; add `coordination:` to divide them)"
        );
        return Ok(partition::fixed(Assignment::All));
    };
    let member = format!(
        "{}-{}-{:08x}",
        hb_bus::host_name(),
        std::process::id(),
        fastrand::u32(..)
    );
    let heartbeat = config.heartbeat;
    let coordinator = Arc::new(Coordinator::in_space(config, SPACE, member)?);
    tracing::info!(
        group = coordinator.group(),
        member = coordinator.member(),
        partitions,
        "joining the collectors' group"
    );
    let (tx, rx) = watch::channel(Assignment::Only(BTreeSet::new()));
    tokio::spawn({
        let coordinator = Arc::clone(&coordinator);
        let shutdown = shutdown.clone();
        async move { coordinator.run(shutdown).await }
    });
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            let share = coordinator.share(SystemTime::now()).await;
            let mine = owned(&share, partitions);
            tx.send_if_modified(|current| {
                let next = Assignment::Only(mine.clone());
                if *current == next {
                    return false;
                }
                tracing::info!(members = share.members().len(), partitions = ?mine, "partitions assigned to this collector");
                *current = next;
                true
            });
        }
    });
    Ok(rx)
}

/// Tells every sink to forget the transformer state of the resources of `released`, and the
/// replay guard its marks of them.
pub fn forget(
    pipeline: &Pipeline,
    replays: Option<&Replays>,
    partitions: u32,
    released: &[Partition],
) {
    if released.is_empty() {
        return;
    }
    if let Some(replays) = replays {
        replays.forget(released);
    }
    let set: BTreeSet<Partition> = released.iter().copied().collect();
    tracing::info!(partitions = ?set, "transformer state of released partitions forgotten");
    pipeline.forget(Arc::new(move |resource: &str| {
        set.contains(&partition::of(resource, partitions))
    }));
}

/// Warns, once at start-up, about samples whose series several collectors may split:
/// samples made from notifications (consumed by competing consumers, not partitioned) that
/// reach a sink with a stateful transformer.
pub fn warn_unpartitioned(pipeline: &Pipeline, notifier: Option<&Notifier>) {
    let Some(notifier) = notifier else {
        return;
    };
    for meter in notifier.definitions.meter_names() {
        let sinks = pipeline.stateful_sinks_of(meter);
        if !sinks.is_empty() {
            tracing::warn!(
                meter,
                sinks = %sinks.join(","),
                "samples made from notifications are not partitioned (notifications are \
                 consumed by whichever collector takes them): with several collectors, the \
                 stateful transformers of these sinks see only part of each series"
            );
        }
    }
}
