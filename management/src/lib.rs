//! The management server of both binaries (DESIGN §7): plugin status, list and health in the
//! JSON shapes of `hkp-plugin-core`'s management package, liveness and readiness probes, and
//! Prometheus metrics. Loopback by default; every request that changes state needs the
//! configured Bearer token (see [`hb_pipeline::config::Management`]).
//!
//! # Layout
//!
//! - [`plugins`]: plugin kinds, lifecycle states, health records, and the registry that
//!   answers `/plugins/status`, `/plugins/list` and `/plugins/health`.
//! - [`changes`]: the routes that change a running process (reload a plugin, its
//!   configuration, the whole configuration), answered from the binary's [`changes::Changes`].
//! - [`metrics`]: the metrics registry: families read from their owners' counters when
//!   scraped (one source of truth with the progress log lines), process metrics, build info.
//! - [`server`]: binding, the routes, the token check for mutations, a graceful stop.
//! - [`sinks`]: the sinks of a pipeline as plugins and metrics (collector and embedded agent).
#![warn(missing_docs)]

pub mod changes;
pub mod metrics;
pub mod plugins;
pub mod server;
pub mod sinks;

pub use changes::{Changes, Outcome};
pub use metrics::{CounterOf, Families, Metrics};
pub use plugins::{Health, Kind, Plugin, Plugins, State};
pub use server::{Probe, Server, ServerError};
