//! The output of an `exec:` program: one JSON object per line, each a sample, validated.
//!
//! ```json
//! {"name": "app.queue.depth", "volume": 12, "unit": "message", "type": "gauge",
//!  "resource_id": "queue-a", "project_id": "p", "user_id": "u", "metadata": {"vhost": "/"}}
//! ```
//!
//! `name`, `volume` and `unit` are required; `type` defaults to `gauge`, `resource_id` to the
//! agent's host; any other key is refused (a typo is a refused line, not a silent default).

use hb_sample::{Metadata, SampleType};
use serde::Deserialize;

use crate::pollster::Measurement;

/// How many refusal reasons a run keeps for its warning.
pub const REASONS_KEPT: usize = 3;

/// One line as the program writes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    name: String,
    volume: f64,
    #[serde(rename = "type", default = "gauge")]
    kind: SampleType,
    unit: String,
    #[serde(default)]
    resource_id: String,
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    metadata: Metadata,
}

fn gauge() -> SampleType {
    SampleType::Gauge
}

/// What a program printed, sorted into samples and refused lines.
#[derive(Debug, Default, PartialEq)]
pub struct Parsed {
    /// The valid lines, in order.
    pub measurements: Vec<Measurement>,
    /// How many lines were refused.
    pub bad: usize,
    /// The first [`REASONS_KEPT`] refusals: `line N: reason`.
    pub reasons: Vec<String>,
}

impl Parsed {
    /// The kept refusals joined for a log line or an error.
    pub fn summary(&self) -> String {
        let mut s = self.reasons.join("; ");
        if self.bad > self.reasons.len() {
            s += &format!("; and {} more", self.bad - self.reasons.len());
        }
        s
    }
}

/// Parses a program's standard output. `cut` says the output was cut at the size limit: its
/// last, unfinished line is then dropped rather than refused. Blank lines are ignored.
pub fn parse(stdout: &[u8], meters: &[glob::Pattern], cut: bool) -> Parsed {
    let mut parsed = Parsed::default();
    let mut lines: Vec<&[u8]> = stdout.split(|b| *b == b'\n').collect();
    if cut || stdout.ends_with(b"\n") {
        lines.pop();
    }
    for (i, raw) in lines.into_iter().enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match parse_line(raw, meters) {
            Ok(m) => parsed.measurements.push(m),
            Err(reason) => {
                parsed.bad += 1;
                if parsed.reasons.len() < REASONS_KEPT {
                    parsed.reasons.push(format!("line {}: {reason}", i + 1));
                }
            }
        }
    }
    parsed
}

/// A JSON error without serde_json's "at line 1" (every line is its own document).
fn reason(e: &serde_json::Error) -> String {
    let mut reason = e.to_string();
    if let Some(at) = reason.rfind(" at line 1 column ") {
        reason = format!("{} (column {})", &reason[..at], &reason[at + 18..]);
    }
    if e.is_syntax() || e.is_eof() {
        reason = format!("invalid JSON: {reason}");
    }
    reason
}

