//! Reading: what the consumer takes from its streams, in order (own pending entries of the
//! shared streams, what a taken-over partition holds, strays a previous holder left, entries
//! a dead member left in the shared streams, new entries), and entries turned into messages.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use redis::streams::{StreamAutoClaimReply, StreamId, StreamKey};
use redis::{FromRedisValue, Value, cmd};

use super::super::scripts::SCREENED;
use super::super::unreachable;
use super::{Consumer, Part};
use crate::message::Token;
use crate::{BusError, CUT_TO, Partition, Received, Topic};

/// The longest pause between two reads of an idle stream (see [`Consumer::read`]).
const POLL_AT_MOST: Duration = Duration::from_millis(100);

impl Consumer {
    /// Entries: own pending ones of the shared streams first, then what a taken-over
    /// partition holds, then entries a dead member left in the shared streams, then new ones;
    /// up to `max` per stream.
    pub(super) async fn fetch(&mut self, max: usize) -> Result<Vec<Received>, BusError> {
        let backlog: Vec<usize> = (0..self.shared.len())
            .filter(|&i| self.shared[i].after.is_some())
            .collect();
        if !backlog.is_empty() {
            let streams: Vec<(String, Option<Partition>)> = backlog
                .iter()
                .map(|&i| (self.shared[i].stream.clone(), None))
                .collect();
            let ids: Vec<String> = backlog
                .iter()
                .filter_map(|&i| self.shared[i].after.clone())
                .collect();
            let own = self.read(max, &streams, &ids, None).await?;
            for &i in &backlog {
                let last = own.iter().rev().find_map(|m| match &m.token {
                    Token::Redis { stream, id } if *stream == self.shared[i].stream => {
                        Some(id.clone())
                    }
                    _ => None,
                });
                // Nothing more after the last one read: caught up with this stream.
                self.shared[i].after = last;
            }
            if !own.is_empty() {
                return Ok(own);
            }
        }
        let taking_over = self.readable_where(true);
        let mut out = Vec::new();
        for p in taking_over {
            let (stream, cursor) = match self.parts.get(&p) {
                Some(Part {
                    stream,
                    claim: Some(cursor),
                    ..
                }) => (stream.clone(), cursor.clone()),
                _ => continue,
            };
            // Under the lease nobody else reads this stream: everything pending is ours.
            let reply = self.autoclaim(&stream, 0, &cursor, max).await?;
            if let Some(part) = self.parts.get_mut(&p) {
                part.claim = (reply.next_stream_id != "0-0").then_some(reply.next_stream_id);
            }
            if !reply.claimed.is_empty() {
                tracing::info!(partition = p, entries = reply.claimed.len(), consumer = %self.name, "took over entries left pending in the partition");
            }
            out.extend(
                reply
                    .claimed
                    .into_iter()
                    .map(|e| received(Topic::Samples, Some(p), &stream, e)),
            );
        }
        if !out.is_empty() {
            return Ok(out);
        }
        let claim_due = self
            .last_claim
            .is_none_or(|at| at.elapsed() >= self.spec.claim_idle / 2);
        if claim_due {
            let idle = self.spec.claim_idle.as_millis() as u64;
            for i in 0..self.shared.len() {
                let (stream, topic) = (self.shared[i].stream.clone(), self.shared[i].topic);
                let reply = self.autoclaim(&stream, idle, "0-0", max).await?;
                if !reply.claimed.is_empty() {
                    tracing::info!(stream = %stream, claimed = reply.claimed.len(), consumer = %self.name, "claimed entries left pending by another consumer");
                }
                out.extend(
                    reply
                        .claimed
                        .into_iter()
                        .map(|e| received(topic, None, &stream, e)),
                );
            }
            let held = self.readable_where(false);
            for p in held {
                out.extend(self.strays(p, max).await?);
            }
            if !out.is_empty() {
                return Ok(out);
            }
            self.last_claim = Some(Instant::now());
        }
        let mut streams: Vec<(String, Option<Partition>)> = self
            .shared
            .iter()
            .map(|s| (s.stream.clone(), None))
            .collect();
        streams.extend(
            self.parts
                .iter()
                .filter(|(p, part)| part.claim.is_none() && self.readable(**p))
                .map(|(p, part)| (part.stream.clone(), Some(*p))),
        );
        let new = vec![">".to_owned(); streams.len()];
        self.read(max, &streams, &new, Some(self.spec.block)).await
    }

