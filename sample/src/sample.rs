//! One measurement of one resource at one time (DESIGN §2).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

/// Descriptive attributes of the measured resource (`host`, `mount`, `cpu_number`, ...).
pub type Metadata = serde_json::Map<String, serde_json::Value>;

/// How a sample's volume relates to the previous one of the same series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SampleType {
    /// A level: the value now (memory used, load average).
    Gauge,
    /// The change since the previous sample.
    Delta,
    /// A counter that only grows, except when it resets (CPU time, bytes received).
    Cumulative,
}

impl SampleType {
    /// Every type, in the order they are documented.
    pub const ALL: [SampleType; 3] = [Self::Gauge, Self::Delta, Self::Cumulative];

    /// The lowercase name used in configuration and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gauge => "gauge",
            Self::Delta => "delta",
            Self::Cumulative => "cumulative",
        }
    }
}

impl fmt::Display for SampleType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SampleType {
    type Err = SampleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| SampleError::UnknownType(s.to_owned()))
    }
}

/// Why a sample was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SampleError {
    /// NaN and infinities are not measurements.
    #[error("sample `{name}` has a non-finite volume ({volume})")]
    NonFiniteVolume {
        /// Meter name of the refused sample.
        name: String,
        /// The offending value.
        volume: f64,
    },
    /// Every sample needs a meter name.
    #[error("sample has an empty name")]
    EmptyName,
    /// A type name that is not one of gauge, delta, cumulative.
    #[error("unknown sample type `{0}` (available: gauge, delta, cumulative)")]
    UnknownType(String),
}

/// One measurement of one resource at one time.
///
/// The volume is private so that every way of setting it goes through the finite check;
/// everything else is plain data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Unique id; lets consumers de-duplicate after a redelivery.
    pub id: Uuid,
    /// Dotted meter name, e.g. `disk.device.read.bytes`; never empty.
    #[serde(deserialize_with = "non_empty")]
    pub name: String,
    /// Gauge, delta or cumulative.
    #[serde(rename = "type")]
    pub kind: SampleType,
    /// Unit of the volume: `ns`, `B`, `B/s`, `%`, ...
    pub unit: String,
    #[serde(deserialize_with = "finite")]
    volume: f64,
    /// What was measured: `host-a`, `host-a/eth0`, a URL, ...
    pub resource_id: String,
    /// Owning project, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// Owning user, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// When the measurement was taken (one timestamp per pollster run).
    #[serde(with = "crate::timestamp")]
    pub timestamp: DateTime<Utc>,
    /// Nanoseconds of the producing host's monotonic clock at `timestamp`, used for rates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monotonic_time: Option<u64>,
    /// Descriptive attributes of the resource.
    #[serde(default)]
    pub resource_metadata: Metadata,
    /// Who produced it (`hb` or a configured name).
    pub source: String,
}

/// The source name of samples that hb itself produces.
pub const DEFAULT_SOURCE: &str = "hb";

impl Sample {
    /// A new sample with a fresh id, source `hb`, no owner, no metadata.
    pub fn new(
        name: impl Into<String>,
        kind: SampleType,
        unit: impl Into<String>,
        volume: f64,
        resource_id: impl Into<String>,
        timestamp: DateTime<Utc>,
    ) -> Result<Self, SampleError> {
        let name = name.into();
        if name.is_empty() {
            return Err(SampleError::EmptyName);
        }
        check_finite(&name, volume)?;
        Ok(Self {
            id: Uuid::new_v4(),
            name,
            kind,
            unit: unit.into(),
            volume,
            resource_id: resource_id.into(),
            project_id: None,
            user_id: None,
            timestamp,
            monotonic_time: None,
            resource_metadata: Metadata::new(),
            source: DEFAULT_SOURCE.to_owned(),
        })
    }

    /// The measured value; always finite.
    pub fn volume(&self) -> f64 {
        self.volume
    }

