//! The hb polling agent (`hb-polling`): loads pollsters by namespace, polls them on the
//! intervals that pipeline.yaml's sources ask for, and hands samples to the pipeline
//! (in-process with the embedded `memory://` transport) or to the bus, through a spool.
//!
//! # Layout
//!
//! - [`app`]: the command line (`--list`, `--once`, run) and graceful shutdown.
//! - [`namespaces`]: `namespaces/<ns>/*.yaml`, the declared pollsters and meters.
//! - [`management`]: the management server: pollsters and sinks as plugins, metrics.
//! - [`model`]: the runtime model: a pollster as loaded and run, what sources want of it.
//! - [`registry`]: built-in pollsters by name.
//! - [`pollster`]: pollster traits, [`Measurement`](pollster::Measurement), errors.
//! - [`runner`]: one run of one pollster: overlap guard, timeout, stamping into samples.
//! - [`scheduler`]: timers per interval, cycles, per-cycle summary.
//! - [`destination`]: the embedded pipeline or the bus.
//! - [`outbox`]: envelopes, broker confirmations, heartbeats, spool replay.
//! - [`spool`]: the bounded, checksummed on-disk spool.
//! - [`host`]: the measured machine behind a root path (fixtures replay recorded trees).
//! - [`compute`]: the local machine's pollsters (one file each).
//! - [`central`]: HTTP, TCP and Redis checks of declared targets.
//! - [`plugins`]: pollsters declared without Rust: HTTP JSON APIs, Nagios plugins, programs.
//! - [`coordination`]: central agents sharing the work through Redis (a hash ring).
//! - [`output`]: tables and JSON lines for `--list` and `--once`.
#![warn(missing_docs)]

pub mod app;
pub mod central;
pub mod compute;
pub use hb_coordination as coordination;
pub mod destination;
pub mod host;
pub mod management;
pub mod model;
pub mod namespaces;
pub mod outbox;
pub mod output;
pub mod plugins;
pub mod pollster;
pub mod registry;
pub mod runner;
pub mod scheduler;
pub mod spool;
