//! `arithmetic`: a new meter computed from the latest samples of several meters of a resource.
//!
//! ```yaml
//! - name: arithmetic
//!   parameters:
//!     target:
//!       name: memory.util                                  # required
//!       unit: "%"                                          # required
//!       type: gauge                                        # default gauge
//!       expr: "100 * $(memory.usage) / $(memory.total)"    # required; at least one $(meter)
//! ```
//!
//! Every input passes through unchanged. The latest volume of each operand meter is cached per
//! resource; as soon as a resource has all of them, the derived sample is emitted (after the
//! input that completed it) with the timestamp, metadata and owner of the newest operand, and
//! that resource's operands are cleared. `resource_metadata.<key>` in `expr` reads the newest
//! operand's metadata. Division by zero, absent metadata and non-finite results give nothing
//! (counted).

use std::collections::HashMap;

use hb_sample::{Sample, SampleType};
use serde::Deserialize;
use serde_json::Value;

use super::expr::{Expr, Scope, Var, metadata_number};
use super::{Counters, ParamError, derive, parse_params};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a map")]
struct Params {
    target: Target,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a map")]
struct Target {
    name: String,
    unit: String,
    #[serde(rename = "type", default = "gauge")]
    kind: SampleType,
    expr: String,
}

fn gauge() -> SampleType {
    SampleType::Gauge
}

/// The `arithmetic` transformer.
#[derive(Debug)]
pub struct Arithmetic {
    name: String,
    unit: String,
    kind: SampleType,
    expr: Expr,
    /// The operand meters, in order of first appearance in `expr`.
    operands: Vec<String>,
    /// Per resource id, the latest sample of each operand (indexed like `operands`).
    cache: HashMap<String, Vec<Option<Sample>>>,
    pub(super) counters: Counters,
}

impl Arithmetic {
    pub(super) fn new(parameters: &Value) -> Result<Self, ParamError> {
        let Params { target } = parse_params(parameters)?;
        let expr = Expr::parse(&target.expr, Scope::Meters)
            .map_err(|e| ParamError::at("target.expr", e.to_string()))?;
        let operands = expr.meters();
        if operands.is_empty() {
            return Err(ParamError::at(
                "target.expr",
                "refers to no meter (write meters as $(memory.usage))",
            ));
        }
        if target.name.is_empty() {
            return Err(ParamError::at("target.name", "must not be empty"));
        }
        Ok(Self {
            name: target.name,
            unit: target.unit,
            kind: target.kind,
            expr,
            operands,
            cache: HashMap::new(),
            counters: Counters::default(),
        })
    }

    /// Forgets the operands of the resources `stale` selects.
    pub(super) fn forget(&mut self, stale: &dyn Fn(&str) -> bool) {
        self.cache.retain(|resource, _| !stale(resource));
    }

