//! Ceilometer-style transformers that a sink applies, in order, to the samples routed to it
//! (DESIGN §5, §7).
//!
//! ```yaml
//! sinks:
//!   - name: cpu_util
//!     transformers:
//!       - name: rate_of_change
//!         parameters:
//!           target: {name: cpu.util, unit: "%", type: gauge, max: 100,
//!                    scale: "100 / (1e9 * (resource_metadata.cpu_number or 1))"}
//!       - name: aggregator
//!         parameters: {size: 6, retention_time: 60}
//!   - name: disk_kb
//!     transformers:
//!       - name: unit_conversion
//!         parameters:
//!           source: {map_from: 'disk\.(read|write)\.bytes'}
//!           target: {map_to: 'disk.$1.kilobytes', unit: KB, scale: 0.0009765625}
//!       - name: delta
//!         parameters: {growth_only: true}
//!   - name: memory
//!     transformers:
//!       - name: arithmetic
//!         parameters:
//!           target: {name: memory.util, unit: "%", expr: "100 * $(memory.usage) / $(memory.total)"}
//! ```
//!
//! - [`RateOfChange`] (`rate_of_change`): per-second rate of a series, with counter resets.
//! - [`Delta`] (`delta`): change since the previous sample of a series.
//! - [`UnitConversion`] (`unit_conversion`): scales and renames samples.
//! - [`Arithmetic`] (`arithmetic`): combines the latest samples of several meters of a resource.
//! - [`Aggregator`] (`aggregator`): folds a series into one sample per `size` or `retention_time`.
//!
//! A derived sample gets a fresh id and keeps the resource, owner, metadata and source of its
//! input. Nothing here fails at run time: a sample that cannot be transformed is dropped and
//! counted in the transformer's [`Counters`]. Parameters are checked once, by
//! [`Transformer::new`]; unknown keys are refused.

mod aggregator;
mod arithmetic;
mod delta;
mod expr;
mod rate_of_change;
mod scaling;
mod unit_conversion;

use chrono::{DateTime, Utc};
use hb_sample::{Sample, SampleType};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use aggregator::Aggregator;
pub use arithmetic::Arithmetic;
pub use delta::Delta;
pub use rate_of_change::RateOfChange;
pub use unit_conversion::UnitConversion;

use expr::EvalError;

/// The transformer names, in the order they are documented.
pub const TRANSFORMERS: [&str; 5] = [
    "rate_of_change",
    "delta",
    "unit_conversion",
    "arithmetic",
    "aggregator",
];

/// One entry of a sink's `transformers:` list.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformerConfig {
    /// One of [`TRANSFORMERS`].
    pub name: String,
    /// The transformer's parameters (an object; absent or null = no parameters).
    #[serde(default = "empty_object")]
    pub parameters: Value,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// Why a transformer configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    /// A name that is not one of [`TRANSFORMERS`].
    #[error(
        "unknown transformer `{0}` (available: rate_of_change, delta, unit_conversion, arithmetic, \
         aggregator)"
    )]
    Unknown(String),
    /// A bad parameter.
    #[error("transformer `{transformer}`: {path}: {message}")]
    Parameter {
        /// The transformer's name.
        transformer: &'static str,
        /// Dotted path of the offending value, from `parameters` (`parameters.target.scale`).
        path: String,
        /// What is wrong, in lowercase, listing valid choices where there are some.
        message: String,
    },
    /// A refusal of the `index`th (0-based) entry of a chain.
    #[error("transformers[{index}]: {error}")]
    InChain {
        /// Position of the refused entry.
        index: usize,
        /// Why it was refused.
        error: Box<TransformError>,
    },
}

/// What a transformer dropped, by reason. Every field counts samples that produced no output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// `rate_of_change`, `delta`: older than the cached sample of its series (by the monotonic
    /// clock when both carry it, else by timestamp); the cached sample is kept.
    pub out_of_order: u64,
    /// `delta` with `growth_only`: a negative delta; the cache still moves on to the sample.
    pub growth_only_skipped: u64,
    /// `scale` or `expr` referred to a metadata key that is absent or not a number, and no
    /// `or` supplied a default.
    pub missing_operand_value: u64,
    /// `scale` or `expr` divided by zero.
    pub division_by_zero: u64,
    /// The computed volume was NaN or infinite.
    pub not_finite: u64,
}

impl Counters {
    /// Every dropped sample, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.out_of_order
            + self.growth_only_skipped
            + self.missing_operand_value
            + self.division_by_zero
            + self.not_finite
    }

    fn count_eval(&mut self, error: &EvalError) {
        match error {
            EvalError::Absent(_) => self.missing_operand_value += 1,
            EvalError::DivisionByZero => self.division_by_zero += 1,
            EvalError::NotFinite => self.not_finite += 1,
        }
    }
}

