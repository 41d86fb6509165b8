//! `exec:` pollsters: a program, in any language, run at every interval, that prints its
//! samples as JSON lines on standard output (schema in [`output`]).
//!
//! ```yaml
//! exec:
//!   - name: app
//!     timeout: 5
//!     command: [./bin/app-stats, --all]   # run without a shell; relative to this file
//!     meters: ["app.*"]                   # what it may print (default: `<name>.*`)
//!     env: {APP_URL: "http://127.0.0.1:8080"}
//! ```
//!
//! The program runs in the directory of its namespace file, in a process group of its own,
//! with stdin from /dev/null and the agent's environment plus `env`. When it exits, whatever
//! it left running in its group is killed; at the time limit (a little under the timeout) or
//! past 16 MiB of output, the whole group is killed. Refused lines are counted and reported
//! (once per run, by line number); the valid ones are kept, also when the program fails. A
//! run fails only when the program failed or every line was refused, and no sample is left.

pub mod output;
pub mod process;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hb_sample::SampleType;
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::process::Command;

use super::{Built, Context, FieldError};
use crate::coordination::Share;
use crate::pollster::{Implementation, MeterDef, NetPollster, PollError, PollFuture};

/// A definition's own fields.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Def {
    command: Vec<String>,
    #[serde(default)]
    meters: Option<Vec<String>>,
    #[serde(default)]
    env: BTreeMap<String, String>,
}

/// An `exec:` pollster. Not `Debug`: `env` may hold credentials.
pub struct Exec {
    name: String,
    /// `command[0]` as written, for messages.
    shown: String,
    program: PathBuf,
    args: Vec<String>,
    dir: PathBuf,
    env: Vec<(String, String)>,
    meters: Vec<glob::Pattern>,
    limit: Duration,
    grace: Duration,
}

/// Builds an exec pollster from a definition's own fields.
pub fn build(map: Map<String, Value>, ctx: &Context<'_>) -> Result<Built, FieldError> {
    let def: Def = super::fields(map)?;
    let Some((first, args)) = def.command.split_first() else {
        return Err(FieldError::new(
            "command",
            "must list the program and its arguments, e.g. [./stats.py, --json]",
        ));
    };
    for (i, arg) in def.command.iter().enumerate() {
        if arg.contains('\0') {
            let msg = "must not contain a NUL character";
            return Err(FieldError::new(format!("command[{i}]"), msg));
        }
    }
    let program = program(first, ctx).map_err(|m| FieldError::new("command[0]", m))?;
    let globs = def
        .meters
        .unwrap_or_else(|| vec![format!("{}.*", glob::Pattern::escape(ctx.name))]);
    if globs.is_empty() {
        let msg =
            "must name at least one meter or glob the program may print (default: `<name>.*`)";
        return Err(FieldError::new("meters", msg));
    }
    let mut meters = Vec::new();
    let mut patterns = Vec::new();
    for (i, g) in globs.iter().enumerate() {
        let field = format!("meters[{i}]");
        if g.is_empty() {
            return Err(FieldError::new(field, "must not be empty"));
        }
        let def = MeterDef::family(g, SampleType::Gauge, "")
            .map_err(|e| FieldError::new(&field, format!("invalid glob `{g}`: {e}")))?;
        patterns.extend(def.family.clone());
        meters.push(def);
    }
    for (key, value) in &def.env {
        let field = format!("env.{key}");
        if key.is_empty() || key.contains(['=', '\0']) {
            let msg = "a variable name must be non-empty, without `=` or NUL";
            return Err(FieldError::new(field, msg));
        }
        if value.contains('\0') {
            return Err(FieldError::new(field, "must not contain a NUL character"));
        }
    }
    let dir = ctx.file.parent().unwrap_or(Path::new("."));
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    let exec = Exec {
        name: ctx.name.to_owned(),
        shown: first.clone(),
        program,
        args: args.to_vec(),
        dir,
        env: def.env.into_iter().collect(),
        meters: patterns,
        limit: own_limit(ctx.timeout),
        grace: (ctx.timeout - own_limit(ctx.timeout)) / 2,
    };
    Ok(Built {
        meters,
        implementation: Implementation::Net(Arc::new(exec)),
    })
}

/// The program to run: a path (relative to the definition's file) that must be an executable
/// file, or a bare name that must be found in `PATH`.
fn program(first: &str, ctx: &Context<'_>) -> Result<PathBuf, String> {
    if first.is_empty() {
        return Err("must name the program to run".to_owned());
    }
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if !first.contains('/') {
        let path = std::env::var_os("PATH").unwrap_or_default();
        if !std::env::split_paths(&path).any(|d| executable(&d.join(first))) {
            return Err(format!("`{first}` is not an executable found in PATH"));
        }
        return Ok(PathBuf::from(first));
    }
    let resolved = ctx.resolve(first);
    let path = std::fs::canonicalize(&resolved)
        .map_err(|e| format!("`{first}` ({}): {e}", resolved.display()))?;
    if !executable(&path) {
        return Err(format!(
            "`{first}` ({}) is not an executable file",
            path.display()
        ));
    }
    Ok(path)
}

/// The program's own time limit: a little under the run timeout, so that a program that
/// hangs is killed and reported here (with what it printed) before the runner gives up.
fn own_limit(timeout: Duration) -> Duration {
    timeout.saturating_sub((timeout / 10).min(Duration::from_millis(500)))
}

