//! Compute pollsters on a recorded machine (tests/fixtures/host-a), with exact values, and the
//! check that pollsters and the meter declarations in namespaces/ agree.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hb_agent::host::{FsUsage, Host};
use hb_agent::namespaces;
use hb_agent::pollster::{Implementation, Measurement};
use hb_agent::registry;
use serde_json::json;

fn fixture_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/host-a")
}

fn repo_namespaces() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../namespaces")
}

/// Filesystem usage as recorded on host-a; the NFS mount is stale.
fn statfs(mount: &Path) -> std::io::Result<FsUsage> {
    let (size, used, free) = match mount.to_str() {
        Some("/") => (100_000_000_000, 40_000_000_000, 55_000_000_000),
        Some("/boot/efi") => (536_870_912, 6_291_456, 530_579_456),
        Some("/srv/data") => (1_000_000_000_000, 1_000_000, 999_000_000_000),
        Some("/mnt/backup") => return Err(std::io::Error::from(std::io::ErrorKind::TimedOut)),
        other => panic!("statfs asked for {other:?}, which is not a real filesystem"),
    };
    Ok(FsUsage { size, used, free })
}

fn host() -> Host {
    Host::at(fixture_root(), Arc::new(statfs), 100).expect("fixture host")
}

fn poll(name: &str) -> Vec<Measurement> {
    let def = registry::find(name).expect("builtin");
    let yaml =
        format!("pollsters:\n  - name: {name}\n    meters: [{{name: x, type: gauge, unit: x}}]\n");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("ns")).expect("mkdir");
    std::fs::write(dir.path().join("ns/p.yaml"), yaml).expect("write");
    let loaded = namespaces::load(dir.path(), &["ns".to_owned()])
        .expect("load")
        .pollsters;
    assert_eq!(loaded[0].kind, def.kind);
    let Implementation::Host(p) = &loaded[0].implementation else {
        panic!("{name} is not a host pollster")
    };
    p.poll(&host()).expect("poll")
}

fn values(ms: &[Measurement]) -> Vec<(&str, f64, &str)> {
    ms.iter()
        .map(|m| (m.meter.as_ref(), m.volume, m.resource_id.as_str()))
        .collect()
}

#[test]
fn cpu_is_busy_time_in_nanoseconds_with_the_cpu_count() {
    let ms = poll("cpu");
    // user 10000 + nice 200 + system 3000 + softirq 300 + steal 50 = 13550 ticks at 100 Hz.
    assert_eq!(values(&ms), [("cpu", 135_500_000_000.0, "host-a")]);
    assert_eq!(ms[0].metadata["cpu_number"], json!(4));
}

#[test]
fn memory_and_swap_in_bytes() {
    assert_eq!(
        values(&poll("memory")),
        [
            ("memory.total", 16_709_791_744.0, "host-a"),
            ("memory.available", 8_354_895_872.0, "host-a"),
            ("memory.usage", 8_354_895_872.0, "host-a"),
        ]
    );
    assert_eq!(
        values(&poll("swap")),
        [
            ("swap.total", 2_147_479_552.0, "host-a"),
            ("swap.used", 536_870_912.0, "host-a")
        ]
    );
}

#[test]
fn load_averages_keep_the_printed_decimals() {
    assert_eq!(
        values(&poll("load")),
        [
            ("load.1", 0.25, "host-a"),
            ("load.5", 0.1, "host-a"),
            ("load.15", 1.05, "host-a")
        ]
    );
}

#[test]
fn disks_are_whole_real_devices_only() {
    let ms = poll("disk.device");
    let devices: BTreeSet<&str> = ms.iter().map(|m| m.resource_id.as_str()).collect();
    // No partitions (sda1, nvme0n1p1), loop, zram, or empty sr0.
    assert_eq!(
        devices,
        BTreeSet::from(["host-a/dm-0", "host-a/nvme0n1", "host-a/sda"])
    );
    let sda: Vec<_> = values(&ms)
        .into_iter()
        .filter(|v| v.2 == "host-a/sda")
        .collect();
    assert_eq!(
        sda,
        [
            ("disk.device.read.bytes", 1_024_000_000.0, "host-a/sda"),
            ("disk.device.write.bytes", 409_600_000.0, "host-a/sda"),
            ("disk.device.read.requests", 10_000.0, "host-a/sda"),
            ("disk.device.write.requests", 5_000.0, "host-a/sda"),
        ]
    );
    assert!(
        ms.iter()
            .all(|m| m.metadata["device"] == json!(m.resource_id.trim_start_matches("host-a/")))
    );
}

