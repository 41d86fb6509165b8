//! Reading the archive back: the objects of the hour partitions that cover a time range, in
//! object-name order, and the samples in them whose `timestamp` (or the events in them whose
//! `generated`) falls in the range. Samples and events are read the same way, each from its
//! own directory: [`ArchiveReader::read_range`] and [`ArchiveReader::read_events_range`],
//! [`list`](ArchiveReader::list) and [`list_events`](ArchiveReader::list_events),
//! [`read`](ArchiveReader::read) and [`read_events`](ArchiveReader::read_events); a day is the
//! range [`day_range`] gives.
//!
//! An object or line that cannot be decoded is skipped and reported as a [`BadRecord`] (object
//! and line number) in the [`ReadOutcome`]; only failures to reach the store are errors.
//! [`read_range`] collects a whole range in memory; a caller that streams (a long replay) lists
//! with [`ArchiveReader::list`] and reads one [`ArchiveObject`] at a time.

#[path = "records.rs"]
mod records;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};

use chrono::{DateTime, NaiveDate, TimeDelta, Timelike, Utc};
use flate2::read::MultiGzDecoder;
use futures_util::{StreamExt, TryStreamExt};
use hb_sample::{Event, Sample};
use object_store::GetOptions;
use object_store::path::Path as ObjectPath;

use super::writer::partition;
use super::{ArchiveError, ArchiveSpec, Compression, EVENTS_DIR, SAMPLES_DIR, Store};
pub use records::{BadRecord, EventOutcome, ReadOutcome, day_range};
use records::{Decoded, Record};

/// Objects fetched at the same time by [`read_range`].
const CONCURRENT_GETS: usize = 4;
/// Days with more hours than this in the range are listed whole, fewer hour by hour.
const HOURS_LISTED_ONE_BY_ONE: usize = 6;

/// One object of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveObject {
    /// Its key in the store (`[PREFIX/]samples/dt=.../hour=.../NAME`, or `events/...`).
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
}

/// An open archive, for reading.
#[derive(Debug)]
pub struct ArchiveReader {
    store: Store,
}

impl ArchiveReader {
    /// Opens the store the spec names (see [`ArchivePublisher::open`](super::ArchivePublisher::open);
    /// a missing local directory is created, and reads as empty).
    pub fn open(spec: &ArchiveSpec) -> Result<Self, ArchiveError> {
        Ok(Self {
            store: Store::open(spec)?,
        })
    }