    pub(super) fn handle(&mut self, sample: Sample, out: &mut Vec<Sample>) {
        let Some(index) = self.operands.iter().position(|m| *m == sample.name) else {
            out.push(sample);
            return;
        };
        let resource = sample.resource_id.clone();
        let n = self.operands.len();
        let slots = self
            .cache
            .entry(resource.clone())
            .or_insert_with(|| vec![None; n]);
        slots[index] = Some(sample.clone());
        let complete = slots.iter().all(Option::is_some);
        out.push(sample);
        if !complete {
            return;
        }
        let operands: Vec<Sample> = self
            .cache
            .remove(&resource)
            .unwrap_or_default()
            .into_iter()
            .flatten()
            .collect();
        let Some(newest) = operands.iter().max_by_key(|s| s.timestamp) else {
            return;
        };
        let value = self.expr.eval(&|var| match var {
            Var::Meter(m) => {
                let i = self.operands.iter().position(|o| o == m)?;
                Some(operands[i].volume())
            }
            Var::Metadata(path) => metadata_number(&newest.resource_metadata, path),
            Var::Volume => None,
        });
        match value {
            Ok(v) => {
                let (name, unit) = (self.name.clone(), Some(self.unit.as_str()));
                let c = &mut self.counters;
                out.extend(derive(newest.clone(), name, self.kind, unit, v, c));
            }
            Err(e) => self.counters.count_eval(&e),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::Transformer;
    use super::super::tests::{assert_close, at, run, sample, transformer};
    use super::*;

    const UTIL: &str = "100 * $(memory.usage) / $(memory.total)";

    fn mem(name: &str, volume: f64, secs: i64, resource: &str) -> Sample {
        let mut s = sample(name, SampleType::Gauge, "MB", volume, secs);
        s.resource_id = resource.into();
        s
    }

    fn util() -> Transformer {
        transformer(
            "arithmetic",
            json!({"target": {"name": "memory.util", "unit": "%", "expr": UTIL}}),
        )
    }

    /// What a case is called, its input, what it should give.
    type Case = (&'static str, Vec<Sample>, Vec<(&'static str, f64)>, u64);

    #[test]
    fn derived_values() {
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            ("both operands: inputs pass through, derived follows",
             vec![mem("memory.usage", 512.0, 0, "a"), mem("memory.total", 2048.0, 1, "a")],
             vec![("memory.usage", 512.0), ("memory.total", 2048.0), ("memory.util", 25.0)], 0),
            ("one operand only: nothing derived",
             vec![mem("memory.usage", 512.0, 0, "a"), mem("cpu", 1.0, 0, "a")],
             vec![("memory.usage", 512.0), ("cpu", 1.0)], 0),
            ("operands of different resources do not combine",
             vec![mem("memory.usage", 512.0, 0, "a"), mem("memory.total", 2048.0, 0, "b")],
             vec![("memory.usage", 512.0), ("memory.total", 2048.0)], 0),
            ("the latest volume of an operand wins",
             vec![mem("memory.usage", 512.0, 0, "a"), mem("memory.usage", 1024.0, 1, "a"),
                  mem("memory.total", 2048.0, 2, "a")],
             vec![("memory.usage", 512.0), ("memory.usage", 1024.0), ("memory.total", 2048.0),
                  ("memory.util", 50.0)], 0),
            ("operands are cleared after use",
             vec![mem("memory.usage", 512.0, 0, "a"), mem("memory.total", 2048.0, 0, "a"),
                  mem("memory.usage", 1024.0, 1, "a")],
             vec![("memory.usage", 512.0), ("memory.total", 2048.0), ("memory.util", 25.0),
                  ("memory.usage", 1024.0)], 0),
            ("division by zero: nothing, counted",
             vec![mem("memory.usage", 512.0, 0, "a"), mem("memory.total", 0.0, 0, "a")],
             vec![("memory.usage", 512.0), ("memory.total", 0.0)], 1),
        ];
        for (what, inputs, want, dropped) in cases {
            let mut t = util();
            let got = run(&mut t, inputs);
            let got: Vec<_> = got.iter().map(|s| (s.name.as_str(), s.volume())).collect();
            assert_eq!(got.len(), want.len(), "{what}: {got:?}");
            for ((gn, gv), (wn, wv)) in got.iter().zip(&want) {
                assert_eq!(gn, wn, "{what}");
                assert_close(*gv, *wv, what);
            }
            assert_eq!(t.counters().dropped(), dropped, "{what}");
        }
    }

    #[test]
    fn derived_sample_takes_the_newest_operand() {
        let mut t = util();
        let mut total = mem("memory.total", 2048.0, 0, "a");
        total.resource_metadata.insert("host".into(), json!("old"));
        let mut usage = mem("memory.usage", 1024.0, 0, "a");
        usage.timestamp = at(30);
        usage.resource_metadata.insert("host".into(), json!("new"));
        usage.user_id = Some("u".into());
        let got = run(&mut t, vec![usage.clone(), total]);
        let s = &got[2];
        assert_eq!(
            (s.name.as_str(), s.unit.as_str(), s.kind),
            ("memory.util", "%", SampleType::Gauge)
        );
        assert_eq!(s.timestamp, at(30));
        assert_eq!(s.resource_metadata["host"], json!("new"));
        assert_eq!(s.user_id.as_deref(), Some("u"));
        assert_ne!(s.id, usage.id);
    }

    #[test]
    fn metadata_and_a_repeated_operand() {
        let mut t = transformer(
            "arithmetic",
            json!({"target": {"name": "x", "unit": "1", "type": "cumulative",
                              "expr": "$(a) * $(a) / (resource_metadata.n or 2)"}}),
        );
        let got = run(&mut t, vec![mem("a", 3.0, 0, "r")]);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].kind, SampleType::Cumulative);
        assert_close(got[1].volume(), 4.5, "3 * 3 / 2");
    }
}
