//! Notifications from other services (the OpenStack shape) turned into samples and events by
//! declarative meter and event definitions (DESIGN §7), as Ceilometer's `meters.yaml` and
//! `event_definitions.yaml` do.
//!
//! ```no_run
//! # use std::path::Path;
//! use hb_notification::{Definitions, Notification, Unmatched};
//!
//! let loaded = Definitions::load(
//!     Some(Path::new("meters.d")),
//!     Some(Path::new("events.d")),
//!     Unmatched::Keep,
//! )?;
//! for skipped in &loaded.skipped {
//!     eprintln!("{skipped}"); // meters.d/compute.yaml:12:14: metric[3] `memory`: volume: ...
//! }
//! let bytes = br#"{"event_type": "compute.instance.create.end", "payload": {}}"#;
//! let converted = loaded.definitions.convert(&Notification::decode(bytes)?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Notifications
//!
//! [`Notification::decode`] reads the plain notification object (`event_type`, `payload`,
//! `publisher_id`, `timestamp`, `priority`, `message_id`; context as `_context_*` keys or a
//! `ctxt`/`context` object), the oslo.messaging v2 envelope (`oslo.message` holding the
//! notification as JSON text) and the Kafka driver's `{"message": ..., "context": ...}`.
//! Definitions' JSON paths are evaluated against the notification object with the merged
//! context under `ctxt`: `$.payload.instance_id`, `$.ctxt.request_id`, `$.publisher_id`.
//!
//! # Meter definitions
//!
//! `meters.d/*.yaml`, files in name order, each `metric:` followed by a list of:
//!
//! ```yaml
//! - name: memory                    # meter name (or a value, see below)
//!   event_type: [compute.instance.create.end, "compute.instance.resize.*"]
//!   type: gauge                     # gauge, delta or cumulative
//!   unit: MB
//!   volume: $.payload.memory_mb     # a number, or text holding one
//!   resource_id: $.payload.instance_id
//!   project_id: $.payload.tenant_id # optional; default: the context's project_id,
//!                                   #   tenant_id, project or tenant
//!   user_id: $.payload.user_id      # optional; default: the context's user_id or user
//!   timestamp: $.payload.audited_at # optional; default: the notification's
//!   metadata: {host: $.payload.host, flavor: $.payload.instance_type}
//! ```
//!
//! `lookup: [name, unit, volume]` (any of `name`, `unit`, `volume`, `resource_id`,
//! `project_id`, `user_id`, `timestamp`, each set as a path) evaluates those fields as parallel
//! lists and makes one sample per element, as Ceilometer does for swift's
//! `objectstore.http.request` (`name: $.payload.measurements[*].metric.name`, ...).
//!
//! Every matching meter definition makes its samples. Samples have `source` `notification`,
//! `event_type` in their metadata besides the definition's entries, and an id derived from the
//! message id, the meter name and the element index, so a redelivery makes the same ids. When
//! `name`, `unit`, `volume` or `resource_id` finds nothing, when the volume is not a number or
//! a timestamp not a time, or when lookup lists differ in length, no sample is made and a
//! [`Miss`] says why.
//!
//! # Values
//!
//! One rule for meter fields and metadata: text starting with `$` is an RFC 9535 JSON path
//! (the first non-null value it finds), any other scalar is a literal, a list of paths takes the
//! first that finds a non-null value, and `{fields: path | [paths], plugin: ...}` feeds every
//! value the fields find to a plugin. Paths under `fields:` may leave out the leading `$.`
//! (`payload.instance_id`), as Ceilometer's event definitions write them. Plugins are written
//! `plugin: NAME` or `plugin: {name: NAME, parameters: {...}}`:
//!
//! - `timedelta`: two timestamps → seconds from the first to the second, as a float.
//! - `map`: `values: {from: to}`, optional `default`, `case_sensitive` (default true).
//! - `split`: `separator` (default `-`), `segment` (default 0, negative from the end),
//!   optional `max_split`.
//!
//! # Event definitions
//!
//! `events.d/*.yaml`, files in name order, each a list of:
//!
//! ```yaml
//! - event_type: compute.instance.*
//!   traits:
//!     instance_id: {fields: payload.instance_id}            # type text by default
//!     memory_mb: {fields: payload.memory_mb, type: int}     # text, int, float, datetime
//!     launched_at: {fields: payload.launched_at, type: datetime}
//!     host: {fields: publisher_id, plugin: {name: split, parameters: {separator: ".", segment: 1}}}
//! ```
//!
//! The LAST matching definition makes the event (later definitions and later files override
//! earlier ones, as in Ceilometer). Every event has the default traits `service` (the
//! publisher), `request_id`, `project_id` and `user_id` (from the context) unless its
//! definition has a trait of that name. A trait that finds nothing (or empty text, for a
//! non-text type) is left out; one whose value cannot be converted to its type is left out and
//! reported as a [`Miss`]. A notification no definition matches becomes an event with the
//! default traits alone under [`Unmatched::Keep`], nothing under [`Unmatched::Drop`].
//!
//! # Event type patterns
//!
//! `event_type` is a pattern or a list of them: shell globs (`*` any text including dots, `?`
//! one character, `[...]` a set); a pattern starting with `!` excludes. A notification matches
//! when its type matches at least one including pattern (a list of only exclusions includes
//! everything else) and no excluding one: `["compute.instance.*",
//! "!compute.instance.exists"]`, `["!*.start"]`. Which definitions match an event type is
//! remembered (up to [`CACHE_CAPACITY`] event types), and a path that several definitions
//! share is walked once per notification.
//!
//! # Errors
//!
//! A wrong definition is reported as a [`DefinitionError`] naming the file, line and column,
//! the definition and the field, and skipped; the others load. A file that is not YAML is
//! reported and skipped. Unknown fields are refused, listing the valid ones.
//!
//! # Layout
//!
//! - `lib.rs`: [`Definitions`], this overview.
//! - [`notification`]: [`Notification::decode`] and [`NotificationError`].
//! - [`pattern`]: [`EventTypes`], event type patterns.
//! - `value.rs`: value specifications (path, list of paths, literal, plugin), parsed once.
//! - `path.rs`: JSON paths, and the per-notification memo of what they found.
//! - `plugin/`: the `timedelta`, `map` and `split` plugins (`parse.rs`: their parameters).
//! - `meter.rs`: meter definitions, checked.
//! - `extract.rs`: the samples a meter definition makes of a notification.
//! - `event.rs`: event definitions and the events they make.
//! - `load.rs`: files to definitions; [`DefinitionError`], [`LoadError`], [`Loaded`].
//! - `convert.rs`: [`Definitions::convert`], the match cache, [`Converted`], [`Miss`].
//! - `yaml.rs`: YAML as a tree of values that know their line and column.
//! - `time.rs`: timestamps as OpenStack writes them.
#![warn(missing_docs)]

