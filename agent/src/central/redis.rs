//! `redis`: `INFO` of Redis servers. Per target: `redis.up` (1 when INFO answered, else 0
//! with metadata `result` and `error`), connected clients, used memory, instantaneous ops/s,
//! keyspace hits and misses and evicted keys (cumulative), and the keys of each database.
//! Each poll opens a connection of its own (connect and INFO within the target's timeout).
//!
//! ```yaml
//! targets:
//!   - {name: cache, url: "redis://:secret@127.0.0.1:6379", timeout: 2}   # or rediss://
//! ```
//!
//! The resource id is the server, `redis://host:port` (user, password, database and query
//! dropped); a database's is `redis://host:port/db0`. Passwords are never shown.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redis::{AsyncConnectionConfig, Client, ErrorKind, RedisError};
use reqwest::Url;

use super::{Locator, check_owned, locate};
use crate::coordination::Share;
use crate::namespaces::{DefError, PollsterDef};
use crate::pollster::{Implementation, Measurement, NetPollster, PollFuture};

/// The `redis` pollster.
pub struct RedisInfo {
    targets: Vec<Target>,
}

/// Not `Debug`: the client holds the password.
struct Target {
    /// `<pollster>/<target>`: what coordinated agents divide.
    key: String,
    name: String,
    client: Client,
    /// `redis://host:port`: the resource id.
    server: String,
    /// The URL as written, without its password.
    shown: String,
    timeout: Duration,
}

/// Builds the pollster from its declaration.
pub fn build(def: &PollsterDef) -> Result<Implementation, DefError> {
    let mut targets = Vec::new();
    for (i, t) in def.targets()?.iter().enumerate() {
        let (name, timeout, raw) = locate(i, t, "redis", Locator::Url, "redis://host:port")?;
        let field = format!("targets[{i}].url");
        // The URL may hold a password: messages never repeat it.
        let (server, shown) =
            sanitize(raw).map_err(|m| DefError::at(t, &field, format!("invalid URL: {m}")))?;
        let client = Client::open(raw)
            .map_err(|e| DefError::at(t, &field, format!("`{shown}` is not a Redis URL: {e}")))?;
        targets.push(Target {
            key: format!("{}/{name}", def.name.value),
            name,
            client,
            server,
            shown,
            timeout,
        });
    }
    // The process-wide TLS provider for rediss://; a second install attempt is harmless.
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
    Ok(Implementation::Net(Arc::new(RedisInfo { targets })))
}

/// The server id (`redis://host:port`) and the URL without its password, or what is wrong.
fn sanitize(raw: &str) -> Result<(String, String), String> {
    let mut url = Url::parse(raw).map_err(|e| e.to_string())?;
    if !matches!(url.scheme(), "redis" | "rediss") {
        return Err(format!(
            "scheme `{}` is not redis:// or rediss://",
            url.scheme()
        ));
    }
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        return Err("no host (expected redis://host:port)".to_owned());
    };
    let server = format!("{}://{host}:{}", url.scheme(), url.port().unwrap_or(6379));
    url.set_password(None)
        .map_err(|()| "cannot remove the password".to_owned())?;
    Ok((server, url.to_string()))
}

impl NetPollster for RedisInfo {
    fn poll<'a>(&'a self, share: &'a Share) -> PollFuture<'a> {
        Box::pin(async move { Ok(check_owned(&self.targets, share, |t| &t.key, check).await) })
    }
}

async fn check(t: &Target) -> Vec<Measurement> {
    let sample = |meter: &'static str, volume: f64, resource: &str| {
        Measurement::new(meter, volume, resource)
            .with("target", t.name.as_str())
            .with("url", t.shown.as_str())
    };
    let outcome = tokio::time::timeout(t.timeout, info(t)).await;
    let (result, error) = match outcome {
        Ok(Ok(text)) => {
            let info = parse(&text);
            let mut up = sample("redis.up", 1.0, &t.server).with("result", "success");
            for (field, key) in [("redis_version", "version"), ("role", "role")] {
                if let Some(v) = info.fields.get(field) {
                    up = up.with(key, *v);
                }
            }
            let mut out = vec![up];
            for (meter, field) in METERS {
                if let Some(v) = info.number(field) {
                    out.push(sample(meter, v, &t.server));
                }
            }
            for db in info.databases {
                out.push(
                    sample(
                        "redis.db.keys",
                        db.keys,
                        &format!("{}/{}", t.server, db.name),
                    )
                    .with("db", db.name)
                    .with("expires", db.expires),
                );
            }
            return out;
        }
        Ok(Err(e)) => (classify(&e), e.to_string()),
        Err(_) => ("timeout", format!("no INFO reply within {:?}", t.timeout)),
    };
    vec![
        sample("redis.up", 0.0, &t.server)
            .with("result", result)
            .with("error", error),
    ]
}

/// Meters read as they are from an `INFO` field.
const METERS: [(&str, &str); 6] = [
    ("redis.clients.connected", "connected_clients"),
    ("redis.memory.used", "used_memory"),
    ("redis.ops", "instantaneous_ops_per_sec"),
    ("redis.keyspace.hits", "keyspace_hits"),
    ("redis.keyspace.misses", "keyspace_misses"),
    ("redis.keys.evicted", "evicted_keys"),
];

/// Connects and sends `INFO`.
async fn info(t: &Target) -> Result<String, RedisError> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(t.timeout))
        .set_response_timeout(Some(t.timeout));
    let mut connection = t
        .client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    redis::cmd("INFO").query_async(&mut connection).await
}

