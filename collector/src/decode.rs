//! Decoding and verifying a batch of envelopes, split across blocking threads when large.

use hb_bus::Received;
use hb_sample::{Envelope, EnvelopeError, Secret};

/// Threads that decode and verify a batch in parallel (besides the runtime's own).
const DECODERS: usize = 2;

/// Decodes and verifies every message of a batch, in order; a large batch is split across
/// blocking threads, since decoding and checking signatures is most of a collector's work.
pub(crate) async fn decode_all(
    batch: &[&Received],
    secret: Option<&Secret>,
) -> Vec<Result<Envelope, EnvelopeError>> {
    if batch.len() < 2 * DECODERS {
        return batch
            .iter()
            .map(|m| Envelope::decode(&m.payload, secret))
            .collect();
    }
    let per = batch.len().div_ceil(DECODERS);
    let parts = batch.chunks(per).map(|chunk| {
        let payloads: Vec<Vec<u8>> = chunk.iter().map(|m| m.payload.clone()).collect();
        let secret = secret.cloned();
        tokio::task::spawn_blocking(move || {
            payloads
                .iter()
                .map(|p| Envelope::decode(p, secret.as_ref()))
                .collect::<Vec<_>>()
        })
    });
    let mut out = Vec::with_capacity(batch.len());
    for part in futures_util::future::join_all(parts).await {
        match part {
            Ok(decoded) => out.extend(decoded),
            // A decoder thread cannot panic on bad input (decoding returns errors); if the
            // runtime lost it anyway, decode that part here.
            Err(_) => {
                let done = out.len();
                let end = (done + per).min(batch.len());
                out.extend(
                    batch[done..end]
                        .iter()
                        .map(|m| Envelope::decode(&m.payload, secret)),
                );
            }
        }
    }
    out
}
