//! The compute namespace: the local machine, read from `/proc`, `/sys` and `statvfs`.
//!
//! Host-wide meters use the host name as resource id; per-device meters use
//! `<host>/<device>` (disks, interfaces) and filesystems `<host>:<mount point>`.

pub mod cpu;
pub mod disk;
pub mod filesystem;
pub mod host_info;
pub mod load;
pub mod memory;
pub mod network;
pub mod process;
pub mod swap;
pub mod uptime;
