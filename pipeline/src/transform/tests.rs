//! Helpers shared by the transformers' tests; configuration, errors and chains.

use chrono::{DateTime, Utc};
use hb_sample::{Sample, SampleType};
use serde_json::{Value, json};

use super::{Chain, Counters, TransformError, Transformer, TransformerConfig};

/// 2023-11-14T22:13:20Z plus `secs`.
pub(super) fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("in range")
}

/// A sample of resource `host-a` taken at `at(secs)`.
pub(super) fn sample(name: &str, kind: SampleType, unit: &str, volume: f64, secs: i64) -> Sample {
    Sample::new(name, kind, unit, volume, "host-a", at(secs)).expect("valid sample")
}

pub(super) fn config(name: &str, parameters: Value) -> TransformerConfig {
    TransformerConfig {
        name: name.into(),
        parameters,
    }
}

pub(super) fn transformer(name: &str, parameters: Value) -> Transformer {
    Transformer::new(&config(name, parameters)).unwrap_or_else(|e| panic!("{e}"))
}

pub(super) fn run(t: &mut Transformer, inputs: Vec<Sample>) -> Vec<Sample> {
    let mut out = Vec::new();
    for s in inputs {
        t.handle(s, &mut out);
    }
    out
}

#[track_caller]
pub(super) fn assert_close(got: f64, want: f64, what: &str) {
    assert!((got - want).abs() <= 1e-9, "{what}: got {got}, want {want}");
}

fn error(name: &str, parameters: Value) -> String {
    Transformer::new(&config(name, parameters))
        .expect_err("refused")
        .to_string()
}

#[test]
fn configuration_errors_name_the_transformer_and_the_path() {
    #[rustfmt::skip]
    let cases: Vec<(&str, Value, &str)> = vec![
        ("rate", json!({}),
         "unknown transformer `rate` (available: rate_of_change, delta, unit_conversion, arithmetic, aggregator)"),
        ("rate_of_change", json!({"target": {"scale": "100 / (1e9))"}}),
         "transformer `rate_of_change`: parameters.target.scale: unexpected `)` at column 12"),
        ("rate_of_change", json!({"target": {"name": "x", "scael": 2}}),
         "transformer `rate_of_change`: parameters.target.scael: unknown field `scael`, expected one of `name`, `unit`, `type`, `scale`, `max`, `map_to`"),
        ("rate_of_change", json!({"targets": {}}),
         "transformer `rate_of_change`: parameters.targets: unknown field `targets`, expected `target` or `source`"),
        ("rate_of_change", json!({"target": {"type": "counter"}}),
         "transformer `rate_of_change`: parameters.target.type: unknown variant `counter`, expected one of `gauge`, `delta`, `cumulative`"),
        ("rate_of_change", json!({"target": {"scale": {"a": 1}}}),
         "transformer `rate_of_change`: parameters.target.scale: expected a number or an expression string, got {\"a\":1}"),
        ("rate_of_change", json!({"target": {"scale": [1]}}),
         "transformer `rate_of_change`: parameters.target.scale: invalid type: sequence (no parameter takes a list)"),
        ("rate_of_change", json!({"target": ["cpu.util", "%"]}),
         "transformer `rate_of_change`: parameters.target: invalid type: sequence (no parameter takes a list)"),
        ("rate_of_change", json!({"target": {"scale": "$(cpu) * 2"}}),
         "transformer `rate_of_change`: parameters.target.scale: `$(cpu)` meter references are only allowed in arithmetic at column 1"),
        ("rate_of_change", json!({"target": "cpu.util"}),
         "transformer `rate_of_change`: parameters.target: invalid type: string \"cpu.util\", expected a map"),
        ("rate_of_change", json!([1]),
         "transformer `rate_of_change`: parameters: invalid type: sequence (no parameter takes a list)"),
        ("unit_conversion", json!({"source": {"map_from": "disk\\.(read"}, "target": {"map_to": "x"}}),
         "transformer `unit_conversion`: parameters.source.map_from: regex parse error:"),
        ("unit_conversion", json!({"source": {"map_from": "disk"}}),
         "transformer `unit_conversion`: parameters.target.map_to: required with source.map_from"),
        ("unit_conversion", json!({"target": {"map_to": "disk"}}),
         "transformer `unit_conversion`: parameters.source.map_from: required with target.map_to"),
        ("unit_conversion", json!({"source": {"map_from": "a"}, "target": {"map_to": "b", "name": "c"}}),
         "transformer `unit_conversion`: parameters.target.map_to: target.name and target.map_to are mutually exclusive"),
        ("unit_conversion", json!({"source": {"map_from": "disk\\.(read)"}, "target": {"map_to": "$1kb"}}),
         "transformer `unit_conversion`: parameters.target.map_to: `$1kb` refers to no group of source.map_from"),
        ("delta", json!({"growth_only": "yes"}),
         "transformer `delta`: parameters.growth_only: invalid type: string \"yes\", expected a boolean"),
        ("delta", json!({"target": {"unit": "B"}}),
         "transformer `delta`: parameters.target.unit: unknown field `unit`, expected `name`"),
        ("arithmetic", json!({"target": {"name": "x", "unit": "%"}}),
         "transformer `arithmetic`: parameters.target: missing field `expr`"),
        ("arithmetic", json!({}),
         "transformer `arithmetic`: parameters: missing field `target`"),
        ("arithmetic", json!({"target": {"name": "x", "unit": "%", "expr": "1 + 2"}}),
         "transformer `arithmetic`: parameters.target.expr: refers to no meter (write meters as $(memory.usage))"),
        ("arithmetic", json!({"target": {"name": "x", "unit": "%", "expr": "volume * $(a)"}}),
         "transformer `arithmetic`: parameters.target.expr: unknown name `volume` (available: $(<meter>), resource_metadata.<key>) at column 1"),
        ("aggregator", json!({"size": 0}),
         "transformer `aggregator`: parameters.size: must be at least 1"),
        ("aggregator", json!({"size": 2.5}),
         "transformer `aggregator`: parameters.size: invalid type: floating point `2.5`, expected u64"),
        ("aggregator", json!({"retention_time": -1}),
         "transformer `aggregator`: parameters.retention_time: must be a positive number of seconds (at most 365 days)"),
        ("aggregator", json!({"period": 1}),
         "transformer `aggregator`: parameters.period: unknown field `period`, expected `size` or `retention_time`"),
    ];
    for (name, parameters, want) in cases {
        let got = error(name, parameters);
        assert!(got.starts_with(want), "\n got: {got}\nwant: {want}");
    }
}

