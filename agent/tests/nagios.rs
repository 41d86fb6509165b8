//! `nagios:` pollsters as a user runs them: real plugins of Debian's monitoring-plugins-basic
//! against this machine and servers the tests open, run by `hb-polling --once`; a missing
//! program, a bad exit code, a signal and a timeout (the plugin's process group killed).

mod support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{run, text};

const PLUGINS: &str = "/usr/lib/nagios/plugins";

/// The path of a plugin, which must be installed (no test is skipped).
fn plugin(name: &str) -> String {
    let path = format!("{PLUGINS}/{name}");
    assert!(
        Path::new(&path).exists(),
        "{path} is missing: run scripts/test, which installs Debian's monitoring-plugins-basic"
    );
    path
}

/// Runs `hb-polling --once --format json` on a central namespace whose one file is `yaml`.
fn once(dir: &Path, yaml: &str) -> (Output, Vec<Value>) {
    let ns = namespaces(dir, yaml);
    let out = run(
        dir,
        &[
            "--namespaces-dir",
            ns.to_str().expect("utf-8"),
            "--polling-namespaces",
            "central",
            "--once",
            "--format",
            "json",
        ],
    );
    let samples = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON sample per line"))
        .collect();
    (out, samples)
}

fn namespaces(dir: &Path, yaml: &str) -> PathBuf {
    let ns = dir.join("namespaces");
    std::fs::create_dir_all(ns.join("central")).expect("mkdir");
    std::fs::write(ns.join("central/x.yaml"), yaml).expect("write");
    ns
}

/// The one sample named `name`.
fn one<'a>(samples: &'a [Value], name: &str) -> &'a Value {
    let found: Vec<&Value> = samples.iter().filter(|s| s["name"] == name).collect();
    assert_eq!(found.len(), 1, "one `{name}` in {samples:#?}");
    found[0]
}

fn meta<'a>(sample: &'a Value, key: &str) -> &'a str {
    sample["resource_metadata"][key]
        .as_str()
        .unwrap_or_default()
}

fn volume(sample: &Value) -> f64 {
    sample["volume"].as_f64().expect("volume")
}

fn loadavg() -> f64 {
    let s = std::fs::read_to_string("/proc/loadavg").expect("/proc/loadavg");
    s.split_whitespace()
        .next()
        .expect("load1")
        .parse()
        .expect("number")
}

