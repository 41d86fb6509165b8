//! The hb collector (`hb-collector`): consumes samples from the bus and runs the same pipeline
//! as the agent's embedded mode (DESIGN §4, §7).
//!
//! Every message is acknowledged only after every publisher its samples were routed to has
//! accepted them; undecodable messages go to the dead-letter destination, envelopes with a
//! missing or wrong signature are dropped and counted, heartbeats are logged and counted.
//!
//! # Layout
//!
//! - [`cli`]: the command line: `validate` and run (with graceful shutdown).
//! - [`consume`]: the consume loop: decode, verify, publish, acknowledge, reconnect.
//! - [`stats`]: counters, logged as progress lines.
#![warn(missing_docs)]

pub mod cli;
pub mod consume;
pub mod stats;
