//! `swap.total`, `swap.used` (gauges, bytes) from `/proc/meminfo`.

use procfs_core::Meminfo;

use crate::host::Host;
use crate::pollster::{HostPollster, Measurement, PollResult};

/// The `swap` pollster.
pub struct Swap;

impl HostPollster for Swap {
    fn poll(&self, host: &Host) -> PollResult {
        let m: Meminfo = host.parse("/proc/meminfo")?;
        let name = host.name();
        Ok(vec![
            Measurement::new("swap.total", m.swap_total as f64, name),
            Measurement::new(
                "swap.used",
                m.swap_total.saturating_sub(m.swap_free) as f64,
                name,
            ),
        ])
    }
}
