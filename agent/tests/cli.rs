//! hb-polling's one-shot commands as a user runs them: `--list`, `--once` and start-up
//! refusals; a real process, real /proc, a real local HTTP server.

mod support;

use std::collections::BTreeSet;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{run, text};

fn json_lines(out: &Output) -> Vec<Value> {
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON sample per line"))
        .collect()
}

fn of<'a>(samples: &'a [Value], name: &str) -> Vec<&'a Value> {
    samples.iter().filter(|s| s["name"] == name).collect()
}

#[test]
fn list_shows_every_meter_with_kind_type_and_unit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ns = support::repo_namespaces();
    let out = run(
        dir.path(),
        &["--namespaces-dir", ns.to_str().expect("utf-8"), "--list"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let words = |i: usize| lines[i].split_whitespace().collect::<Vec<_>>();
    assert_eq!(
        words(0),
        [
            "NAMESPACE",
            "POLLSTER",
            "KIND",
            "METER",
            "TYPE",
            "UNIT",
            "SOURCE",
            "DESCRIPTION"
        ]
    );
    let row = |meter: &str| {
        lines
            .iter()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|w| w[3] == meter)
            .unwrap_or_default()
    };
    assert_eq!(
        row("cpu")[..6],
        ["compute", "cpu", "monitor", "cpu", "cumulative", "ns"]
    );
    assert!(
        row("cpu")[6].ends_with("namespaces/compute/host.yaml"),
        "source of cpu: {}",
        row("cpu")[6]
    );
    assert_eq!(
        row("host.info")[..6],
        ["compute", "host.info", "info", "host.info", "gauge", "host"]
    );
    assert_eq!(
        row("memory.total")[..6],
        ["compute", "memory", "monitor", "memory.total", "gauge", "B"]
    );
    assert_eq!(
        row("http.response.time")[..6],
        [
            "central",
            "http.response",
            "monitor",
            "http.response.time",
            "gauge",
            "s"
        ]
    );
    let description_column = lines[0].find("DESCRIPTION").expect("header");
    assert!(
        lines[1..].iter().all(|l| l.len() > description_column),
        "columns are aligned"
    );
}

#[test]
fn once_prints_compute_samples_that_match_the_kernel_and_central_checks_of_a_local_server() {
    let port = support::http_server();
    let closed = support::closed_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let central = support::central_yaml(
        &[
            ("ok", format!("http://127.0.0.1:{port}/ok")),
            ("missing", format!("http://127.0.0.1:{port}/missing")),
            ("down", format!("http://127.0.0.1:{closed}/")),
        ],
        &[
            ("up", format!("127.0.0.1:{port}")),
            ("down", format!("127.0.0.1:{closed}")),
        ],
        10.0,
    );
    support::namespaces(dir.path(), &central);
    let out = run(
        dir.path(),
        &[
            "--polling-namespaces",
            "central",
            "compute",
            "--once",
            "--format",
            "json",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let samples = json_lines(&out);

    // memory.total equals MemTotal of /proc/meminfo.
    let meminfo = std::fs::read_to_string("/proc/meminfo").expect("meminfo");
    let kib: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .expect("MemTotal")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .expect("number");
    assert_eq!(
        of(&samples, "memory.total")[0]["volume"].as_f64(),
        Some(kib * 1024.0)
    );

    // One disk.device.* per real disk, as lsblk sees them (whole disks of non-zero size).
    let lsblk = Command::new("lsblk")
        .args(["-d", "-n", "-b", "-o", "NAME,TYPE,SIZE"])
        .output()
        .expect("lsblk");
    let disks: BTreeSet<String> = text(&lsblk.stdout)
        .lines()
        .filter_map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
            [name, "disk", size] if size != "0" && !name.starts_with("zram") => {
                Some(name.to_owned())
            }
            _ => None,
        })
        .collect();
    for meter in [
        "disk.device.read.bytes",
        "disk.device.write.bytes",
        "disk.device.read.requests",
        "disk.device.write.requests",
    ] {
        let got: BTreeSet<String> = of(&samples, meter)
            .iter()
            .map(|s| {
                s["resource_metadata"]["device"]
                    .as_str()
                    .expect("device")
                    .to_owned()
            })
            .collect();
        assert_eq!(got, disks, "{meter}");
    }

    // One network.* per interface the kernel has.
    let interfaces: BTreeSet<String> = std::fs::read_dir("/sys/class/net")
        .expect("/sys/class/net")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    for meter in [
        "network.incoming.bytes",
        "network.outgoing.packets",
        "network.incoming.errors",
    ] {
        let got: BTreeSet<String> = of(&samples, meter)
            .iter()
            .map(|s| {
                s["resource_metadata"]["interface"]
                    .as_str()
                    .expect("interface")
                    .to_owned()
            })
            .collect();
        assert_eq!(got, interfaces, "{meter}");
    }

    // Every sample carries the host, a unit and a type.
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    assert!(
        samples
            .iter()
            .all(|s| s["resource_metadata"]["host"] == hostname.trim())
    );
    assert_eq!(of(&samples, "cpu")[0]["type"], "cumulative");
    assert!(of(&samples, "cpu")[0]["resource_metadata"]["cpu_number"].as_u64() >= Some(1));
    assert_eq!(of(&samples, "host.info").len(), 1);

    // Central: a response, a 404, a refused connection; TCP up and down.
    let status = |target: &str| {
        of(&samples, "http.response.status")
            .into_iter()
            .find(|s| s["resource_metadata"]["target"] == target)
            .cloned()
            .expect(target)
    };
    assert_eq!(status("ok")["volume"], 200.0);
    assert_eq!(status("missing")["volume"], 404.0);
    assert_eq!(status("down")["volume"], 0.0);
    assert_eq!(
        status("down")["resource_metadata"]["result"],
        "connection_failed"
    );
    assert!(
        status("down")["resource_metadata"]["error"]
            .as_str()
            .expect("error")
            .contains("Connection refused")
    );
    let times: Vec<&str> = of(&samples, "http.response.time")
        .iter()
        .map(|s| s["resource_metadata"]["target"].as_str().expect("t"))
        .collect();
    assert_eq!(
        times.iter().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from(["missing", "ok"])
    );
    let tcp = |target: &str| {
        of(&samples, "tcp.connect.status")
            .into_iter()
            .find(|s| s["resource_metadata"]["target"] == target)
            .cloned()
            .expect(target)
    };
    assert_eq!(tcp("up")["volume"], 1.0);
    assert_eq!(tcp("down")["volume"], 0.0);
    assert_eq!(
        tcp("down")["resource_metadata"]["result"],
        "connection_failed"
    );
    assert_eq!(of(&samples, "tcp.connect.time").len(), 1);
    assert!(of(&samples, "tcp.connect.time")[0]["volume"].as_f64() < Some(2.0));
}