fn process_count() -> f64 {
    let dirs = std::fs::read_dir("/proc").expect("/proc");
    let pids = dirs.filter(|e| {
        e.as_ref()
            .is_ok_and(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
    });
    pids.count() as f64
}

/// Total and used bytes of the file system holding `/`.
fn root_fs() -> (f64, f64) {
    let st = nix::sys::statvfs::statvfs("/").expect("statvfs /");
    let block = st.fragment_size() as f64;
    let total = st.blocks() as f64 * block;
    (total, total - st.blocks_free() as f64 * block)
}

#[test]
fn real_plugins_report_their_status_and_performance_data() {
    let (load, disk, procs, tcp, http) = (
        plugin("check_load"),
        plugin("check_disk"),
        plugin("check_procs"),
        plugin("check_tcp"),
        plugin("check_http"),
    );
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let open = listener.local_addr().expect("addr").port();
    let closed = support::closed_port();
    let web = support::http_server();
    let yaml = format!(
        r#"nagios:
  - name: load
    command: [{load}, -w, "1000,1000,1000", -c, "2000,2000,2000"]
    metadata: {{team: ops}}
  - name: disk
    command: [{disk}, -w, "0", -c, "0", -u, bytes, -p, /]
    resource_id: root-fs
  - name: procs
    command: [{procs}, -w, "100000", -c, "200000"]
  - name: tcp_open
    command: [{tcp}, -H, 127.0.0.1, -p, "{open}"]
  - name: tcp_closed
    command: [{tcp}, -H, 127.0.0.1, -p, "{closed}"]
  - name: web
    command: [{http}, -H, 127.0.0.1, -p, "{web}", -u, /ok]
  - name: web_missing
    command: [{http}, -H, 127.0.0.1, -p, "{web}", -u, /missing]
"#
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let (load_before, procs_before, (_, used_before)) = (loadavg(), process_count(), root_fs());
    let (out, samples) = once(dir.path(), &yaml);
    let (load_after, procs_after, (total, used_after)) = (loadavg(), process_count(), root_fs());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let status = |name: &str| {
        let s = one(&samples, &format!("{name}.status"));
        assert_eq!(
            (s["type"].as_str(), s["unit"].as_str()),
            (Some("gauge"), Some("status"))
        );
        (volume(s), meta(s, "status"), meta(s, "output"))
    };

    // check_load: the load averages of /proc/loadavg, dimensionless, thresholds as written.
    let (code, word, output) = status("load");
    assert_eq!((code, word), (0.0, "OK"), "{output}");
    assert!(
        output.starts_with("LOAD OK - total load average: "),
        "{output}"
    );
    let load1 = one(&samples, "load.load1");
    assert_eq!(
        (load1["type"].as_str(), load1["unit"].as_str()),
        (Some("gauge"), Some("1"))
    );
    let (low, high) = (load_before.min(load_after), load_before.max(load_after));
    assert!(
        (low - 0.5..=high + 0.5).contains(&volume(load1)),
        "{load1} vs {low}..{high}"
    );
    assert_eq!(
        (
            meta(load1, "label"),
            meta(load1, "warn"),
            meta(load1, "crit"),
            meta(load1, "min")
        ),
        ("load1", "1000.000", "2000.000", "0")
    );
    assert_eq!(meta(load1, "team"), "ops");
    assert_eq!(meta(one(&samples, "load.status"), "team"), "ops");
    one(&samples, "load.load5");
    one(&samples, "load.load15");

    // check_disk: bytes used on / (unit B), its size as the maximum, on the given resource.
    // Thresholds in bytes, not percent: a percentage rounds down to 0 % on a nearly full disk
    // and check_disk then reports CRITICAL even with "-c 0%".
    let (code, _, output) = status("disk");
    assert_eq!(code, 0.0, "{output}");
    let root = one(&samples, "disk./");
    assert_eq!(
        (root["unit"].as_str(), root["resource_id"].as_str()),
        (Some("B"), Some("root-fs"))
    );
    let max: f64 = meta(root, "max").parse().expect("max is a number");
    assert!(
        (max - total).abs() < total * 0.001,
        "max {max} vs size {total}"
    );
    let slack = total * 0.02;
    let (low, high) = (
        used_before.min(used_after) - slack,
        used_before.max(used_after) + slack,
    );
    assert!(
        (low..=high).contains(&volume(root)),
        "used {} vs {low}..{high}",
        volume(root)
    );

    // check_procs: as many processes as /proc lists, give or take the ones that came and went.
    assert_eq!(status("procs").0, 0.0);
    let count = volume(one(&samples, "procs.procs"));
    let (low, high) = (
        procs_before.min(procs_after) - 50.0,
        procs_before.max(procs_after) + 50.0,
    );
    assert!(
        (low..=high).contains(&count),
        "{count} processes vs {low}..{high}"
    );

    // check_tcp: OK with a connect time in seconds on the open port, CRITICAL on the closed one.
    assert_eq!(status("tcp_open").0, 0.0);
    let time = one(&samples, "tcp_open.time");
    assert_eq!(time["unit"], "s");
    assert!((0.0..10.0).contains(&volume(time)));
    let (code, word, output) = status("tcp_closed");
    assert_eq!((code, word), (2.0, "CRITICAL"));
    assert!(output.contains("Connection refused"), "{output}");
    assert!(samples.iter().all(|s| s["name"] != "tcp_closed.time"));

    // check_http: 200 → OK with the response size in bytes; 404 → WARNING.
    let (code, word, output) = status("web");
    assert_eq!((code, word), (0.0, "OK"), "{output}");
    assert!(output.starts_with("HTTP OK: HTTP/1.1 200 OK"), "{output}");
    let size = one(&samples, "web.size");
    // The size is of the whole response, headers included, as the status text says.
    let bytes = format!(" - {} bytes in ", volume(size));
    assert!(output.contains(&bytes), "{output} vs {size}");
    assert!(volume(size) > 3.0 && size["unit"] == "B", "{size}");
    assert_eq!(one(&samples, "web.time")["unit"], "s");
    let (code, word, output) = status("web_missing");
    assert_eq!((code, word), (1.0, "WARNING"), "{output}");
    assert!(output.contains("404"), "{output}");
    drop(listener);
}

#[test]
fn multi_line_output_with_quoted_labels_and_units_of_measure() {
    // printf writes the plugin output: first line, long text, then performance data over
    // several lines, with a quoted label, a counter, an undetermined value and a bad item.
    let yaml = r#"nagios:
  - name: fake
    command: [printf, "SERVICE WARNING - two of three | 'queue depth'=7;5;10;0;100 sent=1234c\nfirst detail\nsecond detail | lag=12.5ms;;;0\nmissing=U junk free=40%%\n"]
"#;
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, samples) = once(dir.path(), yaml);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let status = one(&samples, "fake.status");
    assert_eq!(volume(status), 0.0);
    assert_eq!(meta(status, "output"), "SERVICE WARNING - two of three");
    assert_eq!(meta(status, "long_output"), "first detail\nsecond detail");
    let depth = one(&samples, "fake.queue_depth");
    assert_eq!((volume(depth), depth["unit"].as_str()), (7.0, Some("1")));
    assert_eq!(
        ["label", "warn", "crit", "min", "max"].map(|k| meta(depth, k)),
        ["queue depth", "5", "10", "0", "100"]
    );
    let sent = one(&samples, "fake.sent");
    assert_eq!(
        (sent["type"].as_str(), sent["unit"].as_str()),
        (Some("cumulative"), Some("count"))
    );
    assert_eq!(
        (
            volume(one(&samples, "fake.lag")),
            one(&samples, "fake.lag")["unit"].as_str()
        ),
        (12.5, Some("ms"))
    );
    assert_eq!(one(&samples, "fake.free")["unit"], "%");
    let names: Vec<&str> = samples.iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(
        names.len(),
        5,
        "no sample for `missing=U` nor `junk`: {names:?}"
    );
    let stderr = text(&out.stderr);
    assert!(stderr.contains("`junk` is not label=value"), "{stderr}");
}

#[test]
fn hb_reports_unknown_with_the_reason_and_kills_a_plugin_that_overruns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pids = dir.path().join("pids");
    let yaml = format!(
        r#"nagios:
  - name: missing
    command: [/nonexistent/check_nothing]
  - name: not_in_path
    command: [check_nothing_in_path_either]
  - name: odd_exit
    command: [/bin/sh, -c, "echo ODD; exit 7"]
  - name: killed
    command: [/bin/sh, -c, "echo DYING; kill -9 $$"]
  - name: slow
    timeout: 1
    command: [/bin/sh, -c, "echo $$ > {pids}; /bin/sleep 60 & echo $! >> {pids}; wait"]
  - name: bad
    command: []
"#,
        pids = pids.display()
    );
    let started = Instant::now();
    let (out, samples) = once(dir.path(), &yaml);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "hb waited for the plugin"
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let unknown = |name: &str| {
        let s = one(&samples, &format!("{name}.status"));
        assert_eq!((volume(s), meta(s, "status")), (3.0, "UNKNOWN"), "{s}");
        (meta(s, "output"), meta(s, "error"))
    };
    let (_, error) = unknown("missing");
    assert!(
        error.starts_with("cannot run `/nonexistent/check_nothing`: No such file"),
        "{error}"
    );
    let (_, error) = unknown("not_in_path");
    assert!(
        error.starts_with("cannot run `check_nothing_in_path_either`"),
        "{error}"
    );
    let (output, error) = unknown("odd_exit");
    assert_eq!(output, "ODD");
    assert!(
        error.starts_with("exit code 7 is not a plugin status"),
        "{error}"
    );
    assert_eq!(unknown("killed"), ("DYING", "killed by signal SIGKILL"));
    let (_, error) = unknown("slow");
    assert_eq!(
        error,
        "timed out after 0.9s; the plugin's process group was killed"
    );

    // Both the shell and the sleep it left in the background are gone.
    let written = std::fs::read_to_string(&pids).expect("the plugin wrote its pids");
    let pids: Vec<&str> = written.split_whitespace().collect();
    assert_eq!(pids.len(), 2, "{written}");
    for pid in pids {
        assert!(gone(pid), "process {pid} of the timed-out plugin survived");
    }

    // The definition without a program was refused with its file, line and field.
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("x.yaml:13:5: nagios[5].command: definition `bad`: must list the program"),
        "{stderr}"
    );
    assert!(samples.iter().all(|s| s["name"] != "bad.status"));
}

/// True once `/proc/<pid>` is gone or a zombie (waits up to 10 s for its parent to reap it).
fn gone(pid: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
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
fn list_shows_the_status_meter_and_the_performance_data_family() {
    let dir = tempfile::tempdir().expect("tempdir");
    let load = plugin("check_load");
    let ns = namespaces(
        dir.path(),
        &format!("nagios:\n  - name: load\n    description: load average\n    command: [{load}]\n"),
    );
    let out = run(
        dir.path(),
        &[
            "--namespaces-dir",
            ns.to_str().expect("utf-8"),
            "--polling-namespaces",
            "central",
            "--list",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let row = |meter: &str| {
        stdout
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|w| w.get(3) == Some(&meter))
            .unwrap_or_default()
    };
    assert_eq!(
        row("load.status")[..6],
        [
            "central",
            "load",
            "monitor",
            "load.status",
            "gauge",
            "status"
        ]
    );
    assert_eq!(
        row("load.*")[..5],
        ["central", "load", "monitor", "load.*", "gauge"]
    );
}
