//! `unit_conversion`: scales and renames samples (Ceilometer's ScalingTransformer).
//!
//! ```yaml
//! - name: unit_conversion
//!   parameters:
//!     source: {map_from: 'disk\.(read|write)\.bytes'}   # optional: only matching names convert
//!     target: {map_to: 'disk.$1.kilobytes',             # or name: ...; default: the input's name
//!              unit: KB,                                # default: the input's unit
//!              type: gauge,                             # default: the input's type
//!              scale: 0.0009765625,                     # a factor, or an expression string
//!              max: 1e12}                               # optional cap
//! ```
//!
//! A numeric `scale` multiplies the volume; a string `scale` is an expression that gives the new
//! volume and may use `volume` and `resource_metadata.<key>` (e.g. `volume * 1.8 + 32`). `max`
//! caps the result. With `source.map_from`, the whole name must match it and `target.map_to`
//! rewrites it (`$1`, `${name}`, or Ceilometer's `\1`); other samples pass through unchanged.

use hb_sample::Sample;
use serde_json::Value;

use super::scaling::{Scale, Scaling};
use super::{Counters, ParamError};

/// The `unit_conversion` transformer.
#[derive(Debug)]
pub struct UnitConversion {
    scaling: Scaling,
    pub(super) counters: Counters,
}

impl UnitConversion {
    pub(super) fn new(parameters: &Value) -> Result<Self, ParamError> {
        Ok(Self {
            scaling: Scaling::new(parameters)?,
            counters: Counters::default(),
        })
    }

    pub(super) fn handle(&mut self, sample: Sample, out: &mut Vec<Sample>) {
        let Some(name) = self.scaling.target_name(&sample.name) else {
            out.push(sample);
            return;
        };
        let volume = match &self.scaling.scale {
            Scale::One => Ok(sample.volume()),
            Scale::Factor(f) => Ok(sample.volume() * f),
            Scale::Expr(e) => e.eval_sample(&sample),
        };
        match volume {
            Ok(v) => {
                let (kind, c) = (sample.kind, &mut self.counters);
                self.scaling.emit(sample, name, v, kind, c, out);
            }
            Err(e) => self.counters.count_eval(&e),
        }
    }
}

#[cfg(test)]
mod tests {
    use hb_sample::SampleType;
    use serde_json::json;

    use super::super::tests::{assert_close, run, sample, transformer};
    use super::*;

    /// What a case is called, its input, what it should give.
    type Case = (
        &'static str,
        Value,
        Sample,
        Option<(&'static str, &'static str, SampleType, f64)>,
    );

    #[test]
    fn conversions() {
        use SampleType::{Cumulative, Gauge};
        let disk = json!({"source": {"map_from": r"disk\.(read|write)\.bytes"},
                          "target": {"map_to": "disk.$1.kilobytes", "unit": "KB", "scale": 1.0 / 1024.0}});
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            ("map_from/map_to rename with a factor", disk.clone(),
             sample("disk.write.bytes", Cumulative, "B", 2048.0, 0),
             Some(("disk.write.kilobytes", "KB", Cumulative, 2.0))),
            ("ceilometer's \\1 spelling",
             json!({"source": {"map_from": r"disk\.(read|write)\.bytes"},
                    "target": {"map_to": r"disk.\1.kb"}}),
             sample("disk.read.bytes", Cumulative, "B", 7.0, 0),
             Some(("disk.read.kb", "B", Cumulative, 7.0))),
            ("not matching map_from: unchanged", disk.clone(),
             sample("disk.read.requests", Cumulative, "request", 5.0, 0),
             Some(("disk.read.requests", "request", Cumulative, 5.0))),
            ("map_from must match the whole name", disk.clone(),
             sample("disk.read.bytes.rate", Gauge, "B/s", 4096.0, 0),
             Some(("disk.read.bytes.rate", "B/s", Gauge, 4096.0))),
            ("expression scale gives the new volume",
             json!({"target": {"name": "temp.f", "unit": "F", "scale": "volume * 1.8 + 32"}}),
             sample("temp.c", Gauge, "C", 100.0, 0), Some(("temp.f", "F", Gauge, 212.0))),
            ("target.type",
             json!({"target": {"type": "gauge", "scale": 2}}),
             sample("x", Cumulative, "B", 3.0, 0), Some(("x", "B", Gauge, 6.0))),
            ("max caps",
             json!({"target": {"scale": 10, "max": 25}}),
             sample("x", Gauge, "B", 3.0, 0), Some(("x", "B", Gauge, 25.0))),
            ("no parameters: a copy",
             json!({}), sample("x", Gauge, "B", 3.0, 0), Some(("x", "B", Gauge, 3.0))),
            ("metadata in the expression",
             json!({"target": {"scale": "volume / resource_metadata.size"}}),
             sample("x", Gauge, "B", 3.0, 0), None),
            ("overflow is not finite",
             json!({"target": {"scale": 1e300}}),
             sample("x", Gauge, "B", 1e300, 0), None),
        ];
        for (what, params, input, want) in cases {
            let mut t = transformer("unit_conversion", params);
            let got = run(&mut t, vec![input.clone()]);
            match want {
                Some((name, unit, kind, volume)) => {
                    assert_eq!(got.len(), 1, "{what}");
                    let s = &got[0];
                    assert_eq!(
                        (s.name.as_str(), s.unit.as_str(), s.kind),
                        (name, unit, kind),
                        "{what}"
                    );
                    assert_close(s.volume(), volume, what);
                    assert_eq!(s.timestamp, input.timestamp, "{what}");
                    assert_eq!(s.resource_metadata, input.resource_metadata, "{what}");
                    assert_eq!(t.counters().dropped(), 0, "{what}");
                }
                None => {
                    assert!(got.is_empty(), "{what}: {got:?}");
                    assert_eq!(t.counters().dropped(), 1, "{what}");
                }
            }
        }
    }

    #[test]
    fn converted_samples_get_a_fresh_id_and_unmatched_keep_theirs() {
        let params = json!({"source": {"map_from": "a"}, "target": {"map_to": "b"}});
        let mut t = transformer("unit_conversion", params);
        let (a, c) = (
            sample("a", SampleType::Gauge, "B", 1.0, 0),
            sample("c", SampleType::Gauge, "B", 1.0, 0),
        );
        let got = run(&mut t, vec![a.clone(), c.clone()]);
        assert_eq!(got[0].name, "b");
        assert_ne!(got[0].id, a.id);
        assert_eq!(got[1], c);
    }

    #[test]
    fn missing_metadata_is_counted() {
        let mut t = transformer(
            "unit_conversion",
            json!({"target": {"scale": "volume / resource_metadata.size"}}),
        );
        let mut sized = sample("x", SampleType::Gauge, "B", 3.0, 0);
        sized.resource_metadata.insert("size".into(), json!(1.5));
        let got = run(
            &mut t,
            vec![sample("x", SampleType::Gauge, "B", 3.0, 0), sized],
        );
        assert_eq!(got.len(), 1);
        assert_close(got[0].volume(), 2.0, "3 / 1.5");
        assert_eq!(t.counters().missing_operand_value, 1);
    }
}