/// One configured transformer with its state.
#[derive(Debug)]
pub enum Transformer {
    /// `rate_of_change`.
    RateOfChange(RateOfChange),
    /// `delta`.
    Delta(Delta),
    /// `unit_conversion`.
    UnitConversion(UnitConversion),
    /// `arithmetic`.
    Arithmetic(Arithmetic),
    /// `aggregator`.
    Aggregator(Aggregator),
}

impl Transformer {
    /// Builds a transformer from its configuration, checking every parameter.
    pub fn new(config: &TransformerConfig) -> Result<Self, TransformError> {
        let p = &config.parameters;
        let (name, built) = match config.name.as_str() {
            "rate_of_change" => (
                "rate_of_change",
                RateOfChange::new(p).map(Self::RateOfChange),
            ),
            "delta" => ("delta", Delta::new(p).map(Self::Delta)),
            "unit_conversion" => (
                "unit_conversion",
                UnitConversion::new(p).map(Self::UnitConversion),
            ),
            "arithmetic" => ("arithmetic", Arithmetic::new(p).map(Self::Arithmetic)),
            "aggregator" => ("aggregator", Aggregator::new(p).map(Self::Aggregator)),
            other => return Err(TransformError::Unknown(other.to_owned())),
        };
        built.map_err(|e| TransformError::Parameter {
            transformer: name,
            path: e.path,
            message: e.message,
        })
    }

    /// The configured name (`rate_of_change`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Self::RateOfChange(_) => "rate_of_change",
            Self::Delta(_) => "delta",
            Self::UnitConversion(_) => "unit_conversion",
            Self::Arithmetic(_) => "arithmetic",
            Self::Aggregator(_) => "aggregator",
        }
    }

    /// Transforms one sample, appending what it gives (possibly nothing) to `out`.
    pub fn handle(&mut self, sample: Sample, out: &mut Vec<Sample>) {
        match self {
            Self::RateOfChange(t) => t.handle(sample, out),
            Self::Delta(t) => t.handle(sample, out),
            Self::UnitConversion(t) => t.handle(sample, out),
            Self::Arithmetic(t) => t.handle(sample, out),
            Self::Aggregator(t) => t.handle(sample, out),
        }
    }

    /// Emits what is due at `now`: the aggregator's groups older than its `retention_time`.
    /// The other transformers hold nothing back.
    pub fn flush(&mut self, now: DateTime<Utc>, out: &mut Vec<Sample>) {
        if let Self::Aggregator(t) = self {
            t.flush(now, out);
        }
    }

    /// Drops what it keeps of the resources `stale` selects (their series are now processed
    /// elsewhere): the previous samples of `rate_of_change` and `delta`, the operands of
    /// `arithmetic`; the `aggregator` emits their groups into `out`.
    pub fn forget(&mut self, stale: &dyn Fn(&str) -> bool, out: &mut Vec<Sample>) {
        match self {
            Self::RateOfChange(t) => t.forget(stale),
            Self::Delta(t) => t.forget(stale),
            Self::UnitConversion(_) => {}
            Self::Arithmetic(t) => t.forget(stale),
            Self::Aggregator(t) => t.forget(stale, out),
        }
    }

    /// True for the transformers that keep state across samples of a series, which must all
    /// be processed in one place (`rate_of_change`, `delta`, `arithmetic`, `aggregator`).
    pub fn is_stateful(&self) -> bool {
        !matches!(self, Self::UnitConversion(_))
    }

    /// What this transformer dropped so far.
    pub fn counters(&self) -> &Counters {
        match self {
            Self::RateOfChange(t) => &t.counters,
            Self::Delta(t) => &t.counters,
            Self::UnitConversion(t) => &t.counters,
            Self::Arithmetic(t) => &t.counters,
            Self::Aggregator(t) => &t.counters,
        }
    }
}

/// A sink's transformers, applied in order: the outputs of each feed the next.
#[derive(Debug, Default)]
pub struct Chain(Vec<Transformer>);

