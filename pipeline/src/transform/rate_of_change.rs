//! `rate_of_change`: the per-second rate of a series (e.g. cumulative `cpu` ns → `cpu.util` %).
//!
//! ```yaml
//! - name: rate_of_change
//!   parameters:
//!     target: {name: cpu.util, unit: "%", type: gauge, max: 100,
//!              scale: "100 / (1e9 * (resource_metadata.cpu_number or 1))"}
//!     # or, instead of target.name: source: {map_from: '...'} + target: {map_to: '...'}
//! ```
//!
//! Series are keyed by (meter name, resource id). The first sample of a series only primes it.
//! dt is the monotonic-clock difference when both samples carry one, else the timestamp
//! difference; a sample older than the previous one is dropped (the previous one is kept);
//! dt = 0 gives a rate of 0. A cumulative counter that went down was reset: the new value is
//! the growth since the reset. Gauge and delta inputs just subtract. The rate is multiplied by
//! `scale` (a number, or an expression over the new sample's `volume` and metadata), then
//! capped by `max`. The output is a gauge unless `target.type` says otherwise; its unit is
//! `target.unit` (default: the input's). With `source.map_from`, samples whose name does not
//! match pass through unchanged. Inputs are consumed.

use std::collections::HashMap;

use hb_sample::{Sample, SampleType};
use serde_json::Value;

use super::scaling::{Scale, Scaling};
use super::{Counters, ParamError, Point};

/// The `rate_of_change` transformer.
#[derive(Debug)]
pub struct RateOfChange {
    scaling: Scaling,
    /// Previous sample of each (meter name, resource id).
    /// By meter name, then resource: looked up with borrowed strings, allocated on first sight.
    previous: HashMap<String, HashMap<String, Point>>,
    pub(super) counters: Counters,
}

impl RateOfChange {
    pub(super) fn new(parameters: &Value) -> Result<Self, ParamError> {
        Ok(Self {
            scaling: Scaling::new(parameters)?,
            previous: HashMap::new(),
            counters: Counters::default(),
        })
    }

    /// Forgets the series of the resources `stale` selects.
    pub(super) fn forget(&mut self, stale: &dyn Fn(&str) -> bool) {
        for series in self.previous.values_mut() {
            series.retain(|resource, _| !stale(resource));
        }
        self.previous.retain(|_, series| !series.is_empty());
    }

