//! The on-disk spool: envelopes the broker did not confirm, kept in order until it does.
//!
//! One file per envelope, `<dir>/<index:020>.env`, written to a `.tmp` file, synced, then
//! renamed, and the directory synced after the rename and after every deletion, so that
//! after a power cut an entry counted as spooled is there and one the broker confirmed does
//! not come back. A file holds
//!
//! ```text
//! "HBSPOOL2" | crc32 of body (u32 LE) | body length (u32 LE) | body
//! body = routing key "\n" host "\n" partition (decimal; empty for none) "\n" payload
//! ```
//!
//! Entries of the previous format (`HBSPOOL1`, without the partition line) are still read;
//! the producer sends them to the partition of their host.
//!
//! The spool is bounded by `max_bytes`: pushing past it deletes the oldest entries and
//! counts them. An entry whose checksum or framing is wrong is renamed to `*.corrupt`,
//! reported, and skipped; `.corrupt` files count toward `max_bytes` too, and are the first
//! to go (oldest first) when the spool needs room. Entries left by a previous run are
//! replayed first.

use std::collections::VecDeque;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use hb_bus::{Outgoing, Topic};

const MAGIC: &[u8; 8] = b"HBSPOOL2";
/// The format before samples had partitions.
const MAGIC_V1: &[u8; 8] = b"HBSPOOL1";
const HEADER: usize = MAGIC.len() + 8;

/// Envelopes waiting for the broker, oldest first.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    entries: VecDeque<Entry>,
    /// `.corrupt` files (index, size), oldest first; their bytes are in `bytes`.
    corrupt: VecDeque<Entry>,
    bytes: u64,
    next: u64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    index: u64,
    size: u64,
}

/// Why an entry was skipped.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// Reading or writing the spool directory failed.
    #[error("spool {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The system error.
        source: io::Error,
    },
    /// An entry failed its checksum or framing check; it was moved aside.
    #[error("spool {path}: corrupt entry ({reason}); moved to {path}.corrupt and skipped")]
    Corrupt {
        /// The entry.
        path: PathBuf,
        /// What check failed.
        reason: &'static str,
    },
}

