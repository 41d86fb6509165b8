//! The `transport` URL: which bus, where, and its options (all as query parameters).
//!
//! | URL | bus |
//! |---|---|
//! | `memory://` | none: the agent runs the pipeline in its own process |
//! | `rabbit://user:pass@host:port/vhost?...` (`amqp://`, `amqps://`) | RabbitMQ |
//! | `kafka://host:port[,host:port]?...` | Kafka |
//! | `redis://host:port/db?...` (`rediss://`) | Redis Streams |

use std::fmt;
use std::time::Duration;

use crate::options::Options;
use crate::secret_url::{SecretUrl, redact};
use crate::tls::{Tls, TlsError};

/// Schemes this build understands, for error messages.
pub const AVAILABLE: &str =
    "memory://, rabbit://, amqp://, amqps://, kafka://, redis://, rediss://";

/// Entries a Redis stream holds at most (`maxlen`): 100,000 envelopes of 100 samples are
/// about 3 GB of Redis memory. Acknowledged entries are deleted, so this bounds the backlog.
pub const DEFAULT_MAXLEN: usize = 100_000;

/// Samples per envelope when `batch` is not given.
pub const DEFAULT_BATCH: usize = 100;

/// A parsed transport URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// `memory://`: the agent runs the pipeline in its own process (the embedded default).
    Memory,
    /// RabbitMQ.
    Rabbit(RabbitSpec),
    /// Kafka.
    Kafka(KafkaSpec),
    /// Redis Streams.
    Redis(RedisSpec),
}

/// Options every bus transport takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Common {
    /// Prefix of queue, topic or stream names (`<prefix>samples`, `<prefix>heartbeats`,
    /// `<prefix>dead`, and the RabbitMQ queue `<prefix>notifications`; the services' own
    /// notification topics and streams keep their names).
    pub prefix: String,
    /// Samples per envelope, agent side.
    pub batch: usize,
    /// Messages a collector holds unacknowledged at most.
    pub prefetch: usize,
    /// Partitions of the samples (see [`crate::partition`]): every agent and collector of a
    /// bus must use the same number.
    pub partitions: u32,
    /// Longest message a collector reads (`max_message_bytes`, default 16 MiB); a longer one is
    /// dead-lettered unread.
    pub max_message_bytes: usize,
    /// Most samples in one envelope a collector takes (`max_samples_per_envelope`, default
    /// 100,000); an envelope with more is dead-lettered.
    pub max_samples_per_envelope: usize,
    /// Bytes of messages a collector holds unacknowledged at most (`prefetch_bytes`, default
    /// 64 MiB), besides at most `prefetch` messages: it stops receiving while they exceed it.
    pub prefetch_bytes: usize,
    /// Signed envelopes sent longer ago than this are refused as replays (`max_age_s`,
    /// default 7 days: longer than an agent's spool is expected to wait for a broker).
    pub max_age: Duration,
}

/// `rabbit://` (`amqp://`, `amqps://`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RabbitSpec {
    /// The AMQP URI lapin connects to (`amqp://` or `amqps://`), without hb's options.
    pub uri: SecretUrl,
    /// The topic exchange envelopes are published to.
    pub exchange: String,
    /// `tls_ca`, `tls_cert`, `tls_key` (`amqps://` only).
    pub tls: Tls,
    /// Shared options.
    pub common: Common,
    shown: String,
}

/// `kafka://`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSpec {
    /// `host:port[,host:port]`.
    pub brokers: String,
    /// Consumer group of the collectors.
    pub group: String,
    /// Replication factor of the topics hb creates.
    pub replication: i32,
    /// Producer linger (batching delay).
    pub linger: Duration,
    /// Producer compression codec.
    pub compression: String,
    /// Consumer group session timeout.
    pub session_timeout: Duration,
    /// TLS (`security.protocol=ssl`, or `sasl_ssl` with SASL).
    pub tls: bool,
    /// `tls_ca`, `tls_cert`, `tls_key`, `tls_insecure` (with `tls=true` only).
    pub tls_options: Tls,
    /// SASL authentication (`sasl_mechanism`, `sasl_username`, `sasl_password_env`).
    pub sasl: Option<Sasl>,
    /// How long a send (or topic creation) may wait for the broker before it counts as
    /// not confirmed.
    pub timeout: Duration,
    /// Shared options.
    pub common: Common,
    shown: String,
}

