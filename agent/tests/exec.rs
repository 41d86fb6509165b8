//! `exec:` pollsters with real programs (a Python script, shell scripts): samples kept and
//! lines refused by number, failures reported, and process groups killed at the time limit,
//! also when the runner abandons the run.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hb_agent::coordination::Share;
use hb_agent::plugins::{Context, exec};
use hb_agent::pollster::Implementation;
use serde_json::{Value, json};
use support::{run, samples, text};

/// A namespaces tree whose central namespace holds `yaml` as `exec.yaml` and `scripts`
/// (name, text; made executable) beside it. Returns the tree's root.
fn tree(dir: &Path, yaml: &str, scripts: &[(&str, &str)]) -> PathBuf {
    let root = dir.join("namespaces");
    let central = root.join("central");
    std::fs::create_dir_all(&central).expect("mkdir");
    std::fs::write(central.join("exec.yaml"), yaml).expect("write");
    for (name, body) in scripts {
        let path = central.join(name);
        std::fs::write(&path, body).expect("write");
        let mut perms = std::fs::metadata(&path).expect("stat").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&path, perms).expect("chmod");
    }
    root
}

fn once(dir: &Path, root: &Path) -> Output {
    let root = root.to_str().expect("utf-8");
    let args = [
        "--namespaces-dir",
        root,
        "--polling-namespaces",
        "central",
        "--once",
        "--format",
        "json",
    ];
    run(dir, &args)
}

/// The parts of a sample a program decides (and the host the runner adds).
fn essence(s: &Value) -> Value {
    json!([
        s["name"],
        s["type"],
        s["unit"],
        s["volume"],
        s["resource_id"],
        s["project_id"],
        s["user_id"],
        s["resource_metadata"]
    ])
}

const STATS_PY: &str = r#"#!/usr/bin/env python3
import json, os
print(json.dumps({"name": "app.users", "volume": 3, "unit": "user"}))
print("users=3")
print(json.dumps({"name": "app.queue.depth", "volume": 12.5, "unit": "message", "type": "delta",
                  "resource_id": "queue-a", "project_id": "p1", "user_id": "u1",
                  "metadata": {"vhost": "/", "cwd": os.getcwd()}}))
print(json.dumps({"name": "other.x", "volume": 1, "unit": "u"}))
print()
print(json.dumps({"name": "app.bytes", "volume": 1024, "unit": "B", "typ": "cumulative"}))
print(json.dumps({"name": "app.env", "volume": float(os.environ["APP_VALUE"]), "unit": "u",
                  "type": "cumulative"}))
"#;

#[test]
fn a_python_program_s_good_lines_are_samples_and_bad_ones_are_reported_by_number() {
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = "exec:\n  - name: app\n    timeout: 20\n    command: [./stats.py, --ignored]\n    env: {APP_VALUE: \"42\"}\n";
    let root = tree(dir.path(), yaml, &[("stats.py", STATS_PY)]);
    let out = once(dir.path(), &root);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let got = samples(&out);
    let host = got[0]["resource_metadata"]["host"].clone();
    assert!(host.is_string(), "{got:?}");
    let cwd = std::fs::canonicalize(root.join("central")).expect("canonical");
    assert_eq!(
        got.iter().map(essence).collect::<Vec<_>>(),
        [
            json!(["app.users", "gauge", "user", 3.0, host, null, null, {"host": host}]),
            json!(["app.queue.depth", "delta", "message", 12.5, "queue-a", "p1", "u1",
                {"vhost": "/", "cwd": cwd.to_str().expect("utf-8"), "host": host}]),
            json!(["app.env", "cumulative", "u", 42.0, host, null, null, {"host": host}]),
        ]
    );
    // One warning for the run, naming the lines (the blank line 5 is not counted).
    assert_eq!(
        stderr.matches("output lines refused").count(),
        1,
        "{stderr}"
    );
    for expected in [
        "pollster=app",
        "3 output lines refused",
        "line 2: not a JSON object",
        "line 4: meter `other.x` is not declared (meters: app.*)",
        "line 6: unknown field `typ`",
    ] {
        assert!(stderr.contains(expected), "{expected} not in: {stderr}");
    }
}

