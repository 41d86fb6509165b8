//! Runs one `exec:` program: its own process group, stdin from /dev/null, capped output, a
//! time limit, and a guard that kills the whole group when the run ends or is abandoned.

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::signal::unix::{Signal as Signals, SignalKind, signal};
use tokio::time::{Instant, sleep, sleep_until};

/// Standard output kept per run; a program that prints more is killed.
pub const STDOUT_LIMIT: usize = 16 << 20;
/// Standard error kept per run (the rest is read and dropped).
pub const STDERR_LIMIT: usize = 64 << 10;
/// How often the program is checked for exit between SIGCHLD notifications.
const RECHECK: Duration = Duration::from_millis(100);

/// What one run of a program left.
#[derive(Debug)]
pub struct Finished {
    /// Standard output, at most [`STDOUT_LIMIT`] bytes.
    pub stdout: Vec<u8>,
    /// Standard error, at most [`STDERR_LIMIT`] bytes.
    pub stderr: Vec<u8>,
    /// How it ended.
    pub end: End,
}

/// How a program's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// It exited, or was killed by someone else, with this status.
    Exited(ExitStatus),
    /// It was still running at the time limit: its group was killed.
    TimedOut(Duration),
    /// It printed more than [`STDOUT_LIMIT`]: its group was killed.
    TooMuchOutput,
}

impl End {
    /// Why the run counts as failed, or `None` when the program exited with status 0.
    pub fn failure(self) -> Option<String> {
        match self {
            Self::Exited(s) if s.success() => None,
            Self::Exited(s) => Some(match (s.code(), s.signal()) {
                (Some(code), _) => format!("exited with status {code}"),
                (None, Some(n)) => match Signal::try_from(n) {
                    Ok(sig) => format!("was killed by signal {n} ({sig})"),
                    Err(_) => format!("was killed by signal {n}"),
                },
                (None, None) => format!("ended with {s}"),
            }),
            Self::TimedOut(limit) => Some(format!(
                "timed out after {:.1} s; its process group was killed",
                limit.as_secs_f64()
            )),
            Self::TooMuchOutput => Some(format!(
                "printed more than {} MiB; its process group was killed",
                STDOUT_LIMIT >> 20
            )),
        }
    }

    /// True when the standard output was cut at the limit.
    pub fn cut(self) -> bool {
        self == Self::TooMuchOutput
    }
}

/// The program's process group, killed when this is dropped unless its leader was reaped
/// first. The leader stays a zombie until [`Group::reap`], so its id cannot name another
/// process group while this holds it.
struct Group {
    pgid: Option<Pid>,
    child: Child,
}

impl Group {
    fn kill(&self) {
        if let Some(pgid) = self.pgid {
            match killpg(pgid, Signal::SIGKILL) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(e) => {
                    tracing::warn!(pgid = pgid.as_raw(), error = %e, "cannot kill an exec program's process group")
                }
            }
        }
    }

    /// Kills what is left of the group, then collects the exited leader's status.
    async fn reap(&mut self) -> io::Result<ExitStatus> {
        self.kill();
        self.pgid = None;
        self.child.wait().await
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // Also when the runner drops the run at its timeout: nothing of the program survives.
        self.kill();
    }
}

/// Runs `command` in a new process group until it exits, prints too much, or `limit` passes
/// (then its group is killed). When it exits, anything it left in its group is killed too.
/// Once it has exited or been killed, its output pipes may stay open `grace` longer (a process
/// that left the group may hold them) before what was read is taken as all there is.
pub async fn run(mut command: Command, limit: Duration, grace: Duration) -> io::Result<Finished> {
    command
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // Registered before the spawn so that the exit cannot be missed (re-checked anyway).
    let mut sigchld = signal(SignalKind::child()).ok();
    let deadline = Instant::now() + limit;
    let mut child = command.spawn()?;
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw)
        .ok_or_else(|| io::Error::other("the spawned program has no process id"))?;
    let (Some(mut stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(io::Error::other("the program's output is not piped"));
    };
    let mut group = Group {
        pgid: Some(pid),
        child,
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut end = None;
    let mut exited = false;
    {
        let reading_out = read(&mut stdout, &mut out, STDOUT_LIMIT, false);
        let reading_err = read(&mut stderr, &mut err, STDERR_LIMIT, true);
        let leader = leader_exit(pid, sigchld.as_mut());
        tokio::pin!(reading_out, reading_err, leader);
        let (mut out_done, mut err_done) = (false, false);
        let mut cutoff: Option<Instant> = None;
        while !(out_done && err_done && exited) {
            tokio::select! {
                // Reads first: output already in the pipes is kept when a limit strikes.
                biased;
                over = &mut reading_out, if !out_done => {
                    out_done = true;
                    if over {
                        group.kill();
                        end.get_or_insert(End::TooMuchOutput);
                        cutoff.get_or_insert(Instant::now() + grace);
                    }
                }
                _ = &mut reading_err, if !err_done => err_done = true,
                () = &mut leader, if !exited => {
                    exited = true;
                    // Leftovers (`cmd &`) would hold the pipes open: the run is over.
                    group.kill();
                    cutoff.get_or_insert((Instant::now() + grace).min(deadline));
                }
                () = sleep_until(deadline), if end.is_none() && !exited => {
                    group.kill();
                    end = Some(End::TimedOut(limit));
                    cutoff.get_or_insert(Instant::now() + grace);
                }
                () = sleep_until(cutoff.unwrap_or(deadline)), if cutoff.is_some() => break,
            }
        }
    }
    let status = if exited {
        Some(group.reap().await?)
    } else {
        None
    };
    let end = match (end, status) {
        (Some(end), _) => end,
        (None, Some(status)) => End::Exited(status),
        // Not exited yet the pipes closed and the cutoff passed: only after a kill.
        (None, None) => End::TimedOut(limit),
    };
    Ok(Finished {
        stdout: out,
        stderr: err,
        end,
    })
}

/// Appends what `from` gives to `into`, up to `limit` bytes. Past the limit, returns `true`
/// at once, or with `drain` reads on and drops the rest. Stops at end of file or an error.
async fn read(
    from: &mut (impl AsyncRead + Unpin),
    into: &mut Vec<u8>,
    limit: usize,
    drain: bool,
) -> bool {
    let mut chunk = vec![0; 64 << 10];
    let mut over = false;
    loop {
        let n = match from.read(&mut chunk).await {
            Ok(0) | Err(_) => return over,
            Ok(n) => n,
        };
        let room = limit - into.len();
        if n > room {
            into.extend_from_slice(&chunk[..room]);
            over = true;
            if !drain {
                return true;
            }
        } else {
            into.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Resolves when the process `pid` (a child of ours) has exited, without reaping it.
async fn leader_exit(pid: Pid, mut sigchld: Option<&mut Signals>) {
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT | WaitPidFlag::WNOHANG;
    loop {
        match waitid(Id::Pid(pid), flags) {
            Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => {}
            // Exited, or cannot be waited for (then reaping reports it).
            Ok(_) | Err(_) => return,
        }
        match sigchld.as_deref_mut() {
            Some(s) => {
                tokio::select! {
                    _ = s.recv() => {}
                    () = sleep(RECHECK) => {}
                }
            }
            None => sleep(RECHECK).await,
        }
    }
}