/// The outcome of a failed check, as it appears in metadata `result`.
fn classify(e: &RedisError) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.kind() == ErrorKind::AuthenticationFailed
        || e.code()
            .is_some_and(|c| matches!(c, "NOAUTH" | "WRONGPASS" | "NOPERM"))
    {
        "auth_failed"
    } else if e.is_connection_refusal() || e.is_io_error() || e.is_connection_dropped() {
        "connection_failed"
    } else {
        "error"
    }
}

/// An `INFO` reply, parsed.
#[derive(Debug, Default, PartialEq)]
struct Info<'a> {
    /// `field:value` lines of every section.
    fields: HashMap<&'a str, &'a str>,
    /// The `dbN:keys=..,expires=..` lines of the keyspace section, in order.
    databases: Vec<Database<'a>>,
}

#[derive(Debug, PartialEq)]
struct Database<'a> {
    name: &'a str,
    keys: f64,
    expires: u64,
}

impl Info<'_> {
    fn number(&self, field: &str) -> Option<f64> {
        self.fields
            .get(field)
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite())
    }
}

/// Parses `INFO` text: `# Section` headers, `field:value` lines, `dbN:keys=1,expires=0,...`.
fn parse(text: &str) -> Info<'_> {
    let mut info = Info::default();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((field, value)) = line.split_once(':') else {
            continue;
        };
        let is_db = field
            .strip_prefix("db")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if is_db {
            let counts: HashMap<&str, &str> = value
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .collect();
            if let Some(keys) = counts.get("keys").and_then(|k| k.parse::<u64>().ok()) {
                info.databases.push(Database {
                    name: field,
                    keys: keys as f64,
                    expires: counts
                        .get("expires")
                        .and_then(|e| e.parse().ok())
                        .unwrap_or(0),
                });
            }
            continue;
        }
        info.fields.insert(field, value);
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorded from Redis 7.0 (sections shortened).
    const INFO: &str = "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n\
        uptime_in_seconds:2558\r\n\r\n# Clients\r\nconnected_clients:3\r\nblocked_clients:0\r\n\
        \r\n# Memory\r\nused_memory:1065160\r\nused_memory_human:1.02M\r\n\
        mem_fragmentation_ratio:6.86\r\n\r\n# Stats\r\ntotal_connections_received:40\r\n\
        instantaneous_ops_per_sec:12\r\nevicted_keys:7\r\nkeyspace_hits:366\r\n\
        keyspace_misses:21\r\n\r\n# Replication\r\nrole:master\r\nconnected_slaves:0\r\n\
        \r\n# Keyspace\r\ndb0:keys=12,expires=2,avg_ttl=5000\r\n\
        db3:keys=1,expires=0,avg_ttl=0,subexpiry=0\r\ndbx:keys=1\r\n";

    #[test]
    fn info_fields_and_databases_are_read() {
        let info = parse(INFO);
        let read: Vec<(&str, Option<f64>)> =
            METERS.iter().map(|(m, f)| (*m, info.number(f))).collect();
        assert_eq!(
            read,
            [
                ("redis.clients.connected", Some(3.0)),
                ("redis.memory.used", Some(1_065_160.0)),
                ("redis.ops", Some(12.0)),
                ("redis.keyspace.hits", Some(366.0)),
                ("redis.keyspace.misses", Some(21.0)),
                ("redis.keys.evicted", Some(7.0)),
            ]
        );
        assert_eq!(info.fields["role"], "master");
        assert_eq!(info.fields["redis_version"], "7.0.15");
        assert_eq!(
            info.databases,
            [
                Database {
                    name: "db0",
                    keys: 12.0,
                    expires: 2
                },
                Database {
                    name: "db3",
                    keys: 1.0,
                    expires: 0
                },
            ]
        );
        assert_eq!(info.fields.get("dbx"), Some(&"keys=1"));
    }

    #[test]
    fn missing_or_odd_fields_are_left_out() {
        let info = parse("# Stats\nkeyspace_hits:abc\nnot a field\nused_memory:nan\n");
        assert_eq!(info.number("keyspace_hits"), None);
        assert_eq!(info.number("used_memory"), None);
        assert_eq!(info.number("connected_clients"), None);
        assert!(info.databases.is_empty());
        assert_eq!(parse(""), Info::default());
    }

    #[test]
    fn urls_lose_their_password_and_name_the_server() {
        let ok = |raw: &str| sanitize(raw).expect(raw);
        assert_eq!(
            ok("redis://127.0.0.1:6379"),
            (
                "redis://127.0.0.1:6379".to_owned(),
                "redis://127.0.0.1:6379".to_owned()
            )
        );
        assert_eq!(
            ok("rediss://app:s3cret@cache.example:6380/2"),
            (
                "rediss://cache.example:6380".to_owned(),
                "rediss://app@cache.example:6380/2".to_owned()
            )
        );
        let (server, shown) = ok("redis://:s3cret@[::1]");
        assert_eq!(server, "redis://[::1]:6379");
        assert!(!shown.contains("s3cret"), "{shown}");
        for (raw, message) in [
            (
                "http://127.0.0.1:6379",
                "scheme `http` is not redis:// or rediss://",
            ),
            ("127.0.0.1:6379", "relative URL without a base"),
            ("redis://", "no host"),
        ] {
            let got = sanitize(raw).expect_err(raw);
            assert!(got.contains(message), "{raw}: {got}");
        }
    }
}
