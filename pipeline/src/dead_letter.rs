//! The dead-letter directory: what a publisher refused for good (an InfluxDB line it cannot
//! parse, a batch refused with a permanent error), kept as JSON lines instead of lost.
//!
//! One file per sink, `<dir>/<sink>.jsonl`, one object per refused item:
//! `{"at": RFC 3339, "sink", "publisher", "reason", "data"}` where `data` is the refused item:
//! the line-protocol line of a sample InfluxDB refused, otherwise the sample's or the event's
//! JSON (an event is always kept as its JSON, so that it can be submitted again as it was).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// Something a publisher refused for good, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The refused item: a sample's line-protocol line, or a sample's or an event's JSON.
    pub data: String,
    /// What the destination said.
    pub reason: String,
}

/// Where refused items go.
#[derive(Debug, Clone)]
pub struct DeadLetters {
    dir: PathBuf,
}

#[derive(Serialize)]
struct Entry<'a> {
    at: String,
    sink: &'a str,
    publisher: &'a str,
    reason: &'a str,
    data: &'a str,
}

impl DeadLetters {
    /// Dead letters under `dir` (created on first use).
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }

    /// The file of `sink`.
    pub fn path(&self, sink: &str) -> PathBuf {
        self.dir.join(format!("{sink}.jsonl"))
    }

    /// Appends `items` refused by `publisher` of `sink` and syncs them to disk.
    pub async fn append(
        &self,
        sink: &str,
        publisher: &str,
        items: &[Rejected],
    ) -> std::io::Result<()> {
        let at = chrono::Utc::now().to_rfc3339();
        let mut buf = Vec::new();
        for item in items {
            let entry = Entry {
                at: at.clone(),
                sink,
                publisher,
                reason: &item.reason,
                data: &item.data,
            };
            serde_json::to_writer(&mut buf, &entry)?;
            buf.push(b'\n');
        }
        let (dir, path) = (self.dir.clone(), self.path(sink));
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)?;
            let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
            file.write_all(&buf)?;
            file.sync_data()
        })
        .await
        .map_err(std::io::Error::other)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn appends_one_object_per_item() {
        let dir = tempfile::tempdir().unwrap();
        let dead = DeadLetters::new(&dir.path().join("dead"));
        let items = [Rejected {
            data: "cpu value=x".into(),
            reason: "invalid number".into(),
        }];
        dead.append("influx", "influxdb://h", &items).await.unwrap();
        dead.append("influx", "influxdb://h", &items).await.unwrap();
        let text = std::fs::read_to_string(dead.path("influx")).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["reason"], "invalid number");
        assert_eq!(lines[0]["data"], "cpu value=x");
        assert_eq!(lines[0]["sink"], "influx");
    }
}
