//! Reading the archive back: the objects of the hour partitions that cover a time range, in
//! object-name order, and the samples in them whose timestamp falls in the range.
//!
//! An object or line that cannot be decoded is skipped and reported as a [`BadRecord`] (object
//! and line number) in the [`ReadOutcome`]; only failures to reach the store are errors.
//! [`read_range`] collects a whole range in memory; a caller that streams (a long replay) lists
//! with [`ArchiveReader::list`] and reads one [`ArchiveObject`] at a time.

use std::collections::BTreeSet;
use std::fmt;
use std::io::{BufRead, BufReader, Read};

use chrono::{DateTime, NaiveDate, TimeDelta, Timelike, Utc};
use flate2::read::MultiGzDecoder;
use futures_util::{StreamExt, TryStreamExt};
use hb_sample::Sample;
use object_store::GetOptions;
use object_store::path::Path as ObjectPath;

use super::writer::partition;
use super::{ArchiveError, ArchiveSpec, Compression, Store};

/// Objects fetched at the same time by [`read_range`].
const CONCURRENT_GETS: usize = 4;
/// Days with more hours than this in the range are listed whole, fewer hour by hour.
const HOURS_LISTED_ONE_BY_ONE: usize = 6;

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

/// One object of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveObject {
    /// Its key in the store (`[PREFIX/]samples/dt=.../hour=.../NAME`).
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

    /// The objects of the hour partitions that cover `[from, to)`, sorted by key. Files that
    /// are not archive objects (names not ending in `.jsonl.gz` or `.jsonl`) are left out.
    pub async fn list(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<ArchiveObject>, ArchiveError> {
        if from >= to {
            return Err(ArchiveError::InvalidRange { from, to });
        }
        let mut objects = Vec::new();
        for (date, hours) in hours(from, to) {
            let prefixes: Vec<(ObjectPath, bool)> = if hours.len() > HOURS_LISTED_ONE_BY_ONE {
                let day = self
                    .store
                    .root
                    .clone()
                    .join(format!("dt={}", date.format("%Y-%m-%d")));
                vec![(day, true)]
            } else {
                let part = |h| (partition(&self.store.root, date, h), false);
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
                return Ok(ReadOutcome {
                    bad: vec![bad],
                    objects: 1,
                    ..ReadOutcome::default()
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
        let objects = self.list(from, to).await?;
        // Owned objects: a closure over `&ArchiveObject` would make the future not `Send`.
        futures_util::stream::iter(objects)
            .map(|o| async move { self.read(&o, from, to).await })
            .buffered(CONCURRENT_GETS)
            .try_fold(ReadOutcome::default(), |mut all, one| async move {
                all.extend(one);
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

/// The samples in `[from, to)` among the JSON lines `input` yields.
fn decode(input: impl Read, object: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> ReadOutcome {
    let mut outcome = ReadOutcome::default();
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
        match serde_json::from_slice::<Sample>(&line) {
            Ok(s) if s.timestamp >= from && s.timestamp < to => outcome.samples.push(s),
            Ok(_) => {}
            Err(e) => outcome.bad.push(BadRecord {
                object: object.to_owned(),
                line: Some(number),
                reason: format!("not a sample: {e}"),
            }),
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::path::Path;

    use chrono::TimeZone;
    use flate2::write::GzEncoder;
    use hb_sample::SampleType;

    use super::super::{ArchiveLocation, ArchivePublisher};
    use super::*;

    fn sample(t: DateTime<Utc>, v: f64) -> Sample {
        Sample::new("disk.read", SampleType::Cumulative, "B", v, "host-b", t).unwrap()
    }

    fn spec(dir: &Path) -> ArchiveSpec {
        ArchiveSpec {
            location: ArchiveLocation::Local(dir.to_owned()),
            writer: "reader-test".into(),
            compression: Compression::Gzip,
        }
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(data).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn archive_range_hours_cover_partial_hours_and_days() {
        let t = |d, h, m| Utc.with_ymd_and_hms(2026, 1, d, h, m, 0).unwrap();
        let days = hours(t(1, 22, 30), t(2, 1, 0));
        let date = |d| NaiveDate::from_ymd_opt(2026, 1, d).unwrap();
        assert_eq!(
            days,
            vec![
                (date(1), BTreeSet::from([22, 23])),
                (date(2), BTreeSet::from([0]))
            ]
        );
        assert_eq!(
            hours(t(1, 5, 0), t(1, 5, 1)),
            vec![(date(1), BTreeSet::from([5]))]
        );
        assert_eq!(hours(t(1, 0, 0), t(3, 0, 0)).len(), 2);
    }

    #[tokio::test]
    async fn archive_read_range_filters_by_time_and_reports_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec(dir.path());
        let publisher = ArchivePublisher::open(&spec).unwrap();
        let t0 = Utc.with_ymd_and_hms(2026, 3, 4, 5, 0, 0).unwrap();
        let at = |minutes| t0 + TimeDelta::minutes(minutes);
        let batch1 = [sample(at(-1), 1.0), sample(at(0), 2.0), sample(at(30), 3.0)];
        let batch2 = [sample(at(59), 4.0), sample(at(60 * 9), 5.0)];
        publisher.publish(&batch1).await.unwrap();
        publisher.publish(&batch2).await.unwrap();

        // A damaged object in one of the partitions, and a stray file that is not an object.
        let part = dir.path().join("samples/dt=2026-03-04/hour=05");
        let good = serde_json::to_string(&sample(at(10), 6.0)).unwrap();
        let text = format!("{good}\n{{\"id\": 1}}\nnot json\n\n{good}\n");
        std::fs::write(part.join("zz-bad.jsonl.gz"), gzip(text.as_bytes())).unwrap();
        std::fs::write(part.join("zz-notgzip.jsonl.gz"), b"plain text\n").unwrap();
        std::fs::write(part.join("README"), b"ignored").unwrap();

        let outcome = read_range(&spec, at(0), at(60 * 10)).await.unwrap();
        let volumes: Vec<f64> = outcome.samples.iter().map(Sample::volume).collect();
        assert_eq!(volumes, vec![2.0, 3.0, 4.0, 6.0, 6.0, 5.0]);
        assert_eq!(outcome.objects, 5);
        let bad: Vec<String> = outcome.bad.iter().map(ToString::to_string).collect();
        let bad_path = part.join("zz-bad.jsonl.gz").display().to_string();
        assert_eq!(bad.len(), 3, "{bad:?}");
        assert!(
            bad[0].starts_with(&format!("{bad_path} line 2: not a sample: ")),
            "{bad:?}"
        );
        assert!(
            bad[1].starts_with(&format!("{bad_path} line 3: not a sample: ")),
            "{bad:?}"
        );
        let not_gzip = part.join("zz-notgzip.jsonl.gz").display().to_string();
        assert!(
            bad[2].starts_with(&format!("{not_gzip} line 1: cannot decompress")),
            "{bad:?}"
        );

        // Just the first hour, and an empty range.
        let outcome = read_range(&spec, at(-60), at(0)).await.unwrap();
        assert_eq!(outcome.samples, vec![batch1[0].clone()]);
        let outcome = read_range(&spec, at(60), at(120)).await.unwrap();
        assert_eq!(outcome, ReadOutcome::default());
        let err = read_range(&spec, at(1), at(1)).await.unwrap_err();
        assert!(err.to_string().starts_with("invalid time range"), "{err}");
    }

    #[tokio::test]
    async fn archive_long_ranges_list_whole_days() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec(dir.path());
        let publisher = ArchivePublisher::open(&spec).unwrap();
        let t0 = Utc.with_ymd_and_hms(2026, 3, 4, 0, 30, 0).unwrap();
        let batch: Vec<Sample> = (0..30)
            .map(|h| sample(t0 + TimeDelta::hours(h), h as f64))
            .collect();
        publisher.publish(&batch).await.unwrap();
        let reader = ArchiveReader::open(&spec).unwrap();
        let objects = reader
            .list(t0 + TimeDelta::hours(1), t0 + TimeDelta::hours(28))
            .await
            .unwrap();
        assert_eq!(objects.len(), 28, "{objects:?}");
        assert!(objects[0].key.starts_with("samples/dt=2026-03-04/hour=01/"));
        assert!(
            objects[27]
                .key
                .starts_with("samples/dt=2026-03-05/hour=04/")
        );
        let outcome = reader
            .read_range(t0, t0 + TimeDelta::hours(30))
            .await
            .unwrap();
        assert_eq!(outcome.samples, batch);
    }
}
