//! The envelope: a versioned, self-describing, optionally signed batch on the bus (DESIGN §3).
//!
//! On the wire an envelope is one JSON object:
//!
//! ```json
//! {"version":1,"kind":"samples","producer":{"host":"h","agent_id":"a","namespaces":["compute"]},
//!  "seq":42,"sent_at":"2026-11-22T10:00:00.000000000Z","payload":[ ...samples... ],
//!  "signature":"<hex HMAC-SHA256>"}
//! ```
//!
//! The signature is HMAC-SHA256 with the shared secret over the [canonical](crate::canonical)
//! encoding of the whole envelope without its `signature` member, written as lowercase hex.
//! It therefore covers the payload and the header (producer, sequence number, send time), so a
//! replayed or re-attributed batch fails verification as surely as a changed volume.
//!
//! A verifier checks it over the bytes as received, with the top-level `signature` member cut
//! out, before it builds anything from them ([`verify`]): the bytes on the wire are the
//! canonical encoding itself (hb appends the signature as the last member; a producer may also
//! insert it where sorting puts it). An envelope reformatted after signing no longer verifies.
//!
//! Decoding is bounded ([`Limits`]): a message longer than `max_bytes` is refused before it is
//! read, and a payload of more than `max_samples` samples while it is read.

mod verify;
mod wire;

use std::fmt;

use chrono::{DateTime, Utc};
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::canonical;
use crate::sample::Sample;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The envelope version this build writes and reads.
pub const ENVELOPE_VERSION: u32 = 1;

const SIGNATURE: &str = "signature";

/// Who sent an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Producer {
    /// Host name of the producing machine.
    pub host: String,
    /// Identifier of the agent process (stable across restarts of the same agent).
    pub agent_id: String,
    /// Polling namespaces the agent runs.
    pub namespaces: Vec<String>,
}

/// What an envelope carries: its `kind` and the matching `payload`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload", rename_all = "lowercase")]
pub enum Body {
    /// A batch of samples.
    Samples(Vec<Sample>),
    /// An agent's periodic sign of life.
    Heartbeat(Heartbeat),
}

/// What an agent says about itself every interval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The agent's version.
    pub version: String,
    /// Seconds since the agent started.
    pub uptime_s: u64,
    /// Seconds until the next heartbeat.
    pub interval_s: u64,
    /// Every pollster the agent runs and how it fares.
    pub pollsters: Vec<PollsterState>,
    /// Envelopes waiting in the agent's spool for the broker.
    pub spooled: u64,
}

/// One pollster's state in a [`Heartbeat`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollsterState {
    /// Namespace it was loaded from.
    pub namespace: String,
    /// Pollster name.
    pub name: String,
    /// Consecutive failed runs (0 = healthy).
    pub failures_in_a_row: u32,
}

/// A versioned batch as it travels on the bus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Format version, [`ENVELOPE_VERSION`].
    pub version: u32,
    /// Who sent it.
    pub producer: Producer,
    /// Per-producer sequence number.
    pub seq: u64,
    /// When it was sent.
    #[serde(with = "crate::timestamp")]
    pub sent_at: DateTime<Utc>,
    /// Kind and payload.
    #[serde(flatten)]
    pub body: Body,
}

/// A shared signing secret. Its `Debug` output never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps the secret's bytes.
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        Self(key.into())
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length; the error case of `new_from_slice` cannot happen.
        <HmacSha256 as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("hmac accepts keys of every length"))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Why an envelope could not be encoded or was refused on decoding.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// Not JSON, or JSON of the wrong shape (the message says which member).
    #[error("malformed envelope: {0}")]
    Malformed(#[from] serde_json::Error),
    /// A version this build does not read.
    #[error("unsupported envelope version {found} (this build reads version {ENVELOPE_VERSION})")]
    UnsupportedVersion {
        /// The version found in the envelope.
        found: Value,
    },
    /// A secret is configured but the envelope is not signed.
    #[error("envelope is not signed")]
    MissingSignature,
    /// The signature does not match the content and the secret.
    #[error("envelope signature does not match")]
    BadSignature,
    /// Longer than [`Limits::max_bytes`]; not read at all.
    #[error("message of {bytes} bytes refused (max_message_bytes is {max})")]
    TooLarge {
        /// The message's length.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// More samples than [`Limits::max_samples`].
    #[error("envelope of more than {max} samples refused (max_samples_per_envelope is {max})")]
    TooManySamples {
        /// The limit.
        max: usize,
    },
}

/// Bounds on what one envelope may cost to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest message read, in bytes.
    pub max_bytes: usize,
    /// Most samples in one envelope.
    pub max_samples: usize,
}

