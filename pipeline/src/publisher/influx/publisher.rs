//! The InfluxDB publisher: a batch of samples and events encoded as line protocol, written in
//! one call; items the encoder or the server refuse come back as dead letters, the rest counts
//! as written.
//!
//! A refused sample is kept as its line (or its JSON when the encoder refused it); a refused
//! event is always kept as its JSON, so that it can be submitted again as it was.

use std::collections::HashMap;

use super::{Encoder, InfluxError, InfluxSetupError, InfluxSpec, InfluxWriter};
use crate::dead_letter::Rejected;
use crate::publisher::Batch;

/// An InfluxDB write endpoint with its encoder.
#[derive(Debug)]
pub struct InfluxPublisher {
    encoder: Encoder,
    writer: InfluxWriter,
}

impl InfluxPublisher {
    /// Builds the HTTP client; a secret variable that is not set refuses start-up.
    pub fn open(spec: &InfluxSpec) -> Result<Self, InfluxSetupError> {
        Ok(Self {
            encoder: spec.encoder(),
            writer: InfluxWriter::new(spec)?,
        })
    }

    /// The publisher without secrets.
    pub fn describe(&self) -> &str {
        self.writer.describe()
    }

    /// Writes a batch (samples' lines, then events' lines, in one body); `Ok` holds what was
    /// refused for good (the rest is stored).
    pub async fn publish(&self, batch: &Batch) -> Result<Vec<Rejected>, InfluxError> {
        let (samples, events) = (&batch.samples, &batch.events);
        let mut body = Vec::with_capacity(samples.len() * 160 + events.len() * 256);
        let encoded = self.encoder.encode(samples, &mut body);
        let events_start = body.len();
        let encoded_events = self.encoder.encode_events(events, &mut body);
        let refused_samples = encoded
            .refused
            .iter()
            .map(|r| (&samples[r.index], r.reason));
        let mut rejected: Vec<Rejected> = refused_samples
            .map(|(s, reason)| dead_letter(s, reason.as_str()))
            .collect();
        rejected.extend(
            encoded_events
                .refused
                .iter()
                .map(|r| dead_letter(&events[r.index], r.reason.as_str())),
        );
        let lines = encoded.lines + encoded_events.lines;
        if lines == 0 {
            return Ok(rejected);
        }
        let written = self.writer.write(&body, lines).await?;
        if written.rejected.is_empty() {
            return Ok(rejected);
        }
        // Which event each event line is: the lines after the samples' are the events not
        // refused by the encoder, in order (no line holds a newline).
        let refused: Vec<usize> = encoded_events.refused.iter().map(|r| r.index).collect();
        let kept = (0..events.len()).filter(|i| !refused.contains(i));
        let event_lines: HashMap<&[u8], usize> = body[events_start..]
            .split(|b| *b == b'\n')
            .zip(kept)
            .collect();
        rejected.extend(written.rejected.into_iter().map(|r| {
            match event_lines.get(r.line.as_bytes()) {
                Some(&i) => dead_letter(&events[i], &r.reason),
                None => Rejected {
                    data: r.line,
                    reason: r.reason,
                },
            }
        }));
        Ok(rejected)
    }
}

/// `item` as a dead letter: its JSON, with the reason.
fn dead_letter<T: serde::Serialize>(item: &T, reason: &str) -> Rejected {
    Rejected {
        data: serde_json::to_string(item).unwrap_or_default(),
        reason: reason.to_owned(),
    }
}
