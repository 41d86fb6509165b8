//! Samples as InfluxDB line protocol: one line per sample, written into a reused buffer
//! (events: see [`events`](mod@events), same encoder, same escaping).
//!
//! ```text
//! disk.read.bytes,host=compute-1,project_id=p1,resource_id=vm-1\,vda,user_id=u1 value=42.0 1700000000000000000
//! ```
//!
//! - **Measurement**: the meter name.
//! - **Tags**, sorted by key (byte order, as InfluxDB recommends): `resource_id`; `project_id`
//!   and `user_id` when set; `host` when the resource metadata has a `host` key; then each
//!   metadata key listed in the URL's `tags=` that the sample has. Nothing else is written as a
//!   tag, so the series count stays bounded. A metadata value that is a string is written as
//!   is, a number or a boolean as JSON writes it (`3`, `2.5`, `true`; a float with an exponent in
//!   its shortest form without a `+`, `6.5e24`, as the field value); `null`, arrays and
//!   objects are skipped, and so is any tag whose value is empty.
//! - **Field**: `value=<volume>`, always a float (shortest round-trip form: `42.0`, `1e21`), so
//!   the field's type never depends on the first value InfluxDB saw.
//! - **Timestamp**: the sample's, in the URL's precision (nanoseconds by default; coarser
//!   precisions round down).
//!
//! Escaping: the measurement escapes `,` and space; tag keys and values escape `,`, `=` and
//! space. Line protocol has no way to write a newline inside a name, so `\n` and `\r` are
//! written as (escaped) spaces; the sample is kept. Backslashes: see [`Backslash`].
//!
//! Refused samples (counted in [`Encoded::refused`], nothing written for them): a timestamp
//! outside InfluxDB's range (years 1677 to 2262), a non-finite volume, a name that is empty
//! once written, checked in this order (a sample is counted under the first that applies).
//!
//! The encoder allocates nothing per sample: numbers go through `itoa`/`ryu` stack buffers
//! and strings are copied into the output with their escapes.

#[path = "event_line.rs"]
pub mod events;

use hb_sample::Sample;
use serde_json::Value;

/// Timestamp precision of the written lines (the URL's `precision=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// Nanoseconds (the default).
    #[default]
    Ns,
    /// Microseconds.
    Us,
    /// Milliseconds.
    Ms,
    /// Seconds.
    S,
}

impl Precision {
    /// `ns`, `us`, `ms` or `s`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "ns" => Some(Self::Ns),
            "us" => Some(Self::Us),
            "ms" => Some(Self::Ms),
            "s" => Some(Self::S),
            _ => None,
        }
    }

    /// The spelling of the URL option and of the v2 API (`ns`, `us`, `ms`, `s`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ns => "ns",
            Self::Us => "us",
            Self::Ms => "ms",
            Self::S => "s",
        }
    }

    /// The spelling of the v1 API (`n`, `u`, `ms`, `s`): InfluxDB 1.x treats a spelling it
    /// does not know as nanoseconds without an error, so `us` must not be sent there.
    pub fn v1(self) -> &'static str {
        match self {
            Self::Ns => "n",
            Self::Us => "u",
            Self::Ms => "ms",
            Self::S => "s",
        }
    }

    fn nanos(self) -> i64 {
        match self {
            Self::Ns => 1,
            Self::Us => 1_000,
            Self::Ms => 1_000_000,
            Self::S => 1_000_000_000,
        }
    }
}

/// How a backslash in a measurement, tag key or tag value is written (the URL's `backslash=`).
///
/// The parsers disagree. InfluxDB (1.x, and 2.x, which shares its parser) only unescapes
/// `\,`, `\ ` and `\=`: every other backslash is literal, and `\\` stays two backslashes.
/// VictoriaMetrics also unescapes `\\` to `\`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backslash {
    /// Written as is: right for InfluxDB (the default). A name or tag that *ends* in
    /// backslashes cannot be written there (the backslash would escape the delimiter after
    /// it), so trailing backslashes are dropped. Known InfluxDB 1.x limitation, not ours to
    /// fix: a measurement with a backslash just before `,`, space, `=` or `"` is accepted but
    /// stored under a different name.
    #[default]
    Literal,
    /// Written as `\\`: right for VictoriaMetrics, where every backslash then round-trips.
    Escape,
}

