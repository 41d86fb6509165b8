//! `aggregator`: folds the samples of a series into one sample per `size` or `retention_time`.
//!
//! ```yaml
//! - name: aggregator
//!   parameters:
//!     size: 6             # emit a group once it holds this many samples
//!     retention_time: 60  # seconds; Transformer::flush emits groups at least this old
//! ```
//!
//! Groups are keyed by (meter name, resource id, unit, type). `size` defaults to 1 when
//! `retention_time` is absent and to unbounded when it is given (so that `retention_time` alone
//! aggregates by time). A group's age is measured from the timestamp of its oldest sample. The
//! output keeps the group's name, unit and type: a gauge gives the average, a delta the sum, a
//! cumulative the volume of the newest sample; it carries the newest sample's timestamp,
//! metadata and owner, and a fresh id. Inputs are consumed. Groups are emitted in the order of
//! their key.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use hb_sample::{Sample, SampleType};
use serde::Deserialize;
use serde_json::Value;

use super::{Counters, ParamError, derive, parse_params};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a map")]
struct Params {
    size: Option<u64>,
    retention_time: Option<f64>,
}

/// (name, resource id, unit, type).
type Key = (String, String, String, &'static str);

#[derive(Debug)]
struct Group {
    count: u64,
    sum: f64,
    oldest: DateTime<Utc>,
    /// The newest sample so far (the last to arrive among equal timestamps).
    newest: Sample,
}

/// The `aggregator` transformer.
#[derive(Debug)]
pub struct Aggregator {
    size: Option<u64>,
    retention_time: Option<f64>,
    groups: BTreeMap<Key, Group>,
    pub(super) counters: Counters,
}

impl Aggregator {
    pub(super) fn new(parameters: &Value) -> Result<Self, ParamError> {
        let Params {
            size,
            retention_time,
        } = parse_params(parameters)?;
        if size == Some(0) {
            return Err(ParamError::at("size", "must be at least 1"));
        }
        if retention_time
            .is_some_and(|r| !(r > 0.0 && r <= crate::config::seconds::MAX.as_secs_f64()))
        {
            return Err(ParamError::at(
                "retention_time",
                "must be a positive number of seconds (at most 365 days)",
            ));
        }
        Ok(Self {
            size: size.or(if retention_time.is_none() {
                Some(1)
            } else {
                None
            }),
            retention_time,
            groups: BTreeMap::new(),
            counters: Counters::default(),
        })
    }

    pub(super) fn handle(&mut self, sample: Sample, out: &mut Vec<Sample>) {
        let key = (
            sample.name.clone(),
            sample.resource_id.clone(),
            sample.unit.clone(),
            sample.kind.as_str(),
        );
        let group = self.groups.entry(key.clone()).or_insert_with(|| Group {
            count: 0,
            sum: 0.0,
            oldest: sample.timestamp,
            newest: sample.clone(),
        });
        group.count += 1;
        group.sum += sample.volume();
        group.oldest = group.oldest.min(sample.timestamp);
        if sample.timestamp >= group.newest.timestamp {
            group.newest = sample;
        }
        if self.size.is_some_and(|size| group.count >= size)
            && let Some(group) = self.groups.remove(&key)
        {
            self.emit(group, out);
        }
    }

    /// Emits, now, the groups of the resources `stale` selects.
    pub(super) fn forget(&mut self, stale: &dyn Fn(&str) -> bool, out: &mut Vec<Sample>) {
        let due: Vec<Key> = self
            .groups
            .keys()
            .filter(|k| stale(&k.1))
            .cloned()
            .collect();
        for key in due {
            if let Some(group) = self.groups.remove(&key) {
                self.emit(group, out);
            }
        }
    }

    pub(super) fn flush(&mut self, now: DateTime<Utc>, out: &mut Vec<Sample>) {
        let Some(retention) = self.retention_time else {
            return;
        };
        let due: Vec<Key> = self
            .groups
            .iter()
            .filter(|(_, g)| (now - g.oldest).as_seconds_f64() >= retention)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            if let Some(group) = self.groups.remove(&key) {
                self.emit(group, out);
            }
        }
    }

    fn emit(&mut self, group: Group, out: &mut Vec<Sample>) {
        let Group {
            count, sum, newest, ..
        } = group;
        let volume = match newest.kind {
            SampleType::Gauge => sum / count as f64,
            SampleType::Delta => sum,
            SampleType::Cumulative => newest.volume(),
        };
        let (name, kind) = (newest.name.clone(), newest.kind);
        out.extend(derive(newest, name, kind, None, volume, &mut self.counters));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tests::{assert_close, at, run, sample, transformer};
    use super::*;

    fn s(name: &str, kind: SampleType, volume: f64, secs: i64) -> Sample {
        sample(name, kind, "B", volume, secs)
    }

    /// What a case is called, its input, what it should give.
    type Case = (
        &'static str,
        Value,
        Vec<Sample>,
        Vec<(&'static str, f64, i64)>,
    );

    #[test]
    fn size_flushes() {
        use SampleType::{Cumulative, Delta, Gauge};
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            ("default size 1: one output per input", json!({}),
             vec![s("g", Gauge, 1.0, 0), s("g", Gauge, 3.0, 1)], vec![("g", 1.0, 0), ("g", 3.0, 1)]),
            ("gauge average", json!({"size": 3}),
             vec![s("g", Gauge, 1.0, 0), s("g", Gauge, 2.0, 1), s("g", Gauge, 6.0, 2)], vec![("g", 3.0, 2)]),
            ("delta sum", json!({"size": 2}),
             vec![s("d", Delta, 1.5, 0), s("d", Delta, 2.0, 1)], vec![("d", 3.5, 1)]),
            ("cumulative keeps the newest volume", json!({"size": 3}),
             vec![s("c", Cumulative, 10.0, 0), s("c", Cumulative, 30.0, 2), s("c", Cumulative, 20.0, 1)],
             vec![("c", 30.0, 2)]),
            ("incomplete groups wait", json!({"size": 2}),
             vec![s("g", Gauge, 1.0, 0), s("h", Gauge, 1.0, 0)], vec![]),
            ("groups are per meter", json!({"size": 2}),
             vec![s("g", Gauge, 1.0, 0), s("h", Gauge, 5.0, 0), s("g", Gauge, 3.0, 1)], vec![("g", 2.0, 1)]),
            ("groups are per type", json!({"size": 2}),
             vec![s("g", Gauge, 1.0, 0), s("g", Delta, 5.0, 0), s("g", Gauge, 3.0, 1)], vec![("g", 2.0, 1)]),
        ];
        for (what, params, inputs, want) in cases {
            let mut t = transformer("aggregator", params);
            let got = run(&mut t, inputs);
            assert_eq!(got.len(), want.len(), "{what}: {got:?}");
            for (g, (name, volume, secs)) in got.iter().zip(&want) {
                assert_eq!((g.name.as_str(), g.timestamp), (*name, at(*secs)), "{what}");
                assert_close(g.volume(), *volume, what);
            }
        }
    }

    #[test]
    fn groups_per_resource_and_unit() {
        let mut t = transformer("aggregator", json!({"size": 2}));
        let mut other_resource = s("g", SampleType::Gauge, 100.0, 0);
        other_resource.resource_id = "host-b".into();
        let mut other_unit = s("g", SampleType::Gauge, 100.0, 0);
        other_unit.unit = "KB".into();
        let got = run(
            &mut t,
            vec![
                s("g", SampleType::Gauge, 1.0, 0),
                other_resource,
                other_unit,
                s("g", SampleType::Gauge, 2.0, 0),
            ],
        );
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].resource_id.as_str(), got[0].unit.as_str()),
            ("host-a", "B")
        );
        assert_close(got[0].volume(), 1.5, "average of 1 and 2");
    }

    #[test]
    fn retention_time_flush() {
        let mut t = transformer("aggregator", json!({"retention_time": 60}));
        let mut newest = s("g", SampleType::Gauge, 4.0, 50);
        newest.resource_metadata.insert("k".into(), json!("v"));
        let got = run(
            &mut t,
            vec![
                s("g", SampleType::Gauge, 2.0, 10),
                newest.clone(),
                s("h", SampleType::Delta, 1.0, 40),
                s("h", SampleType::Delta, 1.0, 45),
            ],
        );
        assert!(got.is_empty(), "without size, only flush emits: {got:?}");

        let mut out = Vec::new();
        t.flush(at(69), &mut out);
        assert!(out.is_empty(), "g is 59 s old: {out:?}");
        t.flush(at(70), &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        let g = &out[0];
        assert_eq!((g.name.as_str(), g.timestamp), ("g", at(50)));
        assert_close(g.volume(), 3.0, "average of 2 and 4");
        assert_eq!(g.resource_metadata, newest.resource_metadata);
        assert_ne!(g.id, newest.id);

        out.clear();
        t.flush(at(100), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].name.as_str(), out[0].timestamp), ("h", at(45)));
        assert_close(out[0].volume(), 2.0, "sum of deltas");
        out.clear();
        t.flush(at(1000), &mut out);
        assert!(out.is_empty(), "flushed groups are gone");
    }

    #[test]
    fn size_and_retention_together() {
        let mut t = transformer("aggregator", json!({"size": 2, "retention_time": 5}));
        let got = run(
            &mut t,
            vec![
                s("g", SampleType::Gauge, 1.0, 0),
                s("g", SampleType::Gauge, 3.0, 1),
            ],
        );
        assert_eq!(got.len(), 1, "size reached before retention");
        run(&mut t, vec![s("g", SampleType::Gauge, 7.0, 2)]);
        let mut out = Vec::new();
        t.flush(at(7), &mut out);
        assert_eq!(out.len(), 1);
        assert_close(out[0].volume(), 7.0, "lone sample");
    }
}
