//! Runs one plugin: no shell, its own process group, stdin empty, `LC_ALL=C`, output read up
//! to a cap, and the whole group killed (SIGKILL) and reaped when it overruns its time limit.

use std::ffi::OsStr;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

/// Bytes kept of each of stdout and stderr; the rest is read and thrown away, so a runaway
/// plugin neither blocks on a full pipe nor fills the agent's memory.
pub const OUTPUT_CAP: usize = 64 * 1024;

/// How long to wait for a killed plugin to be reaped before giving up on it (the runtime
/// reaps it later).
const REAP: Duration = Duration::from_millis(200);

/// A plugin that ran to its end.
#[derive(Debug)]
pub struct Finished {
    /// How it ended.
    pub status: ExitStatus,
    /// Its standard output (at most [`OUTPUT_CAP`] bytes).
    pub stdout: Vec<u8>,
    /// Its standard error (at most [`OUTPUT_CAP`] bytes).
    pub stderr: Vec<u8>,
    /// True when either output was longer than the cap.
    pub truncated: bool,
}

impl Finished {
    /// The exit code, or why there is none.
    pub fn exit(&self) -> Result<i32, String> {
        match (self.status.code(), self.status.signal()) {
            (Some(code), _) => Ok(code),
            (None, Some(signal)) => Err(match Signal::try_from(signal) {
                Ok(name) => format!("killed by signal {name}"),
                Err(_) => format!("killed by signal {signal}"),
            }),
            (None, None) => Err(format!("ended without an exit code ({})", self.status)),
        }
    }
}

/// Why a plugin did not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// It could not be started (missing, not executable...).
    #[error("cannot run `{program}`: {error}")]
    Spawn {
        /// The program as it was given.
        program: String,
        /// Why.
        error: std::io::Error,
    },
    /// It overran its time limit and was killed with its process group.
    #[error("timed out after {}s; the plugin's process group was killed", .0.as_secs_f64())]
    TimedOut(Duration),
    /// Waiting for it failed.
    #[error("cannot wait for the plugin: {0}")]
    Wait(std::io::Error),
}

/// Runs `program` with `args` within `limit`.
pub async fn run(program: &OsStr, args: &[String], limit: Duration) -> Result<Finished, Failure> {
    let mut command = Command::new(program);
    command
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|error| Failure::Spawn {
        program: program.to_string_lossy().into_owned(),
        error,
    })?;
    // Declared after `child` so that, if this future is dropped, the group is killed before
    // the child handle goes (while the leader is not yet reaped and its pid is still ours).
    let mut group = Group(child.id().and_then(|id| i32::try_from(id).ok()));
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let work = async {
        tokio::join!(
            read_capped(stdout, OUTPUT_CAP),
            read_capped(stderr, OUTPUT_CAP),
            child.wait()
        )
    };
    match tokio::time::timeout(limit, work).await {
        Ok(((stdout, cut_out), (stderr, cut_err), Ok(status))) => {
            group.disarm();
            Ok(Finished {
                status,
                stdout,
                stderr,
                truncated: cut_out || cut_err,
            })
        }
        Ok((_, _, Err(error))) => {
            group.kill();
            Err(Failure::Wait(error))
        }
        Err(_elapsed) => {
            group.kill();
            let _reaped = tokio::time::timeout(REAP, child.wait()).await;
            Err(Failure::TimedOut(limit))
        }
    }
}

/// The plugin's process group, killed when this is dropped armed.
struct Group(Option<i32>);

impl Group {
    fn kill(&mut self) {
        if let Some(pgid) = self.0.take() {
            match killpg(Pid::from_raw(pgid), Signal::SIGKILL) {
                Ok(()) => tracing::debug!(pgid, "killed the plugin's process group"),
                Err(error) => tracing::debug!(pgid, %error, "killing the plugin's process group"),
            }
        }
    }

    /// The plugin ended and was reaped; a process it left behind in the group is its own.
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads `pipe` to its end, keeping the first `cap` bytes; true when more came.
async fn read_capped(pipe: Option<impl AsyncRead + Unpin>, cap: usize) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut truncated = false;
    let Some(mut pipe) = pipe else {
        return (kept, truncated);
    };
    let mut buf = vec![0; 8192];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return (kept, truncated),
            Ok(n) => {
                let take = n.min(cap - kept.len());
                kept.extend_from_slice(&buf[..take]);
                truncated |= take < n;
            }
        }
    }
}
