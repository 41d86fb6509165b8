use chrono::{DateTime, TimeZone, Utc};
use hb_sample::SampleType;
use serde_json::json;

use super::*;

fn at() -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000, 123_456_789).unwrap()
}

fn sample(name: &str, volume: f64, resource: &str) -> Sample {
    Sample::new(name, SampleType::Gauge, "B", volume, resource, at()).unwrap()
}

fn text(encoder: &Encoder, samples: &[Sample]) -> (String, Encoded) {
    let mut out = Vec::new();
    let encoded = encoder.encode(samples, &mut out);
    (String::from_utf8(out).unwrap(), encoded)
}

fn default_text(samples: &[Sample], tags: &[&str]) -> String {
    let tags: Vec<String> = tags.iter().map(|t| (*t).to_owned()).collect();
    let mut out = Vec::new();
    let encoded = encode(samples, &tags, &mut out);
    assert_eq!(encoded.lines, samples.len());
    String::from_utf8(out).unwrap()
}

#[test]
fn a_plain_sample() {
    assert_eq!(
        default_text(&[sample("cpu.util", 12.5, "host-a")], &[]),
        "cpu.util,resource_id=host-a value=12.5 1700000000123456789\n"
    );
}

#[test]
fn all_tags_sorted_with_metadata() {
    let mut s = sample("disk.read.bytes", 42.0, "vm-1/vda");
    s.project_id = Some("p1".into());
    s.user_id = Some("u1".into());
    s.resource_metadata = json!({
        "host": "compute-1", "flavor": "m1.small", "vcpus": 2, "ratio": 0.5,
        "ephemeral": false, "image": null, "list": [1], "az": "", "ignored": "x"
    })
    .as_object()
    .unwrap()
    .clone();
    let tags = [
        "vcpus",
        "flavor",
        "ratio",
        "ephemeral",
        "image",
        "list",
        "az",
        "zz",
    ];
    assert_eq!(
        default_text(&[s], &tags),
        "disk.read.bytes,ephemeral=false,flavor=m1.small,host=compute-1,project_id=p1,\
         ratio=0.5,resource_id=vm-1/vda,user_id=u1,vcpus=2 value=42.0 1700000000123456789\n"
    );
}

/// A float tag with an exponent is written as the field value is (`e24`), not as JSON writes
/// it (`e+24`): one number format per line (the line_protocol fuzz target checks the same).
#[test]
fn float_tags_in_the_shortest_form_of_the_field_value() {
    let mut s = sample("m", 6.664666666666667e24, "r");
    s.resource_metadata = json!({"big": 6.664666666666667e24, "small": 1e-7})
        .as_object()
        .unwrap()
        .clone();
    assert_eq!(
        default_text(&[s], &["big", "small"]),
        "m,big=6.664666666666667e24,resource_id=r,small=1e-7 value=6.664666666666667e24 \
         1700000000123456789\n"
    );
}

#[test]
fn empty_owner_and_resource_are_omitted() {
    let mut s = sample("m", 1.0, "");
    s.project_id = Some(String::new());
    assert_eq!(default_text(&[s], &[]), "m value=1.0 1700000000123456789\n");
}

#[test]
fn values_are_always_floats() {
    let lines = default_text(
        &[
            sample("m", 1.0, "r"),
            sample("m", -0.0, "r"),
            sample("m", 1e21, "r"),
            sample("m", 1.5e-7, "r"),
            sample("m", 123456789.0, "r"),
        ],
        &[],
    );
    let values: Vec<&str> = lines
        .lines()
        .map(|l| l.split(' ').nth(1).unwrap())
        .collect();
    assert_eq!(
        values,
        [
            "value=1.0",
            "value=-0.0",
            "value=1e21",
            "value=1.5e-7",
            "value=123456789.0"
        ]
    );
}