    /// Replaces the volume, refusing NaN and infinities.
    pub fn set_volume(&mut self, volume: f64) -> Result<(), SampleError> {
        check_finite(&self.name, volume)?;
        self.volume = volume;
        Ok(())
    }

    /// Sets the monotonic clock reading.
    pub fn with_monotonic_time(mut self, ns: u64) -> Self {
        self.monotonic_time = Some(ns);
        self
    }

    /// Replaces the resource metadata.
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.resource_metadata = metadata;
        self
    }
}

fn check_finite(name: &str, volume: f64) -> Result<(), SampleError> {
    if volume.is_finite() {
        Ok(())
    } else {
        Err(SampleError::NonFiniteVolume {
            name: name.to_owned(),
            volume,
        })
    }
}

/// A meter name as decoded: refused when empty, as [`Sample::new`] refuses it.
fn non_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let name = String::deserialize(d)?;
    if name.is_empty() {
        return Err(serde::de::Error::custom(SampleError::EmptyName));
    }
    Ok(name)
}

fn finite<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = f64::deserialize(d)?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(serde::de::Error::custom(format_args!(
            "volume must be a finite number, got {v}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_name_is_refused_on_decoding_as_by_the_constructor() {
        let at = crate::timestamp::parse("2026-11-22T10:00:00Z").expect("time");
        let sample = Sample::new("cpu", SampleType::Gauge, "%", 1.0, "h", at).expect("sample");
        let mut json = serde_json::to_value(&sample).expect("json");
        json["name"] = "".into();
        let err = serde_json::from_value::<Sample>(json).expect_err("refused");
        assert_eq!(err.to_string(), "sample has an empty name");
    }

    fn at() -> DateTime<Utc> {
        crate::timestamp::parse("2026-11-22T10:00:00.000000001Z").expect("valid")
    }

    #[test]
    fn non_finite_volumes_are_refused_everywhere() {
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let err = Sample::new("cpu", SampleType::Cumulative, "ns", v, "h", at()).unwrap_err();
            assert!(matches!(err, SampleError::NonFiniteVolume { .. }), "{err}");
        }
        let mut s = Sample::new("cpu", SampleType::Cumulative, "ns", 1.0, "h", at()).expect("ok");
        assert!(s.set_volume(f64::NAN).is_err());
        assert_eq!(s.volume(), 1.0);
    }

    #[test]
    fn json_round_trip_keeps_every_field() {
        let mut meta = Metadata::new();
        meta.insert("cpu_number".into(), 4.into());
        let mut s = Sample::new("cpu", SampleType::Cumulative, "ns", 120e9, "host-a", at())
            .expect("ok")
            .with_monotonic_time(12_345_000_000_000)
            .with_metadata(meta);
        s.project_id = Some("p".into());
        let json = serde_json::to_string(&s).expect("serialize");
        assert!(json.contains(r#""type":"cumulative""#), "{json}");
        assert!(
            json.contains(r#""timestamp":"2026-11-22T10:00:00.000000001Z""#),
            "{json}"
        );
        let back: Sample = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, s);
    }

    #[test]
    fn decoding_refuses_out_of_range_volume_and_unknown_type() {
        let ok = r#"{"id":"6f1c5a52-8a0e-4d4a-9a43-0b1d9f0b6a11","name":"cpu","type":"gauge","unit":"%","volume":1,"resource_id":"h","timestamp":"2026-11-22T10:00:00Z","source":"hb"}"#;
        serde_json::from_str::<Sample>(ok).expect("valid sample");
        let huge = ok.replace(r#""volume":1"#, r#""volume":1e400"#);
        assert!(serde_json::from_str::<Sample>(&huge).is_err());
        let bad_type = ok.replace("gauge", "counter");
        let err = serde_json::from_str::<Sample>(&bad_type).unwrap_err();
        assert!(
            err.to_string().contains("unknown variant `counter`"),
            "{err}"
        );
        assert_eq!(
            "counter".parse::<SampleType>().unwrap_err().to_string(),
            "unknown sample type `counter` (available: gauge, delta, cumulative)"
        );
    }
}
