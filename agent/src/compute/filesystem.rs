//! `filesystem.size`, `filesystem.used`, `filesystem.free` (gauges, bytes) per real mounted
//! filesystem, as `df` shows them (`free` is what unprivileged users may still use).
//!
//! Real means backed by a block device (a type not marked `nodev` in `/proc/filesystems`) or
//! a network filesystem; pseudo filesystems (proc, sysfs, tmpfs, cgroup, overlay, ...),
//! read-only images (squashfs) and loop-device mounts are left out. A filesystem mounted
//! several times (bind mounts) is reported once, at its shortest whole mount.

use procfs_core::process::{MountInfo, MountInfos};

use crate::host::Host;
use crate::pollster::{HostPollster, Measurement, PollResult};

const NETWORK_FILESYSTEMS: [&str; 8] = [
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "ceph",
    "glusterfs",
    "9p",
    "virtiofs",
];
const IMAGES: [&str; 1] = ["squashfs"];

/// The `filesystem` pollster.
pub struct Filesystem;

impl HostPollster for Filesystem {
    fn poll(&self, host: &Host) -> PollResult {
        let filesystems = host.read("/proc/filesystems")?;
        let nodev: Vec<&str> = filesystems
            .lines()
            .filter_map(|l| l.strip_prefix("nodev"))
            .map(str::trim)
            .collect();
        let mounts: MountInfos = host.parse("/proc/self/mountinfo")?;
        let real = |m: &MountInfo| {
            let fs = m.fs_type.as_str();
            let loop_device = m
                .mount_source
                .as_deref()
                .is_some_and(|s| s.starts_with("/dev/loop"));
            (NETWORK_FILESYSTEMS.contains(&fs) || !nodev.contains(&fs))
                && !IMAGES.contains(&fs)
                && !loop_device
        };
        // One mount per device (major:minor), in order of first appearance.
        let mut chosen: Vec<&MountInfo> = Vec::new();
        for m in mounts.iter().filter(|m| real(m)) {
            match chosen.iter_mut().find(|c| c.majmin == m.majmin) {
                Some(c) if better(m, c) => *c = m,
                Some(_) => {}
                None => chosen.push(m),
            }
        }
        let mut out = Vec::new();
        for m in chosen {
            let usage = match host.statfs(&m.mount_point) {
                Ok(u) => u,
                Err(error) => {
                    let mount = m.mount_point.display();
                    tracing::warn!(%mount, %error, "cannot stat filesystem; skipped this cycle");
                    continue;
                }
            };
            let mount = m.mount_point.to_string_lossy();
            let resource = format!("{}:{mount}", host.name());
            let device = m.mount_source.clone().unwrap_or_default();
            for (meter, value) in [
                ("filesystem.size", usage.size),
                ("filesystem.used", usage.used),
                ("filesystem.free", usage.free),
            ] {
                out.push(
                    Measurement::new(meter, value as f64, &resource)
                        .with("mount", mount.as_ref())
                        .with("device", device.as_str())
                        .with("fstype", m.fs_type.as_str()),
                );
            }
        }
        Ok(out)
    }
}

/// A whole mount (root `/`) beats a bind mount of a subdirectory; then the shorter path wins.
fn better(candidate: &MountInfo, current: &MountInfo) -> bool {
    let whole = |m: &MountInfo| m.root == "/";
    let depth = |m: &MountInfo| m.mount_point.as_os_str().len();
    (whole(candidate), std::cmp::Reverse(depth(candidate)))
        > (whole(current), std::cmp::Reverse(depth(current)))
}
