//! `sinks:`: each sink's publishers, transformers and batching, validated as the sink will
//! build them.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use super::raw::{At, RawBatch, RawSink};
use super::{Config, ConfigErrors, Validator};
use crate::publisher::PublisherSpec;
use crate::sink::BatchConfig;
use crate::transform::{Transformer, TransformerConfig};

/// A sink: transformers applied in order, batching, and a group of publishers.
#[derive(Debug, Clone, PartialEq)]
pub struct Sink {
    /// Unique name.
    pub name: String,
    /// Applied in order to every sample routed to the sink (validated).
    pub transformers: Vec<TransformerConfig>,
    /// When batches go to the publishers, and how much the sink may hold.
    pub batch: BatchConfig,
    /// Where its samples are written.
    pub publishers: Vec<PublisherSpec>,
}

impl Sink {
    /// Why the sink cannot be an event sink (`notifications.event_sinks`), if it cannot.
    pub fn refuses_events(&self) -> Option<String> {
        self.publishers.iter().find_map(|p| match p {
            PublisherSpec::File(f) => Some(format!(
                "sink `{}` cannot take events: its publisher file://{} writes samples only \
                 (events go to influxdb and archive publishers)",
                self.name,
                f.path.display()
            )),
            _ => None,
        })
    }

    /// The sink as `GET /plugins/config` shows it: the keys of pipeline.yaml, publisher URLs
    /// as logs show them (secrets never: only the names of the variables holding them).
    pub fn to_json(&self) -> serde_json::Value {
        let transformers: Vec<serde_json::Value> = self
            .transformers
            .iter()
            .map(|t| serde_json::json!({"name": t.name, "parameters": t.parameters}))
            .collect();
        let b = &self.batch;
        serde_json::json!({
            "name": self.name,
            "publishers": self.publishers.iter().map(PublisherSpec::describe).collect::<Vec<_>>(),
            "transformers": transformers,
            "batch": {
                "max_events": b.max_events,
                "max_bytes": b.max_bytes,
                "timeout": b.timeout.as_secs_f64(),
                "buffer_events": b.buffer_events,
                "request_concurrency": b.request_concurrency,
            },
        })
    }
}

impl Config {
    /// Validates `text` as one sink, exactly as pipeline.yaml's `key` (`sinks[2]`) would
    /// be; `label` names the text in errors (a request body), relative paths resolve beside
    /// this configuration's file.
    pub fn parse_sink(&self, text: &str, label: &Path, key: &str) -> Result<Sink, ConfigErrors> {
        let mut errors = super::keys::unknown_in_sink(text, label, key);
        let raw: RawSink = match super::parse_yaml(text, label) {
            Ok(raw) => raw,
            Err(mut e) => {
                e.key = match e.key.as_str() {
                    "" => key.to_owned(),
                    inner => format!("{key}.{inner}"),
                };
                errors.push(e);
                return Err(super::in_file_order(errors));
            }
        };
        let mut v = Validator {
            path: label,
            errors,
            overrides: &[],
        };
        let base = self.path.parent().unwrap_or(Path::new("."));
        let sink = v.sink(&raw, key, base);
        if v.errors.is_empty() {
            Ok(sink)
        } else {
            Err(super::in_file_order(v.errors))
        }
    }
}

impl Validator<'_> {
    pub(super) fn sinks(&mut self, sinks: &At<Vec<RawSink>>, base: &Path) -> Vec<Sink> {
        if sinks.value.is_empty() {
            self.refuse(sinks, "sinks", "at least one sink is needed");
        }
        let mut seen: HashMap<&str, u64> = HashMap::new();
        let mut out = Vec::new();
        for (i, sink) in sinks.value.iter().enumerate() {
            let key = format!("sinks[{i}]");
            self.unique(&mut seen, &sink.name, &format!("{key}.name"), "sink");
            out.push(self.sink(sink, &key, base));
        }
        out
    }

    /// One sink, its keys under `key` (`sinks[2]`).
    pub(super) fn sink(&mut self, sink: &RawSink, key: &str, base: &Path) -> Sink {
        if sink.publishers.value.is_empty() {
            let msg = format!("sink `{}` needs at least one publisher", sink.name.value);
            self.refuse(&sink.publishers, format!("{key}.publishers"), msg);
        }
        let mut publishers = Vec::new();
        for (j, url) in sink.publishers.value.iter().enumerate() {
            match PublisherSpec::parse(&url.value, base) {
                Ok(spec) => publishers.push(spec),
                Err(e) => self.refuse(url, format!("{key}.publishers[{j}]"), e.to_string()),
            }
        }
        let transformers = self.transformers(sink, key);
        let batch = self.batch(sink.batch.as_ref(), key);
        Sink {
            name: sink.name.value.clone(),
            transformers,
            batch,
            publishers,
        }
    }

    /// Each entry checked as the sink will build it, so that a bad one refuses start-up.
    fn transformers(&mut self, sink: &RawSink, key: &str) -> Vec<TransformerConfig> {
        let mut out = Vec::new();
        let Some(list) = &sink.transformers else {
            return out;
        };
        for (j, entry) in list.value.iter().enumerate() {
            let key = format!("{key}.transformers[{j}]");
            let config: TransformerConfig = match serde_json::from_value(entry.value.clone()) {
                Ok(config) => config,
                Err(e) => {
                    let msg = format!("expected {{name, parameters}}: {e}");
                    self.refuse(entry, key, msg);
                    continue;
                }
            };
            match Transformer::new(&config) {
                Ok(_) => out.push(config),
                Err(e) => self.refuse(entry, key, e.to_string()),
            }
        }
        out
    }

    fn batch(&mut self, batch: Option<&At<RawBatch>>, key: &str) -> BatchConfig {
        let mut out = BatchConfig::default();
        let Some(batch) = batch else {
            return out;
        };
        let b = &batch.value;
        let whole = |v: &At<u64>| usize::try_from(v.value).unwrap_or(usize::MAX);
        if let Some(v) = &b.max_events {
            if v.value == 0 {
                self.refuse(v, format!("{key}.batch.max_events"), "must be at least 1");
            }
            out.max_events = whole(v).max(1);
            out.buffer_events = out.max_events.saturating_mul(4);
        }
        if let Some(v) = &b.max_bytes {
            if v.value == 0 {
                self.refuse(v, format!("{key}.batch.max_bytes"), "must be at least 1");
            }
            out.max_bytes = whole(v).max(1);
        }
        if let Some(v) = &b.timeout {
            match v.value.duration() {
                Ok(d) if d <= Duration::from_secs(3600) => out.timeout = d,
                Ok(_) => self.refuse(v, format!("{key}.batch.timeout"), "must be at most 1h"),
                Err(msg) => self.refuse(v, format!("{key}.batch.timeout"), msg),
            }
        }
        if let Some(v) = &b.buffer_events {
            if whole(v) < out.max_events {
                let msg = format!(
                    "must be at least max_events ({}): a sink must hold one full batch",
                    out.max_events
                );
                self.refuse(v, format!("{key}.batch.buffer_events"), msg);
            }
            out.buffer_events = whole(v).max(out.max_events);
        }
        if let Some(v) = &b.request_concurrency {
            if v.value == 0 || v.value > 64 {
                let msg = format!("must be between 1 and 64 (got {})", v.value);
                self.refuse(v, format!("{key}.batch.request_concurrency"), msg);
            }
            out.request_concurrency = whole(v).clamp(1, 64);
        }
        out
    }
}
