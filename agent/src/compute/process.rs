//! `process.count`: processes that exist now (gauge): the numeric directories of `/proc`.

use crate::host::Host;
use crate::pollster::{HostPollster, Measurement, PollError, PollResult};

/// The `process` pollster.
pub struct Process;

impl HostPollster for Process {
    fn poll(&self, host: &Host) -> PollResult {
        let dir = host.path("/proc");
        let entries = std::fs::read_dir(&dir).map_err(|e| PollError::read(&dir, e))?;
        let count = entries
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
            })
            .count();
        Ok(vec![Measurement::new(
            "process.count",
            count as f64,
            host.name(),
        )])
    }
}
