//! Events as InfluxDB line protocol: one line per event in measurement `events`.
//!
//! ```text
//! events,event_type=compute.instance.create.end message_id="m-1",launched_at="2026-11-22T10:00:00.000000000Z",memory_mb=512i,state="active",vcpus_ratio=0.5 1795341600000000000
//! ```
//!
//! - **Measurement**: `events`.
//! - **Tag**: `event_type` only (omitted when empty), so the series count stays bounded by the
//!   number of event types whatever the traits hold.
//! - **Fields**: `message_id` (string), then one field per trait in the event's order: text →
//!   string field, int → integer field (`42i`), float → float field (`0.5`), datetime → string
//!   field in RFC 3339 with nanoseconds (as the event's JSON writes it). A trait whose name is
//!   `message_id`, `event_type` or `time`, or is empty once written, is written as
//!   `trait_<name>`, so it never clashes with what the encoder writes itself (nor with
//!   InfluxDB's `time`).
//! - **Timestamp**: `generated`, in the URL's precision (coarser precisions round down).
//!
//! Escaping: trait names as tag keys (`,`, `=` and space escaped; backslashes as the URL's
//! `backslash=` says); string values inside `"..."` with `"` and `\` escaped (both write modes:
//! InfluxDB unescapes `\"` and `\\` in string fields). Line protocol cannot carry a newline, so
//! `\n` and `\r` in a name or a text value are written as spaces; the archive keeps the event
//! exactly.
//!
//! Refused events (nothing written for them): `generated` outside InfluxDB's range, a float
//! trait that is NaN or infinite.

use hb_sample::{Event, TraitValue};

use super::{Encoded, Encoder, NumberBuffers, RefuseReason, Refused, escape, trimmed};

/// The measurement events are written to.
pub const EVENTS_MEASUREMENT: &str = "events";
/// Prefix of a trait field whose name is reserved or empty once written.
pub const TRAIT_PREFIX: &str = "trait_";
/// Names the encoder writes itself (`message_id`, the `event_type` tag) and InfluxDB's `time`.
const RESERVED: [&str; 3] = ["message_id", "event_type", "time"];

impl Encoder {
    /// Appends one line per event to `out` (which is not cleared); [`Encoded::refused`] holds
    /// the events not written, by index in `events`.
    pub fn encode_events(&self, events: &[Event], out: &mut Vec<u8>) -> Encoded {
        let mut encoded = Encoded::default();
        let mut number = NumberBuffers::default();
        for (index, event) in events.iter().enumerate() {
            match self.event_line(event, out, &mut number) {
                Ok(()) => encoded.lines += 1,
                Err(reason) => encoded.refused.push(Refused { index, reason }),
            }
        }
        encoded
    }

    fn event_line(
        &self,
        event: &Event,
        out: &mut Vec<u8>,
        number: &mut NumberBuffers,
    ) -> Result<(), RefuseReason> {
        let Some(nanos) = event.generated.timestamp_nanos_opt() else {
            return Err(RefuseReason::TimestampOutOfRange);
        };
        if event
            .traits
            .iter()
            .any(|t| matches!(t.value, TraitValue::Float(f) if !f.is_finite()))
        {
            return Err(RefuseReason::NonFiniteTrait);
        }
        out.extend_from_slice(EVENTS_MEASUREMENT.as_bytes());
        let event_type = trimmed(&event.event_type, self.backslash);
        if !event_type.is_empty() {
            out.extend_from_slice(b",event_type=");
            escape(out, event_type.as_bytes(), true, self.backslash);
        }
        out.extend_from_slice(b" message_id=");
        string_value(out, &event.message_id);
        for t in &event.traits {
            out.push(b',');
            let name = trimmed(&t.name, self.backslash);
            if name.is_empty() || RESERVED.contains(&name) {
                out.extend_from_slice(TRAIT_PREFIX.as_bytes());
            }
            escape(out, name.as_bytes(), true, self.backslash);
            out.push(b'=');
            match &t.value {
                TraitValue::Text(s) => string_value(out, s),
                TraitValue::Int(i) => {
                    out.extend_from_slice(number.int.format(*i).as_bytes());
                    out.push(b'i');
                }
                TraitValue::Float(f) => {
                    out.extend_from_slice(number.float.format_finite(*f).as_bytes());
                }
                TraitValue::Datetime(at) => string_value(out, &hb_sample::timestamp::format(at)),
            }
        }
        out.push(b' ');
        let ts = nanos.div_euclid(self.precision.nanos());
        out.extend_from_slice(number.int.format(ts).as_bytes());
        out.push(b'\n');
        Ok(())
    }
}

