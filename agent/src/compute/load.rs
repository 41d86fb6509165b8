//! `load.1`, `load.5`, `load.15`: run-queue load averages (gauges) from `/proc/loadavg`.

use procfs_core::LoadAverage;

use crate::host::Host;
use crate::pollster::{HostPollster, Measurement, PollResult};

/// The `load` pollster.
pub struct Load;

/// The kernel prints two decimals; the parser keeps an `f32`. Rounding back to two decimals
/// gives exactly the printed value (0.1, not 0.10000000149).
fn printed(v: f32) -> f64 {
    (f64::from(v) * 100.0).round() / 100.0
}

impl HostPollster for Load {
    fn poll(&self, host: &Host) -> PollResult {
        let l: LoadAverage = host.parse("/proc/loadavg")?;
        let name = host.name();
        Ok(vec![
            Measurement::new("load.1", printed(l.one), name),
            Measurement::new("load.5", printed(l.five), name),
            Measurement::new("load.15", printed(l.fifteen), name),
        ])
    }
}
