//! The fast path of envelope decoding: an envelope as hb writes it, read in one pass.

use std::cell::Cell;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{Body, ENVELOPE_VERSION, Envelope, Producer};
use crate::sample::Sample;

impl Envelope {
    /// Parses an envelope of this version in one pass, without an intermediate document;
    /// `None` when the bytes need the general path (another version, another shape, `payload`
    /// before `kind`, an error to explain). Canonical bytes have their members in key order,
    /// so `kind` comes before `payload` and the payload is decoded straight into its type.
    ///
    /// The bytes are checked as UTF-8 once, as a whole, so that the parser need not check each
    /// string it reads. Reading stops at the sample after `max_samples`.
    pub(super) fn from_wire(bytes: &[u8], max_samples: usize) -> Result<Self, Miss> {
        let text = std::str::from_utf8(bytes).map_err(|_| Miss::Other)?;
        let mut de = serde_json::Deserializer::from_str(text);
        let too_many = Cell::new(false);
        let visitor = WireVisitor {
            samples_hint: (bytes.len() / BYTES_PER_SAMPLE).min(MAX_SAMPLES_HINT),
            max_samples,
            too_many: &too_many,
        };
        let parsed = serde::Deserializer::deserialize_map(&mut de, visitor);
        if too_many.get() {
            return Err(Miss::TooManySamples);
        }
        let envelope = parsed.map_err(|_| Miss::Other)?.0;
        de.end().map_err(|_| Miss::Other)?;
        if envelope.version == ENVELOPE_VERSION {
            Ok(envelope)
        } else {
            Err(Miss::Other)
        }
    }
}

/// Why the fast path did not give an envelope.
#[derive(Debug)]
pub(super) enum Miss {
    /// The payload holds more samples than allowed: refused, no other path is tried.
    TooManySamples,
    /// Anything else: the general path decides.
    Other,
}

/// An envelope read member by member (see [`Envelope::from_wire`]).
struct Wire(Envelope);

/// About the fewest bytes a sample takes in an envelope as hb writes it (id, timestamp, member
/// names): the envelope's length over this estimates how many samples it carries, so that the
/// vector of samples is allocated once instead of growing (it still grows if there are more).
const BYTES_PER_SAMPLE: usize = 200;
/// The most samples allocated for ahead of reading them.
const MAX_SAMPLES_HINT: usize = 4096;

struct WireVisitor<'a> {
    /// Room for samples to allocate up front.
    samples_hint: usize,
    max_samples: usize,
    too_many: &'a Cell<bool>,
}

/// A payload of samples, read into a vector allocated up front with room for `hint`, refused
/// at the sample after `max` (`too_many` says so).
struct SamplesSeed<'a> {
    hint: usize,
    max: usize,
    too_many: &'a Cell<bool>,
}

impl<'de> serde::de::DeserializeSeed<'de> for SamplesSeed<'_> {
    type Value = Vec<Sample>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Vec<Sample>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for SamplesSeed<'_> {
    type Value = Vec<Sample>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of samples")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Sample>, A::Error> {
        let mut samples = Vec::with_capacity(self.hint.min(self.max));
        while let Some(sample) = seq.next_element()? {
            if samples.len() == self.max {
                self.too_many.set(true);
                return Err(serde::de::Error::custom("too many samples"));
            }
            samples.push(sample);
        }
        Ok(samples)
    }
}

/// A timestamp member, parsed with hb's helper.
struct Stamp(DateTime<Utc>);

impl<'de> Deserialize<'de> for Stamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::timestamp::deserialize(d).map(Stamp)
    }
}

impl<'de> serde::de::Visitor<'de> for WireVisitor<'_> {
    type Value = Wire;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an envelope object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Wire, A::Error> {
        use serde::de::Error;
        let (mut version, mut producer, mut seq, mut sent_at) = (None, None, None, None);
        // Borrowed: a key or kind with an escape in it is not what hb writes, and fails over
        // to the general path.
        let (mut kind, mut body): (Option<&'de str>, _) = (None, None);
        while let Some(key) = map.next_key::<&'de str>()? {
            match key {
                "version" => version = Some(map.next_value::<u32>()?),
                "producer" => producer = Some(map.next_value::<Producer>()?),
                "seq" => seq = Some(map.next_value::<u64>()?),
                "sent_at" => sent_at = Some(map.next_value::<Stamp>()?.0),
                "kind" => kind = Some(map.next_value()?),
                "payload" => {
                    body = Some(match kind {
                        Some("samples") => Body::Samples(map.next_value_seed(SamplesSeed {
                            hint: self.samples_hint,
                            max: self.max_samples,
                            too_many: self.too_many,
                        })?),
                        Some("heartbeat") => Body::Heartbeat(map.next_value()?),
                        _ => return Err(A::Error::custom("payload before a known kind")),
                    })
                }
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        let missing = |name| A::Error::missing_field(name);
        Ok(Wire(Envelope {
            version: version.ok_or_else(|| missing("version"))?,
            producer: producer.ok_or_else(|| missing("producer"))?,
            seq: seq.ok_or_else(|| missing("seq"))?,
            sent_at: sent_at.ok_or_else(|| missing("sent_at"))?,
            body: body.ok_or_else(|| missing("payload"))?,
        }))
    }
}
