//! The shape of pipeline.yaml as written, with the source position of every value. Unknown
//! keys are ignored here and reported, all of them, by [`super::keys`].

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::Seconds;

/// A value with its position in the file.
pub type At<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
pub struct RawConfig {
    #[serde(default)]
    pub transport: Option<At<String>>,
    #[serde(default)]
    pub secret_file: Option<At<String>>,
    #[serde(default)]
    pub spool: Option<At<RawSpool>>,
    #[serde(default)]
    pub dead_letter_dir: Option<At<String>>,
    #[serde(default)]
    pub coordination: Option<At<RawCoordination>>,
    #[serde(default)]
    pub notifications: Option<At<RawNotifications>>,
    #[serde(default)]
    pub management: Option<At<RawManagement>>,
    pub sources: At<Vec<RawSource>>,
    pub sinks: At<Vec<RawSink>>,
}

#[derive(Debug, Deserialize)]
pub struct RawSource {
    pub name: At<String>,
    /// A duration (see [`Seconds`]) so that `1.5` and `-1` get a message about intervals.
    pub interval: At<Seconds>,
    pub meters: At<Vec<At<String>>>,
    pub sinks: At<Vec<At<String>>>,
}

#[derive(Debug, Deserialize)]
pub struct RawSink {
    pub name: At<String>,
    #[serde(default)]
    pub transformers: Option<At<Vec<At<serde_json::Value>>>>,
    #[serde(default)]
    pub batch: Option<At<RawBatch>>,
    pub publishers: At<Vec<At<String>>>,
}

#[derive(Debug, Deserialize)]
pub struct RawBatch {
    #[serde(default)]
    pub max_events: Option<At<u64>>,
    #[serde(default)]
    pub max_bytes: Option<At<u64>>,
    #[serde(default)]
    pub timeout: Option<At<Seconds>>,
    #[serde(default)]
    pub buffer_events: Option<At<u64>>,
    #[serde(default)]
    pub request_concurrency: Option<At<u64>>,
}

#[derive(Debug, Deserialize)]
pub struct RawNotifications {
    #[serde(default)]
    pub exchanges: Option<At<Vec<At<String>>>>,
    #[serde(default)]
    pub topics: Option<At<Vec<At<String>>>>,
    #[serde(default)]
    pub meters: Option<At<String>>,
    #[serde(default)]
    pub events: Option<At<String>>,
    #[serde(default)]
    pub event_sinks: Option<At<Vec<At<String>>>>,
    #[serde(default)]
    pub unmatched_events: Option<At<String>>,
}

#[derive(Debug, Deserialize)]
pub struct RawCoordination {
    pub backend_url: At<String>,
    #[serde(default)]
    pub group: Option<At<String>>,
    #[serde(default)]
    pub heartbeat: Option<At<Seconds>>,
    #[serde(default)]
    pub timeout: Option<At<Seconds>>,
}

#[derive(Debug, Deserialize)]
pub struct RawManagement {
    #[serde(default)]
    pub listen: Option<At<String>>,
    #[serde(default)]
    pub token_file: Option<At<String>>,
    #[serde(default)]
    pub drain_timeout: Option<At<Seconds>>,
}

#[derive(Debug, Deserialize)]
pub struct RawSpool {
    #[serde(default)]
    pub dir: Option<At<String>>,
    #[serde(default)]
    pub max_bytes: Option<At<u64>>,
}

/// Line and column of a spanned value, when the parser recorded them.
pub fn position<T>(v: &At<T>) -> Option<(u64, u64)> {
    let loc = v.referenced;
    (loc.line() > 0).then(|| (loc.line(), loc.column()))
}
