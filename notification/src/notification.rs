//! Decoding one notification from the bus: the OpenStack shapes, normalized.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Why bytes are not a notification. Messages are lowercase and name what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum NotificationError {
    /// Not JSON at all (serde's message has the line and column).
    #[error("invalid json: {0}")]
    Json(#[source] serde_json::Error),
    /// JSON, but not an object.
    #[error("a notification must be a json object, got {0}")]
    NotAnObject(&'static str),
    /// The oslo.messaging v2 envelope with an `oslo.message` that is not a string.
    #[error("`oslo.message` must be a string holding the notification as json, got {0}")]
    OsloNotString(&'static str),
    /// The oslo.messaging v2 envelope with an `oslo.message` string that is not JSON.
    #[error("`oslo.message` is not valid json: {0}")]
    OsloJson(#[source] serde_json::Error),
    /// Envelopes inside envelopes, deeper than any driver nests them.
    #[error("envelopes nested more than {0} deep")]
    TooDeep(usize),
    /// No `event_type` key.
    #[error("missing `event_type`")]
    MissingEventType,
    /// An `event_type` that is not a non-empty string.
    #[error("`event_type` must be a non-empty string, got {0}")]
    BadEventType(String),
    /// A `message_id` that is not a string.
    #[error("`message_id` must be a string, got {0}")]
    BadMessageId(String),
    /// A `timestamp` that is not a time.
    #[error("invalid `timestamp` {0} (expected rfc 3339 or `yyyy-mm-dd hh:mm:ss[.ffffff]` in utc)")]
    BadTimestamp(String),
    /// A context (`ctxt`, `context`) that is not an object.
    #[error("`{key}` must be a json object, got {got}")]
    BadContext {
        /// `ctxt` or `context`.
        key: &'static str,
        /// What it is instead.
        got: &'static str,
    },
}

/// One notification, normalized from any of the shapes OpenStack services publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    message_id: String,
    event_type: String,
    publisher_id: Option<String>,
    priority: Option<String>,
    timestamp: DateTime<Utc>,
    /// The context's project, user and request ids, looked up once.
    ids: [Option<String>; 3],
    document: Value,
}

/// How deep envelopes may nest (oslo v2 inside Kafka is two).
const MAX_WRAPPING: usize = 4;

impl Notification {
    /// Decodes a notification as it arrives on the bus.
    ///
    /// Accepted shapes: the plain notification object (context as flattened `_context_*` keys,
    /// as oslo's AMQP driver writes it, or as a `ctxt` or `context` object); the oslo.messaging
    /// v2 envelope `{"oslo.version": "2.0", "oslo.message": "<the notification as json text>"}`;
    /// and the Kafka driver's `{"message": {...}, "context": {...}}`.
    ///
    /// A missing `message_id` is derived from the SHA-256 of `bytes` (a redelivery gets the
    /// same id); a missing `timestamp` is now.
    pub fn decode(bytes: &[u8]) -> Result<Self, NotificationError> {
        // UTF-8 checked once for the whole message (faster than string by string); invalid
        // UTF-8 goes through the byte parser, for its error message with line and column.
        let value: Value = match std::str::from_utf8(bytes) {
            Ok(text) => serde_json::from_str(text),
            Err(_) => serde_json::from_slice(bytes),
        }
        .map_err(NotificationError::Json)?;
        let mut context = Map::new();
        let mut object = unwrap(value, &mut context)?;
        let mut flattened = Vec::new();
        for (k, v) in &object {
            if let Some(name) = k.strip_prefix("_context_") {
                flattened.push((name.to_owned(), v.clone()));
            }
        }
        context.extend(flattened);
        for key in ["context", "ctxt"] {
            match object.get(key) {
                None | Some(Value::Null) => {}
                Some(Value::Object(m)) => {
                    context.extend(m.iter().map(|(k, v)| (k.clone(), v.clone())))
                }
                Some(other) => {
                    return Err(NotificationError::BadContext {
                        key,
                        got: kind(other),
                    });
                }
            }
        }
        let event_type = match object.get("event_type") {
            None | Some(Value::Null) => return Err(NotificationError::MissingEventType),
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(other) => return Err(NotificationError::BadEventType(short(other))),
        };
        let message_id = match object.get("message_id") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            None | Some(Value::Null) | Some(Value::String(_)) => derived_id(bytes),
            Some(Value::Number(n)) => n.to_string(),
            Some(other) => return Err(NotificationError::BadMessageId(short(other))),
        };
        let timestamp = match object.get("timestamp") {
            None | Some(Value::Null) => Utc::now(),
            Some(Value::String(s)) => crate::time::parse(s)
                .ok_or_else(|| NotificationError::BadTimestamp(short(&Value::String(s.clone()))))?,
            Some(other) => return Err(NotificationError::BadTimestamp(short(other))),
        };
        let text = |key: &str| object.get(key).and_then(Value::as_str).map(str::to_owned);
        let publisher_id = text("publisher_id");
        let priority = text("priority");
        let ids = [
            context_text(&context, &["project_id", "tenant_id", "project", "tenant"]),
            context_text(&context, &["user_id", "user"]),
            context_text(&context, &["request_id"]),
        ];
        object.insert("message_id".to_owned(), Value::String(message_id.clone()));
        object.insert("ctxt".to_owned(), Value::Object(context));
        Ok(Self {
            message_id,
            event_type,
            publisher_id,
            priority,
            timestamp,
            ids,
            document: Value::Object(object),
        })
    }

    /// The notification's id (given, or derived from its bytes).
    pub fn message_id(&self) -> &str {
        &self.message_id
    }

    /// Dotted event type, e.g. `compute.instance.create.end`.
    pub fn event_type(&self) -> &str {
        &self.event_type
    }

    /// Who sent it, e.g. `compute.host-1`.
    pub fn publisher_id(&self) -> Option<&str> {
        self.publisher_id.as_deref()
    }

    /// `INFO`, `WARN`, `ERROR`, ... as sent.
    pub fn priority(&self) -> Option<&str> {
        self.priority.as_deref()
    }

    /// When it happened.
    pub fn timestamp(&self) -> DateTime<Utc> {
        self.timestamp
    }

    /// The request context: `_context_*` keys (prefix stripped), then the `context` and `ctxt`
    /// objects merged over them (a later one wins on the same key).
    pub fn context(&self) -> &Map<String, Value> {
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        self.document
            .get("ctxt")
            .and_then(Value::as_object)
            .unwrap_or_else(|| EMPTY.get_or_init(Map::new))
    }

    /// What definitions' JSON paths are evaluated against: the (unwrapped) notification object,
    /// with the merged context under `ctxt` and the message id under `message_id`.
    pub fn document(&self) -> &Value {
        &self.document
    }

    /// The context's project: `project_id`, else `tenant_id`, `project`, `tenant`.
    pub fn project_id(&self) -> Option<&str> {
        self.ids[0].as_deref()
    }

    /// The context's user: `user_id`, else `user`.
    pub fn user_id(&self) -> Option<&str> {
        self.ids[1].as_deref()
    }

    /// The context's `request_id`.
    pub fn request_id(&self) -> Option<&str> {
        self.ids[2].as_deref()
    }
}

/// The first of `keys` whose value in `context` is non-empty text.
fn context_text(context: &Map<String, Value>, keys: &[&str]) -> Option<String> {
    keys.iter()
        .find_map(|k| {
            context
                .get(*k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        })
        .map(str::to_owned)
}

/// Takes the notification object out of its envelopes, collecting the Kafka driver's context.
fn unwrap(
    mut value: Value,
    context: &mut Map<String, Value>,
) -> Result<Map<String, Value>, NotificationError> {
    for _ in 0..MAX_WRAPPING {
        let Value::Object(mut object) = value else {
            return Err(NotificationError::NotAnObject(kind(&value)));
        };
        if let Some(inner) = object.remove("oslo.message") {
            let Value::String(text) = inner else {
                return Err(NotificationError::OsloNotString(kind(&inner)));
            };
            value = serde_json::from_str(&text).map_err(NotificationError::OsloJson)?;
            continue;
        }
        if object.contains_key("event_type") {
            return Ok(object);
        }
        // The Kafka driver's `{"message": ..., "context": ...}`; its message may be json text.
        let message = match object.get("message") {
            Some(Value::Object(_)) => object.remove("message").unwrap_or_default(),
            Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
                Ok(inner @ Value::Object(_)) => inner,
                _ => return Ok(object),
            },
            _ => return Ok(object),
        };
        match object.remove("context") {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => context.extend(m),
            Some(other) => {
                return Err(NotificationError::BadContext {
                    key: "context",
                    got: kind(&other),
                });
            }
        }
        value = message;
    }
    Err(NotificationError::TooDeep(MAX_WRAPPING))
}

/// A stable id for a notification that came without one: a UUID made of the first 16 bytes of
/// the SHA-256 of its bytes.
fn derived_id(bytes: &[u8]) -> String {
    crate::uuid_of(&Sha256::digest(bytes)).to_string()
}

/// What a JSON value is, for messages.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A value as JSON text, cut to a length fit for a message.
pub(crate) fn short(v: &Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(60) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text,
    }
}
