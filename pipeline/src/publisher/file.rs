//! `file://` publisher: one sample per line as JSON, rotated like Python's rotating log.
//!
//! With `max_bytes=N` (N > 0), a line that would make the file larger than N bytes first
//! rotates it: `PATH.{k}` becomes `PATH.{k+1}` up to `backup_count`, `PATH` becomes `PATH.1`,
//! and writing continues in a new `PATH`; the oldest backup beyond `backup_count` is removed.
//! `max_bytes=0` (the default) never rotates. Unlike Ceilometer's file publisher, a non-zero
//! `max_bytes` with `backup_count=0` is refused: it would truncate the file and lose samples.
//!
//! Lines are written with one `write` per batch (or per rotation segment) and synced to disk on
//! [`flush`](FilePublisher::flush), which the pipeline calls on shutdown.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use hb_sample::Sample;

use super::{PublishError, PublisherUrlError};

const OPTIONS: &str = "max_bytes, backup_count";

/// A validated `file://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    /// Absolute (or config-relative, resolved) path of the live file.
    pub path: PathBuf,
    /// Rotate before the file would exceed this size; 0 = never.
    pub max_bytes: u64,
    /// How many rotated files to keep.
    pub backup_count: u32,
}

impl FileSpec {
    pub(super) fn parse(
        target: &str,
        options: Vec<(String, String)>,
        base: &Path,
    ) -> Result<Self, PublisherUrlError> {
        if target.is_empty() {
            let msg = "file:// needs a path (file:///var/lib/hb/samples.jsonl, or a path \
                       relative to the configuration file)";
            return Err(PublisherUrlError::Invalid(msg.to_owned()));
        }
        let mut spec = Self {
            path: super::resolve(base, target),
            max_bytes: 0,
            backup_count: 0,
        };
        for (option, value) in options {
            match option.as_str() {
                "max_bytes" => spec.max_bytes = number("max_bytes", value)?,
                "backup_count" => spec.backup_count = number("backup_count", value)?,
                _ => {
                    let valid = OPTIONS;
                    return Err(PublisherUrlError::UnknownOption {
                        scheme: "file",
                        option,
                        valid,
                    });
                }
            }
        }
        if spec.max_bytes > 0 && spec.backup_count == 0 {
            let msg = "max_bytes needs backup_count >= 1 (rotating without a backup would \
                       truncate the file and lose samples)";
            return Err(PublisherUrlError::Invalid(msg.to_owned()));
        }
        Ok(spec)
    }
}

fn number<T: std::str::FromStr>(
    option: &'static str,
    value: String,
) -> Result<T, PublisherUrlError> {
    value.parse().map_err(|_| PublisherUrlError::InvalidOption {
        option,
        value,
        reason: "expected a whole number >= 0",
    })
}

/// An open JSON-lines file.
#[derive(Debug)]
pub struct FilePublisher {
    spec: FileSpec,
    state: Arc<Mutex<State>>,
}

#[derive(Debug)]
struct State {
    file: File,
    size: u64,
}

impl FilePublisher {
    /// Creates the parent directory and opens the file for appending.
    pub fn open(spec: &FileSpec) -> Result<Self, PublishError> {
        let state = State::open(&spec.path)?;
        Ok(Self {
            spec: spec.clone(),
            state: Arc::new(Mutex::new(state)),
        })
    }

    /// The live file.
    pub fn path(&self) -> &Path {
        &self.spec.path
    }

    /// Appends one JSON line per sample, rotating as configured.
    pub async fn publish(&self, samples: &[Sample]) -> Result<(), PublishError> {
        let mut buf = Vec::with_capacity(samples.len() * 384);
        let mut ends = Vec::with_capacity(samples.len());
        for s in samples {
            serde_json::to_writer(&mut buf, s)?;
            buf.push(b'\n');
            ends.push(buf.len());
        }
        let state = Arc::clone(&self.state);
        let spec = self.spec.clone();
        tokio::task::spawn_blocking(move || {
            let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
            state.append(&spec, &buf, &ends)
        })
        .await?
    }

    /// Syncs the file to disk.
    pub async fn flush(&self) -> Result<(), PublishError> {
        let state = Arc::clone(&self.state);
        let path = self.spec.path.clone();
        tokio::task::spawn_blocking(move || {
            let state = state.lock().unwrap_or_else(PoisonError::into_inner);
            state.file.sync_data().map_err(|source| PublishError::Io {
                action: "sync",
                path,
                source,
            })
        })
        .await?
    }
}