impl Chain {
    /// Builds every transformer; the first refusal names its position in the list.
    pub fn new(configs: &[TransformerConfig]) -> Result<Self, TransformError> {
        configs
            .iter()
            .enumerate()
            .map(|(index, c)| {
                Transformer::new(c).map_err(|e| TransformError::InChain {
                    index,
                    error: Box::new(e),
                })
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// The transformers, in order.
    pub fn transformers(&self) -> &[Transformer] {
        &self.0
    }

    /// True when there are no transformers (samples pass through unchanged).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Passes `samples` through every transformer in order.
    pub fn process(&mut self, samples: Vec<Sample>) -> Vec<Sample> {
        self.0.iter_mut().fold(samples, |batch, t| {
            let mut out = Vec::with_capacity(batch.len());
            for s in batch {
                t.handle(s, &mut out);
            }
            out
        })
    }

    /// Forgets, in every transformer, the resources `stale` selects; what one emits (an
    /// aggregator's groups) goes through the transformers after it before they forget.
    pub fn forget(&mut self, stale: &dyn Fn(&str) -> bool) -> Vec<Sample> {
        self.cascade(|t, out| t.forget(stale, out))
    }

    /// Flushes every transformer in order; what transformer `i` flushes goes through the
    /// transformers after it (before they flush themselves).
    pub fn flush(&mut self, now: DateTime<Utc>) -> Vec<Sample> {
        self.cascade(|t, out| t.flush(now, out))
    }

    /// Runs `emit` on every transformer in order, after passing it what the transformers
    /// before it emitted.
    fn cascade(&mut self, mut emit: impl FnMut(&mut Transformer, &mut Vec<Sample>)) -> Vec<Sample> {
        self.0.iter_mut().fold(Vec::new(), |carried, t| {
            let mut out = Vec::with_capacity(carried.len());
            for s in carried {
                t.handle(s, &mut out);
            }
            emit(t, &mut out);
            out
        })
    }
}

/// A refused parameter, before it is attributed to its transformer.
#[derive(Debug)]
struct ParamError {
    path: String,
    message: String,
}

impl ParamError {
    /// `path` is relative to `parameters` (`target.scale`; empty for `parameters` itself).
    fn at(path: &str, message: impl Into<String>) -> Self {
        let path = match path {
            "" | "." => "parameters".to_owned(),
            p => format!("parameters.{p}"),
        };
        Self {
            path,
            message: message.into(),
        }
    }
}

/// Deserializes a transformer's parameters (null = none), naming the path of a refusal.
///
/// No parameter takes a list, and serde would read a list as a struct's fields in order
/// (`target: [cpu.util, "%"]`), so lists are refused up front.
fn parse_params<T: DeserializeOwned>(parameters: &Value) -> Result<T, ParamError> {
    fn refuse_lists(value: &Value, path: &str) -> Result<(), ParamError> {
        match value {
            Value::Array(_) => Err(ParamError::at(
                path,
                "invalid type: sequence (no parameter takes a list)",
            )),
            Value::Object(map) => map.iter().try_for_each(|(k, v)| {
                let path = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                refuse_lists(v, &path)
            }),
            _ => Ok(()),
        }
    }
    let empty = empty_object();
    let value = if parameters.is_null() {
        &empty
    } else {
        parameters
    };
    refuse_lists(value, "")?;
    serde_path_to_error::deserialize(value)
        .map_err(|e| ParamError::at(&e.path().to_string(), e.inner().to_string()))
}

/// The sample `input` becomes: a fresh id, the given name, type, unit (None = unchanged) and
/// volume; `None` (counted) when the volume is not finite.
fn derive(
    mut input: Sample,
    name: String,
    kind: SampleType,
    unit: Option<&str>,
    volume: f64,
    counters: &mut Counters,
) -> Option<Sample> {
    if input.set_volume(volume).is_err() {
        counters.not_finite += 1;
        return None;
    }
    input.id = uuid::Uuid::new_v4();
    input.name = name;
    input.kind = kind;
    if let Some(unit) = unit {
        input.unit = unit.to_owned();
    }
    Some(input)
}

/// What `rate_of_change` and `delta` remember of the previous sample of a series.
#[derive(Debug, Clone, Copy)]
struct Point {
    volume: f64,
    timestamp: DateTime<Utc>,
    monotonic_time: Option<u64>,
}

impl Point {
    fn of(sample: &Sample) -> Self {
        Self {
            volume: sample.volume(),
            timestamp: sample.timestamp,
            monotonic_time: sample.monotonic_time,
        }
    }

    /// Seconds from this point to `next` (negative = `next` is older). The monotonic clock is
    /// preferred when both carry it, unless it went backwards while the wall clock went
    /// forwards: then the host restarted its clock (rebooted) and the timestamps are used.
    fn seconds_until(&self, next: &Sample) -> f64 {
        let wall = (next.timestamp - self.timestamp).as_seconds_f64();
        match (self.monotonic_time, next.monotonic_time) {
            (Some(a), Some(b)) if b >= a || wall <= 0.0 => {
                (i128::from(b) - i128::from(a)) as f64 / 1e9
            }
            _ => wall,
        }
    }
}

#[cfg(test)]
mod tests;