impl NetPollster for Exec {
    fn poll<'a>(&'a self, _: &'a Share) -> PollFuture<'a> {
        Box::pin(async move {
            let mut command = Command::new(&self.program);
            command
                .args(&self.args)
                .current_dir(&self.dir)
                .envs(self.env.iter().map(|(k, v)| (k, v)));
            let finished = process::run(command, self.limit, self.grace)
                .await
                .map_err(|e| PollError::Other(format!("cannot run `{}`: {e}", self.shown)))?;
            self.judge(finished)
        })
    }
}

impl Exec {
    /// The samples of a finished run, with one warning or one error that says what went wrong.
    fn judge(&self, finished: process::Finished) -> crate::pollster::PollResult {
        let parsed = output::parse(&finished.stdout, &self.meters, finished.end.cut());
        let failure = finished.end.failure();
        let stderr = first_line(&finished.stderr);
        let refused = match parsed.bad {
            0 => String::new(),
            1 => format!("1 output line refused: {}", parsed.summary()),
            n => format!("{n} output lines refused: {}", parsed.summary()),
        };
        let kept = parsed.measurements.len();
        match failure {
            None if parsed.bad == 0 => {}
            Some(failure) if kept == 0 => {
                let mut msg = format!("`{}` {failure}", self.shown);
                if !stderr.is_empty() {
                    msg += &format!("; stderr: {stderr}");
                }
                if !refused.is_empty() {
                    msg += &format!("; {refused}");
                }
                return Err(PollError::Other(msg));
            }
            None if kept == 0 => {
                return Err(PollError::Other(format!("`{}`: {refused}", self.shown)));
            }
            None => tracing::warn!(
                pollster = %self.name,
                program = %self.shown,
                refused = parsed.bad,
                kept,
                first = %parsed.summary(),
                "exec: {refused}; the valid lines are kept"
            ),
            Some(failure) => tracing::warn!(
                pollster = %self.name,
                program = %self.shown,
                refused = parsed.bad,
                kept,
                stderr = %stderr,
                "exec: `{}` {failure}; its {kept} valid samples are kept{}{refused}",
                self.shown,
                if refused.is_empty() { "" } else { "; " },
            ),
        }
        Ok(parsed.measurements)
    }
}

/// The first non-blank line of a program's standard error, trimmed and shortened.
fn first_line(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty());
    let line = line.unwrap_or_default();
    match line.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build_in(dir: &Path, yaml: Value) -> Result<Built, FieldError> {
        let Value::Object(map) = yaml else {
            panic!("an object")
        };
        let file = dir.join("x.yaml");
        let ctx = Context {
            name: "app",
            file: &file,
            timeout: Duration::from_secs(10),
            shared: crate::plugins::test_shared(),
        };
        build(map, &ctx)
    }

    fn refusal(yaml: Value) -> (String, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("plain.txt"), "").expect("write");
        match build_in(dir.path(), yaml) {
            Ok(_) => panic!("accepted"),
            Err(e) => (e.field, e.message),
        }
    }

    #[test]
    fn definitions_are_refused_naming_the_field() {
        let cases = [
            (serde_json::json!({}), "", "missing field `command`"),
            (serde_json::json!({"command": []}), "command", "must list"),
            (
                serde_json::json!({"command": [""]}),
                "command[0]",
                "must name",
            ),
            (
                serde_json::json!({"command": ["no-such-program-hb"]}),
                "command[0]",
                "not an executable found in PATH",
            ),
            (
                serde_json::json!({"command": ["./missing.sh"]}),
                "command[0]",
                "No such file",
            ),
            (
                serde_json::json!({"command": ["./plain.txt"]}),
                "command[0]",
                "is not an executable file",
            ),
            (
                serde_json::json!({"command": ["sh", "a\u{0}b"]}),
                "command[1]",
                "NUL",
            ),
            (
                serde_json::json!({"command": ["sh"], "meters": []}),
                "meters",
                "at least one",
            ),
            (
                serde_json::json!({"command": ["sh"], "meters": ["a.[*"]}),
                "meters[0]",
                "invalid glob `a.[*`",
            ),
            (
                serde_json::json!({"command": ["sh"], "env": {"A=B": "x"}}),
                "env.A=B",
                "variable name",
            ),
            (
                serde_json::json!({"command": ["sh"], "shell": true}),
                "shell",
                "unknown field `shell`",
            ),
        ];
        for (yaml, field, message) in cases {
            let (got_field, got_message) = refusal(yaml.clone());
            assert_eq!(got_field, field, "{yaml}: {got_message}");
            assert!(got_message.contains(message), "{yaml}: {got_message}");
        }
    }

    #[test]
    fn meters_default_to_the_name_and_are_families() {
        let dir = tempfile::tempdir().expect("tempdir");
        let built = build_in(
            dir.path(),
            serde_json::json!({"command": ["sh", "-c", "true"]}),
        )
        .expect("valid");
        assert_eq!(built.meters.len(), 1);
        assert_eq!(built.meters[0].name, "app.*");
        assert!(built.meters[0].covers("app.queue.depth"));
        assert!(!built.meters[0].covers("other"));
    }

    #[test]
    fn the_own_limit_leaves_room_before_the_runner_gives_up() {
        assert_eq!(
            own_limit(Duration::from_secs(10)),
            Duration::from_millis(9500)
        );
        assert_eq!(
            own_limit(Duration::from_secs(1)),
            Duration::from_millis(900)
        );
    }

    #[test]
    fn the_first_stderr_line_is_trimmed_and_shortened() {
        assert_eq!(
            first_line(b"\n  boom: no config \nmore\n"),
            "boom: no config"
        );
        assert_eq!(first_line(b""), "");
        assert_eq!(first_line("é".repeat(300).as_bytes()).chars().count(), 201);
    }
}
