//! The hb data model shared by every part of the pipeline.
//!
//! A [`Sample`] is one measurement of one resource at one time (DESIGN §2). Samples travel on
//! the bus inside an [`Envelope`]: a versioned batch that names its producer, carries a
//! per-producer sequence number and, when a shared secret is configured, an HMAC-SHA256
//! signature over its [canonical encoding](canonical) (DESIGN §3).
//!
//! # Layout
//!
//! - [`sample`]: [`Sample`], [`SampleType`], validation at the edge (finite volumes only).
//! - [`envelope`]: [`Envelope`], its [`Producer`] and [`Body`], JSON encoding, signing and
//!   verification with a [`Secret`].
//! - [`event`]: [`Event`] with typed [`Trait`]s, what notifications become besides samples.
//! - [`canonical`]: the canonical JSON encoding that signatures are computed over.
//! - [`timestamp`]: RFC 3339 timestamps with nanosecond precision, as serde helpers.
#![warn(missing_docs)]

pub mod canonical;
pub mod envelope;
pub mod event;
pub mod sample;
pub mod timestamp;

pub use envelope::{
    Body, ENVELOPE_VERSION, Envelope, EnvelopeError, Heartbeat, Limits, PollsterState, Producer,
    Secret,
};
pub use event::{Event, Trait, TraitType, TraitValue};
pub use sample::{Metadata, Sample, SampleError, SampleType};