    /// The sample objects of the hour partitions that cover `[from, to)`, sorted by key. Files
    /// that are not archive objects (names not ending in `.jsonl.gz` or `.jsonl`) are left out.
    pub async fn list(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<ArchiveObject>, ArchiveError> {
        self.list_in(SAMPLES_DIR, from, to).await
    }

    /// The event objects (under `events/`) of the hour partitions that cover `[from, to)`, as
    /// [`list`](Self::list).
    pub async fn list_events(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<ArchiveObject>, ArchiveError> {
        self.list_in(EVENTS_DIR, from, to).await
    }

    async fn list_in(
        &self,
        dir: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<ArchiveObject>, ArchiveError> {
        let root = self.store.root(dir);
        if from >= to {
            return Err(ArchiveError::InvalidRange { from, to });
        }
        let mut objects = Vec::new();
        for (date, hours) in hours(from, to) {
            let prefixes: Vec<(ObjectPath, bool)> = if hours.len() > HOURS_LISTED_ONE_BY_ONE {
                let day = root.clone().join(format!("dt={}", date.format("%Y-%m-%d")));
                vec![(day, true)]
            } else {
                let part = |h| (partition(&root, date, h), false);
                hours.iter().copied().map(part).collect()
            };
            for (prefix, whole_day) in prefixes {
                let listed: Vec<_> = self
                    .store
                    .store
                    .list(Some(&prefix))
                    .try_collect()
                    .await
                    .map_err(|source| ArchiveError::Store {
                        action: "list",
                        object: self.store.display(&prefix),
                        source,
                    })?;
                for meta in listed {
                    let key = meta.location.as_ref();
                    let Some(rest) = key
                        .strip_prefix(prefix.as_ref())
                        .and_then(|r| r.strip_prefix('/'))
                    else {
                        continue;
                    };
                    let name = if whole_day {
                        let Some((hour, name)) = rest.split_once('/') else {
                            continue;
                        };
                        let hour = hour.strip_prefix("hour=").and_then(|h| h.parse().ok());
                        if !hour.is_some_and(|h| hours.contains(&h)) {
                            continue;
                        }
                        name
                    } else {
                        rest
                    };
                    if name.contains('/') || compression_of(name).is_none() {
                        continue;
                    }
                    objects.push(ArchiveObject {
                        key: key.to_owned(),
                        size: meta.size,
                    });
                }
            }
        }
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    /// The samples of one object whose timestamp is in `[from, to)`; lines that do not decode
    /// (and the rest of an object whose compression is corrupt) are reported in `bad`.
    pub async fn read(
        &self,
        object: &ArchiveObject,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<ReadOutcome, ArchiveError> {
        Ok(self.read_one::<Sample>(object, from, to).await?.into())
    }

    /// The events of one object (listed by [`list_events`](Self::list_events)) generated in
    /// `[from, to)`, as [`read`](Self::read).
    pub async fn read_events(
        &self,
        object: &ArchiveObject,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<EventOutcome, ArchiveError> {
        Ok(self.read_one::<Event>(object, from, to).await?.into())
    }

    async fn read_one<T: Record>(
        &self,
        object: &ArchiveObject,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Decoded<T>, ArchiveError> {
        let path = ObjectPath::from(object.key.as_str());
        let shown = self.store.display(&path);
        let got = self
            .store
            .store
            .get_opts(&path, GetOptions::default())
            .await;
        let bytes = match got {
            Ok(got) => got.bytes().await,
            Err(e) => Err(e),
        };
        let bytes = match bytes {
            Ok(bytes) => bytes,
            // Listed a moment ago, gone now (removed by retention): nothing to read.
            Err(object_store::Error::NotFound { .. }) => {
                let bad = BadRecord {
                    object: shown,
                    line: None,
                    reason: "removed while being read".to_owned(),
                };
                return Ok(Decoded {
                    bad: vec![bad],
                    objects: 1,
                    ..Decoded::default()
                });
            }
            Err(source) => {
                return Err(ArchiveError::Store {
                    action: "get",
                    object: shown,
                    source,
                });
            }
        };
        let compression = compression_of(&object.key).unwrap_or(Compression::None);
        let outcome = tokio::task::spawn_blocking(move || {
            let mut outcome = match compression {
                Compression::Gzip => decode(MultiGzDecoder::new(&bytes[..]), &shown, from, to),
                Compression::None => decode(&bytes[..], &shown, from, to),
            };
            outcome.objects = 1;
            outcome
        })
        .await?;
        Ok(outcome)
    }

    /// [`list`](Self::list) then [`read`](Self::read) every object, a few at a time, keeping
    /// object-name order.
    pub async fn read_range(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<ReadOutcome, ArchiveError> {
        Ok(self.range::<Sample>(from, to).await?.into())
    }

    /// [`list_events`](Self::list_events) then [`read_events`](Self::read_events) every
    /// object, a few at a time, keeping object-name order.
    pub async fn read_events_range(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<EventOutcome, ArchiveError> {
        Ok(self.range::<Event>(from, to).await?.into())
    }

    async fn range<T: Record>(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Decoded<T>, ArchiveError> {
        let objects = self.list_in(T::DIR, from, to).await?;
        // Owned objects: a closure over `&ArchiveObject` would make the future not `Send`.
        futures_util::stream::iter(objects)
            .map(|o| async move { self.read_one::<T>(&o, from, to).await })
            .buffered(CONCURRENT_GETS)
            .try_fold(Decoded::default(), |mut all, one| async move {
                all.records.extend(one.records);
                all.bad.extend(one.bad);
                all.objects += one.objects;
                Ok(all)
            })
            .await
    }
}

/// Reads every sample of the archive `spec` names whose timestamp is in `[from, to)`, in
/// object-name order (hour partitions in time order; within one, each writer's objects in
/// write order), skipping and reporting what does not decode.
pub async fn read_range(
    spec: &ArchiveSpec,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<ReadOutcome, ArchiveError> {
    ArchiveReader::open(spec)?.read_range(from, to).await
}

/// Reads every event of the archive `spec` names generated in `[from, to)`, as
/// [`read_range`] reads samples.
pub async fn read_events_range(
    spec: &ArchiveSpec,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<EventOutcome, ArchiveError> {
    ArchiveReader::open(spec)?.read_events_range(from, to).await
}

fn compression_of(name: &str) -> Option<Compression> {
    if name.ends_with(Compression::Gzip.extension()) {
        Some(Compression::Gzip)
    } else if name.ends_with(Compression::None.extension()) {
        Some(Compression::None)
    } else {
        None
    }
}

/// The hours that `[from, to)` touches, by day.
fn hours(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<(NaiveDate, BTreeSet<u32>)> {
    let mut days: Vec<(NaiveDate, BTreeSet<u32>)> = Vec::new();
    let start = from.date_naive().and_hms_opt(from.hour(), 0, 0);
    let Some(mut hour) = start.map(|t| t.and_utc()) else {
        return days;
    };
    while hour < to {
        let date = hour.date_naive();
        match days.last_mut() {
            Some((d, hours)) if *d == date => {
                hours.insert(hour.hour());
            }
            _ => days.push((date, BTreeSet::from([hour.hour()]))),
        }
        let Some(next) = hour.checked_add_signed(TimeDelta::hours(1)) else {
            break;
        };
        hour = next;
    }
    days
}

/// The records in `[from, to)` among the JSON lines `input` yields.
fn decode<T: Record>(
    input: impl Read,
    object: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Decoded<T> {
    let mut outcome = Decoded::default();
    let mut input = BufReader::new(input);
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        line.clear();
        number += 1;
        match input.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                outcome.bad.push(BadRecord {
                    object: object.to_owned(),
                    line: Some(number),
                    reason: format!("cannot decompress (rest of the object skipped): {e}"),
                });
                break;
            }
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<T>(&line) {
            Ok(r) if r.time() >= from && r.time() < to => outcome.records.push(r),
            Ok(_) => {}
            Err(e) => outcome.bad.push(BadRecord {
                object: object.to_owned(),
                line: Some(number),
                reason: format!("not {}: {e}", T::WHAT),
            }),
        }
    }
    outcome
}

#[cfg(test)]
#[path = "reader_tests.rs"]
mod tests;