#[test]
fn config_deserializes_with_default_parameters() {
    let c: TransformerConfig = serde_json::from_value(json!({"name": "delta"})).expect("valid");
    assert_eq!(c, config("delta", json!({})));
    Transformer::new(&config("delta", Value::Null)).expect("null parameters mean none");
    let err = serde_json::from_value::<TransformerConfig>(json!({"name": "delta", "params": {}}))
        .expect_err("unknown key");
    assert!(err.to_string().contains("unknown field `params`"), "{err}");
}

#[test]
fn every_documented_name_builds() {
    for name in super::TRANSFORMERS {
        let params = match name {
            "arithmetic" => json!({"target": {"name": "x", "unit": "1", "expr": "$(a)"}}),
            _ => json!({}),
        };
        assert_eq!(transformer(name, params).name(), name);
    }
}

#[test]
fn chain_errors_name_the_position() {
    let err = Chain::new(&[config("delta", json!({})), config("rate", json!({}))]).unwrap_err();
    assert!(
        matches!(err, TransformError::InChain { index: 1, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("transformers[1]: unknown transformer `rate` (available:"),
        "{err}"
    );
}

#[test]
fn chain_feeds_each_output_to_the_next() {
    let mut chain = Chain::new(&[
        config(
            "rate_of_change",
            json!({"target": {"name": "cpu.util", "unit": "%",
                              "scale": "100 / (1e9 * (resource_metadata.cpu_number or 1))"}}),
        ),
        config(
            "unit_conversion",
            json!({"target": {"name": "cpu.frac", "scale": 0.01}}),
        ),
        config("aggregator", json!({"size": 2})),
    ])
    .expect("valid chain");
    let cpu = |v, secs| sample("cpu", SampleType::Cumulative, "ns", v, secs);
    assert!(chain.process(vec![cpu(0.0, 0), cpu(30e9, 60)]).is_empty());
    let out = chain.process(vec![cpu(90e9, 120)]);
    assert_eq!(out.len(), 1, "{out:?}");
    let s = &out[0];
    assert_eq!(
        (s.name.as_str(), s.unit.as_str(), s.kind, s.timestamp),
        ("cpu.frac", "%", SampleType::Gauge, at(120))
    );
    assert_close(s.volume(), 0.75, "average of 0.5 and 1.0");
    assert!(
        chain
            .transformers()
            .iter()
            .all(|t| t.counters() == &Counters::default())
    );
}

#[test]
fn chain_flush_passes_flushed_samples_through_the_rest() {
    let mut chain = Chain::new(&[
        config("aggregator", json!({"retention_time": 10})),
        config(
            "unit_conversion",
            json!({"target": {"unit": "KB", "scale": 0.5}}),
        ),
        config("aggregator", json!({"retention_time": 30})),
    ])
    .expect("valid chain");
    let g = |v, secs| sample("g", SampleType::Gauge, "B", v, secs);
    assert!(chain.process(vec![g(2.0, 0), g(4.0, 5)]).is_empty());
    assert!(
        chain.flush(at(10)).is_empty(),
        "held by the second aggregator"
    );
    assert!(chain.process(vec![g(10.0, 20)]).is_empty());
    let out = chain.flush(at(35));
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!((out[0].unit.as_str(), out[0].timestamp), ("KB", at(20)));
    // first window (avg 3 → 1.5) and second window (10 → 5), averaged by the last aggregator
    assert_close(out[0].volume(), 3.25, "mean of 1.5 and 5");
}

#[test]
fn forgetting_a_resource_restarts_its_series_and_publishes_its_aggregates() {
    let of = |resource: &str, v: f64, secs: i64| {
        Sample::new("c", SampleType::Cumulative, "B", v, resource, at(secs)).expect("sample")
    };
    let mut deltas = Chain::new(&[config("delta", json!({}))]).expect("valid chain");
    assert!(
        deltas
            .process(vec![of("a", 1.0, 0), of("b", 10.0, 0)])
            .is_empty()
    );
    assert!(deltas.forget(&|r: &str| r == "a").is_empty());
    // `a` starts afresh (its next sample only primes it); `b` goes on.
    let out = deltas.process(vec![of("a", 5.0, 10), of("b", 30.0, 10)]);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].resource_id, "b");
    assert_close(out[0].volume(), 20.0, "b's delta");
    let out = deltas.process(vec![of("a", 6.0, 20)]);
    assert_close(out[0].volume(), 1.0, "a's delta from its new first sample");

    let mut aggregate = Chain::new(&[
        config("aggregator", json!({"size": 100})),
        config(
            "unit_conversion",
            json!({"target": {"unit": "KB", "scale": 0.5}}),
        ),
    ])
    .expect("valid chain");
    assert!(
        aggregate
            .process(vec![of("a", 4.0, 0), of("b", 8.0, 0)])
            .is_empty()
    );
    let out = aggregate.forget(&|r: &str| r == "a");
    assert_eq!(
        out.len(),
        1,
        "a's group published now, through the rest of the chain"
    );
    assert_eq!(
        (out[0].resource_id.as_str(), out[0].unit.as_str()),
        ("a", "KB")
    );
    assert_close(out[0].volume(), 2.0, "a's last value, scaled");
}