const FAILING_SH: &str = r#"echo '{"name": "svc.a", "volume": 1, "unit": "u"}'
echo 'svc.b 2'
echo "boom: cannot reach the service ($1)" >&2
echo "second stderr line" >&2
echo '{"name": "svc.c", "volume": 3, "unit": "u"}'
exit 3
"#;

#[test]
fn a_failing_shell_script_keeps_its_good_samples_and_reports_its_status_and_stderr() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("fail.sh");
    std::fs::write(&script, FAILING_SH).expect("write");
    let yaml = format!(
        "exec:\n  - name: svc\n    command: [/bin/sh, {}, arg-1]\n",
        script.display()
    );
    let root = tree(dir.path(), &yaml, &[]);
    let out = once(dir.path(), &root);
    let stderr = text(&out.stderr);
    assert!(
        out.status.success(),
        "kept samples: not a failed run: {stderr}"
    );
    let names: Vec<Value> = samples(&out).iter().map(|s| s["name"].clone()).collect();
    assert_eq!(names, ["svc.a", "svc.c"]);
    for expected in [
        "`/bin/sh` exited with status 3",
        "its 2 valid samples are kept",
        "1 output line refused: line 2: not a JSON object",
        "boom: cannot reach the service (arg-1)",
    ] {
        assert!(stderr.contains(expected), "{expected} not in: {stderr}");
    }
    assert!(!stderr.contains("second stderr line"), "{stderr}");
}

#[test]
fn a_program_that_fails_without_samples_fails_the_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = "exec:\n  - name: svc\n    command: [/bin/sh, -c, 'echo nothing; echo \"no config\" >&2; exit 2']\n  - name: quiet\n    command: [/bin/sh, -c, 'echo {}']\n";
    let root = tree(dir.path(), yaml, &[]);
    let out = once(dir.path(), &root);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "pollster `svc` failed: `/bin/sh` exited with status 2; stderr: no config; 1 output line refused: line 1: not a JSON object"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "pollster `quiet` failed: `/bin/sh`: 1 output line refused: line 1: missing field `name`"
        ),
        "{stderr}"
    );
    assert!(samples(&out).is_empty());
}

#[test]
fn a_program_that_prints_too_much_is_killed_at_16_mib() {
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = "exec:\n  - name: big\n    timeout: 30\n    command: ['yes', '{\"name\": \"big.x\", \"volume\": 1, \"unit\": \"u\"']\n";
    let root = tree(dir.path(), yaml, &[]);
    let out = once(dir.path(), &root);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("`yes` printed more than 16 MiB; its process group was killed"),
        "{stderr}"
    );
}

#[test]
fn a_process_that_leaves_the_group_with_the_output_pipe_does_not_hold_the_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("pid");
    let script = dir.path().join("detach.sh");
    std::fs::write(
        &script,
        "setsid sleep 20 &\n\
         # wait until it has its own session (and group)\n\
         while [ \"$(awk '{print $6}' /proc/$!/stat)\" != $! ]; do :; done\n\
         echo $! > \"$1\"\necho '{\"name\": \"detach.ok\", \"volume\": 1, \"unit\": \"u\"}'\n",
    )
    .expect("write");
    let yaml = format!(
        "exec:\n  - name: detach\n    timeout: 5\n    command: [/bin/sh, {}, {}]\n",
        script.display(),
        pid_file.display()
    );
    let root = tree(dir.path(), &yaml, &[]);
    let out = once(dir.path(), &root);
    let stderr = text(&out.stderr);
    let escaped: i32 = std::fs::read_to_string(&pid_file)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    let still_running = running(escaped);
    // Ours to clean up: it left the group on purpose.
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &escaped.to_string()])
        .status();
    assert!(out.status.success(), "{stderr}");
    let names: Vec<Value> = samples(&out).iter().map(|s| s["name"].clone()).collect();
    assert_eq!(names, ["detach.ok"], "{stderr}");
    assert!(
        still_running,
        "the test needs a process that outlives the run"
    );
}

