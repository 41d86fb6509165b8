//! `memory.total`, `memory.available`, `memory.usage` (gauges, bytes) from `/proc/meminfo`.
//!
//! `memory.usage` is total minus available: memory that cannot be reclaimed without swapping.
//! Kernels older than 3.14 have no `MemAvailable`; free + buffers + page cache stands in.

use procfs_core::Meminfo;

use crate::host::Host;
use crate::pollster::{HostPollster, Measurement, PollResult};

/// The `memory` pollster.
pub struct Memory;

impl HostPollster for Memory {
    fn poll(&self, host: &Host) -> PollResult {
        let m: Meminfo = host.parse("/proc/meminfo")?;
        let available = m.mem_available.unwrap_or(m.mem_free + m.buffers + m.cached);
        let name = host.name();
        Ok(vec![
            Measurement::new("memory.total", m.mem_total as f64, name),
            Measurement::new("memory.available", available as f64, name),
            Measurement::new(
                "memory.usage",
                m.mem_total.saturating_sub(available) as f64,
                name,
            ),
        ])
    }
}
