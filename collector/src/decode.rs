//! Decoding and verifying a batch of envelopes, on blocking threads when it is large, so that
//! the runtime keeps acknowledging and receiving meanwhile.

use hb_sample::{Envelope, EnvelopeError, Limits, Secret};

/// Threads that decode and verify a batch in parallel (besides the runtime's own).
const DECODERS: usize = 2;
/// Batches of fewer bytes than this (and fewer than `2 × DECODERS` messages) are decoded on
/// the runtime itself: a thread hand-off costs more than they do.
const INLINE_BYTES: usize = 256 << 10;

/// What decoding a batch gave: each payload back (for dead letters) and its envelope or error.
pub(crate) type Decoded = (Vec<Vec<u8>>, Vec<Result<Envelope, EnvelopeError>>);

/// A decoder thread did not come back (the runtime is shutting down): the batch must not be
/// acknowledged.
#[derive(Debug)]
pub(crate) struct Lost;

/// Decodes and verifies `payloads` in order. They are moved to the decoder threads and back,
/// never copied; a batch of more than [`INLINE_BYTES`] is split across blocking threads.
pub(crate) async fn decode_all(
    payloads: Vec<Vec<u8>>,
    secret: Option<&Secret>,
    limits: Limits,
) -> Result<Decoded, Lost> {
    let bytes: usize = payloads.iter().map(Vec::len).sum();
    if bytes < INLINE_BYTES && payloads.len() < 2 * DECODERS {
        let decoded = part(&payloads, secret, &limits);
        return Ok((payloads, decoded));
    }
    let per = payloads.len().div_ceil(DECODERS);
    let mut rest = payloads;
    let mut parts = Vec::new();
    while !rest.is_empty() {
        let tail = rest.split_off(per.min(rest.len()));
        let chunk = std::mem::replace(&mut rest, tail);
        let secret = secret.cloned();
        parts.push(tokio::task::spawn_blocking(move || {
            let decoded = part(&chunk, secret.as_ref(), &limits);
            (chunk, decoded)
        }));
    }
    let (mut payloads, mut decoded) = (Vec::new(), Vec::new());
    for joined in futures_util::future::join_all(parts).await {
        let (p, d) = joined.map_err(|_| Lost)?;
        payloads.extend(p);
        decoded.extend(d);
    }
    Ok((payloads, decoded))
}

fn part(
    payloads: &[Vec<u8>],
    secret: Option<&Secret>,
    limits: &Limits,
) -> Vec<Result<Envelope, EnvelopeError>> {
    payloads
        .iter()
        .map(|p| Envelope::decode_within(p, secret, limits))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    fn big_envelope(samples: usize, secret: &Secret) -> Vec<u8> {
        let at = chrono::Utc::now();
        let samples = (0..samples)
            .map(|i| {
                hb_sample::Sample::new("m", hb_sample::SampleType::Gauge, "1", i as f64, "r", at)
                    .expect("sample")
            })
            .collect();
        let producer = hb_sample::Producer {
            host: "h".into(),
            agent_id: "h/a".into(),
            namespaces: vec!["t".into()],
        };
        Envelope::samples(producer, 1, samples)
            .encode(Some(secret))
            .expect("encode")
    }

    /// One large envelope is decoded off the runtime: a task that only counts keeps running
    /// while it is decoded (on the runtime itself it could not run at all until the end).
    #[tokio::test(flavor = "current_thread")]
    async fn a_large_envelope_does_not_stall_the_runtime() {
        let secret = Secret::new("s");
        let payload = big_envelope(20_000, &secret);
        assert!(payload.len() > INLINE_BYTES);
        let ticks = Arc::new(AtomicU64::new(0));
        let ticker = {
            let ticks = Arc::clone(&ticks);
            tokio::spawn(async move {
                loop {
                    ticks.fetch_add(1, Ordering::Relaxed);
                    tokio::task::yield_now().await;
                }
            })
        };
        tokio::task::yield_now().await;
        let before = ticks.load(Ordering::Relaxed);
        let len = payload.len();
        let (payloads, decoded) = decode_all(vec![payload], Some(&secret), Limits::DEFAULT)
            .await
            .expect("decoded");
        let during = ticks.load(Ordering::Relaxed) - before;
        ticker.abort();
        assert!(decoded[0].is_ok());
        assert_eq!(payloads[0].len(), len, "the payload comes back");
        assert!(during > 10, "the runtime ran {during} times while decoding");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn payloads_come_back_in_order_with_their_results() {
        let secret = Secret::new("s");
        let good = big_envelope(3, &secret);
        let payloads = vec![
            good.clone(),
            b"junk".to_vec(),
            good.clone(),
            vec![b' '; 300 << 10],
        ];
        let (back, decoded) = decode_all(payloads.clone(), Some(&secret), Limits::DEFAULT)
            .await
            .expect("decoded");
        assert_eq!(back, payloads);
        let ok: Vec<bool> = decoded.iter().map(Result::is_ok).collect();
        assert_eq!(ok, [true, false, true, false]);
    }
}
