//! Numbers seen per key, shared by the members of a group through the coordination backend:
//! the collectors' replay protection, when several consume one bus.
//!
//! Each key is a Redis sorted set `hb:<space>:<group>:<key>` of numbers (member and score
//! alike). [`Seen::record`] adds numbers and drops those more than a window below the largest,
//! in one script, so two members recording at once never lose each other's numbers; a set
//! expires `ttl` after it was last recorded into (past that, whatever it protected is refused
//! for its age anyway). [`Seen::lookup`] answers, per key, the largest number and whether a
//! given one is in the set. Numbers must stay below 2^53, which scores keep exact (the
//! collectors' sequence numbers, microseconds since 1970, are near 2^51).

use std::time::Duration;

use hb_pipeline::config::Coordination;
use redis::{RedisError, Script};

use crate::CoordinationError;
use crate::conn::Lazy;

/// For each `KEYS[i]`: the largest number (or -1) and whether `ARGV[i]` is in the set.
const LOOKUP: &str = r"
local out = {}
for i, key in ipairs(KEYS) do
  local top = redis.call('ZREVRANGE', key, 0, 0)
  out[2 * i - 1] = top[1] or '-1'
  out[2 * i] = redis.call('ZSCORE', key, ARGV[i]) and 1 or 0
end
return out
";

/// Adds `ARGV[i + 2]` to `KEYS[i]`, drops what is more than `ARGV[2]` below the set's largest,
/// and gives the set `ARGV[1]` milliseconds to live.
const RECORD: &str = r"
for i, key in ipairs(KEYS) do
  local n = ARGV[i + 2]
  redis.call('ZADD', key, n, n)
  local top = tonumber(redis.call('ZREVRANGE', key, 0, 0)[1])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. string.format('%.0f', top - tonumber(ARGV[2])))
  redis.call('PEXPIRE', key, ARGV[1])
end
return #KEYS
";

/// Answers to one call take at most this long.
const BUDGET: Duration = Duration::from_secs(2);

/// What a key holds about one number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lookup {
    /// The largest number recorded (and kept) for the key.
    pub largest: Option<u64>,
    /// Whether the number asked about was recorded (and kept).
    pub recorded: bool,
}

/// A group's shared sets of numbers.
pub struct Seen {
    conn: Lazy,
    prefix: String,
    ttl: Duration,
    lookup: Script,
    record: Script,
}

impl std::fmt::Debug for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The backend URL may hold a password: never printed.
        f.debug_struct("Seen")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Seen {
    /// The sets of `config`'s group in the key space `space`, each kept `ttl` after it was
    /// last recorded into; connects lazily.
    pub fn new(
        config: &Coordination,
        space: &str,
        ttl: Duration,
    ) -> Result<Self, CoordinationError> {
        let client = hb_bus::redis_client_from_url(&config.backend_url)
            .map_err(CoordinationError::Backend)?;
        Ok(Self {
            conn: Lazy::new(client, BUDGET),
            prefix: format!("hb:{space}:{}:", config.group),
            ttl: ttl.max(Duration::from_millis(1)),
            lookup: Script::new(LOOKUP),
            record: Script::new(RECORD),
        })
    }

    /// For each `(key, number)`: the key's largest number and whether `number` is in it, in
    /// one round trip.
    pub async fn lookup(&self, asked: &[(String, u64)]) -> Result<Vec<Lookup>, CoordinationError> {
        if asked.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = self.lookup.prepare_invoke();
        for (key, n) in asked {
            invocation.key(format!("{}{key}", self.prefix)).arg(*n);
        }
        let mut conn = self.conn.get().await.map_err(backend)?;
        let answer: Result<Vec<i64>, RedisError> = invocation.invoke_async(&mut conn).await;
        if answer.is_err() {
            self.conn.reset().await;
        }
        let answer = answer.map_err(backend)?;
        if answer.len() != 2 * asked.len() {
            return Err(CoordinationError::Backend(format!(
                "lookup answered {} values for {} keys",
                answer.len(),
                asked.len()
            )));
        }
        Ok(answer
            .chunks(2)
            .map(|pair| Lookup {
                largest: u64::try_from(pair[0]).ok(),
                recorded: pair[1] == 1,
            })
            .collect())
    }

    /// Records each `(key, number)`, keeping per key only the numbers at most `window` below
    /// its largest, in one round trip.
    pub async fn record(
        &self,
        numbers: &[(String, u64)],
        window: u64,
    ) -> Result<(), CoordinationError> {
        if numbers.is_empty() {
            return Ok(());
        }
        let mut invocation = self.record.prepare_invoke();
        invocation.arg(self.ttl.as_millis() as u64).arg(window);
        for (key, n) in numbers {
            invocation.key(format!("{}{key}", self.prefix)).arg(*n);
        }
        let mut conn = self.conn.get().await.map_err(backend)?;
        let done: Result<i64, RedisError> = invocation.invoke_async(&mut conn).await;
        if done.is_err() {
            self.conn.reset().await;
        }
        done.map(drop).map_err(backend)
    }
}

fn backend(error: RedisError) -> CoordinationError {
    CoordinationError::Backend(error.to_string())
}
