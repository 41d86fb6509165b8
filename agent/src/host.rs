//! The machine being measured, seen through a root directory so that fixture tests can replay
//! recorded `/proc` and `/sys` trees.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use procfs_core::{ExplicitSystemInfo, FromRead, FromReadSI};

use crate::pollster::PollError;

/// Space on one mounted filesystem, in bytes (what `df` shows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsUsage {
    /// Total size.
    pub size: u64,
    /// Used: size minus free blocks (reserved blocks count as used by nobody).
    pub used: u64,
    /// Available to unprivileged users.
    pub free: u64,
}

/// How filesystem usage is obtained for a mount point.
pub type StatFs = Arc<dyn Fn(&Path) -> std::io::Result<FsUsage> + Send + Sync>;

/// A machine: where its `/proc`, `/sys` and `/etc` live, and how to ask for filesystem usage.
#[derive(Clone)]
pub struct Host {
    root: PathBuf,
    statfs: StatFs,
    system: ExplicitSystemInfo,
    name: String,
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host")
            .field("root", &self.root)
            .field("name", &self.name)
            .finish()
    }
}

impl Host {
    /// The machine this process runs on.
    pub fn local() -> Result<Self, PollError> {
        let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .and_then(|t| u64::try_from(t).ok())
            .unwrap_or(100);
        Self::at("/", Arc::new(statvfs), ticks)
    }

    /// A machine whose files live under `root` (fixtures), with the given filesystem usage
    /// source and clock ticks per second.
    pub fn at(
        root: impl Into<PathBuf>,
        statfs: StatFs,
        ticks_per_second: u64,
    ) -> Result<Self, PollError> {
        let mut host = Self {
            root: root.into(),
            statfs,
            system: ExplicitSystemInfo {
                boot_time_secs: 0,
                ticks_per_second,
                page_size: 4096,
                is_little_endian: cfg!(target_endian = "little"),
            },
            name: String::new(),
        };
        host.name = host.read("/proc/sys/kernel/hostname")?.trim().to_owned();
        Ok(host)
    }

    /// Host name, as the kernel reports it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Clock ticks per second of `/proc/stat` times.
    pub fn ticks_per_second(&self) -> u64 {
        self.system.ticks_per_second
    }

    /// `abs` (an absolute path on the measured machine) under this host's root.
    pub fn path(&self, abs: impl AsRef<Path>) -> PathBuf {
        let abs = abs.as_ref();
        self.root.join(abs.strip_prefix("/").unwrap_or(abs))
    }

    /// Reads a whole file.
    pub fn read(&self, abs: impl AsRef<Path>) -> Result<String, PollError> {
        let path = self.path(abs);
        std::fs::read_to_string(&path).map_err(|e| PollError::read(&path, e))
    }

    /// Parses a procfs file with `procfs-core`.
    pub fn parse<T: FromRead>(&self, abs: &str) -> Result<T, PollError> {
        let path = self.path(abs);
        T::from_file(&path).map_err(|e| PollError::read(&path, e))
    }

    /// Parses a procfs file that needs system information (clock ticks).
    pub fn parse_si<T: FromReadSI>(&self, abs: &str) -> Result<T, PollError> {
        let path = self.path(abs);
        T::from_file(&path, &self.system).map_err(|e| PollError::read(&path, e))
    }

    /// Usage of the filesystem mounted at `mount_point` (a path on the measured machine).
    pub fn statfs(&self, mount_point: &Path) -> std::io::Result<FsUsage> {
        (self.statfs)(mount_point)
    }
}

fn statvfs(mount_point: &Path) -> std::io::Result<FsUsage> {
    let st = nix::sys::statvfs::statvfs(mount_point)?;
    let unit = st.fragment_size() as u64;
    let size = st.blocks() as u64 * unit;
    let free_blocks = st.blocks_free() as u64 * unit;
    Ok(FsUsage {
        size,
        used: size.saturating_sub(free_blocks),
        free: st.blocks_available() as u64 * unit,
    })
}