#[test]
fn cpu_grows_between_two_polls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ns = support::repo_namespaces();
    let args = [
        "--namespaces-dir",
        ns.to_str().expect("utf-8"),
        "--pollster-list",
        "cpu",
        "--once",
        "--format",
        "json",
    ];
    let cpu = || {
        let out = run(dir.path(), &args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        json_lines(&out)[0]["volume"].as_f64().expect("volume")
    };
    let first = cpu();
    let busy_until = Instant::now() + Duration::from_millis(300);
    let mut spin = 0u64;
    while Instant::now() < busy_until {
        spin = spin.wrapping_add(1);
    }
    let second = cpu();
    assert!(
        second > first,
        "cpu went from {first} to {second} (spun {spin} times)"
    );
}

#[test]
fn once_exits_non_zero_with_the_error_when_a_pollster_fails_and_still_prints_the_others() {
    let port = support::http_server();
    let dir = tempfile::tempdir().expect("tempdir");
    let central = support::central_yaml(
        &[("slow", format!("http://127.0.0.1:{port}/slow"))],
        &[("up", format!("127.0.0.1:{port}"))],
        0.3,
    );
    support::namespaces(dir.path(), &central);
    let out = run(dir.path(), &["--polling-namespaces", "central", "--once"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).trim(),
        "hb-polling: pollster `http.response` failed: timed out after 300ms"
    );
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("NAME"), "{stdout}");
    assert!(
        stdout.lines().any(|l| l.starts_with("tcp.connect.status")),
        "{stdout}"
    );
}

#[test]
fn unknown_namespace_lists_the_available_ones() {
    let dir = support::workdir();
    let out = run(dir.path(), &["--polling-namespaces", "comput", "--list"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr).trim(),
        "hb-polling: unknown namespace `comput` (available: central, compute)"
    );
}

#[test]
fn duplicate_namespaces_are_polled_once_with_a_warning() {
    let dir = support::workdir();
    let out = run(
        dir.path(),
        &["--polling-namespaces", "compute", "compute", "--list"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("namespace given twice; polling it once"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        text(&out.stdout)
            .lines()
            .filter(|l| l.split_whitespace().nth(3) == Some("cpu"))
            .count(),
        1
    );
}

#[test]
fn a_pollster_list_that_matches_nothing_says_what_is_offered() {
    let dir = support::workdir();
    let out = run(
        dir.path(),
        &[
            "--polling-namespaces",
            "compute",
            "--pollster-list",
            "dsk.*",
            "cpuu",
            "--once",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr).trim(),
        "hb-polling: no pollster matches --pollster-list dsk.* cpuu (namespaces compute offer: cpu, memory, swap, \
         load, disk.device, filesystem, network, host.uptime, process, host.info)"
    );
    let out = run(
        dir.path(),
        &[
            "--polling-namespaces",
            "compute",
            "--pollster-list",
            "disk.*",
            "--list",
        ],
    );
    assert!(out.status.success());
    let pollsters: BTreeSet<String> = text(&out.stdout)
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().nth(1).expect("pollster").to_owned())
        .collect();
    assert_eq!(pollsters, BTreeSet::from(["disk.device".to_owned()]));
}

#[test]
fn a_broken_namespace_file_is_refused_with_file_line_and_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    support::namespaces(
        dir.path(),
        "pollsters:\n  - name: http.response\n    meters:\n      - {name: x, type: counter, unit: s}\n",
    );
    let out = run(dir.path(), &["--list"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr).trim(),
        "hb-polling: namespaces/central/checks.yaml:4:25: pollsters[0].meters[0].type: unknown variant `counter`, \
         expected one of gauge, delta, cumulative"
    );

    let targetless = "pollsters:\n  - name: tcp.connect\n    meters:\n      - {name: tcp.connect.status, type: gauge, unit: status}\n    targets: []\n";
    std::fs::write(
        dir.path().join("namespaces/central/checks.yaml"),
        targetless,
    )
    .expect("write");
    let out = run(dir.path(), &["--list"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr).trim(),
        "hb-polling: namespaces/central/checks.yaml:5:14: pollsters[0].targets: at least one target is needed"
    );
}
