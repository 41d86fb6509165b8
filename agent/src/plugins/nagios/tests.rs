//! The nagios pollster without the agent: definitions refused or built, the samples of an
//! outcome, and real child processes (a capped runaway, a process group killed on timeout).

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;

use serde_json::json;

use super::*;

fn ctx(timeout: f64) -> Context<'static> {
    Context {
        name: "chk",
        file: Path::new("/etc/hb/namespaces/central/x.yaml"),
        timeout: Duration::from_secs_f64(timeout),
        shared: crate::plugins::test_shared(),
    }
}

fn definition(value: Value) -> Result<Built, FieldError> {
    let Value::Object(map) = value else {
        panic!("a mapping")
    };
    build(map, &ctx(10.0))
}

fn refusal(value: Value) -> FieldError {
    match definition(value) {
        Ok(_) => panic!("refused"),
        Err(e) => e,
    }
}

fn pollster(metadata: &[(&str, &str)]) -> Nagios {
    Nagios {
        name: "chk".into(),
        program: "/bin/true".into(),
        args: Vec::new(),
        resource_id: String::new(),
        metadata: metadata
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        limit: Duration::from_secs(1),
    }
}

fn finished(status: ExitStatus, stdout: &str, stderr: &str) -> Result<Finished, Failure> {
    Ok(Finished {
        status,
        stdout: stdout.into(),
        stderr: stderr.into(),
        truncated: false,
    })
}

fn exited(code: i32, stdout: &str) -> Result<Finished, Failure> {
    finished(ExitStatus::from_raw(code << 8), stdout, "")
}

fn meta<'a>(m: &'a Measurement, key: &str) -> &'a Value {
    m.metadata.get(key).unwrap_or(&Value::Null)
}

#[test]
fn definitions_that_are_wrong_name_the_field() {
    let cases = [
        (json!({}), ""),
        (json!({"command": []}), "command"),
        (json!({"command": [""]}), "command[0]"),
        (json!({"command": ["/bin/echo", "a\u{0}b"]}), "command[1]"),
        (json!({"command": "check_load"}), "command"),
        (
            json!({"command": ["x"], "metadata": {"status": "x"}}),
            "metadata.status",
        ),
        (
            json!({"command": ["x"], "metadata": {"port": 80}}),
            "metadata.port",
        ),
        (json!({"command": ["x"], "comand": ["x"]}), "comand"),
    ];
    for (value, field) in cases {
        let e = refusal(value.clone());
        assert_eq!(e.field, field, "{value}: {e:?}");
        assert!(e.message.starts_with(char::is_lowercase), "{e:?}");
    }
    assert_eq!(refusal(json!({})).message, "missing field `command`");
    let e = refusal(json!({"command": ["x"], "metadata": {"error": "x"}}));
    assert!(e.message.contains("reserved keys: status, output"), "{e:?}");
}

#[test]
fn a_definition_declares_the_status_meter_and_a_family() {
    let built =
        definition(json!({"command": ["check_load", "-r"], "resource_id": "r"})).expect("built");
    let [status, family] = &built.meters[..] else {
        panic!("two meters: {:?}", built.meters)
    };
    assert_eq!(
        (status.name.as_str(), status.kind, status.unit.as_str()),
        ("chk.status", SampleType::Gauge, "status")
    );
    assert!(status.family.is_none());
    assert_eq!(family.name, "chk.*");
    assert!(family.covers("chk.load1") && family.covers("chk./boot"));
    assert!(!family.covers("other.load1"));
}

#[test]
fn programs_resolve_relative_to_the_file_and_limits_sit_inside_the_timeout() {
    let program = |p: &str| program_path(p, &ctx(10.0));
    assert_eq!(program("check_load"), "check_load");
    assert_eq!(program("/usr/bin/x"), "/usr/bin/x");
    assert_eq!(program("bin/x"), "/etc/hb/namespaces/central/bin/x");
    assert_eq!(limit(Duration::from_secs(1)), Duration::from_millis(900));
    assert_eq!(limit(Duration::from_secs(60)), Duration::from_secs(59));
}

