//! [`ArchivePublisher`]: writes each batch as one object per kind (samples, events) and hour
//! partition (see the [module documentation](super) for the layout).
//!
//! A retry of a batch that failed part-way (the same samples by id and events by message id,
//! handed to the publisher again right after the failure) reuses the failed attempt's object
//! names, so the partitions already written are overwritten with the same content instead of
//! being archived twice.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use chrono::{DateTime, NaiveDate, Timelike, Utc};
use flate2::write::GzEncoder;
use hb_sample::{Event, Sample};
use object_store::path::Path as ObjectPath;
use object_store::{PutOptions, PutPayload};
use serde::Serialize;

use super::{ArchiveError, ArchiveSpec, Compression, EVENTS_DIR, SAMPLES_DIR, Store};
use crate::publisher::Batch;

/// When this process first named an archive object, in µs since the epoch (see [`batch_name`]).
static START_US: OnceLock<u64> = OnceLock::new();
/// Batches named by this process, across all archive publishers.
static BATCHES: AtomicU64 = AtomicU64::new(0);

/// An open archive, ready to take batches.
#[derive(Debug)]
pub struct ArchivePublisher {
    spec: ArchiveSpec,
    store: Store,
    /// The batch that last failed, and the number its objects were given.
    failed: Mutex<Option<Failed>>,
}

#[derive(Debug, Clone, Copy)]
struct Failed {
    fingerprint: u64,
    batch: u64,
}

impl ArchivePublisher {
    /// Creates the directory (`archive+file://`) or builds the S3 client (`s3://`, with the
    /// credentials of the spec or the environment). Makes no request: an unreachable server
    /// shows on the first [`publish`](Self::publish).
    pub fn open(spec: &ArchiveSpec) -> Result<Self, ArchiveError> {
        Ok(Self {
            spec: spec.clone(),
            store: Store::open(spec)?,
            failed: Mutex::new(None),
        })
    }

    /// The spec this publisher was opened with.
    pub fn spec(&self) -> &ArchiveSpec {
        &self.spec
    }

    /// A short description for logs (no secrets).
    pub fn describe(&self) -> String {
        self.spec.describe()
    }

    /// Writes a batch of samples: one object per hour their timestamps fall in (UTC), each
    /// written whole by a single PUT. `Ok` means every object is stored (and, for a local
    /// directory, synced to disk). An empty batch writes nothing.
    pub async fn publish(&self, samples: &[Sample]) -> Result<(), ArchiveError> {
        self.write(samples, &[]).await
    }

    /// Writes a batch of events: one object per hour they were generated in (UTC), under
    /// `events/`; otherwise as [`publish`](Self::publish).
    pub async fn publish_events(&self, events: &[Event]) -> Result<(), ArchiveError> {
        self.write(&[], events).await
    }

    /// Writes a batch of samples and events: the samples' objects, then the events', all with
    /// the batch's name; `Ok` once every one is stored.
    pub async fn publish_batch(&self, batch: &Batch) -> Result<(), ArchiveError> {
        self.write(&batch.samples, &batch.events).await
    }

    async fn write(&self, samples: &[Sample], events: &[Event]) -> Result<(), ArchiveError> {
        if samples.is_empty() && events.is_empty() {
            return Ok(());
        }
        let compression = self.spec.compression;
        let mut partitions = Vec::new();
        for (root, objects) in [
            (SAMPLES_DIR, encode(samples, |s| s.timestamp, compression)?),
            (EVENTS_DIR, encode(events, |e| e.generated, compression)?),
        ] {
            let root = self.store.root(root);
            for ((date, hour), body) in objects {
                partitions.push((partition(&root, date, hour), body));
            }
        }
        let fingerprint = fingerprint(samples, events);
        let batch = {
            let mut failed = self.failed.lock().unwrap_or_else(PoisonError::into_inner);
            match failed.take() {
                Some(f) if f.fingerprint == fingerprint => f.batch,
                _ => BATCHES.fetch_add(1, Ordering::Relaxed),
            }
        };
        let name = batch_name(&self.spec.writer, batch, self.spec.compression);
        for (dir, body) in partitions {
            let path = dir.join(name.as_str());
            let put = self
                .store
                .store
                .put_opts(&path, PutPayload::from(body), PutOptions::default())
                .await;
            if let Err(source) = put {
                *self.failed.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some(Failed { fingerprint, batch });
                return Err(ArchiveError::Store {
                    action: "put",
                    object: self.store.display(&path),
                    source,
                });
            }
            tracing::trace!(object = %self.store.display(&path), "archived");
        }
        Ok(())
    }

