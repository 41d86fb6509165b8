//! The hb collector (`hb-collector`): consumes samples from the bus and runs the same pipeline
//! as the agent's embedded mode (DESIGN §7).
//!
//! The bus transports arrive with their own issue; until then the collector offers
//! `hb-collector validate`, and refuses to run on `memory://`, where the agent runs the
//! pipeline itself.
//!
//! # Layout
//!
//! - [`cli`]: the command line: `validate` and run.
#![warn(missing_docs)]

pub mod cli;