/// Why a sample was not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefuseReason {
    /// The timestamp is outside what InfluxDB stores (1677-09-21 to 2262-04-11).
    TimestampOutOfRange,
    /// NaN or an infinity (line protocol has no spelling for them).
    NonFiniteVolume,
    /// The meter name is empty once written (e.g. only backslashes).
    EmptyName,
    /// An event's float trait is NaN or infinite.
    NonFiniteTrait,
}

impl RefuseReason {
    /// A stable label for counters (`timestamp_out_of_range`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TimestampOutOfRange => "timestamp_out_of_range",
            Self::NonFiniteVolume => "non_finite_volume",
            Self::EmptyName => "empty_name",
            Self::NonFiniteTrait => "non_finite_trait",
        }
    }
}

impl std::fmt::Display for RefuseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::TimestampOutOfRange => "timestamp outside InfluxDB's range (1677 to 2262)",
            Self::NonFiniteVolume => "volume is NaN or infinite",
            Self::EmptyName => "meter name is empty once written",
            Self::NonFiniteTrait => "a float trait is NaN or infinite",
        })
    }
}

/// A sample (or an event) that was not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// Its index in the encoded slice.
    pub index: usize,
    /// Why.
    pub reason: RefuseReason,
}

/// What one [`Encoder::encode`] call wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Encoded {
    /// Lines appended (one per sample or event not refused), each ending in `\n`.
    pub lines: usize,
    /// Samples or events not written, in order; empty (and unallocated) in the usual case.
    pub refused: Vec<Refused>,
}

/// Where a tag's value comes from.
#[derive(Debug, Clone)]
enum Source {
    ResourceId,
    ProjectId,
    UserId,
    Metadata(String),
}

#[derive(Debug, Clone)]
struct Tag {
    /// `,key=` already escaped.
    prefix: Vec<u8>,
    source: Source,
}

/// A line-protocol encoder for one tag configuration; build once, use for every batch.
#[derive(Debug, Clone)]
pub struct Encoder {
    tags: Vec<Tag>,
    precision: Precision,
    backslash: Backslash,
}

impl Encoder {
    /// `tags`: metadata keys written as extra tags (beside the fixed ones, which win on a
    /// name clash).
    pub fn new(tags: &[String], precision: Precision, backslash: Backslash) -> Self {
        let mut keyed: Vec<(String, Source)> = vec![
            ("resource_id".to_owned(), Source::ResourceId),
            ("project_id".to_owned(), Source::ProjectId),
            ("user_id".to_owned(), Source::UserId),
            ("host".to_owned(), Source::Metadata("host".to_owned())),
        ];
        for key in tags {
            if !keyed.iter().any(|(k, _)| k == key) {
                keyed.push((key.clone(), Source::Metadata(key.clone())));
            }
        }
        keyed.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let tags = keyed
            .into_iter()
            .filter_map(|(key, source)| {
                let key = trimmed(&key, backslash);
                if key.is_empty() {
                    return None;
                }
                let mut prefix = vec![b','];
                escape(&mut prefix, key.as_bytes(), true, backslash);
                prefix.push(b'=');
                Some(Tag { prefix, source })
            })
            .collect();
        Self {
            tags,
            precision,
            backslash,
        }
    }

    /// Appends one line per sample to `out` (which is not cleared).
    pub fn encode(&self, samples: &[Sample], out: &mut Vec<u8>) -> Encoded {
        let mut encoded = Encoded::default();
        let mut number = NumberBuffers::default();
        for (index, sample) in samples.iter().enumerate() {
            match self.line(sample, out, &mut number) {
                Ok(()) => encoded.lines += 1,
                Err(reason) => encoded.refused.push(Refused { index, reason }),
            }
        }
        encoded
    }

