//! What a sink holds between submissions and publishers: the batch being filled, and the
//! batches in flight, settled in the order they were started.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use hb_sample::{Event, Sample};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::batch::{self, BatchConfig};
use super::ticket::Ticket;
use crate::publisher::Batch;

/// What a sink has accumulated since its last batch.
#[derive(Default)]
pub(super) struct Pending {
    pub(super) batch: Batch,
    pub(super) bytes: usize,
    pub(super) tickets: Vec<Arc<Ticket>>,
    pub(super) permits: Vec<OwnedSemaphorePermit>,
    pub(super) since: Option<Instant>,
}

impl Pending {
    pub(super) fn add(&mut self, samples: Vec<Sample>, events: Vec<Event>) {
        if samples.is_empty() && events.is_empty() {
            return;
        }
        self.since.get_or_insert_with(Instant::now);
        self.bytes += samples.iter().map(batch::estimated_size).sum::<usize>();
        self.bytes += events
            .iter()
            .map(batch::estimated_event_size)
            .sum::<usize>();
        self.batch.samples.extend(samples);
        self.batch.events.extend(events);
    }

    pub(super) fn full(&self, config: &BatchConfig) -> bool {
        self.batch.len() >= config.max_events || self.bytes >= config.max_bytes
    }
}

/// A batch with its publishers: resolves to whether every publisher took it (`false`: the
/// sink was told to abandon it).
pub(super) type Publishing = Pin<Box<dyn Future<Output = bool> + Send>>;

/// A batch with its publishers, with the submissions it settles.
#[derive(Default)]
pub(super) struct Flight {
    pub(super) tickets: Vec<Arc<Ticket>>,
    /// Its room in the sink's buffer, freed once it is settled.
    pub(super) _permits: Vec<OwnedSemaphorePermit>,
}

/// The batches in flight, in the order they were started; settled in that order.
pub(super) struct InFlight {
    pub(super) limit: usize,
    pub(super) publishing: FuturesOrdered<Publishing>,
    pub(super) flights: VecDeque<Flight>,
}

impl InFlight {
    pub(super) fn new(limit: usize) -> Self {
        Self {
            limit: limit.max(1),
            publishing: FuturesOrdered::new(),
            flights: VecDeque::new(),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.flights.is_empty()
    }

    pub(super) fn has_room(&self) -> bool {
        self.flights.len() < self.limit
    }

    /// Waits for the oldest batch and settles its submissions: accepted if it was published,
    /// dropped (not accepted) if it was abandoned.
    pub(super) async fn settle_next(&mut self) {
        let published = self.publishing.next().await.unwrap_or(false);
        if let Some(flight) = self.flights.pop_front()
            && published
        {
            for ticket in &flight.tickets {
                ticket.accept();
            }
        }
    }

    pub(super) async fn settle_all(&mut self) {
        while !self.is_empty() {
            self.settle_next().await;
        }
    }
}
