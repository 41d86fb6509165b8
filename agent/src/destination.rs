//! Where polled samples go: the pipeline in this process (`memory://`) or the bus.

use hb_pipeline::Pipeline;
use hb_sample::Sample;

use crate::outbox::Outbox;

/// How long stopping waits for sinks whose publishers still refuse their batches.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// The agent's output.
pub enum Destination {
    /// `memory://`: route and publish here.
    Embedded(std::sync::Arc<Pipeline>),
    /// A bus: envelopes to the broker, spooled while it is away.
    Bus(Box<Outbox>),
}

/// What became of a batch of samples, for the cycle summary.
#[derive(Debug, Default, Clone, Copy)]
pub struct Published {
    /// (sample, sink) pairs handed to the sinks (embedded), or samples the broker confirmed
    /// (bus).
    pub delivered: usize,
    /// Samples waiting in the spool for the broker.
    pub spooled: usize,
    /// Pairs or samples lost, already logged with the reason.
    pub failed: usize,
    /// Samples no source selects (embedded only; on a bus the collector decides).
    pub unrouted: usize,
}

impl std::ops::AddAssign for Published {
    fn add_assign(&mut self, rhs: Self) {
        self.delivered += rhs.delivered;
        self.spooled += rhs.spooled;
        self.failed += rhs.failed;
        self.unrouted += rhs.unrouted;
    }
}

impl Destination {
    /// Publishes one pollster run's samples, polled in `namespace`.
    pub async fn publish(&self, namespace: &str, samples: Vec<Sample>) -> Published {
        match self {
            Self::Embedded(pipeline) => {
                // Handed to the sinks, which batch, retry and flush at shutdown on their own
                // (and log what they refuse); waiting for their batches here would only hold
                // the cycle for a batch timeout.
                let submitted = pipeline.submit(samples).await;
                Published {
                    delivered: submitted.routed,
                    spooled: 0,
                    failed: 0,
                    unrouted: submitted.unrouted,
                }
            }
            Self::Bus(outbox) => {
                let sent = outbox.publish(namespace, samples).await;
                Published {
                    delivered: sent.confirmed,
                    spooled: sent.spooled,
                    failed: sent.dropped,
                    unrouted: 0,
                }
            }
        }
    }

    /// Makes what was accepted durable (embedded) or closes the connection (bus); returns how
    /// many publishers failed to sync.
    pub async fn finish(&self) -> usize {
        match self {
            Self::Embedded(pipeline) => pipeline.close(SHUTDOWN_GRACE).await,
            Self::Bus(outbox) => {
                outbox.close().await;
                let waiting = outbox.spooled();
                if waiting > 0 {
                    tracing::warn!(
                        envelopes = waiting,
                        "envelopes left in the spool; they are replayed at the next start"
                    );
                }
                0
            }
        }
    }
}