    /// Entries of a held partition left pending by another consumer for longer than the lease
    /// (a previous holder that read them while its lease ran out): taken over with `XCLAIM`.
    /// This consumer's own pending entries are in its sinks and are left alone.
    async fn strays(&mut self, p: Partition, max: usize) -> Result<Vec<Received>, BusError> {
        let stream = self.spec.common.partition_name(p);
        let idle = self.spec.lease.as_millis() as u64;
        let pending: Vec<(String, String, u64, u64)> = cmd("XPENDING")
            .arg(&stream)
            .arg(&self.spec.group)
            .arg("IDLE")
            .arg(idle)
            .arg("-")
            .arg("+")
            .arg(max)
            .query_async(&mut self.commands)
            .await
            .map_err(unreachable)?;
        let ids: Vec<String> = pending
            .into_iter()
            .filter(|(_, consumer, _, _)| *consumer != self.name)
            .map(|(id, ..)| id)
            .collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut command = vec![
            "XCLAIM".to_owned(),
            stream.clone(),
            self.spec.group.clone(),
            self.name.clone(),
            idle.to_string(),
        ];
        command.extend(ids);
        let claimed: redis::streams::StreamClaimReply = self.screened(command).await?;
        tracing::info!(partition = p, entries = claimed.ids.len(), consumer = %self.name, "took over entries a previous holder of the partition left pending");
        Ok(claimed
            .ids
            .into_iter()
            .map(|e| received(Topic::Samples, Some(p), &stream, e))
            .collect())
    }

    /// `XAUTOCLAIM` of entries of `stream` pending at least `idle_ms`, from `cursor`.
    async fn autoclaim(
        &mut self,
        stream: &str,
        idle_ms: u64,
        cursor: &str,
        max: usize,
    ) -> Result<StreamAutoClaimReply, BusError> {
        self.screened(vec![
            "XAUTOCLAIM".to_owned(),
            stream.to_owned(),
            self.spec.group.clone(),
            self.name.clone(),
            idle_ms.to_string(),
            cursor.to_owned(),
            "COUNT".to_owned(),
            max.to_string(),
        ])
        .await
    }

    /// Runs a reading command through [`SCREENED`]: every field longer than
    /// `max_message_bytes` comes back as its length and first [`CUT_TO`] bytes, so that no
    /// entry costs this process more than that, whatever was written to the stream.
    async fn screened<T: FromRedisValue>(&mut self, command: Vec<String>) -> Result<T, BusError> {
        let mut invocation = SCREENED.prepare_invoke();
        invocation
            .arg(self.spec.common.max_message_bytes)
            .arg(CUT_TO);
        for arg in command {
            invocation.arg(arg);
        }
        invocation
            .invoke_async(&mut self.commands)
            .await
            .map_err(unreachable)
    }

