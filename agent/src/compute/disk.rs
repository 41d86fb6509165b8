//! `disk.device.{read,write}.{bytes,requests}` (cumulative) per whole block device, from
//! `/proc/diskstats`.
//!
//! Only whole devices are reported (those under `/sys/block`; partitions would count the same
//! I/O twice), without loop, RAM and zram devices and without empty devices (size 0, such as a
//! CD drive with no disc). `/proc/diskstats` counts 512-byte sectors whatever the device's own
//! sector size.

use procfs_core::DiskStats;

use crate::host::Host;
use crate::pollster::{HostPollster, Measurement, PollResult};

const SECTOR: u64 = 512;
const VIRTUAL_PREFIXES: [&str; 3] = ["loop", "ram", "zram"];

/// The `disk.device` pollster.
pub struct Disk;

impl HostPollster for Disk {
    fn poll(&self, host: &Host) -> PollResult {
        let stats: DiskStats = host.parse("/proc/diskstats")?;
        let mut out = Vec::new();
        for d in stats.0.into_iter().filter(|d| is_real_disk(host, &d.name)) {
            let resource = format!("{}/{}", host.name(), d.name);
            let values = [
                ("disk.device.read.bytes", d.sectors_read * SECTOR),
                ("disk.device.write.bytes", d.sectors_written * SECTOR),
                ("disk.device.read.requests", d.reads),
                ("disk.device.write.requests", d.writes),
            ];
            for (meter, value) in values {
                out.push(
                    Measurement::new(meter, value as f64, &resource)
                        .with("device", d.name.as_str()),
                );
            }
        }
        Ok(out)
    }
}

fn is_real_disk(host: &Host, name: &str) -> bool {
    if VIRTUAL_PREFIXES.iter().any(|p| name.starts_with(p)) {
        return false;
    }
    // sysfs spells `/` in device names (cciss/c0d0) as `!`.
    let size = host.path(format!("/sys/block/{}/size", name.replace('/', "!")));
    std::fs::read_to_string(size)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .is_some_and(|sectors| sectors > 0)
}
