//! Built-in pollsters by name. Adding one = its file, one line here, its meters in
//! `namespaces/<ns>/*.yaml`.

use std::sync::Arc;

use crate::central;
use crate::compute;
use crate::namespaces::{DefError, PollsterDef};
use crate::pollster::{HostPollster, Implementation, Kind};

/// A built-in implementation.
pub struct Builtin {
    /// The name a declaration refers to.
    pub name: &'static str,
    /// Info or monitor.
    pub kind: Kind,
    /// Builds it from its declaration (validating targets and options).
    pub build: fn(&PollsterDef) -> Result<Implementation, DefError>,
}

/// Every built-in pollster.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "cpu",
        kind: Kind::Monitor,
        build: |d| host(d, compute::cpu::Cpu),
    },
    Builtin {
        name: "memory",
        kind: Kind::Monitor,
        build: |d| host(d, compute::memory::Memory),
    },
    Builtin {
        name: "swap",
        kind: Kind::Monitor,
        build: |d| host(d, compute::swap::Swap),
    },
    Builtin {
        name: "load",
        kind: Kind::Monitor,
        build: |d| host(d, compute::load::Load),
    },
    Builtin {
        name: "disk.device",
        kind: Kind::Monitor,
        build: |d| host(d, compute::disk::Disk),
    },
    Builtin {
        name: "filesystem",
        kind: Kind::Monitor,
        build: |d| host(d, compute::filesystem::Filesystem),
    },
    Builtin {
        name: "network",
        kind: Kind::Monitor,
        build: |d| host(d, compute::network::Network),
    },
    Builtin {
        name: "host.uptime",
        kind: Kind::Monitor,
        build: |d| host(d, compute::uptime::Uptime),
    },
    Builtin {
        name: "process",
        kind: Kind::Monitor,
        build: |d| host(d, compute::process::Process),
    },
    Builtin {
        name: "host.info",
        kind: Kind::Info,
        build: |d| host(d, compute::host_info::HostInfo),
    },
    Builtin {
        name: "http.response",
        kind: Kind::Monitor,
        build: central::http::build,
    },
    Builtin {
        name: "tcp.connect",
        kind: Kind::Monitor,
        build: central::tcp::build,
    },
    Builtin {
        name: "redis",
        kind: Kind::Monitor,
        build: central::redis::build,
    },
];

/// The built-in called `name`.
pub fn find(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

/// Every built-in name, sorted, for error messages.
pub fn names() -> Vec<&'static str> {
    let mut names: Vec<_> = BUILTINS.iter().map(|b| b.name).collect();
    names.sort_unstable();
    names
}

fn host(def: &PollsterDef, pollster: impl HostPollster) -> Result<Implementation, DefError> {
    def.no_targets()?;
    Ok(Implementation::Host(Arc::new(pollster)))
}
