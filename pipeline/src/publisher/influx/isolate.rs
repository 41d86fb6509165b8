//! Which lines a write refused: reading 413 and partial-write answers, splitting, re-sending.

use std::borrow::Cow;
use std::collections::HashSet;
use std::time::Duration;

use reqwest::StatusCode;

use super::{InfluxError, Rejected};

/// Handles a partial write of `chunk`: rejects what is known, queues what must be re-sent.
pub(super) fn refused<'b>(
    chunk: Cow<'b, [u8]>,
    refusal: Refusal,
    pending: &mut Vec<(Cow<'b, [u8]>, Option<String>)>,
    rejected: &mut Vec<Rejected>,
) {
    let count = line_count(&chunk);
    let named = refusal.named_lines(&chunk);
    if !named.is_empty() {
        let mut rest = Vec::new();
        for line in lines_of(&chunk) {
            match named.iter().find(|(l, _)| *l == trim_newline(line)) {
                Some((l, reason)) => rejected.push(Rejected {
                    line: String::from_utf8_lossy(l).into_owned(),
                    reason: (*reason).to_owned(),
                }),
                None => rest.extend_from_slice(line),
            }
        }
        // InfluxDB 1.x: `partial write: unable to parse ... dropped=0` = the rest is stored.
        let rest_written = refusal.partial && refusal.dropped == Some(0);
        if !rest.is_empty() && !rest_written {
            pending.push((Cow::Owned(rest), Some(refusal.message)));
        }
    } else if refusal.dropped == Some(count) || count == 1 {
        reject_all(&chunk, strip_dropped(&refusal.message), rejected);
    } else if let Ok((a, b)) = halves(chunk) {
        pending.push((b, Some(refusal.message.clone())));
        pending.push((a, Some(refusal.message)));
    }
}

/// What one request achieved.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    Written,
    TooLarge(String),
    Refused(Refusal),
}

/// A 400/422 that refused some (or all) lines.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Refusal {
    /// The server's message.
    pub(super) message: String,
    /// It starts with `partial write`: what it does not count was stored.
    pub(super) partial: bool,
    /// `dropped=N`, when the message ends with it.
    pub(super) dropped: Option<usize>,
}

impl Refusal {
    /// Lines of `chunk` named by `unable to parse '<line>': <reason>`, with their reasons.
    pub(super) fn named_lines<'c>(&self, chunk: &'c [u8]) -> Vec<(&'c [u8], &str)> {
        const MARK: &str = "unable to parse '";
        if !self.message.contains(MARK) {
            return Vec::new();
        }
        let known: HashSet<&[u8]> = lines_of(chunk).map(trim_newline).collect();
        let mut named = Vec::new();
        for part in self.message.split('\n') {
            let Some(at) = part.find(MARK) else { continue };
            let rest = &part[at + MARK.len()..];
            // The line may itself hold `': `: take the first split whose left side is a line.
            for (end, _) in rest.match_indices("': ") {
                if let Some(line) = known.get(&rest.as_bytes()[..end]) {
                    let reason = strip_dropped(&rest[end + 3..]);
                    named.push((*line, reason));
                    break;
                }
            }
        }
        named
    }
}

pub(super) fn classify(
    status: StatusCode,
    message: String,
    retry_after: Option<Duration>,
    url: &str,
) -> Result<Outcome, InfluxError> {
    let code = status.as_u16();
    match code {
        413 => Ok(Outcome::TooLarge(format!(
            "line larger than the server's maximum request size: {message}"
        ))),
        400 | 422 if looks_partial(&message) || code == 422 => Ok(Outcome::Refused(Refusal {
            partial: message.starts_with("partial write"),
            dropped: dropped(&message),
            message,
        })),
        401 | 403 => Err(InfluxError::Unauthorized {
            url: url.to_owned(),
            status: code,
            message,
        }),
        500 if message.contains("retention policy not found") => Err(InfluxError::Permanent {
            url: url.to_owned(),
            status: code,
            message,
        }),
        429 | 500..=599 => Err(InfluxError::Retryable {
            retry_after,
            reason: format!("{url}: {status}: {message}"),
        }),
        _ => Err(InfluxError::Permanent {
            url: url.to_owned(),
            status: code,
            message,
        }),
    }
}

/// Messages that refuse lines rather than the request.
fn looks_partial(message: &str) -> bool {
    [
        "partial write",
        "unable to parse",
        "field type conflict",
        "dropped=",
        "beyond retention policy",
    ]
    .iter()
    .any(|m| message.contains(m))
}

/// `N` of a message ending in `dropped=N`.
pub(super) fn dropped(message: &str) -> Option<usize> {
    let at = message.rfind("dropped=")?;
    message[at + "dropped=".len()..].trim().parse().ok()
}

pub(super) fn strip_dropped(reason: &str) -> &str {
    match reason.rfind(" dropped=") {
        Some(at) if reason[at + 9..].trim().parse::<usize>().is_ok() => &reason[..at],
        _ => reason,
    }
}

pub(super) fn reject_all(chunk: &[u8], reason: &str, rejected: &mut Vec<Rejected>) {
    for line in lines_of(chunk) {
        rejected.push(Rejected {
            line: String::from_utf8_lossy(trim_newline(line)).into_owned(),
            reason: reason.to_owned(),
        });
    }
}

/// The lines of `chunk`, each with its newline (the last one may lack it).
fn lines_of(chunk: &[u8]) -> impl Iterator<Item = &[u8]> {
    chunk.split_inclusive(|b| *b == b'\n')
}

fn trim_newline(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\n").unwrap_or(line)
}

pub(super) fn line_count(chunk: &[u8]) -> usize {
    lines_of(chunk).count()
}

/// Splits `chunk` into two non-empty runs of whole lines, near the middle; `None` for one line.
pub(super) fn split_half(chunk: &[u8]) -> Option<(std::ops::Range<usize>, std::ops::Range<usize>)> {
    let body = trim_newline(chunk);
    let middle = body.len() / 2;
    let at = match body[middle..].iter().position(|b| *b == b'\n') {
        Some(i) => middle + i + 1,
        None => body[..middle].iter().rposition(|b| *b == b'\n')? + 1,
    };
    Some((0..at, at..chunk.len()))
}

/// Some lines of the batch, borrowed from it or rebuilt.
type Chunk<'b> = Cow<'b, [u8]>;

/// `chunk` as two runs of whole lines, or itself back when it is one line.
pub(super) fn halves(chunk: Chunk<'_>) -> Result<(Chunk<'_>, Chunk<'_>), Chunk<'_>> {
    let Some((a, b)) = split_half(&chunk) else {
        return Err(chunk);
    };
    Ok(match chunk {
        Cow::Borrowed(all) => (Cow::Borrowed(&all[a]), Cow::Borrowed(&all[b])),
        Cow::Owned(all) => (Cow::Owned(all[a].to_vec()), Cow::Owned(all[b].to_vec())),
    })
}
