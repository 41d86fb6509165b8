//! `delta`: the change since the previous sample of a series (Ceilometer's DeltaTransformer).
//!
//! ```yaml
//! - name: delta
//!   parameters:
//!     target: {name: disk.read.bytes.delta}   # optional; default: the input's name
//!     growth_only: true                        # optional; default false
//! ```
//!
//! Series are keyed by (meter name, resource id). The first sample of a series only primes it;
//! each later one gives a `delta` sample of the same unit. With `growth_only`, a negative delta
//! is skipped (counted) but the series still moves on to the new sample. A sample older than the
//! previous one (by the monotonic clock when both carry it, else by timestamp) is dropped
//! (counted) and the previous one kept.

use std::collections::HashMap;

use hb_sample::{Sample, SampleType};
use serde::Deserialize;
use serde_json::Value;

use super::{Counters, ParamError, Point, derive, parse_params};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a map")]
struct Params {
    #[serde(default)]
    target: Target,
    #[serde(default)]
    growth_only: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a map")]
struct Target {
    name: Option<String>,
}

/// The `delta` transformer.
#[derive(Debug)]
pub struct Delta {
    name: Option<String>,
    growth_only: bool,
    /// Previous sample of each (meter name, resource id).
    previous: HashMap<(String, String), Point>,
    pub(super) counters: Counters,
}

impl Delta {
    pub(super) fn new(parameters: &Value) -> Result<Self, ParamError> {
        let Params {
            target,
            growth_only,
        } = parse_params(parameters)?;
        Ok(Self {
            name: target.name,
            growth_only,
            previous: HashMap::new(),
            counters: Counters::default(),
        })
    }

    /// Forgets the series of the resources `stale` selects.
    pub(super) fn forget(&mut self, stale: &dyn Fn(&str) -> bool) {
        self.previous.retain(|(_, resource), _| !stale(resource));
    }

    pub(super) fn handle(&mut self, sample: Sample, out: &mut Vec<Sample>) {
        let point = Point::of(&sample);
        let key = (sample.name.clone(), sample.resource_id.clone());
        let Some(prev) = self.previous.get_mut(&key) else {
            self.previous.insert(key, point);
            return;
        };
        if prev.seconds_until(&sample) < 0.0 {
            self.counters.out_of_order += 1;
            return;
        }
        let delta = point.volume - prev.volume;
        *prev = point;
        if self.growth_only && delta < 0.0 {
            self.counters.growth_only_skipped += 1;
            return;
        }
        let name = self.name.clone().unwrap_or_else(|| sample.name.clone());
        let kind = SampleType::Delta;
        out.extend(derive(sample, name, kind, None, delta, &mut self.counters));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tests::{assert_close, run, sample, transformer};
    use super::*;

    fn bytes(volume: f64, secs: i64) -> Sample {
        sample("disk.read.bytes", SampleType::Cumulative, "B", volume, secs)
    }

    /// What a case is called, its input, what it should give.
    type Case = (&'static str, Value, Vec<Sample>, Vec<f64>, Counters);

    #[test]
    fn deltas() {
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            ("first sample only primes", json!({}), vec![bytes(10.0, 0)], vec![], Counters::default()),
            ("successive deltas", json!({}),
             vec![bytes(10.0, 0), bytes(25.0, 10), bytes(26.5, 20)], vec![15.0, 1.5], Counters::default()),
            ("negative delta kept without growth_only", json!({}),
             vec![bytes(10.0, 0), bytes(4.0, 10)], vec![-6.0], Counters::default()),
            ("growth_only skips a negative delta but moves on", json!({"growth_only": true}),
             vec![bytes(10.0, 0), bytes(4.0, 10), bytes(9.0, 20)], vec![5.0],
             Counters { growth_only_skipped: 1, ..Counters::default() }),
            ("equal timestamps give a delta", json!({}),
             vec![bytes(10.0, 0), bytes(12.0, 0)], vec![2.0], Counters::default()),
            ("older sample dropped, previous kept", json!({}),
             vec![bytes(10.0, 10), bytes(99.0, 5), bytes(30.0, 20)], vec![20.0],
             Counters { out_of_order: 1, ..Counters::default() }),
            ("monotonic clock decides the order", json!({}),
             vec![bytes(10.0, 10).with_monotonic_time(100), bytes(30.0, 5).with_monotonic_time(200)],
             vec![20.0], Counters::default()),
        ];
        for (what, params, inputs, want, counters) in cases {
            let mut t = transformer("delta", params);
            let got = run(&mut t, inputs);
            let volumes: Vec<f64> = got.iter().map(Sample::volume).collect();
            assert_eq!(volumes.len(), want.len(), "{what}: {volumes:?}");
            for (g, w) in volumes.iter().zip(&want) {
                assert_close(*g, *w, what);
            }
            assert_eq!(t.counters(), &counters, "{what}");
        }
    }

    #[test]
    fn output_is_a_delta_named_by_target() {
        let first = bytes(10.0, 0);
        let mut other = first.clone();
        other.resource_id = "host-b".into();
        let second = bytes(25.0, 10);
        for (params, name) in [
            (json!({}), "disk.read.bytes"),
            (
                json!({"target": {"name": "disk.read.delta"}}),
                "disk.read.delta",
            ),
        ] {
            let mut t = transformer("delta", params);
            let got = run(&mut t, vec![first.clone(), other.clone(), second.clone()]);
            assert_eq!(got.len(), 1, "the other resource is its own series");
            let s = &got[0];
            assert_eq!(
                (s.name.as_str(), s.kind, s.unit.as_str()),
                (name, SampleType::Delta, "B")
            );
            assert_eq!(
                (s.timestamp, s.resource_id.as_str()),
                (second.timestamp, "host-a")
            );
            assert_ne!(s.id, second.id);
        }
    }
}