#[test]
fn exit_codes_become_statuses_with_output_and_perfdata() {
    let p = pollster(&[("team", "ops")]);
    for (code, status) in [(0, "OK"), (1, "WARNING"), (2, "CRITICAL"), (3, "UNKNOWN")] {
        let m = p.measurements(exited(code, "TEXT | a=1"));
        assert_eq!(m[0].meter, "chk.status");
        assert_eq!(m[0].volume, f64::from(code));
        assert_eq!(meta(&m[0], "status"), status);
        assert_eq!(meta(&m[0], "output"), "TEXT");
        assert_eq!(meta(&m[0], "team"), "ops");
        assert!(m[0].metadata.get("error").is_none());
        assert_eq!(m.len(), 2);
    }
    let out =
        "DISK WARNING | '/ root'=5GB;4;8;0;10 pkts=7c x=U load=0.5 '/ root'=6GB\nmore\n| status=1";
    let m = p.measurements(exited(1, out));
    let names: Vec<&str> = m.iter().map(|m| &*m.meter).collect();
    assert_eq!(
        names,
        [
            "chk.status",
            "chk./_root",
            "chk.pkts",
            "chk.load",
            "chk.status_perfdata"
        ]
    );
    assert_eq!(meta(&m[0], "long_output"), "more");
    let disk = &m[1];
    assert_eq!(disk.typed, Some((SampleType::Gauge, "GB".to_owned())));
    assert_eq!(disk.volume, 5.0);
    assert_eq!(disk.resource_id, "");
    for (k, v) in [
        ("label", "/ root"),
        ("warn", "4"),
        ("crit", "8"),
        ("min", "0"),
        ("max", "10"),
        ("team", "ops"),
    ] {
        assert_eq!(meta(disk, k), v, "{k}");
    }
    assert_eq!(
        m[2].typed,
        Some((SampleType::Cumulative, "count".to_owned()))
    );
    assert_eq!(m[3].typed, Some((SampleType::Gauge, "1".to_owned())));
    assert!(m[3].metadata.get("warn").is_none());
}

#[test]
fn hb_makes_it_unknown_and_says_why() {
    let p = pollster(&[]);
    let unknown = |outcome| {
        let m = p.measurements(outcome);
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!(
            (m[0].volume, meta(&m[0], "status")),
            (3.0, &json!("UNKNOWN"))
        );
        let error = meta(&m[0], "error").as_str().expect("error").to_owned();
        (meta(&m[0], "output").clone(), error)
    };
    let (output, error) = unknown(exited(4, "WEIRD"));
    assert_eq!(output, "WEIRD");
    assert!(
        error.starts_with("exit code 4 is not a plugin status"),
        "{error}"
    );
    let (output, error) = unknown(finished(ExitStatus::from_raw(9), "", "oops\n"));
    assert_eq!(
        (output.as_str(), error.as_str()),
        (Some("oops"), "killed by signal SIGKILL")
    );
    let (output, error) = unknown(Err(Failure::TimedOut(Duration::from_millis(900))));
    assert_eq!(output, error.as_str());
    assert_eq!(
        error,
        "timed out after 0.9s; the plugin's process group was killed"
    );
    let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
    let (_, error) = unknown(Err(Failure::Spawn {
        program: "check_nothing".into(),
        error: missing,
    }));
    assert!(error.starts_with("cannot run `check_nothing`: "), "{error}");
}

#[tokio::test]
async fn a_runaway_plugin_is_capped_and_a_slow_one_killed_with_its_group() {
    let sh = OsString::from("/bin/sh");
    let script = |s: &str| vec!["-c".to_owned(), s.to_owned()];
    let loud = process::run(
        &sh,
        &script("head -c 300000 /dev/zero; echo x >&2; exit 2"),
        Duration::from_secs(20),
    )
    .await
    .expect("finished");
    assert_eq!(
        (loud.stdout.len(), loud.truncated),
        (process::OUTPUT_CAP, true)
    );
    assert_eq!(
        (loud.stderr.as_slice(), loud.exit().ok()),
        (&b"x\n"[..], Some(2))
    );
    let env = process::run(
        &sh,
        &script("echo \"$LC_ALL\"; read x; echo \"[$x]\""),
        Duration::from_secs(20),
    )
    .await
    .expect("finished");
    assert_eq!(String::from_utf8_lossy(&env.stdout), "C\n[]\n");

    let dir = tempfile::tempdir().expect("tempdir");
    let pidfile = dir.path().join("pid");
    let slow = format!("sleep 60 & echo $! > {}; wait", pidfile.display());
    let started = std::time::Instant::now();
    let outcome = process::run(&sh, &script(&slow), Duration::from_millis(500)).await;
    assert!(matches!(outcome, Err(Failure::TimedOut(_))), "{outcome:?}");
    assert!(started.elapsed() < Duration::from_secs(30));
    let pid = std::fs::read_to_string(&pidfile).expect("the script wrote its child's pid");
    assert!(
        gone(pid.trim()),
        "the background sleep {pid} survived its group's kill"
    );
}

/// True once `/proc/<pid>` is gone or a zombie (waits up to 10 s for init to reap it).
fn gone(pid: &str) -> bool {
    for _ in 0..200 {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(stat)
                if stat
                    .rsplit(')')
                    .next()
                    .is_some_and(|s| s.trim_start().starts_with('Z')) =>
            {
                return true;
            }
            Ok(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    false
}

#[test]
fn missing_programs_fail_to_spawn() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let outcome = rt.block_on(process::run(
        "/nonexistent/check_x".as_ref(),
        &[],
        Duration::from_secs(5),
    ));
    let Err(e @ Failure::Spawn { .. }) = outcome else {
        panic!("{outcome:?}")
    };
    assert!(e.to_string().contains("No such file or directory"), "{e}");
}