    fn line(
        &self,
        sample: &Sample,
        out: &mut Vec<u8>,
        number: &mut NumberBuffers,
    ) -> Result<(), RefuseReason> {
        let Some(nanos) = sample.timestamp.timestamp_nanos_opt() else {
            return Err(RefuseReason::TimestampOutOfRange);
        };
        let volume = sample.volume();
        if !volume.is_finite() {
            return Err(RefuseReason::NonFiniteVolume);
        }
        let start = out.len();
        let name = trimmed(&sample.name, self.backslash);
        if name.is_empty() {
            return Err(RefuseReason::EmptyName);
        }
        escape(out, name.as_bytes(), false, self.backslash);
        for tag in &self.tags {
            let value: &str = match &tag.source {
                Source::ResourceId => &sample.resource_id,
                Source::ProjectId => sample.project_id.as_deref().unwrap_or(""),
                Source::UserId => sample.user_id.as_deref().unwrap_or(""),
                Source::Metadata(key) => match sample.resource_metadata.get(key) {
                    Some(Value::String(s)) => s,
                    Some(Value::Number(n)) => number.format(n),
                    Some(Value::Bool(true)) => "true",
                    Some(Value::Bool(false)) => "false",
                    _ => "",
                },
            };
            let value = trimmed(value, self.backslash);
            if value.is_empty() {
                continue;
            }
            out.extend_from_slice(&tag.prefix);
            escape(out, value.as_bytes(), true, self.backslash);
        }
        out.extend_from_slice(b" value=");
        out.extend_from_slice(number.float.format_finite(volume).as_bytes());
        out.push(b' ');
        let ts = nanos.div_euclid(self.precision.nanos());
        out.extend_from_slice(number.int.format(ts).as_bytes());
        out.push(b'\n');
        debug_assert!(out.len() > start);
        Ok(())
    }
}

/// Encodes `samples` with nanosecond timestamps and literal backslashes (InfluxDB's rules);
/// `tags` are the metadata keys written as extra tags. See [`Encoder`] for other settings.
pub fn encode(samples: &[Sample], tags: &[String], out: &mut Vec<u8>) -> Encoded {
    Encoder::new(tags, Precision::Ns, Backslash::Literal).encode(samples, out)
}

#[derive(Default)]
struct NumberBuffers {
    int: itoa::Buffer,
    float: ryu::Buffer,
    tag_int: itoa::Buffer,
    tag_float: ryu::Buffer,
}

impl NumberBuffers {
    /// A JSON number as JSON writes it (integers without a decimal point), floats in their
    /// shortest form as the field value is written (`6.5e24`, where JSON writes `6.5e+24`).
    fn format(&mut self, n: &serde_json::Number) -> &str {
        if let Some(i) = n.as_i64() {
            self.tag_int.format(i)
        } else if let Some(u) = n.as_u64() {
            self.tag_int.format(u)
        } else {
            match n.as_f64() {
                Some(f) if f.is_finite() => self.tag_float.format_finite(f),
                _ => "",
            }
        }
    }
}

/// In literal mode, without trailing backslashes (they cannot be written).
fn trimmed(s: &str, backslash: Backslash) -> &str {
    match backslash {
        Backslash::Literal => s.trim_end_matches('\\'),
        Backslash::Escape => s,
    }
}

/// Bytes that need work in a measurement (bit 0), a tag key or value (bit 1), in escape mode
/// (bit 2): `,` space `\n` `\r` everywhere, `=` in tags, `\` in escape mode.
const SPECIAL: [u8; 256] = {
    let mut table = [0u8; 256];
    table[b',' as usize] = 0b111;
    table[b' ' as usize] = 0b111;
    table[b'\n' as usize] = 0b111;
    table[b'\r' as usize] = 0b111;
    table[b'=' as usize] = 0b010;
    table[b'\\' as usize] = 0b100;
    table
};

/// Appends `s` escaped: `,` and space always, `=` when `eq`, `\` in escape mode; newlines and
/// carriage returns become escaped spaces.
fn escape(out: &mut Vec<u8>, s: &[u8], eq: bool, backslash: Backslash) {
    let position = if eq { 0b010 } else { 0b001 };
    let mask = position
        | if backslash == Backslash::Escape {
            0b100
        } else {
            0
        };
    let mut start = 0;
    for (i, &b) in s.iter().enumerate() {
        if SPECIAL[usize::from(b)] & mask == 0 {
            continue;
        }
        let replacement: &[u8] = match b {
            b',' => b"\\,",
            b'=' => b"\\=",
            b'\\' => b"\\\\",
            _ => b"\\ ",
        };
        out.extend_from_slice(&s[start..i]);
        out.extend_from_slice(replacement);
        start = i + 1;
    }
    out.extend_from_slice(&s[start..]);
}

#[cfg(test)]
#[path = "line_tests.rs"]
mod tests;