impl Limits {
    /// 16 MiB and 100,000 samples: a hundred times what an agent sends at its largest
    /// `batch`, and bounded.
    pub const DEFAULT: Self = Self {
        max_bytes: 16 << 20,
        max_samples: 100_000,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl Envelope {
    /// A samples envelope stamped with the current time.
    pub fn samples(producer: Producer, seq: u64, samples: Vec<Sample>) -> Self {
        Self {
            version: ENVELOPE_VERSION,
            producer,
            seq,
            sent_at: Utc::now(),
            body: Body::Samples(samples),
        }
    }

    /// A heartbeat envelope stamped with the current time.
    pub fn heartbeat(producer: Producer, seq: u64, heartbeat: Heartbeat) -> Self {
        Self {
            version: ENVELOPE_VERSION,
            producer,
            seq,
            sent_at: Utc::now(),
            body: Body::Heartbeat(heartbeat),
        }
    }

    /// The canonical bytes a signature over this envelope covers.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, EnvelopeError> {
        Ok(canonical::to_vec(&serde_json::to_value(self)?)?)
    }

    /// Encodes to JSON, signed when a secret is given.
    pub fn encode(&self, secret: Option<&Secret>) -> Result<Vec<u8>, EnvelopeError> {
        let Some(secret) = secret else {
            return Ok(serde_json::to_vec(self)?);
        };
        // The canonical bytes themselves go on the wire, with the signature appended as the
        // last member, so that a collector can check the HMAC over the bytes it received.
        let mut bytes = canonical::to_vec(&serde_json::to_value(self)?)?;
        let signature = sign(secret, &bytes);
        bytes.pop();
        bytes.extend_from_slice(SIGNED_TAIL.as_bytes());
        bytes.extend_from_slice(signature.as_bytes());
        bytes.extend_from_slice(b"\"}");
        Ok(bytes)
    }

    /// Decodes JSON bytes within the [default limits](Limits::DEFAULT); see
    /// [`decode_within`](Self::decode_within).
    pub fn decode(bytes: &[u8], secret: Option<&Secret>) -> Result<Self, EnvelopeError> {
        Self::decode_within(bytes, secret, &Limits::DEFAULT)
    }

    /// Decodes JSON bytes; with a secret, refuses envelopes that are unsigned or whose
    /// signature does not match, checked over the raw bytes first. Without a secret, a
    /// signature that is present is not checked. Refuses what exceeds `limits`.
    pub fn decode_within(
        bytes: &[u8],
        secret: Option<&Secret>,
        limits: &Limits,
    ) -> Result<Self, EnvelopeError> {
        if bytes.len() > limits.max_bytes {
            return Err(EnvelopeError::TooLarge {
                bytes: bytes.len(),
                max: limits.max_bytes,
            });
        }
        if let Some(secret) = secret {
            verify::verify(secret, bytes)?;
        }
        // Fast path: bytes as this library writes them are parsed in one pass; anything else
        // (another member order, an error to explain) takes the general path below.
        match Self::from_wire(bytes, limits.max_samples) {
            Ok(envelope) => return Ok(envelope),
            Err(wire::Miss::TooManySamples) => {
                return Err(EnvelopeError::TooManySamples {
                    max: limits.max_samples,
                });
            }
            Err(wire::Miss::Other) => {}
        }
        let mut value: Value = serde_json::from_slice(bytes)?;
        match value.get("version") {
            Some(v) if v.as_u64() == Some(u64::from(ENVELOPE_VERSION)) => {}
            Some(v) => return Err(EnvelopeError::UnsupportedVersion { found: v.clone() }),
            None => {
                let missing = <serde_json::Error as serde::de::Error>::missing_field("version");
                return Err(missing.into());
            }
        }
        if let Value::Object(members) = &mut value {
            members.remove(SIGNATURE);
        }
        let samples = value.get("payload").and_then(Value::as_array).map(Vec::len);
        if samples.is_some_and(|n| n > limits.max_samples) {
            return Err(EnvelopeError::TooManySamples {
                max: limits.max_samples,
            });
        }
        Ok(serde_json::from_value(value)?)
    }
}

/// The producer an envelope claims to come from, read without any check: for logging why an
/// envelope was refused.
pub fn claimed_producer(bytes: &[u8]) -> Option<Producer> {
    #[derive(Deserialize)]
    struct Claim {
        producer: Producer,
    }
    serde_json::from_slice::<Claim>(bytes)
        .ok()
        .map(|c| c.producer)
}

/// What precedes the signature in an envelope as [`Envelope::encode`] writes it.
const SIGNED_TAIL: &str = ",\"signature\":\"";
/// Length of `,"signature":"<64 hex>"}`.
const TAIL_LEN: usize = SIGNED_TAIL.len() + 64 + 2;

/// Lowercase hex HMAC-SHA256 of `bytes` with `secret`.
pub fn sign(secret: &Secret, bytes: &[u8]) -> String {
    let mut mac = secret.mac();
    mac.update(bytes);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope() -> Envelope {
        let at = crate::timestamp::parse("2026-11-22T10:00:00Z").expect("time");
        let sample =
            Sample::new("cpu", crate::SampleType::Cumulative, "ns", 1e9, "h", at).expect("sample");
        let producer = Producer {
            host: "h".into(),
            agent_id: "h/compute".into(),
            namespaces: vec!["compute".into()],
        };
        Envelope::samples(producer, 7, vec![sample])
    }

    #[test]
    fn canonical_bytes_take_the_one_pass_path() {
        let original = envelope();
        let bytes = original.encode(Some(&Secret::new("s"))).expect("encode");
        assert_eq!(Envelope::from_wire(&bytes, 10).ok(), Some(original));
    }

    #[test]
    fn other_member_orders_take_the_general_path() {
        let original = envelope();
        let mut value = serde_json::to_value(&original).expect("value");
        let payload = value["payload"].take();
        let mut text = serde_json::to_string(&value).expect("text");
        // `payload` first, then everything else: valid, but not what hb writes.
        text = format!(
            "{{\"payload\":{},{}",
            payload,
            &text[1..].replace("\"payload\":null,", "")
        );
        let bytes = text.into_bytes();
        assert!(Envelope::from_wire(&bytes, 10).is_err());
        assert_eq!(Envelope::decode(&bytes, None).expect("decode"), original);
    }
}