    /// Nothing to do: every accepted batch is already stored. For symmetry with the other
    /// publishers.
    pub async fn flush(&self) -> Result<(), ArchiveError> {
        Ok(())
    }
}

/// `dt=YYYY-MM-DD/hour=HH` below `root` (`[PREFIX/]samples` or `[PREFIX/]events`).
pub(crate) fn partition(root: &ObjectPath, date: NaiveDate, hour: u32) -> ObjectPath {
    root.clone()
        .join(format!("dt={}", date.format("%Y-%m-%d")))
        .join(format!("hour={hour:02}"))
}

/// `<writer>-<start µs, 17 digits>-<batch, 10 digits><extension>`.
fn batch_name(writer: &str, batch: u64, compression: Compression) -> String {
    let start = *START_US.get_or_init(|| {
        let now = chrono::Utc::now().timestamp_micros();
        u64::try_from(now).unwrap_or(0)
    });
    format!(
        "{writer}-{start:017}-{batch:010}{}",
        compression.extension()
    )
}

/// The JSON lines of `items` (samples or events), compressed, per (date, hour) in UTC of
/// their `time`, in time order.
fn encode<T: Serialize>(
    items: &[T],
    time: impl Fn(&T) -> DateTime<Utc>,
    compression: Compression,
) -> Result<BTreeMap<(NaiveDate, u32), Vec<u8>>, ArchiveError> {
    let mut lines: BTreeMap<(NaiveDate, u32), Vec<u8>> = BTreeMap::new();
    for item in items {
        let at = time(item);
        let buf = lines.entry((at.date_naive(), at.hour())).or_default();
        serde_json::to_writer(&mut *buf, item)?;
        buf.push(b'\n');
    }
    if compression == Compression::Gzip {
        for buf in lines.values_mut() {
            let mut gz = GzEncoder::new(
                Vec::with_capacity(buf.len() / 8),
                flate2::Compression::default(),
            );
            // Writing to a Vec cannot fail.
            let _ = gz.write_all(buf);
            *buf = gz.finish().unwrap_or_default();
        }
    }
    Ok(lines)
}