    /// `XREADGROUP` from every stream, from its id in `ids` (`>` = new; otherwise own
    /// pending entries after that id). With `wait`, when nothing is there it asks again
    /// (after 2 ms, then twice as long each time up to [`POLL_AT_MOST`]) until something is
    /// or `wait` has passed: the screening script cannot block.
    async fn read(
        &mut self,
        max: usize,
        streams: &[(String, Option<Partition>)],
        ids: &[String],
        wait: Option<Duration>,
    ) -> Result<Vec<Received>, BusError> {
        let mut command = vec![
            "XREADGROUP".to_owned(),
            "GROUP".to_owned(),
            self.spec.group.clone(),
            self.name.clone(),
            "COUNT".to_owned(),
            max.to_string(),
            "STREAMS".to_owned(),
        ];
        command.extend(streams.iter().map(|(stream, _)| stream.clone()));
        command.extend(ids.iter().cloned());
        let until = wait.map(|w| Instant::now() + w);
        let mut pause = Duration::from_millis(2);
        // Read as plain rows, not as redis-rs's StreamReadReply, whose conversion copies the
        // whole reply first.
        let reply = loop {
            let reply: Option<ReadRows> = self.screened(command.clone()).await?;
            let left = until.map_or(Duration::ZERO, |u| {
                u.saturating_duration_since(Instant::now())
            });
            if reply
                .as_ref()
                .is_some_and(|r| r.iter().any(|(_, e)| !e.is_empty()))
                || left.is_zero()
            {
                break reply;
            }
            tokio::time::sleep(pause.min(left)).await;
            pause = (pause * 2).min(POLL_AT_MOST);
        };
        let mut out = Vec::new();
        for (key, entries) in reply.unwrap_or_default() {
            let key = StreamKey {
                ids: entries
                    .into_iter()
                    .map(|(id, map)| StreamId {
                        id,
                        map,
                        ..StreamId::default()
                    })
                    .collect(),
                key,
            };
            let partition = streams
                .iter()
                .find(|(s, _)| *s == key.key)
                .and_then(|s| s.1);
            let topic = match partition {
                Some(_) => Topic::Samples,
                None => self
                    .shared
                    .iter()
                    .find(|s| s.stream == key.key)
                    .map_or(Topic::Notifications, |s| s.topic),
            };
            out.extend(
                key.ids
                    .into_iter()
                    .map(|entry| received(topic, partition, &key.key, entry)),
            );
        }
        Ok(out)
    }
}

/// An `XREADGROUP` reply: per stream, its entries (id, fields).
type ReadRows = Vec<(String, Vec<(String, HashMap<String, Value>)>)>;

pub(super) fn received(
    topic: Topic,
    partition: Option<Partition>,
    stream: &str,
    mut entry: StreamId,
) -> Received {
    // Another service's entry may name its only field as it likes; one of several fields and
    // no `payload` arrives whole, as a JSON object of its fields, so that a collector decodes
    // it (a notification written field by field) or dead-letters it with nothing lost.
    let mut length = None;
    let payload = match entry.map.remove("payload") {
        // Cut by the screening script: (its length, its first bytes).
        Some(Value::Array(pair)) => match pair.as_slice() {
            [Value::Int(n), first] => {
                length = usize::try_from(*n).ok();
                bytes(first.clone())
            }
            _ => Vec::new(),
        },
        Some(field) => bytes(field),
        None if entry.map.len() == 1 => entry
            .map
            .drain()
            .next()
            .map_or_else(Vec::new, |(_, v)| bytes(v)),
        // An entry trimmed away while pending comes back without fields.
        None if entry.map.is_empty() => Vec::new(),
        None => {
            let fields: std::collections::BTreeMap<String, String> = entry
                .map
                .drain()
                .map(|(name, value)| (name, String::from_utf8_lossy(&bytes(value)).into_owned()))
                .collect();
            serde_json::to_vec(&fields).unwrap_or_default()
        }
    };
    Received {
        topic,
        id: format!("{stream}/{}", entry.id),
        length: length.unwrap_or(payload.len()).max(payload.len()),
        payload,
        partition,
        token: Token::Redis {
            stream: stream.to_owned(),
            id: entry.id,
        },
    }
}

/// A field's value as bytes (empty for a value that is not a string).
fn bytes(value: Value) -> Vec<u8> {
    match value {
        Value::BulkString(bytes) => bytes,
        Value::SimpleString(text) => text.into_bytes(),
        _ => Vec::new(),
    }
}
