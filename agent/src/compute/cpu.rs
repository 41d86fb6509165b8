//! `cpu`: CPU time spent in every non-idle state by all CPUs, in nanoseconds (cumulative).
//!
//! From the `cpu` line of `/proc/stat`: user + nice + system + irq + softirq + steal (guest
//! time is already part of user and nice; idle and iowait are idle). Metadata `cpu_number`
//! is the number of CPUs, which `cpu.util` divides by.

use procfs_core::KernelStats;

use crate::host::Host;
use crate::pollster::{HostPollster, Measurement, PollResult};

/// The `cpu` pollster.
pub struct Cpu;

impl HostPollster for Cpu {
    fn poll(&self, host: &Host) -> PollResult {
        let stat: KernelStats = host.parse_si("/proc/stat")?;
        let t = &stat.total;
        let busy = t.user
            + t.nice
            + t.system
            + t.irq.unwrap_or(0)
            + t.softirq.unwrap_or(0)
            + t.steal.unwrap_or(0);
        let ns_per_tick = 1_000_000_000 / host.ticks_per_second().max(1);
        let cpu = Measurement::new("cpu", (busy * ns_per_tick) as f64, host.name())
            .with("cpu_number", stat.cpu_time.len());
        Ok(vec![cpu])
    }
}
