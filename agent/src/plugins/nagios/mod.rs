//! `nagios:` commands that follow the Nagios plugin convention: the exit code becomes the
//! gauge `<name>.status` and each performance data label a meter `<name>.<label>`.
//!
//! ```yaml
//! nagios:
//!   - name: root_disk
//!     command: [/usr/lib/nagios/plugins/check_disk, -w, "20%", -c, "10%", -p, /]
//!     timeout: 10
//!     resource_id: root-fs
//!     metadata: {team: storage}
//! ```
//!
//! The program runs without a shell (see [`process`]); a timeout, a missing program, a signal
//! or an exit code outside 0..3 is status 3 (UNKNOWN) with the reason in metadata `error`.

pub mod perfdata;
pub mod process;

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
use std::sync::Arc;
use std::time::Duration;

use hb_sample::SampleType;
use serde::Deserialize;
use serde_json::{Map, Value};

use self::perfdata::Perf;
use self::process::{Failure, Finished};
use super::{Built, Context, FieldError};
use crate::coordination::Share;
use crate::pollster::{Implementation, Measurement, MeterDef, NetPollster, PollFuture};

/// Metadata keys the pollster sets itself, refused in a definition's `metadata`.
pub const RESERVED: [&str; 9] = [
    "status",
    "output",
    "long_output",
    "error",
    "label",
    "warn",
    "crit",
    "min",
    "max",
];

/// Status names by exit code.
const STATUS: [&str; 4] = ["OK", "WARNING", "CRITICAL", "UNKNOWN"];

/// Status 3: what hb reports when the plugin could not tell.
const UNKNOWN: u8 = 3;

/// The longest `output` / `long_output` kept in metadata, in bytes.
const TEXT_CAP: usize = 4096;

/// A definition's own fields.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Definition {
    command: Vec<String>,
    #[serde(default)]
    resource_id: String,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

/// Builds a Nagios plugin pollster.
pub fn build(map: Map<String, Value>, ctx: &Context<'_>) -> Result<Built, FieldError> {
    let def: Definition = super::fields(map)?;
    let Some((program, args)) = def.command.split_first() else {
        return Err(FieldError::new(
            "command",
            "must list the program and its arguments, e.g. [/usr/lib/nagios/plugins/check_load, -w, \"5,4,3\", -c, \"10,8,6\"]",
        ));
    };
    if program.is_empty() {
        return Err(FieldError::new("command[0]", "must name a program"));
    }
    if let Some(i) = def.command.iter().position(|a| a.contains('\0')) {
        return Err(FieldError::new(
            format!("command[{i}]"),
            "must not contain a NUL byte",
        ));
    }
    if let Some(key) = def.metadata.keys().find(|k| RESERVED.contains(&k.as_str())) {
        return Err(FieldError::new(
            format!("metadata.{key}"),
            format!(
                "key `{key}` is set by the pollster; reserved keys: {}",
                RESERVED.join(", ")
            ),
        ));
    }
    let program = program_path(program, ctx);
    let name = ctx.name;
    let family = format!("{}.*", glob::Pattern::escape(name));
    let family = MeterDef::family(&family, SampleType::Gauge, "")
        .map_err(|e| FieldError::new("name", format!("cannot make a meter pattern: {e}")))?
        .describe("Performance data of the plugin: one meter per label, unit from its UOM");
    let status = MeterDef::new(format!("{name}.status"), SampleType::Gauge, "status")
        .describe("Plugin status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN");
    let pollster = Nagios {
        name: name.to_owned(),
        program,
        args: args.to_vec(),
        resource_id: def.resource_id,
        metadata: def.metadata,
        limit: limit(ctx.timeout),
    };
    Ok(Built {
        meters: vec![status, family],
        implementation: Implementation::Net(Arc::new(pollster)),
    })
}

/// The program to run: an absolute path or a bare name (looked up in PATH when it runs) as
/// written; a relative path with a `/` relative to the namespace file's directory.
pub fn program_path(program: &str, ctx: &Context<'_>) -> OsString {
    if program.contains('/') && !program.starts_with('/') {
        ctx.resolve(program).into_os_string()
    } else {
        OsString::from(program)
    }
}

/// The plugin's own time limit: a little inside the run timeout (a tenth of it, at most one
/// second), so that the pollster kills the plugin and reports UNKNOWN before the runner
/// abandons the run.
pub fn limit(timeout: Duration) -> Duration {
    timeout.saturating_sub((timeout / 10).min(Duration::from_secs(1)))
}

/// A Nagios plugin pollster.
pub struct Nagios {
    name: String,
    program: OsString,
    args: Vec<String>,
    resource_id: String,
    metadata: BTreeMap<String, String>,
    limit: Duration,
}

