//! `host.info` (info pollster, gauge 1): static facts about the machine in metadata:
//! hostname, os, kernel, arch, cpu_model, cores, memory_total (bytes).

use procfs_core::{CpuInfo, Meminfo};

use crate::host::Host;
use crate::pollster::{HostPollster, Measurement, PollResult};

/// The `host.info` pollster.
pub struct HostInfo;

impl HostPollster for HostInfo {
    fn poll(&self, host: &Host) -> PollResult {
        let cpu: CpuInfo = host.parse("/proc/cpuinfo")?;
        let memory: Meminfo = host.parse("/proc/meminfo")?;
        let kernel = host.read("/proc/sys/kernel/osrelease")?;
        let os = ["/etc/os-release", "/usr/lib/os-release"]
            .into_iter()
            .find_map(|f| host.read(f).ok())
            .and_then(|text| pretty_name(&text))
            .unwrap_or_else(|| "unknown".to_owned());
        let info = Measurement::new("host.info", 1.0, host.name())
            .with("hostname", host.name())
            .with("os", os)
            .with("kernel", kernel.trim())
            .with("arch", std::env::consts::ARCH)
            .with("cpu_model", cpu.model_name(0).unwrap_or("unknown"))
            .with("cores", cpu.num_cores())
            .with("memory_total", memory.mem_total);
        Ok(vec![info])
    }
}

/// `PRETTY_NAME` of an os-release file, unquoted.
fn pretty_name(os_release: &str) -> Option<String> {
    let value = os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))?;
    Some(
        value
            .trim()
            .trim_matches(|c| c == '"' || c == '\'')
            .to_owned(),
    )
}