/// Identifies a batch by its samples' ids and its events' message ids, to recognize a retry.
fn fingerprint(samples: &[Sample], events: &[Event]) -> u64 {
    let mut h = DefaultHasher::new();
    samples.len().hash(&mut h);
    for s in samples {
        s.id.hash(&mut h);
    }
    events.len().hash(&mut h);
    for e in events {
        e.message_id.hash(&mut h);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::path::Path;

    use chrono::{DateTime, TimeZone, Utc};
    use flate2::read::GzDecoder;
    use hb_sample::SampleType;

    use super::super::{ArchiveLocation, default_writer};
    use super::*;

    fn sample(t: DateTime<Utc>, v: f64) -> Sample {
        Sample::new("cpu.util", SampleType::Gauge, "%", v, "host-a", t).unwrap()
    }

    fn spec(dir: &Path, compression: Compression) -> ArchiveSpec {
        ArchiveSpec {
            location: ArchiveLocation::Local(dir.to_owned()),
            writer: "w1".into(),
            compression,
        }
    }

    /// Every file below `dir`, relative, sorted.
    fn files(dir: &Path) -> Vec<String> {
        fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(base, &p, out);
                } else {
                    out.push(p.strip_prefix(base).unwrap().display().to_string());
                }
            }
        }
        let mut out = Vec::new();
        walk(dir, dir, &mut out);
        out.sort();
        out
    }

    #[tokio::test]
    async fn archive_batches_split_by_hour_into_gzipped_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("archive");
        let publisher = ArchivePublisher::open(&spec(&root, Compression::Gzip)).unwrap();
        let t = Utc.with_ymd_and_hms(2026, 11, 22, 23, 59, 59).unwrap();
        let batch = [
            sample(t, 1.0),
            sample(t + chrono::Duration::seconds(1), 2.0),
            sample(t, 3.0),
        ];
        publisher.publish(&batch).await.unwrap();
        publisher.publish(&[]).await.unwrap();
        publisher.publish(&batch[1..2]).await.unwrap();
        let files = files(&root);
        assert_eq!(files.len(), 3, "{files:?}");
        let start = START_US.get().unwrap();
        let name = |i: &str| files.iter().find(|f| f.contains(i)).unwrap().clone();
        let first = name("hour=23/");
        assert!(
            first.starts_with(&format!("samples/dt=2026-11-22/hour=23/w1-{start:017}-")),
            "{first}"
        );
        assert!(first.ends_with(".jsonl.gz"), "{first}");
        let objects: Vec<_> = files
            .iter()
            .filter(|f| f.starts_with("samples/dt=2026-11-23/hour=00/"))
            .collect();
        assert_eq!(objects.len(), 2, "{files:?}");
        assert!(objects[0] < objects[1], "names sort in write order");

        let mut text = String::new();
        let raw = std::fs::read(root.join(&first)).unwrap();
        GzDecoder::new(&raw[..]).read_to_string(&mut text).unwrap();
        let back: Vec<Sample> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(back, vec![batch[0].clone(), batch[2].clone()]);
    }

    #[tokio::test]
    async fn archive_without_compression_writes_plain_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let publisher = ArchivePublisher::open(&spec(dir.path(), Compression::None)).unwrap();
        let t = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        publisher.publish(&[sample(t, 1.5)]).await.unwrap();
        let files = files(dir.path());
        assert_eq!(files.len(), 1);
        assert!(files[0].starts_with("samples/dt=2026-01-02/hour=03/w1-"));
        assert!(files[0].ends_with(".jsonl"), "{files:?}");
        let text = std::fs::read_to_string(dir.path().join(&files[0])).unwrap();
        let back: Sample = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(back.volume(), 1.5);
    }

    #[tokio::test]
    async fn archive_retry_of_a_failed_batch_reuses_its_names() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("a");
        let publisher = ArchivePublisher::open(&spec(&root, Compression::Gzip)).unwrap();
        let t = Utc.with_ymd_and_hms(2026, 1, 2, 3, 59, 59).unwrap();
        let batch = [sample(t, 1.0), sample(t + chrono::Duration::hours(1), 2.0)];
        // The second hour cannot be written: a file stands where its directory must go.
        std::fs::create_dir_all(root.join("samples/dt=2026-01-02")).unwrap();
        std::fs::write(root.join("samples/dt=2026-01-02/hour=04"), b"").unwrap();
        let err = publisher.publish(&batch).await.unwrap_err();
        assert!(
            err.to_string().starts_with(&format!(
                "put {}/samples/dt=2026-01-02/hour=04/w1-",
                root.display()
            )),
            "{err}"
        );
        std::fs::remove_file(root.join("samples/dt=2026-01-02/hour=04")).unwrap();
        publisher.publish(&batch).await.unwrap();
        let files = files(&root);
        assert_eq!(files.len(), 2, "{files:?}");
        let name = |f: &str| f.rsplit('/').next().unwrap().to_owned();
        assert_eq!(name(&files[0]), name(&files[1]));
        // A different batch gets a new name.
        publisher.publish(&batch[..1]).await.unwrap();
        assert_eq!(self::files(&root).len(), 3);
    }

    #[test]
    fn archive_publishing_can_run_on_any_thread() {
        fn send<T: Send>(_: &T) {}
        let dir = tempfile::tempdir().unwrap();
        let publisher = ArchivePublisher::open(&spec(dir.path(), Compression::Gzip)).unwrap();
        send(&publisher.publish(&[]));
        send(&publisher.publish_batch(&Batch::default()));
        let reader = super::super::ArchiveReader::open(&spec(dir.path(), Compression::Gzip));
        let reader = reader.unwrap();
        let t = Utc::now();
        send(&reader.read_range(t, t));
        send(&reader.read_events_range(t, t));
    }

    #[test]
    fn archive_open_refuses_a_directory_it_cannot_create() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("file"), b"").unwrap();
        let mut s = spec(&dir.path().join("file/archive"), Compression::Gzip);
        s.writer = default_writer();
        let err = ArchivePublisher::open(&s).unwrap_err();
        assert!(
            err.to_string().starts_with("create archive directory "),
            "{err}"
        );
        assert!(!err.is_retryable());
    }
}
