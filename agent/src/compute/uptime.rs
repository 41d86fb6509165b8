//! `host.uptime`: seconds since boot, suspend included (gauge), from `/proc/uptime`.

use procfs_core::Uptime as ProcUptime;

use crate::host::Host;
use crate::pollster::{HostPollster, Measurement, PollResult};

/// The `host.uptime` pollster.
pub struct Uptime;

impl HostPollster for Uptime {
    fn poll(&self, host: &Host) -> PollResult {
        let u: ProcUptime = host.parse("/proc/uptime")?;
        Ok(vec![Measurement::new("host.uptime", u.uptime, host.name())])
    }
}