/// `redis://` (`rediss://`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSpec {
    /// The URL the redis crate connects to, without hb's options.
    pub url: SecretUrl,
    /// Most entries a stream holds: an agent's `XADD` is refused past it (it spools);
    /// collectors delete what every group acknowledged. The dead-letter stream keeps its
    /// newest `maxlen` (`XADD MAXLEN ~`).
    pub maxlen: usize,
    /// Consumer group of the collectors.
    pub group: String,
    /// This collector's consumer name; `None` = host name and process id.
    pub consumer: Option<String>,
    /// How long a read waits for new entries before it returns none (`block_ms`).
    pub block: Duration,
    /// Messages pending this long on another consumer are claimed (`XAUTOCLAIM`).
    pub claim_idle: Duration,
    /// Time to live of a partition lease: a collector that dies gives its partitions up
    /// this long after its last renewal.
    pub lease: Duration,
    /// `tls_ca`, `tls_cert`, `tls_key`, `tls_insecure` (`rediss://` only).
    pub tls: Tls,
    /// Shared options.
    pub common: Common,
    shown: String,
}

/// SASL authentication of a Kafka client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sasl {
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512` (librdkafka's `sasl.mechanism`).
    pub mechanism: String,
    /// `sasl.username`.
    pub username: String,
    /// The environment variable holding the password (read when a client is built; a
    /// password is never in the URL, which kafka:// refuses credentials in).
    pub password_env: String,
}

/// SASL mechanisms a kafka:// URL may name.
pub const SASL_MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

impl Sasl {
    /// The password, from the environment variable `password_env`.
    pub fn password(&self) -> Result<String, String> {
        match std::env::var(&self.password_env) {
            Ok(p) if !p.is_empty() => Ok(p),
            Ok(_) => Err(format!(
                "sasl_password_env: the environment variable {} is empty",
                self.password_env
            )),
            Err(_) => Err(format!(
                "sasl_password_env: the environment variable {} is not set",
                self.password_env
            )),
        }
    }
}

/// Why a transport URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// No `scheme://` (the text is shown with any password redacted).
    #[error("`{0}` is not a transport URL (expected scheme://..., available: {AVAILABLE})")]
    NotAUrl(String),
    /// A scheme this build does not serve.
    #[error("unsupported transport scheme `{scheme}` (available: {AVAILABLE})")]
    Unsupported {
        /// The scheme as written.
        scheme: String,
    },
    /// `memory://` takes nothing after the scheme.
    #[error("memory:// takes no host, path or options (got `{0}`)")]
    MemoryWithOptions(String),
    /// A query parameter the transport does not take.
    #[error("unknown option `{option}` for {scheme}:// (valid: {valid})")]
    UnknownOption {
        /// The transport's scheme.
        scheme: &'static str,
        /// The option as written.
        option: String,
        /// The options it takes.
        valid: &'static str,
    },
    /// The same option twice.
    #[error("option `{0}` given twice")]
    DuplicateOption(String),
    /// An option whose value does not parse or is out of range.
    #[error("invalid {scheme}:// option {option}=`{value}`: {reason}")]
    InvalidOption {
        /// The transport's scheme.
        scheme: &'static str,
        /// The option.
        option: String,
        /// Its value as written.
        value: String,
        /// What a valid value looks like.
        reason: String,
    },
    /// A TLS option refused: a file missing, unreadable or without PEM, or an option the
    /// scheme does not take.
    #[error("invalid {scheme}:// option {error}")]
    Tls {
        /// The transport's scheme.
        scheme: &'static str,
        /// The option and what is wrong with it.
        error: TlsError,
    },
    /// Host, port or path refused.
    #[error("invalid {scheme}:// address: {reason}")]
    Address {
        /// The transport's scheme.
        scheme: &'static str,
        /// What is wrong.
        reason: String,
    },
}

const RABBIT_OPTIONS: &str = "exchange, prefix, batch, prefetch, partitions, max_message_bytes, \
                              max_samples_per_envelope, prefetch_bytes, max_age_s, tls_ca, \
                              tls_cert, tls_key, tls_insecure";
const KAFKA_OPTIONS: &str = "prefix, batch, prefetch, group, partitions, replication, linger_ms, \
                             compression, session_timeout_ms, timeout_ms, tls, max_message_bytes, \
                             max_samples_per_envelope, prefetch_bytes, max_age_s, tls_ca, \
                             tls_cert, tls_key, tls_insecure, sasl_mechanism, sasl_username, \
                             sasl_password_env";
