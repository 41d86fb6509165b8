//! Converting a notification: which definitions match its event type (memoized), and the
//! samples, event and misses they make.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError};

use hb_sample::{Event, Sample};

use crate::Definitions;
use crate::notification::Notification;
use crate::path::Memo;

/// How many event types the match cache remembers before it starts over.
pub const CACHE_CAPACITY: usize = 4096;

/// What happens to a notification that no event definition matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unmatched {
    /// A bare event with the default traits only (Ceilometer's default).
    #[default]
    Keep,
    /// No event.
    Drop,
}

/// What one notification became.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Converted {
    /// One per matching meter definition (one per element for a `lookup` definition), in
    /// definition order.
    pub samples: Vec<Sample>,
    /// The event of the last matching event definition, or the bare event of an unmatched
    /// notification under [`Unmatched::Keep`].
    pub event: Option<Event>,
    /// Values definitions could not extract.
    pub misses: Vec<Miss>,
}

/// Whether a miss comes from a meter or an event definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissKind {
    /// A meter definition: for its name, unit, volume, resource_id, timestamp or lookup, no
    /// sample was made; for a metadata entry the sample was made without it.
    Meter,
    /// An event definition: the event was made without the trait.
    Event,
}

/// A value a definition could not extract from a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Miss {
    /// Meter or event definition.
    pub kind: MissKind,
    /// The meter definition's `name`, or the event definition's patterns.
    pub definition: String,
    /// The field: `volume`, `lookup`, `metadata.host`, `traits.memory_mb`, ...
    pub field: String,
    /// The notification's id.
    pub message_id: String,
    /// Why, lowercase.
    pub reason: String,
}

impl fmt::Display for Miss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            MissKind::Meter => "meter",
            MissKind::Event => "event definition",
        };
        write!(
            f,
            "{kind} `{}`: {}: {} (message {})",
            self.definition, self.field, self.reason, self.message_id
        )
    }
}

/// The definitions that match one event type.
#[derive(Debug, Default)]
pub(crate) struct Matches {
    meters: Vec<usize>,
    event: Option<usize>,
}

/// Event type → matching definitions, bounded.
pub(crate) type Cache = std::sync::RwLock<HashMap<Box<str>, Arc<Matches>>>;

impl Definitions {
    /// Converts one notification: every matching meter definition makes its samples, the last
    /// matching event definition makes the event. Never fails: what cannot be extracted is a
    /// [`Miss`].
    pub fn convert(&self, n: &Notification) -> Converted {
        let matches = self.matches(n.event_type());
        let memo = Memo::new();
        let mut out = Converted {
            samples: Vec::with_capacity(matches.meters.len()),
            ..Converted::default()
        };
        for &i in &matches.meters {
            self.meters[i].extract(n, &memo, &mut out.samples, &mut out.misses);
        }
        out.event = match matches.event {
            Some(i) => Some(self.events[i].build(n, &memo, &mut out.misses)),
            None if self.unmatched == crate::Unmatched::Keep => Some(crate::event::build(
                &self.default_traits,
                "",
                n,
                &memo,
                &mut out.misses,
            )),
            None => None,
        };
        out
    }

    fn matches(&self, event_type: &str) -> Arc<Matches> {
        if let Some(m) = self
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(event_type)
        {
            return Arc::clone(m);
        }
        let found = Arc::new(Matches {
            meters: (0..self.meters.len())
                .filter(|&i| self.meters[i].event_types.matches(event_type))
                .collect(),
            event: (0..self.events.len())
                .rev()
                .find(|&i| self.events[i].event_types.matches(event_type)),
        });
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= CACHE_CAPACITY {
            tracing::debug!(
                capacity = CACHE_CAPACITY,
                "event type match cache full, clearing it"
            );
            cache.clear();
        }
        cache.insert(event_type.into(), Arc::clone(&found));
        found
    }
}