mod convert;
mod event;
mod extract;
mod load;
mod meter;
pub mod notification;
mod path;
pub mod pattern;
mod plugin;
mod time;
mod value;
mod yaml;

pub use convert::{CACHE_CAPACITY, Converted, Miss, MissKind, Unmatched};
pub use load::{DefinitionError, LoadError, Loaded};
pub use meter::SOURCE;
pub use notification::{Notification, NotificationError};
pub use pattern::{EventTypes, PatternError};

/// Loaded meter and event definitions, ready to convert notifications; share it between
/// threads (`Sync`).
#[derive(Debug)]
pub struct Definitions {
    meters: Vec<meter::MeterDef>,
    events: Vec<event::EventDef>,
    unmatched: Unmatched,
    default_traits: Box<[event::TraitDef]>,
    cache: convert::Cache,
}

impl Definitions {
    /// How many meter definitions loaded.
    pub fn meter_count(&self) -> usize {
        self.meters.len()
    }

    /// The `name` of every meter definition as written: a meter name, or the JSON path that
    /// finds it.
    pub fn meter_names(&self) -> impl Iterator<Item = &str> {
        self.meters.iter().map(|m| m.label.as_str())
    }

    /// How many event definitions loaded.
    pub fn event_count(&self) -> usize {
        self.events.len()
    }
}

/// A UUID (version 8, "custom") made of the first 16 bytes of a digest.
fn uuid_of(digest: &[u8]) -> uuid::Uuid {
    let mut bytes = [0u8; 16];
    for (b, d) in bytes.iter_mut().zip(digest) {
        *b = *d;
    }
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}