    pub(super) fn handle(&mut self, sample: Sample, out: &mut Vec<Sample>) {
        let Some(name) = self.scaling.target_name(&sample.name) else {
            out.push(sample);
            return;
        };
        let point = Point::of(&sample);
        // One lookup per key in the usual case (a series seen before).
        let series = match self.previous.get_mut(&sample.name) {
            Some(series) => series,
            None => self.previous.entry(sample.name.clone()).or_default(),
        };
        let Some(prev) = series.get_mut(&sample.resource_id) else {
            series.insert(sample.resource_id.clone(), point);
            return;
        };
        let dt = prev.seconds_until(&sample);
        if dt < 0.0 {
            self.counters.out_of_order += 1;
            return;
        }
        let growth = if sample.kind == SampleType::Cumulative && point.volume < prev.volume {
            point.volume
        } else {
            point.volume - prev.volume
        };
        *prev = point;
        let rate = if dt == 0.0 { 0.0 } else { growth / dt };
        let volume = match &self.scaling.scale {
            Scale::One => Ok(rate),
            Scale::Factor(f) => Ok(rate * f),
            Scale::Expr(e) => e.eval_sample(&sample).map(|f| rate * f),
        };
        match volume {
            Ok(v) => {
                let c = &mut self.counters;
                self.scaling
                    .emit(sample, name, v, SampleType::Gauge, c, out);
            }
            Err(e) => self.counters.count_eval(&e),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tests::{assert_close, at, run, sample, transformer};
    use super::*;

    const CPU_UTIL: &str = "100 / (1e9 * (resource_metadata.cpu_number or 1))";

    fn cpu(kind: SampleType, volume: f64, secs: i64, cpu_number: Option<Value>) -> Sample {
        let mut s = sample("cpu", kind, "ns", volume, secs);
        if let Some(n) = cpu_number {
            s.resource_metadata.insert("cpu_number".into(), n);
        }
        s
    }

    /// What a case is called, its input, what it should give.
    type Case = (&'static str, Value, Vec<Sample>, Vec<f64>);

    #[test]
    fn reference_rates() {
        use SampleType::{Cumulative, Gauge};
        let target = json!({"target": {"name": "cpu.util", "unit": "%", "type": "gauge",
                                        "scale": CPU_UTIL}});
        let four = Some(json!(4));
        let mono = |s: Sample, secs: u64| s.with_monotonic_time(secs * 1_000_000_000);
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            ("cumulative, 4 cpus", target.clone(),
             vec![cpu(Cumulative, 120e9, 0, four.clone()), cpu(Cumulative, 180e9, 60, four.clone())],
             vec![25.0]),
            ("cumulative, 2 cpus", target.clone(),
             vec![cpu(Cumulative, 120e9, 0, Some(json!(2))), cpu(Cumulative, 180e9, 60, Some(json!(2)))],
             vec![50.0]),
            ("counter reset: the new value is the growth", target.clone(),
             vec![cpu(Cumulative, 180e9, 0, four.clone()), cpu(Cumulative, 120e9, 60, four.clone())],
             vec![50.0]),
            ("a gauge going down gives a negative rate", target.clone(),
             vec![cpu(Gauge, 180e9, 0, four.clone()), cpu(Gauge, 120e9, 60, four.clone())],
             vec![-25.0]),
            ("monotonic dt (10 s) beats timestamps (12345 s)", target.clone(),
             vec![mono(cpu(Cumulative, 125e9, 0, four.clone()), 1000),
                  mono(cpu(Cumulative, 165e9, 12345, four.clone()), 1010)],
             vec![100.0]),
            ("monotonic clock restarted (reboot): timestamps are used", target.clone(),
             vec![mono(cpu(Cumulative, 500e9, 0, four.clone()), 90_000),
                  mono(cpu(Cumulative, 80e9, 20, four.clone()), 25)],
             vec![100.0]),
            ("cpu_number missing: `or 1`", target.clone(),
             vec![cpu(Cumulative, 120e9, 0, None), cpu(Cumulative, 180e9, 60, None)],
             vec![100.0]),
            ("cpu_number 0: `or 1`", target.clone(),
             vec![cpu(Cumulative, 120e9, 0, Some(json!(0))), cpu(Cumulative, 180e9, 60, Some(json!(0)))],
             vec![100.0]),
            ("cpu_number as a numeric string", target.clone(),
             vec![cpu(Cumulative, 120e9, 0, Some(json!("4"))), cpu(Cumulative, 180e9, 60, Some(json!("4")))],
             vec![25.0]),
            ("max caps", json!({"target": {"name": "cpu.util", "scale": CPU_UTIL, "max": 60}}),
             vec![cpu(Cumulative, 120e9, 0, None), cpu(Cumulative, 180e9, 60, None)],
             vec![60.0]),
            ("dt = 0 gives 0", target.clone(),
             vec![cpu(Cumulative, 120e9, 0, four.clone()), cpu(Cumulative, 180e9, 0, four.clone())],
             vec![0.0]),
            ("older sample dropped, previous kept", target.clone(),
             vec![cpu(Cumulative, 120e9, 0, four.clone()), cpu(Cumulative, 100e9, -10, four.clone()),
                  cpu(Cumulative, 180e9, 60, four.clone())],
             vec![25.0]),
            ("each sample is the base of the next", target.clone(),
             vec![cpu(Cumulative, 0.0, 0, four.clone()), cpu(Cumulative, 40e9, 10, four.clone()),
                  cpu(Cumulative, 60e9, 20, four.clone())],
             vec![100.0, 50.0]),
            ("numeric scale", json!({"target": {"scale": 0.5}}),
             vec![cpu(Cumulative, 10.0, 0, None), cpu(Cumulative, 30.0, 4, None)],
             vec![2.5]),
            ("no scale", json!({}),
             vec![cpu(Cumulative, 10.0, 0, None), cpu(Cumulative, 30.0, 4, None)],
             vec![5.0]),
        ];
        for (what, params, inputs, want) in cases {
            let mut t = transformer("rate_of_change", params);
            let got = run(&mut t, inputs);
            assert_eq!(got.len(), want.len(), "{what}: {got:?}");
            for (g, w) in got.iter().zip(&want) {
                assert_close(g.volume(), *w, what);
            }
        }
    }

    #[test]
    fn output_sample_and_counters() {
        let params = json!({"target": {"name": "cpu.util", "unit": "%", "scale": CPU_UTIL}});
        let mut t = transformer("rate_of_change", params);
        let mut first = cpu(SampleType::Cumulative, 120e9, 0, Some(json!(4)));
        first.project_id = Some("p".into());
        let mut second = first.clone();
        second.set_volume(180e9).unwrap();
        second.timestamp = at(60);
        let older = cpu(SampleType::Cumulative, 1.0, -1, None);
        let got = run(&mut t, vec![first, older, second.clone()]);
        assert_eq!(got.len(), 1);
        let s = &got[0];
        assert_eq!(
            (s.name.as_str(), s.unit.as_str(), s.kind),
            ("cpu.util", "%", SampleType::Gauge)
        );
        assert_ne!(s.id, second.id);
        assert_eq!(s.timestamp, second.timestamp);
        assert_eq!(s.resource_id, "host-a");
        assert_eq!(s.project_id.as_deref(), Some("p"));
        assert_eq!(s.resource_metadata, second.resource_metadata);
        assert_eq!(
            t.counters(),
            &Counters {
                out_of_order: 1,
                ..Counters::default()
            }
        );
    }

    #[test]
    fn series_are_per_meter_and_resource_and_map_from_renames() {
        let params = json!({"source": {"map_from": r"disk\.(read|write)\.bytes"},
                            "target": {"map_to": "disk.$1.bytes.rate", "unit": "B/s"}});
        let mut t = transformer("rate_of_change", params);
        let mut other_host = sample("disk.read.bytes", SampleType::Cumulative, "B", 0.0, 0);
        other_host.resource_id = "host-b".into();
        let got = run(
            &mut t,
            vec![
                sample("disk.read.bytes", SampleType::Cumulative, "B", 100.0, 0),
                sample("disk.write.bytes", SampleType::Cumulative, "B", 0.0, 0),
                other_host,
                sample("cpu", SampleType::Cumulative, "ns", 5.0, 0),
                sample("disk.read.bytes", SampleType::Cumulative, "B", 300.0, 10),
                sample("disk.write.bytes", SampleType::Cumulative, "B", 50.0, 10),
            ],
        );
        let got: Vec<_> = got
            .iter()
            .map(|s| (s.name.as_str(), s.unit.as_str(), s.volume()))
            .collect();
        assert_eq!(
            got,
            [
                ("cpu", "ns", 5.0),
                ("disk.read.bytes.rate", "B/s", 20.0),
                ("disk.write.bytes.rate", "B/s", 5.0),
            ]
        );
    }

    #[test]
    fn evaluation_failures_are_counted_and_the_series_moves_on() {
        let params = json!({"target": {"scale": "1 / resource_metadata.n"}});
        let mut t = transformer("rate_of_change", params);
        let with_n = |v, secs, n: Option<i64>| {
            let mut s = sample("x", SampleType::Cumulative, "B", v, secs);
            if let Some(n) = n {
                s.resource_metadata.insert("n".into(), n.into());
            }
            s
        };
        let got = run(
            &mut t,
            vec![
                with_n(0.0, 0, Some(1)),
                with_n(10.0, 10, None),
                with_n(20.0, 20, Some(0)),
                with_n(40.0, 30, Some(2)),
            ],
        );
        assert_eq!(got.len(), 1);
        assert_close(got[0].volume(), 1.0, "20 over 10 s, halved");
        let c = t.counters();
        assert_eq!((c.missing_operand_value, c.division_by_zero), (1, 1));
        assert_eq!(c.dropped(), 2);
    }
}