impl Spool {
    /// Opens (creating) `dir` and indexes the entries a previous run left, oldest first.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self, SpoolError> {
        let io = |source| SpoolError::Io {
            path: dir.to_owned(),
            source,
        };
        fs::create_dir_all(dir).map_err(io)?;
        let (mut entries, mut corrupt) = (Vec::new(), Vec::new());
        for item in fs::read_dir(dir).map_err(io)? {
            let item = item.map_err(io)?;
            let name = item.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".tmp") {
                let _ = fs::remove_file(item.path());
            } else if let Some(index) = name.strip_suffix(".env").and_then(|n| n.parse().ok()) {
                let size = item.metadata().map_err(io)?.len();
                entries.push(Entry { index, size });
            } else if let Some(index) = name
                .strip_suffix(".env.corrupt")
                .and_then(|n| n.parse().ok())
            {
                let size = item.metadata().map_err(io)?.len();
                corrupt.push(Entry { index, size });
            }
        }
        entries.sort_by_key(|e| e.index);
        corrupt.sort_by_key(|e| e.index);
        let next = entries
            .iter()
            .chain(&corrupt)
            .map(|e| e.index + 1)
            .max()
            .unwrap_or(0);
        let mut spool = Self {
            dir: dir.to_owned(),
            max_bytes,
            bytes: entries.iter().chain(&corrupt).map(|e| e.size).sum(),
            entries: entries.into(),
            corrupt: corrupt.into(),
            next,
        };
        if spool.bytes > spool.max_bytes {
            spool.make_room();
            spool.sync_dir();
        }
        Ok(spool)
    }

    /// Entries waiting.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes on disk.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Appends `message`; returns how many entries were dropped (oldest first, possibly this
    /// one if it alone exceeds `max_bytes`) to stay within the bound.
    pub fn push(&mut self, message: &Outgoing) -> Result<usize, SpoolError> {
        let mut body = Vec::with_capacity(message.payload.len() + 64);
        body.extend_from_slice(message.routing_key.as_bytes());
        body.push(b'\n');
        body.extend_from_slice(message.key.as_bytes());
        body.push(b'\n');
        if let Some(p) = message.partition {
            body.extend_from_slice(p.to_string().as_bytes());
        }
        body.push(b'\n');
        body.extend_from_slice(&message.payload);
        let size = (HEADER + body.len()) as u64;
        if size > self.max_bytes {
            return Ok(1);
        }
        let index = self.next;
        let path = self.path(index);
        let tmp = path.with_extension("tmp");
        let io = |source| SpoolError::Io {
            path: tmp.clone(),
            source,
        };
        let mut file = fs::File::create(&tmp).map_err(io)?;
        file.write_all(MAGIC).map_err(io)?;
        file.write_all(&crc32fast::hash(&body).to_le_bytes())
            .map_err(io)?;
        file.write_all(&(body.len() as u32).to_le_bytes())
            .map_err(io)?;
        file.write_all(&body).map_err(io)?;
        file.sync_data().map_err(io)?;
        fs::rename(&tmp, &path).map_err(io)?;
        self.next += 1;
        self.entries.push_back(Entry { index, size });
        self.bytes += size;
        let dropped = self.make_room();
        // The rename (and any deletion) reach the disk before the entry counts as spooled.
        fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| SpoolError::Io {
                path: self.dir.clone(),
                source,
            })?;
        Ok(dropped)
    }

    /// Deletes `.corrupt` files, then the oldest entries, until the spool is within its
    /// bound; returns how many entries were dropped. The caller syncs the directory.
    fn make_room(&mut self) -> usize {
        while self.bytes > self.max_bytes
            && let Some(entry) = self.corrupt.pop_front()
        {
            let path = self.path(entry.index).with_extension("env.corrupt");
            if let Err(error) = fs::remove_file(&path) {
                tracing::error!(path = %path.display(), %error, "cannot delete a corrupt spool entry");
            }
            self.bytes -= entry.size;
        }
        let mut dropped = 0;
        while self.bytes > self.max_bytes && !self.entries.is_empty() {
            self.remove_front();
            dropped += 1;
        }
        dropped
    }

    /// Makes renames and deletions in the directory durable; a failure is logged (the
    /// entries themselves are synced, so at worst one comes back after a power cut).
    fn sync_dir(&self) {
        if let Err(error) = fs::File::open(&self.dir).and_then(|d| d.sync_all()) {
            tracing::error!(dir = %self.dir.display(), %error, "cannot sync the spool directory");
        }
    }

    /// Reads up to `n` of the oldest entries. A corrupt entry is moved aside and reported in
    /// place of its message; it is no longer part of the spool.
    pub fn front(&mut self, n: usize) -> Vec<Result<Outgoing, SpoolError>> {
        let mut out = Vec::new();
        let mut i = 0;
        while out.len() < n && i < self.entries.len() {
            let entry = self.entries[i];
            let path = self.path(entry.index);
            match read(&path) {
                Ok(message) => {
                    out.push(Ok(message));
                    i += 1;
                }
                Err(Err(source)) => {
                    out.push(Err(SpoolError::Io { path, source }));
                    break;
                }
                Err(Ok(reason)) => {
                    let _ = self.entries.remove(i);
                    if fs::rename(&path, path.with_extension("env.corrupt")).is_ok() {
                        self.corrupt.push_back(entry);
                    } else {
                        self.bytes -= entry.size;
                    }
                    self.sync_dir();
                    out.push(Err(SpoolError::Corrupt { path, reason }));
                }
            }
        }
        out
    }

    /// Deletes the `n` oldest entries (the broker confirmed them), durably.
    pub fn pop_front(&mut self, n: usize) {
        for _ in 0..n {
            self.remove_front();
        }
        if n > 0 {
            self.sync_dir();
        }
    }

    fn remove_front(&mut self) {
        if let Some(entry) = self.entries.pop_front() {
            let path = self.path(entry.index);
            if let Err(error) = fs::remove_file(&path) {
                tracing::error!(path = %path.display(), %error, "cannot delete a spool entry");
            }
            self.bytes -= entry.size;
        }
    }

    fn path(&self, index: u64) -> PathBuf {
        self.dir.join(format!("{index:020}.env"))
    }
}

/// Reads one entry: `Err(Ok(reason))` when corrupt, `Err(Err(e))` when unreadable.
fn read(path: &Path) -> Result<Outgoing, Result<&'static str, io::Error>> {
    let bytes = fs::read(path).map_err(Err)?;
    if bytes.len() < HEADER {
        return Err(Ok("bad header"));
    }
    let fields = match &bytes[..MAGIC.len()] {
        m if m == MAGIC => 4,
        m if m == MAGIC_V1 => 3,
        _ => return Err(Ok("bad header")),
    };
    let word =
        |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let (crc, len) = (word(8), word(12) as usize);
    let body = &bytes[HEADER..];
    if body.len() != len {
        return Err(Ok("truncated"));
    }
    if crc32fast::hash(body) != crc {
        return Err(Ok("checksum mismatch"));
    }
    let mut parts = body.splitn(fields, |&b| b == b'\n');
    let (Some(routing), Some(key)) = (parts.next(), parts.next()) else {
        return Err(Ok("bad framing"));
    };
    let partition = if fields == 4 {
        parts.next()
    } else {
        Some(&b""[..])
    };
    let (Some(partition), Some(payload)) = (partition, parts.next()) else {
        return Err(Ok("bad framing"));
    };
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| Ok("bad framing"));
    let partition = match text(partition)?.as_str() {
        "" => None,
        p => Some(p.parse().map_err(|_| Ok("bad partition"))?),
    };
    Ok(Outgoing {
        topic: Topic::Samples,
        routing_key: text(routing)?,
        key: text(key)?,
        partition,
        payload: payload.to_vec(),
    })
}