#[test]
fn empty_chain_passes_samples_through() {
    let mut chain = Chain::new(&[]).expect("empty is fine");
    assert!(chain.is_empty());
    let s = sample("x", SampleType::Gauge, "B", 1.0, 0);
    assert_eq!(chain.process(vec![s.clone()]), vec![s]);
    assert!(chain.flush(at(0)).is_empty());
}

#[test]
fn the_module_doc_example_builds() {
    #[derive(serde::Deserialize)]
    struct Sink {
        name: String,
        transformers: Vec<TransformerConfig>,
    }
    #[derive(serde::Deserialize)]
    struct Doc {
        sinks: Vec<Sink>,
    }
    let yaml = include_str!("mod.rs")
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .skip_while(|l| *l != "```yaml")
        .skip(1)
        .take_while(|l| *l != "```")
        .collect::<Vec<_>>()
        .join("\n");
    let doc: Doc = serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let mut chains: Vec<(String, Chain)> = doc
        .sinks
        .into_iter()
        .map(|s| {
            let chain = Chain::new(&s.transformers).unwrap_or_else(|e| panic!("{}: {e}", s.name));
            (s.name, chain)
        })
        .collect();
    assert_eq!(chains.len(), 3);
    let (name, disk) = &mut chains[1];
    assert_eq!(name, "disk_kb");
    let b = |v, secs| sample("disk.read.bytes", SampleType::Cumulative, "B", v, secs);
    let out = disk.process(vec![b(1024.0, 0), b(4096.0, 10)]);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(
        (out[0].name.as_str(), out[0].unit.as_str()),
        ("disk.read.kilobytes", "KB")
    );
    assert_close(out[0].volume(), 3.0, "4 KB - 1 KB");
}