impl NetPollster for Nagios {
    fn poll<'a>(&'a self, _share: &'a Share) -> PollFuture<'a> {
        Box::pin(async move {
            let outcome = process::run(&self.program, &self.args, self.limit).await;
            Ok(self.measurements(outcome))
        })
    }
}

impl Nagios {
    /// The samples of one run: the status, then one per performance data label.
    fn measurements(&self, outcome: Result<Finished, Failure>) -> Vec<Measurement> {
        let finished = match outcome {
            Ok(finished) => finished,
            Err(failure) => {
                let reason = failure.to_string();
                tracing::warn!(pollster = %self.name, error = %reason, "nagios plugin UNKNOWN");
                return vec![self.status(UNKNOWN, &reason, "", Some(&reason))];
            }
        };
        if finished.truncated {
            tracing::warn!(pollster = %self.name, cap = process::OUTPUT_CAP, "nagios plugin output longer than the cap; the rest was ignored");
        }
        let parsed = perfdata::parse(&String::from_utf8_lossy(&finished.stdout));
        let (code, error) = match finished.exit() {
            Ok(code @ 0..=3) => (u8::try_from(code).unwrap_or(UNKNOWN), None),
            Ok(code) => (
                UNKNOWN,
                Some(format!(
                    "exit code {code} is not a plugin status (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)"
                )),
            ),
            Err(why) => (UNKNOWN, Some(why)),
        };
        let stderr = String::from_utf8_lossy(&finished.stderr);
        let output = if !parsed.text.is_empty() {
            parsed.text.as_str()
        } else if let Some(line) = stderr.lines().map(str::trim).find(|l| !l.is_empty()) {
            line
        } else {
            error.as_deref().unwrap_or_default()
        };
        if let Some(error) = &error {
            tracing::warn!(pollster = %self.name, %error, output, "nagios plugin UNKNOWN");
        }
        if parsed.bad > 0 {
            tracing::warn!(pollster = %self.name, unreadable = parsed.bad, reasons = %parsed.reasons.join("; "), "nagios plugin performance data items skipped");
        }
        let mut samples = vec![self.status(code, output, &parsed.long_text, error.as_deref())];
        let mut seen = HashSet::new();
        for perf in parsed.perfdata {
            let meter = self.meter_of(&perf.label);
            if !seen.insert(meter.clone()) {
                tracing::debug!(pollster = %self.name, label = %perf.label, "nagios performance label repeated; the first is kept");
                continue;
            }
            samples.extend(self.perf_sample(meter, perf));
        }
        samples
    }

    fn status(
        &self,
        code: u8,
        output: &str,
        long_output: &str,
        error: Option<&str>,
    ) -> Measurement {
        let status = STATUS[usize::from(code.min(UNKNOWN))];
        let mut m = self
            .sample(Measurement::new(
                format!("{}.status", self.name),
                f64::from(code),
                self.resource_id.as_str(),
            ))
            .with("status", status)
            .with("output", capped(output));
        if !long_output.is_empty() {
            m = m.with("long_output", capped(long_output));
        }
        match error {
            Some(error) => m.with("error", error),
            None => m,
        }
    }

    fn perf_sample(&self, meter: String, perf: Perf) -> Option<Measurement> {
        let Some(volume) = perf.value else {
            tracing::debug!(pollster = %self.name, label = %perf.label, "nagios performance value undetermined (U); no sample");
            return None;
        };
        let (kind, unit) = perfdata::kind_and_unit(&perf.uom);
        let mut m = self
            .sample(Measurement::typed(
                meter,
                kind,
                unit,
                volume,
                self.resource_id.as_str(),
            ))
            .with("label", perf.label);
        for (key, value) in [
            ("warn", perf.warn),
            ("crit", perf.crit),
            ("min", perf.min),
            ("max", perf.max),
        ] {
            if let Some(value) = value {
                m = m.with(key, value);
            }
        }
        Some(m)
    }

    /// `m` with the definition's static metadata.
    fn sample(&self, mut m: Measurement) -> Measurement {
        for (key, value) in &self.metadata {
            m = m.with(key, value.as_str());
        }
        m
    }

    /// `<name>.<label>`, whitespace and control characters in the label made `_`; a label
    /// `status` becomes `<name>.status_perfdata` so as not to pass for the plugin's status.
    fn meter_of(&self, label: &str) -> String {
        let label: String = label
            .chars()
            .map(|c| {
                if c.is_whitespace() || c.is_control() {
                    '_'
                } else {
                    c
                }
            })
            .collect();
        if label == "status" {
            format!("{}.status_perfdata", self.name)
        } else {
            format!("{}.{label}", self.name)
        }
    }
}

/// `s` cut to [`TEXT_CAP`] bytes at a character boundary.
fn capped(s: &str) -> &str {
    if s.len() <= TEXT_CAP {
        return s;
    }
    let mut end = TEXT_CAP;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests;
