//! Parser and evaluator tables.

use serde_json::json;

use super::*;

fn meta() -> Metadata {
    let json = json!({"cpu_number": 4, "half": "0.5", "zero": 0, "on": true, "name": "host-a",
                      "none": null, "flavor": {"vcpus": 8}, "dotted.key": 3});
    json.as_object().expect("object").clone()
}

/// Evaluates `source` with `volume` = 10, [`meta`], and meters a = 2, b = 0.
fn eval_str(source: &str) -> Result<f64, String> {
    let metadata = meta();
    let scope = if source.contains("$(") {
        Scope::Meters
    } else {
        Scope::Sample
    };
    let expr = Expr::parse(source, scope).map_err(|e| e.to_string())?;
    expr.eval(&|var| match var {
        Var::Volume => Some(10.0),
        Var::Metadata(path) => metadata_number(&metadata, path),
        Var::Meter(m) if m == "a" => Some(2.0),
        Var::Meter(m) if m == "b" => Some(0.0),
        Var::Meter(_) => None,
    })
    .map_err(|e| e.to_string())
}

#[test]
fn values() {
    #[rustfmt::skip]
    let cases: &[(&str, f64)] = &[
        ("1", 1.0), ("1e9", 1e9), ("2.5E-1", 0.25), (".5", 0.5), ("10**9", 1e9),
        ("1 + 2 * 3", 7.0), ("(1 + 2) * 3", 9.0), ("7 - 2 - 1", 4.0), ("8 / 4 / 2", 1.0),
        ("2 ** 3 ** 2", 512.0), ("-2 ** 2", -4.0), ("(-2) ** 2", 4.0), ("2 ** -1", 0.5),
        ("--3", 3.0), ("+3", 3.0), ("-volume", -10.0), ("3 * -2", -6.0),
        ("volume * 1.8 + 32", 50.0),
        ("100 / (1e9 * (resource_metadata.cpu_number or 1))", 100.0 / 4e9),
        ("100 / (1e9 * (resource_metadata.missing or 1))", 100.0 / 1e9),
        ("resource_metadata.zero or 7", 7.0), ("resource_metadata.none or 7", 7.0),
        ("resource_metadata.name or 7", 7.0), ("0 or 0", 0.0), ("resource_metadata.missing or resource_metadata.zero or 9", 9.0),
        ("resource_metadata.half * 4", 2.0), ("resource_metadata.on + 1", 2.0),
        ("resource_metadata.flavor.vcpus", 8.0), ("resource_metadata.dotted.key", 3.0),
        ("1 < 2", 1.0), ("2 < 1", 0.0), ("2 <= 2", 1.0), ("3 > 2", 1.0), ("2 >= 3", 0.0),
        ("volume == 10", 1.0), ("volume != 10", 0.0), ("1 + 1 == 2", 1.0),
        ("volume > 5 or 3", 1.0), ("volume < 5 or 3", 3.0),
        ("100 * $(a) / ($(a) + 2)", 50.0), ("$(b) or $(a)", 2.0),
        (" ( 1 ) ", 1.0),
    ];
    for (source, want) in cases {
        match eval_str(source) {
            Ok(got) => assert!(
                (got - want).abs() <= 1e-9 * want.abs().max(1.0),
                "{source}: got {got}, want {want}"
            ),
            Err(e) => panic!("{source}: {e}"),
        }
    }
}

#[test]
fn evaluation_errors() {
    #[rustfmt::skip]
    let cases: &[(&str, &str)] = &[
        ("resource_metadata.missing + 1", "`resource_metadata.missing` is absent or not a number"),
        ("resource_metadata.name * 2", "`resource_metadata.name` is absent or not a number"),
        ("resource_metadata.flavor", "`resource_metadata.flavor` is absent or not a number"),
        ("resource_metadata.cpu_number.x", "`resource_metadata.cpu_number.x` is absent or not a number"),
        ("$(c) * 2", "`$(c)` is absent or not a number"),
        ("1 / 0", "division by zero"), ("1 / (volume - 10)", "division by zero"),
        ("1 / 0 or 1", "division by zero"), ("0 ** -1", "division by zero"),
        ("1e308 * 10", "the result is not a finite number"),
        ("(-8) ** 0.5", "the result is not a finite number"),
        ("10 ** 400", "the result is not a finite number"),
    ];
    for (source, want) in cases {
        assert_eq!(eval_str(source), Err((*want).to_owned()), "{source}");
    }
}