const REDIS_OPTIONS: &str = "prefix, batch, prefetch, partitions, maxlen, group, consumer, block_ms, \
                             claim_idle_ms, lease_ms, max_message_bytes, max_samples_per_envelope, \
                             prefetch_bytes, max_age_s, tls_ca, tls_cert, tls_key, tls_insecure";
const COMPRESSIONS: &[&str] = &["none", "gzip", "snappy", "lz4"];

impl Transport {
    /// Parses a transport URL and all of its options.
    pub fn parse(url: &str) -> Result<Self, TransportError> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(TransportError::NotAUrl(shorten(&redact(url))));
        };
        let (address, query) = rest.split_once('?').unwrap_or((rest, ""));
        match scheme {
            "memory" if rest.is_empty() => Ok(Self::Memory),
            "memory" => Err(TransportError::MemoryWithOptions(url.to_owned())),
            "rabbit" | "amqp" | "amqps" => rabbit(scheme, address, query).map(Self::Rabbit),
            "kafka" => kafka(address, query).map(Self::Kafka),
            "redis" | "rediss" => redis(scheme, address, query).map(Self::Redis),
            _ => Err(TransportError::Unsupported {
                scheme: scheme.to_owned(),
            }),
        }
    }

    /// The options shared by bus transports; `None` for `memory://`.
    pub fn common(&self) -> Option<&Common> {
        match self {
            Self::Memory => None,
            Self::Rabbit(s) => Some(&s.common),
            Self::Kafka(s) => Some(&s.common),
            Self::Redis(s) => Some(&s.common),
        }
    }

    /// The transport's name (`memory`, `rabbit`, `kafka`, `redis`), for labels and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Rabbit(_) => "rabbit",
            Self::Kafka(_) => "kafka",
            Self::Redis(_) => "redis",
        }
    }
}

/// Shows the URL with any password replaced by `***`.
impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory => f.write_str("memory://"),
            Self::Rabbit(s) => f.write_str(&s.shown),
            Self::Kafka(s) => f.write_str(&s.shown),
            Self::Redis(s) => f.write_str(&s.shown),
        }
    }
}

/// The URL as written, any password replaced by `***`.
macro_rules! shown {
    ($($spec:ty),*) => {$(
        impl fmt::Display for $spec {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.shown)
            }
        }
    )*};
}
shown!(RabbitSpec, KafkaSpec, RedisSpec);

fn common(o: &mut Options, prefix: &str, prefetch: usize) -> Result<Common, TransportError> {
    Ok(Common {
        prefix: o.string("prefix", prefix)?,
        batch: o.number("batch", DEFAULT_BATCH, 1, 10_000)?,
        prefetch: o.number("prefetch", prefetch, 1, 65_535)?,
        partitions: o.number("partitions", crate::partition::DEFAULT_PARTITIONS, 1, 1024)?,
        max_message_bytes: o.number("max_message_bytes", 16 << 20, 1024, 1 << 30)?,
        max_samples_per_envelope: o.number("max_samples_per_envelope", 100_000, 1, 10_000_000)?,
        prefetch_bytes: o.number("prefetch_bytes", 64 << 20, 1 << 20, 1 << 32)?,
        max_age: Duration::from_secs(o.number("max_age_s", 7 * 86_400, 60, 365 * 86_400)?),
    })
}

/// The TLS options of `o`; `tls` says whether the connection is TLS at all (`needs` says how
/// to make it so, for the message when options are given without it).
fn tls(
    o: &mut Options,
    scheme: &'static str,
    tls: bool,
    needs: &str,
) -> Result<Tls, TransportError> {
    let (ca, cert, key, insecure) = (
        o.text("tls_ca"),
        o.text("tls_cert"),
        o.text("tls_key"),
        o.text("tls_insecure"),
    );
    let options = Tls::load(
        ca.as_deref(),
        cert.as_deref(),
        key.as_deref(),
        insecure.as_deref(),
    )
    .map_err(|error| TransportError::Tls { scheme, error })?;
    if !tls && !options.is_default() {
        let option = [("tls_ca", &ca), ("tls_cert", &cert), ("tls_key", &key)]
            .into_iter()
            .find(|(_, v)| v.is_some())
            .map_or("tls_insecure", |(name, _)| name);
        let error = TlsError {
            option,
            reason: format!("is for TLS connections: {needs}"),
        };
        return Err(TransportError::Tls { scheme, error });
    }
    Ok(options)
}

