//! The samples one meter definition makes of one notification.

use std::borrow::Cow;

use hb_sample::{Metadata, Sample};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::convert::{Miss, MissKind};
use crate::meter::{Field, LOOKUP, MeterDef, SOURCE};
use crate::notification::{Notification, kind as json_kind, short};
use crate::path::Memo;
use crate::value::{number, text};
use crate::yaml::join;

/// The lookup lists of one notification, by [`Field`] (set for the fields in `lookup`).
type Lists<'a> = [Option<Vec<&'a Value>>; 7];

impl MeterDef {
    /// The samples this definition makes of `n` (which its event types match), and what it
    /// could not extract.
    pub fn extract<'a>(
        &'a self,
        n: &'a Notification,
        memo: &Memo<'a>,
        samples: &mut Vec<Sample>,
        misses: &mut Vec<Miss>,
    ) {
        let doc = n.document();
        let miss = |field: &str, reason: String| Miss {
            kind: MissKind::Meter,
            definition: self.label.clone(),
            field: field.to_owned(),
            message_id: n.message_id().to_owned(),
            reason,
        };
        let mut metadata = Metadata::new();
        metadata.insert(
            "event_type".to_owned(),
            Value::String(n.event_type().to_owned()),
        );
        for (key, spec) in self.metadata.iter() {
            match spec.eval(doc, memo) {
                Ok(Some(v)) => {
                    metadata.insert(key.clone(), v.into_owned());
                }
                Ok(None) => {}
                Err(reason) => misses.push(miss(&join("metadata", key), reason)),
            }
        }
        if self.lookup == 0 {
            match self.sample(n, memo, None, 0, metadata) {
                Ok(s) => samples.push(s),
                Err((field, reason)) => misses.push(miss(field, reason)),
            }
            return;
        }
        let mut lists: Lists<'_> = Default::default();
        for (i, spec) in self.specs.iter().enumerate() {
            if self.lookup & (1 << i) != 0 {
                lists[i] = spec.as_ref().and_then(|s| s.eval_all(doc));
            }
        }
        let lengths: Vec<(usize, usize)> = lists
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.as_ref().map(|l| (i, l.len())))
            .collect();
        let len = lengths.first().map_or(0, |(_, n)| *n);
        if lengths.iter().any(|(_, n)| *n != len) {
            let described: Vec<String> = lengths
                .iter()
                .map(|(i, n)| format!("{}: {n}", LOOKUP[*i]))
                .collect();
            let reason = format!("lists differ in length ({})", described.join(", "));
            misses.push(miss("lookup", reason));
            return;
        }
        if len == 0 {
            misses.push(miss("lookup", "the lists are empty".to_owned()));
            return;
        }
        for i in 0..len {
            match self.sample(n, memo, Some((&lists, i)), i, metadata.clone()) {
                Ok(s) => samples.push(s),
                Err((field, reason)) => misses.push(miss(field, format!("element {i}: {reason}"))),
            }
        }
    }

    /// One sample: element `index` of the lookup lists, when there are lists.
    fn sample<'a>(
        &'a self,
        n: &'a Notification,
        memo: &Memo<'a>,
        element: Option<(&Lists<'a>, usize)>,
        index: usize,
        metadata: Metadata,
    ) -> Result<Sample, (&'static str, String)> {
        let value = |f: Field| -> Result<Option<Cow<'_, Value>>, (&'static str, String)> {
            if let Some((lists, i)) = element
                && let Some(list) = &lists[f as usize]
            {
                return Ok(list
                    .get(i)
                    .filter(|v| !v.is_null())
                    .map(|v| Cow::Borrowed(*v)));
            }
            match &self.specs[f as usize] {
                Some(spec) => spec.eval(n.document(), memo).map_err(|r| (f.as_str(), r)),
                None => Ok(None),
            }
        };
        let required = |f: Field| value(f)?.ok_or_else(|| (f.as_str(), "found nothing".to_owned()));
        let as_text = |f: Field, v: &Value| -> Result<String, (&'static str, String)> {
            text(v)
                .map(Cow::into_owned)
                .ok_or_else(|| (f.as_str(), format!("found {}, not text", json_kind(v))))
        };
        let name = as_text(Field::Name, &*required(Field::Name)?)?;
        if name.is_empty() {
            return Err(("name", "found an empty name".to_owned()));
        }
        let unit = as_text(Field::Unit, &*required(Field::Unit)?)?;
        let volume_value = required(Field::Volume)?;
        let volume = number(&volume_value).ok_or_else(|| {
            (
                "volume",
                format!("{} is not a number", short(&volume_value)),
            )
        })?;
        let resource_id = as_text(Field::ResourceId, &*required(Field::ResourceId)?)?;
        let owner =
            |f: Field, default: Option<&str>| -> Result<Option<String>, (&'static str, String)> {
                if self.specs[f as usize].is_none() {
                    return Ok(default.map(str::to_owned));
                }
                value(f)?.map(|v| as_text(f, &v)).transpose()
            };
        let project_id = owner(Field::ProjectId, n.project_id())?;
        let user_id = owner(Field::UserId, n.user_id())?;
        let timestamp = match value(Field::Timestamp)? {
            None => n.timestamp(),
            Some(v) => v
                .as_str()
                .and_then(crate::time::parse)
                .ok_or_else(|| ("timestamp", format!("{} is not a timestamp", short(&v))))?,
        };
        let mut sample = Sample::new(name, self.kind, unit, volume, resource_id, timestamp)
            .map_err(|e| ("volume", e.to_string()))?;
        sample.id = sample_id(n.message_id(), &sample.name, index);
        sample.project_id = project_id;
        sample.user_id = user_id;
        sample.source = SOURCE.to_owned();
        sample.resource_metadata = metadata;
        Ok(sample)
    }
}

/// A sample id that a redelivery reproduces: a UUID from the SHA-256 of the message id, the
/// meter name and the element index.
fn sample_id(message_id: &str, name: &str, index: usize) -> uuid::Uuid {
    let mut h = Sha256::new();
    h.update(message_id.as_bytes());
    h.update([0]);
    h.update(name.as_bytes());
    h.update([0]);
    h.update(index.to_le_bytes());
    crate::uuid_of(&h.finalize())
}