/// Appends `s` as a string field value: quoted, `"` and `\` escaped, newlines as spaces.
fn string_value(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let replacement: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' | b'\r' => b" ",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(replacement);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeZone, Utc};
    use hb_sample::Trait;

    use super::super::{Backslash, Precision};
    use super::*;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap()
    }

    fn event(event_type: &str, traits: Vec<(&str, TraitValue)>) -> Event {
        Event {
            message_id: "m-1".into(),
            event_type: event_type.into(),
            generated: at() + chrono::Duration::nanoseconds(123_456_789),
            traits: traits
                .into_iter()
                .map(|(name, value)| Trait {
                    name: name.into(),
                    value,
                })
                .collect(),
        }
    }

    fn encode(events: &[Event], precision: Precision, backslash: Backslash) -> (String, Encoded) {
        let mut out = Vec::new();
        let encoded = Encoder::new(&[], precision, backslash).encode_events(events, &mut out);
        (String::from_utf8(out).unwrap(), encoded)
    }

    #[test]
    fn every_trait_type_has_its_field_type() {
        let e = event(
            "compute.instance.create.end",
            vec![
                ("launched_at", TraitValue::Datetime(at())),
                ("memory_mb", TraitValue::Int(-512)),
                ("ratio", TraitValue::Float(0.5)),
                ("state", TraitValue::Text("active".into())),
                ("whole", TraitValue::Float(2.0)),
            ],
        );
        let (text, encoded) = encode(&[e], Precision::Ns, Backslash::Literal);
        assert_eq!(encoded.lines, 1);
        assert_eq!(
            text,
            "events,event_type=compute.instance.create.end message_id=\"m-1\",\
             launched_at=\"2026-11-22T10:00:00.000000000Z\",memory_mb=-512i,ratio=0.5,\
             state=\"active\",whole=2.0 1795341600123456789\n"
        );
    }

    #[test]
    fn odd_names_and_values_are_escaped() {
        let e = event(
            "odd type, with=signs",
            vec![
                (
                    "a key, with=signs",
                    TraitValue::Text("say \"hi\", a=b".into()),
                ),
                ("back\\slash\\", TraitValue::Text("c:\\dir\\".into())),
                ("multi\nline", TraitValue::Text("one\ntwo\r".into())),
            ],
        );
        let (text, _) = encode(std::slice::from_ref(&e), Precision::S, Backslash::Literal);
        assert_eq!(
            text,
            "events,event_type=odd\\ type\\,\\ with\\=signs message_id=\"m-1\",\
             a\\ key\\,\\ with\\=signs=\"say \\\"hi\\\", a=b\",back\\slash=\"c:\\\\dir\\\\\",\
             multi\\ line=\"one two \" 1795341600\n"
        );
        let (text, _) = encode(&[e], Precision::Ms, Backslash::Escape);
        assert!(
            text.contains(",back\\\\slash\\\\=\"c:\\\\dir\\\\\","),
            "{text}"
        );
        assert!(text.ends_with(" 1795341600123\n"), "{text}");
    }

    #[test]
    fn reserved_and_empty_trait_names_are_prefixed() {
        let e = event(
            "",
            vec![
                ("", TraitValue::Int(1)),
                ("event_type", TraitValue::Int(2)),
                ("message_id", TraitValue::Int(3)),
                ("time", TraitValue::Int(4)),
                ("\\", TraitValue::Int(5)),
            ],
        );
        let (text, _) = encode(&[e], Precision::Ns, Backslash::Literal);
        assert_eq!(
            text,
            "events message_id=\"m-1\",trait_=1i,trait_event_type=2i,trait_message_id=3i,\
             trait_time=4i,trait_=5i 1795341600123456789\n"
        );
    }

    #[test]
    fn events_influxdb_cannot_store_are_refused() {
        let mut late = event("t", vec![]);
        late.generated = Utc.with_ymd_and_hms(2300, 1, 1, 0, 0, 0).unwrap();
        let nan = event("t", vec![("x", TraitValue::Float(f64::NAN))]);
        let fine = event("t", vec![]);
        let (text, encoded) = encode(&[late, fine, nan], Precision::Ns, Backslash::Literal);
        assert_eq!(
            text,
            "events,event_type=t message_id=\"m-1\" 1795341600123456789\n"
        );
        assert_eq!(encoded.lines, 1);
        assert_eq!(
            encoded.refused,
            vec![
                Refused {
                    index: 0,
                    reason: RefuseReason::TimestampOutOfRange
                },
                Refused {
                    index: 2,
                    reason: RefuseReason::NonFiniteTrait
                }
            ]
        );
    }
}