/// Parses `user:pass@host:port/path` with the `url` crate, for validation and redaction.
fn address(scheme: &'static str, address: &str) -> Result<(url::Url, SecretUrl), TransportError> {
    let bad = |reason: String| TransportError::Address { scheme, reason };
    let parsed =
        url::Url::parse(&format!("{scheme}://{address}")).map_err(|e| bad(e.to_string()))?;
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("a host is needed".to_owned()));
    }
    let secret = SecretUrl::new(parsed.to_string());
    Ok((parsed, secret))
}

fn rabbit(scheme: &str, addr: &str, query: &str) -> Result<RabbitSpec, TransportError> {
    let scheme: &'static str = if scheme == "amqps" { "amqps" } else { "amqp" };
    let (_, uri) = address(scheme, addr)?;
    let mut o = Options::parse("rabbit", query, RABBIT_OPTIONS)?;
    let exchange = o.string("exchange", "hb")?;
    let tls = tls(&mut o, "rabbit", scheme == "amqps", "use amqps://")?;
    if tls.insecure {
        // lapin's TLS configuration has no way to turn verification off.
        let error = TlsError {
            option: "tls_insecure",
            reason: "is not supported by the AMQP client: trust the server's CA with \
                     tls_ca=PATH instead"
                .to_owned(),
        };
        return Err(TransportError::Tls {
            scheme: "rabbit",
            error,
        });
    }
    let common = common(&mut o, "hb.", 100)?;
    Ok(RabbitSpec {
        shown: with_query(uri.to_string(), query),
        uri,
        exchange,
        tls,
        common,
    })
}

fn kafka(addr: &str, query: &str) -> Result<KafkaSpec, TransportError> {
    let bad = |reason: String| TransportError::Address {
        scheme: "kafka",
        reason,
    };
    let addr = addr.trim_end_matches('/');
    if addr.is_empty() {
        return Err(bad("at least one host:port is needed".to_owned()));
    }
    if addr.contains('@') {
        let reason = format!(
            "`{}` carries credentials, which kafka:// does not take in the address",
            shorten(&redact(&format!("kafka://{addr}")))
        );
        return Err(bad(reason));
    }
    for broker in addr.split(',') {
        let ok = broker
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
        if !ok {
            return Err(bad(format!("`{broker}` is not host:port")));
        }
    }
    let mut o = Options::parse("kafka", query, KAFKA_OPTIONS)?;
    let group = o.string("group", "hb-collector")?;
    let replication = o.number("replication", 1, 1, 100)?;
    let linger = Duration::from_millis(o.number("linger_ms", 5, 0, 60_000)?);
    let compression = o.string("compression", "lz4")?;
    if !COMPRESSIONS.contains(&compression.as_str()) {
        let reason = format!("expected one of {}", COMPRESSIONS.join(", "));
        return Err(o.invalid("compression", compression, &reason));
    }
    let session_timeout =
        Duration::from_millis(o.number("session_timeout_ms", 45_000, 1_000, 3_600_000)?);
    let tls = o.flag("tls", false)?;
    let tls_options = self::tls(&mut o, "kafka", tls, "add tls=true")?;
    let sasl = sasl(&mut o)?;
    let timeout = Duration::from_millis(o.number("timeout_ms", 10_000, 1_000, 600_000)?);
    let common = common(&mut o, "hb.", 1000)?;
    Ok(KafkaSpec {
        brokers: addr.to_owned(),
        group,
        replication,
        linger,
        compression,
        session_timeout,
        tls,
        tls_options,
        sasl,
        timeout,
        common,
        shown: with_query(format!("kafka://{addr}"), query),
    })
}

