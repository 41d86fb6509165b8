//! The InfluxDB line-protocol encoder's lines parse back, with an independent parser (influxdb-line-protocol), to the sample's measurement, tags, field and timestamp.
#![no_main]

use chrono::{DateTime, TimeZone, Utc};
use hb_pipeline::publisher::influx::{Backslash, Encoder, Precision, RefuseReason};
use hb_sample::{Metadata, Sample, SampleType};
use influxdb_line_protocol::{FieldValue, parse_lines};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const PRECISIONS: [(Precision, i64); 4] = [
    (Precision::Ns, 1),
    (Precision::Us, 1_000),
    (Precision::Ms, 1_000_000),
    (Precision::S, 1_000_000_000),
];

// Input: a flags byte, the volume (f64 LE), the timestamp (i64 LE: nanoseconds, or seconds
// when flag bit 5 is set), then NUL-separated text: name, resource id, project id, user id,
// then metadata key/value pairs (each key also a configured tag; a value that is a JSON
// number, boolean or null is stored as such).
fuzz_target!(|data: &[u8]| {
    if data.len() < 17 {
        return;
    }
    let flags = data[0];
    let volume = f64::from_le_bytes(data[1..9].try_into().unwrap());
    let time = i64::from_le_bytes(data[9..17].try_into().unwrap());
    let Ok(text) = std::str::from_utf8(&data[17..]) else {
        return;
    };
    let mut parts = text.split('\0');
    let name = parts.next().unwrap_or_default();
    let resource = parts.next().unwrap_or_default();
    let project = parts.next().filter(|_| flags & 0x08 != 0);
    let user = parts.next().filter(|_| flags & 0x10 != 0);
    let timestamp: DateTime<Utc> = if flags & 0x20 == 0 {
        Utc.timestamp_nanos(time)
    } else {
        match Utc.timestamp_opt(time, 0).single() {
            Some(t) => t,
            None => return,
        }
    };
    let Ok(mut sample) = Sample::new(name, SampleType::Gauge, "B", volume, resource, timestamp)
    else {
        return;
    };
    sample.project_id = project.map(str::to_owned);
    sample.user_id = user.map(str::to_owned);
    let mut metadata = Metadata::new();
    let mut tags = Vec::new();
    while let (Some(key), Some(value)) = (parts.next(), parts.next()) {
        let value = match serde_json::from_str::<Value>(value) {
            Ok(v @ (Value::Number(_) | Value::Bool(_) | Value::Null)) => v,
            _ => Value::String(value.to_owned()),
        };
        metadata.insert(key.to_owned(), value);
        tags.push(key.to_owned());
    }
    sample = sample.with_metadata(metadata);

    let (precision, unit) = PRECISIONS[usize::from(flags & 3)];
    let backslash = if flags & 4 == 0 {
        Backslash::Literal
    } else {
        Backslash::Escape
    };
    let encoder = Encoder::new(&tags, precision, backslash);
    let mut out = Vec::new();
    let encoded = encoder.encode(std::slice::from_ref(&sample), &mut out);
    let expected = expected(&sample, &tags, backslash);
    let nanos = sample.timestamp.timestamp_nanos_opt();
    // The encoder checks the time first, then the volume, then the name: the first reason
    // found is the one counted.
    match (nanos, &expected) {
        (None, _) => {
            assert_eq!(
                encoded.lines, 0,
                "an out-of-range time was written: {out:?}"
            );
            assert_eq!(encoded.refused[0].reason, RefuseReason::TimestampOutOfRange);
            return;
        }
        (Some(_), None) => {
            assert_eq!(encoded.lines, 0, "an empty name was written: {out:?}");
            assert_eq!(encoded.refused[0].reason, RefuseReason::EmptyName);
            return;
        }
        _ => assert_eq!((encoded.lines, encoded.refused.len()), (1, 0)),
    }
    let (measurement, expected_tags) = expected.unwrap();
    let line = std::str::from_utf8(&out).expect("the line is UTF-8");
    assert!(
        line.ends_with('\n') && line.matches('\n').count() == 1,
        "{line:?}"
    );

    if backslash == Backslash::Literal {
        // InfluxDB reads a backslash before a delimiter as an escape (the encoder's documented
        // limitation, see `Backslash::Literal`); without backslashes, both modes write the
        // same line, checked below by parsing the escape mode's.
        if !all_text(&sample, &tags).any(|s| s.contains('\\')) {
            let mut escaped = Vec::new();
            Encoder::new(&tags, precision, Backslash::Escape)
                .encode(std::slice::from_ref(&sample), &mut escaped);
            assert_eq!(
                out, escaped,
                "literal and escape modes differ without backslashes"
            );
        }
        return;
    }
    // Where the reference parser departs from InfluxDB's: a tab ends a name there (InfluxDB
    // splits on spaces only), `#` at the start of a line is a comment, and a name or tag
    // cannot end in a backslash even escaped.
    if all_text(&sample, &tags).any(|s| s.contains('\t')) || measurement.starts_with('#') {
        return;
    }
    if std::iter::once(&measurement)
        .chain(expected_tags.iter().flat_map(|(k, v)| [k, v]))
        .any(|s| s.ends_with('\\'))
    {
        return;
    }
    let mut lines = parse_lines(line);
    let parsed = match lines.next() {
        Some(Ok(parsed)) => parsed,
        other => panic!("{line:?} does not parse: {other:?}"),
    };
    assert!(lines.next().is_none(), "{line:?} parses as several lines");
    assert_eq!(
        parsed.series.measurement.as_str(),
        measurement,
        "measurement of {line:?}"
    );
    let got_tags: Vec<(String, String)> = parsed
        .series
        .tag_set
        .iter()
        .flatten()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(got_tags, expected_tags, "tags of {line:?}");
    assert_eq!(parsed.field_set.len(), 1, "fields of {line:?}");
    let (key, value) = &parsed.field_set[0];
    assert_eq!(key.as_str(), "value");
    match value {
        FieldValue::F64(v) => assert_eq!(v.to_bits(), sample.volume().to_bits(), "{line:?}"),
        other => panic!("value of {line:?} is not a float: {other:?}"),
    }
    let nanos = nanos.unwrap();
    assert_eq!(
        parsed.timestamp,
        Some(nanos.div_euclid(unit)),
        "timestamp of {line:?}"
    );
});