/// One line: a sample, or why it is refused.
pub fn parse_line(raw: &[u8], meters: &[glob::Pattern]) -> Result<Measurement, String> {
    let text = std::str::from_utf8(raw).map_err(|_| "not UTF-8".to_owned())?;
    if !text.trim_start().starts_with('{') {
        return Err("not a JSON object".to_owned());
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let line: Line = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = e.path().to_string();
        let e = e.into_inner();
        let reason = reason(&e);
        // A wrong value names its field; "unknown field" already does, a syntax error cannot.
        let named = reason.starts_with("unknown field") || e.is_syntax() || e.is_eof();
        match field.as_str() {
            "." | "" => reason,
            f if named || f.contains('?') => reason,
            f => format!("`{f}`: {reason}"),
        }
    })?;
    de.end().map_err(|e| reason(&e))?;
    if line.name.is_empty() {
        return Err("`name` must not be empty".to_owned());
    }
    if !meters.iter().any(|p| p.matches(&line.name)) {
        let globs: Vec<&str> = meters.iter().map(glob::Pattern::as_str).collect();
        return Err(format!(
            "meter `{}` is not declared (meters: {})",
            line.name,
            globs.join(", ")
        ));
    }
    if !line.volume.is_finite() {
        return Err(format!("`volume` must be finite (got {})", line.volume));
    }
    if line.unit.is_empty() {
        return Err("`unit` must not be empty".to_owned());
    }
    let mut m = Measurement::typed(
        line.name,
        line.kind,
        line.unit,
        line.volume,
        line.resource_id,
    );
    m.project_id = line.project_id;
    m.user_id = line.user_id;
    m.metadata = line.metadata;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn globs() -> Vec<glob::Pattern> {
        vec![
            glob::Pattern::new("app.*").expect("glob"),
            glob::Pattern::new("queue.depth").expect("glob"),
        ]
    }

    #[test]
    fn lines_are_accepted_or_refused_with_a_reason() {
        let ok = |name: &str, kind, unit: &str, volume, resource: &str| {
            Ok(Measurement::typed(
                name.to_owned(),
                kind,
                unit,
                volume,
                resource,
            ))
        };
        let cases: Vec<(&str, Result<Measurement, &str>)> = vec![
            (
                r#"{"name":"app.users","volume":3,"unit":"user"}"#,
                ok("app.users", SampleType::Gauge, "user", 3.0, ""),
            ),
            (
                r#"{"name":"app.x.y","volume":-1.5e3,"unit":"B","type":"cumulative","resource_id":"r"}"#,
                ok("app.x.y", SampleType::Cumulative, "B", -1500.0, "r"),
            ),
            (
                r#" {"name":"queue.depth","volume":0,"unit":"message","type":"delta"} "#,
                ok("queue.depth", SampleType::Delta, "message", 0.0, ""),
            ),
            (
                r#"{"name":"app.users","volume":3,"unit":"user","project_id":null}"#,
                ok("app.users", SampleType::Gauge, "user", 3.0, ""),
            ),
            ("app.users 3", Err("not a JSON object")),
            ("[1,2]", Err("not a JSON object")),
            (
                r#"{"name":"app.users""#,
                Err("invalid JSON: EOF while parsing an object (column 19)"),
            ),
            (
                r#"{"name":"app.users","volume":3}"#,
                Err("missing field `unit` (column 31)"),
            ),
            (
                r#"{"name":"app.users","unit":"u"}"#,
                Err("missing field `volume` (column 31)"),
            ),
            (
                r#"{"name":"app.users","volume":"3","unit":"u"}"#,
                Err("`volume`: invalid type: string \"3\", expected f64 (column 32)"),
            ),
            (
                r#"{"name":"app.users","volume":3,"unit":"u","type":"rate"}"#,
                Err(
                    "`type`: unknown variant `rate`, expected one of `gauge`, `delta`, `cumulative` (column 55)",
                ),
            ),
            (
                r#"{"name":"app.users","volume":3,"unit":"u","resource":"r"}"#,
                Err(
                    "unknown field `resource`, expected one of `name`, `volume`, `type`, `unit`, `resource_id`, `project_id`, `user_id`, `metadata` (column 52)",
                ),
            ),
            (
                r#"{"name":"other.users","volume":3,"unit":"u"}"#,
                Err("meter `other.users` is not declared (meters: app.*, queue.depth)"),
            ),
            (
                r#"{"name":"","volume":3,"unit":"u"}"#,
                Err("`name` must not be empty"),
            ),
            (
                r#"{"name":"app.users","volume":3,"unit":""}"#,
                Err("`unit` must not be empty"),
            ),
            (
                r#"{"name":"app.users","volume":1e999,"unit":"u"}"#,
                Err("invalid JSON: number out of range (column 34)"),
            ),
            (
                r#"{"name":"app.users","volume":3,"unit":"u","metadata":[1]}"#,
                Err("`metadata`: invalid type: sequence, expected a map (column 53)"),
            ),
            (
                r#"{"name":"app.users","volume":3,"unit":"u"} x"#,
                Err("invalid JSON: trailing characters (column 44)"),
            ),
        ];
        let wrong: Vec<String> = cases
            .into_iter()
            .filter_map(|(line, expected)| {
                let got = parse_line(line.as_bytes(), &globs());
                let expected = expected.map_err(str::to_owned);
                (got != expected).then(|| format!("{line}\n  got {got:?}\n  not {expected:?}"))
            })
            .collect();
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn owner_and_metadata_are_carried() {
        let line = r#"{"name":"app.q","volume":1,"unit":"u","project_id":"p","user_id":"u1","metadata":{"vhost":"/","n":2}}"#;
        let m = parse_line(line.as_bytes(), &globs()).expect("valid");
        assert_eq!(m.project_id.as_deref(), Some("p"));
        assert_eq!(m.user_id.as_deref(), Some("u1"));
        assert_eq!(
            serde_json::Value::Object(m.metadata),
            serde_json::json!({"vhost": "/", "n": 2})
        );
    }

    #[test]
    fn bad_lines_are_counted_by_line_number_and_good_ones_kept() {
        let out = b"{\"name\":\"app.a\",\"volume\":1,\"unit\":\"u\"}\n\
            \n\
            oops\n\
            {\"name\":\"app.b\",\"volume\":2,\"unit\":\"u\"}\r\n\
            \xff\n\
            {\"name\":\"nope\",\"volume\":2,\"unit\":\"u\"}\n\
            {}\n\
            {\"name\":\"app.c\",\"volume\":3,\"unit\":\"u\"}";
        let parsed = parse(out, &globs(), false);
        let names: Vec<&str> = parsed.measurements.iter().map(|m| &*m.meter).collect();
        assert_eq!(names, ["app.a", "app.b", "app.c"]);
        assert_eq!(parsed.bad, 4);
        assert_eq!(parsed.reasons.len(), REASONS_KEPT);
        assert!(parsed.reasons[0].starts_with("line 3: not a JSON object"));
        assert_eq!(parsed.reasons[1], "line 5: not UTF-8");
        assert!(parsed.reasons[2].starts_with("line 6: meter `nope`"));
        assert!(
            parsed.summary().ends_with("; and 1 more"),
            "{}",
            parsed.summary()
        );
    }

    #[test]
    fn output_cut_at_the_limit_drops_its_unfinished_line() {
        let out = b"{\"name\":\"app.a\",\"volume\":1,\"unit\":\"u\"}\n{\"name\":\"app.b\",\"vol";
        let parsed = parse(out, &globs(), true);
        assert_eq!(parsed.measurements.len(), 1);
        assert_eq!(parsed.bad, 0);
        assert_eq!(parse(out, &globs(), false).bad, 1);
        assert_eq!(parse(b"", &globs(), false), Parsed::default());
    }
}
