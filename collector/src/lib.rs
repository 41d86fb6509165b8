//! The hb collector (`hb-collector`): consumes samples from the bus and runs the same pipeline
//! as the agent's embedded mode (DESIGN §4, §7); with a `notifications:` section it also
//! consumes other services' notifications and turns them into samples (through the same
//! pipeline) and events (to the event sinks) with meter and event definitions.
//!
//! Every message is acknowledged only after every sink its samples were routed to has
//! published them (sinks batch, retry and push back; acknowledgements run beside receiving,
//! within a window of `prefetch` unacknowledged messages); undecodable messages go to the dead-letter destination, envelopes with a
//! missing or wrong signature are dropped and counted, heartbeats are logged and counted.
//!
//! # Layout
//!
//! - [`cli`]: the command line: `validate` and run (with graceful shutdown).
//! - [`consume`]: the consume loop: decode, verify, submit, acknowledge, reconnect.
//! - [`control`]: changes to the running collector: a sink reloaded or reconfigured, the whole
//!   configuration reloaded (SIGHUP), each validated first and applied as a difference.
//! - `decode`: envelopes decoded and verified, on blocking threads when large.
//! - [`management`]: the management server: the consumer, sinks and definitions as plugins,
//!   their metrics, readiness.
//! - [`notify`]: notification plugins: the definitions in force, misses counted and logged.
//! - [`partitions`]: the samples partitions this collector consumes (the collectors' group and
//!   hash ring), and the transformer state forgotten when one moves.
//! - `progress`: a bar on a terminal, periodic log lines otherwise, for long commands.
//! - [`replay`]: `replay`, the archive of a time range sent through one sink.
//! - [`replays`]: replay protection: per producer the highest sequence acknowledged, a maximum age.
//! - [`stats`]: counters, logged as progress lines.
//! - `worker`: one batch: decode, verify, convert, submit, refuse by reason, dead-letter.
#![warn(missing_docs)]

pub mod cli;
pub mod consume;
pub mod control;
mod decode;
pub mod management;
pub mod notify;
pub mod partitions;
mod progress;
pub mod replay;
pub mod replays;
pub mod stats;
mod worker;
