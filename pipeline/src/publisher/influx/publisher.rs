//! The InfluxDB publisher: a batch encoded as line protocol, written in one call; samples the
//! encoder or the server refuse come back as dead letters, the rest counts as written.

use hb_sample::Sample;

use super::{Encoder, InfluxError, InfluxSetupError, InfluxSpec, InfluxWriter};
use crate::dead_letter::Rejected;

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

    /// Writes a batch; `Ok` holds what was refused for good (the rest is stored).
    pub async fn publish(&self, samples: &[Sample]) -> Result<Vec<Rejected>, InfluxError> {
        let mut body = Vec::with_capacity(samples.len() * 160);
        let encoded = self.encoder.encode(samples, &mut body);
        let mut rejected: Vec<Rejected> = encoded
            .refused
            .iter()
            .map(|r| Rejected {
                data: serde_json::to_string(&samples[r.index]).unwrap_or_default(),
                reason: r.reason.as_str().to_owned(),
            })
            .collect();
        if encoded.lines > 0 {
            let written = self.writer.write(&body, encoded.lines).await?;
            rejected.extend(written.rejected.into_iter().map(|r| Rejected {
                data: r.line,
                reason: r.reason,
            }));
        }
        Ok(rejected)
    }
}