/// Processes of group `pgid` that are still running (zombies do not count).
fn group(pgid: i32) -> Vec<i32> {
    let mut left = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(2) == Some(&pgid.to_string().as_str()) && fields[0] != "Z" {
            left.push(pid);
        }
    }
    left
}

/// True while `pid` runs (a zombie has stopped running).
fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

/// Waits (up to 10 s) for group `pgid` to have no running process; returns what is left.
fn group_after_kill(pgid: i32) -> Vec<i32> {
    let started = Instant::now();
    loop {
        let left = group(pgid);
        if left.is_empty() || started.elapsed() > Duration::from_secs(10) {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts a child in the background, records `$$ $!`, prints one sample, then hangs.
const HANG_SH: &str = r#"sleep 30 &
echo "$$ $!" > "$1"
echo '{"name": "slow.started", "volume": 1, "unit": "u"}'
sleep 30
echo '{"name": "slow.never", "volume": 1, "unit": "u"}'
"#;

fn pids(file: &Path) -> (i32, i32) {
    let text = std::fs::read_to_string(file).expect("pid file");
    let mut it = text.split_whitespace().map(|p| p.parse().expect("pid"));
    (it.next().expect("$$"), it.next().expect("$!"))
}

#[test]
fn at_the_timeout_the_program_and_its_background_child_are_killed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("hang.sh");
    std::fs::write(&script, HANG_SH).expect("write");
    let pid_file = dir.path().join("pids");
    let yaml = format!(
        "exec:\n  - name: slow\n    timeout: 1\n    command: [/bin/sh, {}, {}]\n",
        script.display(),
        pid_file.display()
    );
    let root = tree(dir.path(), &yaml, &[]);
    let started = Instant::now();
    let out = once(dir.path(), &root);
    let stderr = text(&out.stderr);
    assert!(started.elapsed() < Duration::from_secs(25), "{stderr}");
    assert!(out.status.success(), "the sample printed is kept: {stderr}");
    let names: Vec<Value> = samples(&out).iter().map(|s| s["name"].clone()).collect();
    assert_eq!(names, ["slow.started"]);
    assert!(
        stderr.contains("timed out after 0.9 s; its process group was killed"),
        "{stderr}"
    );
    let (shell, background) = pids(&pid_file);
    assert_eq!(group_after_kill(shell), Vec::<i32>::new());
    assert!(!running(shell) && !running(background));
}

#[tokio::test]
async fn a_run_dropped_by_the_runner_kills_the_program_s_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("hang.sh");
    std::fs::write(&script, HANG_SH).expect("write");
    let pid_file = dir.path().join("pids");
    let file = dir.path().join("exec.yaml");
    let shared = hb_agent::plugins::Shared::default();
    let ctx = Context {
        name: "slow",
        file: &file,
        timeout: Duration::from_secs(60),
        shared: &shared,
    };
    let definition = json!({"command": ["/bin/sh", script, pid_file]});
    let Value::Object(map) = definition else {
        unreachable!()
    };
    let built = exec::build(map, &ctx).unwrap_or_else(|e| panic!("{e:?}"));
    let Implementation::Net(pollster) = built.implementation else {
        panic!("an exec pollster is a net pollster")
    };
    let pollster = Arc::clone(&pollster);
    let share = Share::all();
    let started = Instant::now();
    let written = async {
        while !std::fs::read_to_string(&pid_file).is_ok_and(|t| t.ends_with('\n')) {
            assert!(started.elapsed() < Duration::from_secs(20), "no pid file");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (shell, background) = pids(&pid_file);
        (shell, background, group(shell))
    };
    // What the runner does at its timeout: drop the run's future.
    let (shell, background, before) = tokio::select! {
        r = pollster.poll(&share) => panic!("the program should still run: {r:?}"),
        found = written => found,
    };
    assert!(
        before.contains(&shell) && before.contains(&background),
        "both run before the drop: {before:?}"
    );
    assert_eq!(group_after_kill(shell), Vec::<i32>::new());
    assert!(!running(shell) && !running(background));
}