/// Every string of the sample that can reach the line.
fn all_text<'a>(sample: &'a Sample, tags: &'a [String]) -> impl Iterator<Item = &'a str> {
    let meta = sample
        .resource_metadata
        .iter()
        .flat_map(|(k, v)| std::iter::once(k.as_str()).chain(v.as_str()));
    [sample.name.as_str(), &sample.resource_id]
        .into_iter()
        .chain(sample.project_id.as_deref())
        .chain(sample.user_id.as_deref())
        .chain(tags.iter().map(String::as_str))
        .chain(meta)
}

/// The measurement and tags the line should carry, as the encoder's documentation says:
/// tags sorted by key (the fixed ones winning over metadata of the same name), floats in
/// their shortest form (`6.5e24`, not JSON's `6.5e+24`), empty values
/// skipped, newlines written as spaces, trailing backslashes dropped in literal mode.
/// `None` when the name is empty once written.
fn expected(
    sample: &Sample,
    tags: &[String],
    backslash: Backslash,
) -> Option<(String, Vec<(String, String)>)> {
    let clean = |s: &str| {
        let s = match backslash {
            Backslash::Literal => s.trim_end_matches('\\'),
            Backslash::Escape => s,
        };
        s.replace(['\n', '\r'], " ")
    };
    let measurement = clean(&sample.name);
    if measurement.is_empty() {
        return None;
    }
    let mut keyed: Vec<(&str, String)> = vec![
        ("resource_id", sample.resource_id.clone()),
        ("project_id", sample.project_id.clone().unwrap_or_default()),
        ("user_id", sample.user_id.clone().unwrap_or_default()),
    ];
    let meta = |key: &str| match sample.resource_metadata.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) if n.is_f64() => n
            .as_f64()
            .filter(|f| f.is_finite())
            .map(|f| ryu::Buffer::new().format_finite(f).to_owned())
            .unwrap_or_default(),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
        _ => String::new(),
    };
    keyed.push(("host", meta("host")));
    for key in tags {
        if !keyed.iter().any(|(k, _)| k == key) {
            keyed.push((key, meta(key)));
        }
    }
    keyed.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let tags = keyed
        .into_iter()
        .map(|(k, v)| (clean(k), clean(&v)))
        .filter(|(k, v)| !k.is_empty() && !v.is_empty())
        .collect();
    Some((measurement, tags))
}