#[test]
fn filesystems_are_real_mounts_once_each_and_a_stale_one_is_skipped() {
    let ms = poll("filesystem");
    let mounts: Vec<&str> = ms
        .iter()
        .filter(|m| m.meter == "filesystem.size")
        .map(|m| m.resource_id.as_str())
        .collect();
    // Not: sysfs, proc, devtmpfs, tmpfs, cgroup2, overlay, squashfs on loop, the bind mount
    // /export of /srv/data; /mnt/backup (nfs4) is real but its statfs failed.
    assert_eq!(mounts, ["host-a:/", "host-a:/boot/efi", "host-a:/srv/data"]);
    let root: Vec<_> = values(&ms)
        .into_iter()
        .filter(|v| v.2 == "host-a:/")
        .collect();
    assert_eq!(
        root,
        [
            ("filesystem.size", 100_000_000_000.0, "host-a:/"),
            ("filesystem.used", 40_000_000_000.0, "host-a:/"),
            ("filesystem.free", 55_000_000_000.0, "host-a:/"),
        ]
    );
    let data = ms
        .iter()
        .find(|m| m.resource_id == "host-a:/srv/data")
        .expect("data");
    assert_eq!(data.metadata["device"], json!("/dev/mapper/vg-data"));
    assert_eq!(data.metadata["fstype"], json!("xfs"));
    assert_eq!(data.metadata["mount"], json!("/srv/data"));
}

#[test]
fn network_counters_per_interface() {
    let ms = poll("network");
    let eth0: Vec<_> = values(&ms)
        .into_iter()
        .filter(|v| v.2 == "host-a/eth0")
        .collect();
    assert_eq!(
        eth0,
        [
            ("network.incoming.bytes", 987_654_321.0, "host-a/eth0"),
            ("network.outgoing.bytes", 12_345_678.0, "host-a/eth0"),
            ("network.incoming.packets", 654_321.0, "host-a/eth0"),
            ("network.outgoing.packets", 98_765.0, "host-a/eth0"),
            ("network.incoming.errors", 3.0, "host-a/eth0"),
            ("network.outgoing.errors", 2.0, "host-a/eth0"),
        ]
    );
    assert_eq!(ms.len(), 12, "eth0 and lo");
}

#[test]
fn uptime_processes_and_host_info() {
    assert_eq!(
        values(&poll("host.uptime")),
        [("host.uptime", 12_345.67, "host-a")]
    );
    assert_eq!(values(&poll("process")), [("process.count", 3.0, "host-a")]);
    let info = poll("host.info");
    assert_eq!(values(&info), [("host.info", 1.0, "host-a")]);
    assert_eq!(
        serde_json::Value::Object(info[0].metadata.clone()),
        json!({
            "hostname": "host-a",
            "os": "Debian GNU/Linux 12 (bookworm)",
            "kernel": "6.1.0-28-amd64",
            "arch": std::env::consts::ARCH,
            "cpu_model": "Intel(R) Xeon(R) E-2236 CPU @ 3.40GHz",
            "cores": 4,
            "memory_total": 16_709_791_744u64,
        })
    );
}

#[test]
fn every_compute_pollster_emits_only_declared_meters_and_every_declared_meter_is_emitted() {
    let pollsters = namespaces::load(&repo_namespaces(), &["compute".to_owned()])
        .expect("repo namespaces load")
        .pollsters;
    let host = host();
    let mut declared = BTreeSet::new();
    let mut emitted = BTreeSet::new();
    for p in &pollsters {
        let Implementation::Host(imp) = &p.implementation else {
            panic!("{} is not a host pollster", p.name)
        };
        for m in imp.poll(&host).expect("poll") {
            assert!(
                p.meter(&m.meter).is_some(),
                "pollster `{}` emits undeclared meter `{}`",
                p.name,
                m.meter
            );
            emitted.insert(m.meter.to_string());
        }
        declared.extend(p.meters.iter().map(|m| m.name.clone()));
    }
    assert_eq!(
        declared, emitted,
        "declared meters that no pollster emitted on host-a"
    );
    let required = [
        "cpu",
        "memory.total",
        "memory.usage",
        "memory.available",
        "swap.total",
        "swap.used",
        "load.1",
        "load.5",
        "load.15",
        "disk.device.read.bytes",
        "disk.device.write.bytes",
        "disk.device.read.requests",
        "disk.device.write.requests",
        "filesystem.size",
        "filesystem.used",
        "filesystem.free",
        "network.incoming.bytes",
        "network.outgoing.bytes",
        "network.incoming.packets",
        "network.outgoing.packets",
        "network.incoming.errors",
        "network.outgoing.errors",
        "host.uptime",
        "process.count",
        "host.info",
    ];
    for meter in required {
        assert!(
            declared.contains(meter),
            "the compute namespace must declare `{meter}`"
        );
    }
    assert!(
        !declared.contains("cpu.util"),
        "cpu.util comes from a transformer, it is not polled"
    );
}