impl State {
    fn open(path: &Path) -> Result<Self, PublishError> {
        let io = |action| {
            move |source| PublishError::Io {
                action,
                path: path.to_owned(),
                source,
            }
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io("create the directory of"))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io("open"))?;
        let size = file.metadata().map_err(io("stat"))?.len();
        Ok(Self { file, size })
    }

    /// Writes `buf`, whose lines end at the offsets in `ends`, rotating between lines.
    fn append(&mut self, spec: &FileSpec, buf: &[u8], ends: &[usize]) -> Result<(), PublishError> {
        let mut start = 0;
        let mut line_start = 0;
        for &end in ends {
            let pending = (line_start - start) as u64;
            let line = (end - line_start) as u64;
            if spec.max_bytes > 0
                && self.size + pending > 0
                && self.size + pending + line > spec.max_bytes
            {
                self.write(spec, &buf[start..line_start])?;
                self.rotate(spec)?;
                start = line_start;
            }
            line_start = end;
        }
        self.write(spec, &buf[start..])
    }

    fn write(&mut self, spec: &FileSpec, bytes: &[u8]) -> Result<(), PublishError> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.file
            .write_all(bytes)
            .map_err(|source| PublishError::Io {
                action: "write to",
                path: spec.path.clone(),
                source,
            })?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    fn rotate(&mut self, spec: &FileSpec) -> Result<(), PublishError> {
        let io = |source| PublishError::Io {
            action: "rotate",
            path: spec.path.clone(),
            source,
        };
        self.file.sync_data().map_err(io)?;
        let backup = |n: u32| PathBuf::from(format!("{}.{n}", spec.path.display()));
        for n in (1..spec.backup_count).rev() {
            match std::fs::rename(backup(n), backup(n + 1)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
                _ => {}
            }
        }
        std::fs::rename(&spec.path, backup(1)).map_err(io)?;
        *self = Self::open(&spec.path)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publisher::PublisherSpec;

    fn spec(url: &str, base: &Path) -> Result<FileSpec, String> {
        match PublisherSpec::parse(url, base) {
            Ok(PublisherSpec::File(spec)) => Ok(spec),
            Ok(other) => Err(format!("not a file publisher: {other:?}")),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn urls_are_validated() {
        let base = Path::new("/etc/hb");
        let ok = spec(
            "file:///var/lib/hb/s.jsonl?max_bytes=1000&backup_count=3",
            base,
        )
        .expect("ok");
        assert_eq!(ok.path, Path::new("/var/lib/hb/s.jsonl"));
        assert_eq!((ok.max_bytes, ok.backup_count), (1000, 3));
        assert_eq!(
            spec("file://data/s.jsonl", base).expect("ok").path,
            Path::new("/etc/hb/data/s.jsonl")
        );
        let refusals = [
            ("file://", "file:// needs a path"),
            (
                "file:///x?max_bytes=ten&backup_count=1",
                "invalid max_bytes `ten`: expected a whole number >= 0",
            ),
            (
                "file:///x?max_bytes=-5&backup_count=1",
                "invalid max_bytes `-5`: expected a whole number >= 0",
            ),
            (
                "file:///x?backup_count=1.5",
                "invalid backup_count `1.5`: expected a whole number >= 0",
            ),
            (
                "file:///x?max_byte=10",
                "unknown option `max_byte` for file:// (valid: max_bytes, backup_count)",
            ),
            (
                "file:///x?max_bytes=10",
                "max_bytes needs backup_count >= 1",
            ),
            (
                "file:///x?backup_count=1&backup_count=2",
                "option `backup_count` given twice",
            ),
            (
                "influx://h",
                "unknown publisher scheme `influx` (available: file, archive+file, s3, influxdb,",
            ),
            ("/var/lib/x", "`/var/lib/x` is not a publisher URL"),
        ];
        for (url, message) in refusals {
            let err = spec(url, base).expect_err(url);
            assert!(err.starts_with(message), "{url}: {err}");
        }
    }

    fn sample(i: usize) -> Sample {
        let at = hb_sample::timestamp::parse("2026-11-22T10:00:00Z").expect("time");
        Sample::new("m", hb_sample::SampleType::Gauge, "B", i as f64, "r", at).expect("sample")
    }

    fn lines(path: &Path) -> Vec<f64> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                serde_json::from_str::<Sample>(l)
                    .expect("json line")
                    .volume()
            })
            .collect()
    }

    #[tokio::test]
    async fn appends_json_lines_and_rotates_keeping_backup_count_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let line_len = serde_json::to_vec(&sample(0)).expect("json").len() as u64 + 1;
        let url = format!(
            "file://out/s.jsonl?max_bytes={}&backup_count=2",
            line_len * 3
        );
        let publisher = FilePublisher::open(&spec(&url, dir.path()).expect("spec")).expect("open");
        let all: Vec<Sample> = (0..10).map(sample).collect();
        publisher.publish(&all[..4]).await.expect("publish");
        for s in &all[4..] {
            publisher
                .publish(std::slice::from_ref(s))
                .await
                .expect("publish");
        }
        publisher.flush().await.expect("flush");
        let path = dir.path().join("out/s.jsonl");
        // 10 lines, 3 per file: [0 1 2] [3 4 5] [6 7 8] [9]; two backups kept.
        assert_eq!(lines(&path), vec![9.0]);
        assert_eq!(lines(&path.with_extension("jsonl.1")), vec![6.0, 7.0, 8.0]);
        assert_eq!(lines(&path.with_extension("jsonl.2")), vec![3.0, 4.0, 5.0]);
        assert!(!path.with_extension("jsonl.3").exists());
    }

    #[tokio::test]
    async fn without_max_bytes_the_file_only_grows_and_reopening_appends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = spec("file://s.jsonl", dir.path()).expect("spec");
        let all: Vec<Sample> = (0..5).map(sample).collect();
        FilePublisher::open(&spec)
            .expect("open")
            .publish(&all[..2])
            .await
            .expect("publish");
        FilePublisher::open(&spec)
            .expect("open")
            .publish(&all[2..])
            .await
            .expect("publish");
        assert_eq!(lines(&spec.path), vec![0.0, 1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn an_unwritable_path_fails_at_open_with_the_path_in_the_message() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blocker = dir.path().join("not-a-dir");
        std::fs::write(&blocker, b"").expect("write");
        let spec = spec("file://not-a-dir/s.jsonl", dir.path()).expect("spec");
        let err = FilePublisher::open(&spec).expect_err("refused").to_string();
        assert!(
            err.starts_with("create the directory of ") && err.contains("not-a-dir/s.jsonl"),
            "{err}"
        );
    }
}
