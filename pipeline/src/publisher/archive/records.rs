//! What the archive reader returns: samples or events with the records it skipped, and the
//! two kinds of record it reads.

use std::fmt;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use hb_sample::{Event, Sample};
use serde::de::DeserializeOwned;

use super::super::{EVENTS_DIR, SAMPLES_DIR};

/// Samples read from the archive, and what could not be read.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ReadOutcome {
    /// The samples in the range, in object-name order, then line order.
    pub samples: Vec<Sample>,
    /// Objects and lines that were skipped.
    pub bad: Vec<BadRecord>,
    /// How many objects were read (including those with bad lines).
    pub objects: usize,
}

impl ReadOutcome {
    /// Appends `other` (read from later objects) to this outcome.
    pub fn extend(&mut self, other: ReadOutcome) {
        self.samples.extend(other.samples);
        self.bad.extend(other.bad);
        self.objects += other.objects;
    }
}

/// Events read from the archive, and what could not be read.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct EventOutcome {
    /// The events in the range, in object-name order, then line order.
    pub events: Vec<Event>,
    /// Objects and lines that were skipped.
    pub bad: Vec<BadRecord>,
    /// How many objects were read (including those with bad lines).
    pub objects: usize,
}

impl EventOutcome {
    /// Appends `other` (read from later objects) to this outcome.
    pub fn extend(&mut self, other: EventOutcome) {
        self.events.extend(other.events);
        self.bad.extend(other.bad);
        self.objects += other.objects;
    }
}

/// What the reader needs to know of a kind of record.
pub(super) trait Record: DeserializeOwned + Send + 'static {
    /// Its directory below the prefix.
    const DIR: &'static str;
    /// Its name in a bad record's reason (`not a sample: ...`).
    const WHAT: &'static str;
    /// The time it is partitioned and selected by.
    fn time(&self) -> DateTime<Utc>;
}

impl Record for Sample {
    const DIR: &'static str = SAMPLES_DIR;
    const WHAT: &'static str = "a sample";
    fn time(&self) -> DateTime<Utc> {
        self.timestamp
    }
}

impl Record for Event {
    const DIR: &'static str = EVENTS_DIR;
    const WHAT: &'static str = "an event";
    fn time(&self) -> DateTime<Utc> {
        self.generated
    }
}

/// Records of one kind read from some objects.
pub(super) struct Decoded<T> {
    pub(super) records: Vec<T>,
    pub(super) bad: Vec<BadRecord>,
    pub(super) objects: usize,
}

impl<T> Default for Decoded<T> {
    fn default() -> Self {
        Self {
            records: Vec::new(),
            bad: Vec::new(),
            objects: 0,
        }
    }
}

impl From<Decoded<Sample>> for ReadOutcome {
    fn from(d: Decoded<Sample>) -> Self {
        Self {
            samples: d.records,
            bad: d.bad,
            objects: d.objects,
        }
    }
}

impl From<Decoded<Event>> for EventOutcome {
    fn from(d: Decoded<Event>) -> Self {
        Self {
            events: d.records,
            bad: d.bad,
            objects: d.objects,
        }
    }
}

/// `[start of date, start of the next day)` in UTC: the range of one day partition.
pub fn day_range(date: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let from = date.and_time(chrono::NaiveTime::MIN).and_utc();
    (from, from + TimeDelta::days(1))
}

/// An object or a line of it that was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRecord {
    /// The object, as `s3://BUCKET/KEY` or a local path.
    pub object: String,
    /// The 1-based line; `None` when the object as a whole could not be read.
    pub line: Option<u64>,
    /// Why it was skipped.
    pub reason: String,
}

impl fmt::Display for BadRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{} line {line}: {}", self.object, self.reason),
            None => write!(f, "{}: {}", self.object, self.reason),
        }
    }
}