#[test]
fn parse_errors_have_columns() {
    #[rustfmt::skip]
    let cases: &[(&str, Scope, &str)] = &[
        ("100 / (1e9))", Scope::Sample, "unexpected `)` at column 12"),
        ("", Scope::Sample, "unexpected end of expression at column 1"),
        ("1 +", Scope::Sample, "unexpected end of expression at column 4"),
        ("(1 + 2", Scope::Sample, "missing `)` at column 7"),
        ("(1 2)", Scope::Sample, "unexpected `2` at column 4"),
        ("1 2", Scope::Sample, "unexpected `2` at column 3"),
        ("1 * * 2", Scope::Sample, "unexpected `*` at column 5"),
        ("1e", Scope::Sample, "malformed number `1e` at column 1"),
        ("1.2.3", Scope::Sample, "malformed number `1.2.3` at column 1"),
        ("2x", Scope::Sample, "malformed number `2x` at column 1"),
        ("1e999", Scope::Sample, "malformed number `1e999` at column 1"),
        ("volume % 2", Scope::Sample, "unexpected `%` at column 8"),
        ("a = 1", Scope::Sample, "unexpected `=` at column 3"),
        ("a + 1", Scope::Sample, "unknown name `a` (available: volume, resource_metadata.<key>) at column 1"),
        ("__import__(1)", Scope::Sample, "unknown name `__import__` (available: volume, resource_metadata.<key>) at column 1"),
        ("resource_metadata", Scope::Sample, "unknown name `resource_metadata` (available: volume, resource_metadata.<key>) at column 1"),
        ("resource_metadata..x", Scope::Sample, "unknown name `resource_metadata..x` (available: volume, resource_metadata.<key>) at column 1"),
        ("or 1", Scope::Sample, "unexpected `or` at column 1"),
        ("1 < 2 < 3", Scope::Sample, "comparisons cannot be chained (add parentheses) at column 7"),
        ("1 ! 2", Scope::Sample, "unexpected `!` at column 3"),
        ("$(a) + 1", Scope::Sample, "`$(a)` meter references are only allowed in arithmetic at column 1"),
        ("1 + $(a", Scope::Meters, "unterminated `$(` at column 5"),
        ("$( )", Scope::Meters, "malformed meter reference `$()` at column 1"),
        ("$(a b)", Scope::Meters, "malformed meter reference `$(a b)` at column 1"),
        ("volume", Scope::Meters, "unknown name `volume` (available: $(<meter>), resource_metadata.<key>) at column 1"),
        ("é + 1", Scope::Sample, "unknown name `é` (available: volume, resource_metadata.<key>) at column 1"),
        ("1 + é", Scope::Sample, "unknown name `é` (available: volume, resource_metadata.<key>) at column 5"),
    ];
    for (source, scope, want) in cases {
        let got = Expr::parse(source, *scope)
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert_eq!(got, Err((*want).to_owned()), "{source}");
    }
}

#[test]
fn meters_are_listed_once_in_order() {
    let e = Expr::parse("$(b) / ($(a) + $(b.c) * $(b))", Scope::Meters).expect("valid");
    assert_eq!(e.meters(), ["b", "a", "b.c"]);
    let s = Expr::parse("volume", Scope::Sample).expect("valid");
    assert!(s.meters().is_empty());
}

#[test]
fn eval_sample_reads_volume_and_metadata() {
    let sample = Sample::new(
        "cpu",
        hb_sample::SampleType::Gauge,
        "%",
        6.0,
        "h",
        chrono::Utc::now(),
    )
    .expect("valid")
    .with_metadata(meta());
    let e = Expr::parse("volume / resource_metadata.cpu_number", Scope::Sample).expect("valid");
    assert_eq!(e.eval_sample(&sample), Ok(1.5));
}