#[test]
fn escaping_in_every_position() {
    let mut s = sample("a b,c=d\"e\\f", 1.0, "r ,=\"\\x");
    s.resource_metadata = json!({"k ,=\\y": "v ,=\"\\z"}).as_object().unwrap().clone();
    assert_eq!(
        default_text(&[s], &["k ,=\\y"]),
        "a\\ b\\,c=d\"e\\f,k\\ \\,\\=\\y=v\\ \\,\\=\"\\z,resource_id=r\\ \\,\\=\"\\x \
         value=1.0 1700000000123456789\n"
    );
}

#[test]
fn escape_mode_doubles_backslashes() {
    let encoder = Encoder::new(&["k\\".into()], Precision::Ns, Backslash::Escape);
    let mut s = sample("a\\", 1.0, "\\r\\");
    s.resource_metadata = json!({"k\\": "\\"}).as_object().unwrap().clone();
    assert_eq!(
        text(&encoder, &[s]).0,
        "a\\\\,k\\\\=\\\\,resource_id=\\\\r\\\\ value=1.0 1700000000123456789\n"
    );
}

#[test]
fn trailing_backslashes_are_dropped_in_literal_mode() {
    let mut s = sample("m\\\\", 1.0, "C:\\dir\\");
    s.resource_metadata = json!({"only": "\\\\", "k\\": "v"})
        .as_object()
        .unwrap()
        .clone();
    assert_eq!(
        default_text(&[s], &["only", "k\\"]),
        "m,k=v,resource_id=C:\\dir value=1.0 1700000000123456789\n"
    );
}

#[test]
fn newlines_become_spaces() {
    let s = sample("a\nb", 1.0, "x\r\ny");
    assert_eq!(
        default_text(&[s], &[]),
        "a\\ b,resource_id=x\\ \\ y value=1.0 1700000000123456789\n"
    );
}

#[test]
fn precision_rounds_down() {
    let before_epoch = Utc.timestamp_opt(-2, 500_000_000).unwrap();
    let mut early = sample("m", 1.0, "r");
    early.timestamp = before_epoch;
    for (precision, want) in [
        (Precision::Ns, ["1700000000123456789", "-1500000000"]),
        (Precision::Us, ["1700000000123456", "-1500000"]),
        (Precision::Ms, ["1700000000123", "-1500"]),
        (Precision::S, ["1700000000", "-2"]),
    ] {
        let encoder = Encoder::new(&[], precision, Backslash::Literal);
        let (lines, _) = text(&encoder, &[sample("m", 1.0, "r"), early.clone()]);
        let got: Vec<&str> = lines
            .lines()
            .map(|l| l.rsplit(' ').next().unwrap())
            .collect();
        assert_eq!(got, want, "{precision:?}");
    }
}

#[test]
fn unrepresentable_samples_are_refused_and_counted() {
    let mut far = sample("m", 1.0, "r");
    far.timestamp = Utc.with_ymd_and_hms(2300, 1, 1, 0, 0, 0).unwrap();
    let mut empty = sample("x", 1.0, "r");
    empty.name = "\\".into();
    // Both wrong: counted under the first reason checked, the time.
    let mut both = empty.clone();
    both.timestamp = far.timestamp;
    let samples = [
        sample("a", 1.0, "r"),
        far,
        empty,
        both,
        sample("b", 2.0, "r"),
    ];
    let (lines, encoded) = text(
        &Encoder::new(&[], Precision::Ns, Backslash::Literal),
        &samples,
    );
    assert_eq!(
        lines,
        "a,resource_id=r value=1.0 1700000000123456789\n\
         b,resource_id=r value=2.0 1700000000123456789\n"
    );
    assert_eq!(encoded.lines, 2);
    assert_eq!(
        encoded.refused,
        [
            Refused {
                index: 1,
                reason: RefuseReason::TimestampOutOfRange
            },
            Refused {
                index: 2,
                reason: RefuseReason::EmptyName
            },
            Refused {
                index: 3,
                reason: RefuseReason::TimestampOutOfRange
            }
        ]
    );
}

#[test]
fn appends_without_clearing() {
    let mut out = b"x\n".to_vec();
    encode(&[sample("m", 1.0, "r")], &[], &mut out);
    assert!(out.starts_with(b"x\nm,"));
}