fn redis(scheme: &str, addr: &str, query: &str) -> Result<RedisSpec, TransportError> {
    let scheme: &'static str = if scheme == "rediss" {
        "rediss"
    } else {
        "redis"
    };
    let (url, secret) = address(scheme, addr)?;
    let db = url.path().trim_start_matches('/');
    if !db.is_empty() && db.parse::<u32>().is_err() {
        return Err(TransportError::Address {
            scheme,
            reason: format!("the path must be a database number (got `/{db}`)"),
        });
    }
    let mut o = Options::parse("redis", query, REDIS_OPTIONS)?;
    let maxlen = o.number("maxlen", DEFAULT_MAXLEN, 1, usize::MAX)?;
    let group = o.string("group", "hb-collector")?;
    let consumer = o.text("consumer");
    if consumer.as_deref() == Some("") {
        return Err(o.invalid("consumer", String::new(), "must not be empty"));
    }
    let block = Duration::from_millis(o.number("block_ms", 1000, 1, 60_000)?);
    let claim_idle = Duration::from_millis(o.number("claim_idle_ms", 30_000, 100, 86_400_000)?);
    let lease = Duration::from_millis(o.number("lease_ms", 5_000, 300, 600_000)?);
    let tls = tls(&mut o, "redis", scheme == "rediss", "use rediss://")?;
    let common = common(&mut o, "hb:", 100)?;
    Ok(RedisSpec {
        shown: with_query(secret.to_string(), query),
        url: secret,
        maxlen,
        group,
        consumer,
        block,
        claim_idle,
        lease,
        tls,
        common,
    })
}

fn sasl(o: &mut Options) -> Result<Option<Sasl>, TransportError> {
    let mechanism = o.text("sasl_mechanism");
    let username = o.text("sasl_username");
    let password_env = o.text("sasl_password_env");
    let (mechanism, username, password_env) = match (mechanism, username, password_env) {
        (None, None, None) => return Ok(None),
        (Some(m), Some(u), Some(p)) => (m, u, p),
        (m, u, p) => {
            let missing: Vec<&str> = [
                ("sasl_mechanism", m.is_none()),
                ("sasl_username", u.is_none()),
                ("sasl_password_env", p.is_none()),
            ]
            .into_iter()
            .filter_map(|(name, missing)| missing.then_some(name))
            .collect();
            let given = [
                ("sasl_mechanism", m),
                ("sasl_username", u),
                ("sasl_password_env", p),
            ]
            .into_iter()
            .find_map(|(name, v)| v.map(|v| (name, v)));
            let (name, value) = given.unwrap_or(("sasl_mechanism", String::new()));
            let reason = format!("SASL also needs {}", missing.join(" and "));
            return Err(o.invalid(name, value, &reason));
        }
    };
    if !SASL_MECHANISMS.contains(&mechanism.as_str()) {
        let reason = format!("expected one of {}", SASL_MECHANISMS.join(", "));
        return Err(o.invalid("sasl_mechanism", mechanism, &reason));
    }
    if username.is_empty() {
        return Err(o.invalid("sasl_username", username, "must not be empty"));
    }
    if password_env.is_empty() {
        return Err(o.invalid(
            "sasl_password_env",
            password_env,
            "must name the environment variable that holds the password",
        ));
    }
    let sasl = Sasl {
        mechanism,
        username,
        password_env,
    };
    if let Err(reason) = sasl.password() {
        let value = sasl.password_env.clone();
        return Err(o.invalid("sasl_password_env", value, &reason));
    }
    Ok(Some(sasl))
}

/// At most 200 characters of a refused value, for the message.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(200) {
        None => text.to_owned(),
        Some((end, _)) => format!("{}… ({} bytes)", &text[..end], text.len()),
    }
}

fn with_query(shown: String, query: &str) -> String {
    if query.is_empty() {
        shown
    } else {
        format!("{shown}?{query}")
    }
}

impl RedisSpec {
    /// The Redis URL with the TLS options as its query: the coordination backend on the bus's
    /// own Redis (see `hb_bus::redis_client_from_url`).
    pub fn backend_url(&self) -> SecretUrl {
        let query = self.tls.query();
        if query.is_empty() {
            self.url.clone()
        } else {
            SecretUrl::new(format!("{}?{query}", self.url.expose()))
        }
    }
}

impl Common {
    /// The queue, topic or stream of `topic` (for [`Topic::Notifications`](crate::Topic), the
    /// RabbitMQ queue).
    pub fn name(&self, topic: crate::Topic) -> String {
        format!("{}{}", self.prefix, topic.suffix())
    }

    /// The RabbitMQ queue or Redis stream of samples partition `partition`:
    /// `<prefix>samples.<partition>`.
    pub fn partition_name(&self, partition: crate::Partition) -> String {
        format!("{}samples.{partition}", self.prefix)
    }
}
