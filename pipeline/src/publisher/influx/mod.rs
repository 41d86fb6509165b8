//! InfluxDB publisher pieces: the URL ([`InfluxSpec`]), the line-protocol encoder
//! ([`line`](mod@line) for samples, [`line::events`] for events: measurement `events`), the
//! HTTP writer ([`client`]) and the [`InfluxPublisher`] that joins them; batching and retries
//! are the caller's.
//!
//! | URL | API |
//! |---|---|
//! | `influxdb://HOST[:PORT][/PREFIX]?db=hb` | v1 `POST /write?db=&rp=&precision=` over http |
//! | `influxdb+https://...` | the same over https |
//! | `influxdb2://HOST[:PORT][/PREFIX]?org=&bucket=` | v2 `POST /api/v2/write?org=&bucket=&precision=` |
//! | `influxdb2+https://...` | the same over https |
//!
//! `PORT` defaults to 8086; `/PREFIX` is for servers behind a reverse proxy.
//!
//! Options of both APIs: `precision=ns|us|ms|s` (default `ns`), `tags=KEY,KEY` (resource
//! metadata keys written as extra tags, see [`line`](mod@line); comma-separated and trimmed, so
//! a key with a comma or edge spaces cannot be listed), `timeout_ms=N` (whole request, default
//! 10000), `gzip=true|false` (compress request bodies, default `true`),
//! `backslash=literal|escape` (default `literal`; see [`line::Backslash`]).
//! v1 only: `db=NAME` (required), `rp=NAME` (default: the database's default retention
//! policy), `user=NAME` with `password_env=VAR` (HTTP basic auth; the password is read from the
//! environment variable `VAR` when the writer is built).
//! v2 only: `org=NAME` and `bucket=NAME` (required), `token_env=VAR` (default `INFLUX_TOKEN`;
//! sent as `Authorization: Token <value>`; `token_env=` with no value sends no token, for
//! servers without authentication such as VictoriaMetrics).
//!
//! Secrets never appear in a URL, a [`describe`](InfluxSpec::describe) or an error: only the
//! names of the variables that hold them.

pub mod client;
pub mod line;
mod publisher;

use std::time::Duration;

pub use client::{InfluxError, InfluxSetupError, InfluxWriter, Rejected, Written};
pub use line::events::{EVENTS_MEASUREMENT, TRAIT_PREFIX};
pub use line::{Backslash, Encoded, Encoder, Precision, RefuseReason, Refused};
pub use publisher::InfluxPublisher;

use super::PublisherUrlError;

const V1_OPTIONS: &str = "db, rp, precision, tags, timeout_ms, gzip, backslash, user, password_env, \
                          tls_ca, tls_cert, tls_key, tls_insecure";
const V2_OPTIONS: &str = "org, bucket, token_env, precision, tags, timeout_ms, gzip, backslash, \
                          tls_ca, tls_cert, tls_key, tls_insecure";
const DEFAULT_PORT: u16 = 8086;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of `token_env` for `influxdb2://`.
pub const DEFAULT_TOKEN_ENV: &str = "INFLUX_TOKEN";

/// Which write API, with its own options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InfluxApi {
    /// InfluxDB 1.x `POST /write`.
    V1 {
        /// Database (`db=`).
        db: String,
        /// Retention policy (`rp=`); `None` = the database's default.
        rp: Option<String>,
        /// Basic-auth user name (`user=`).
        user: Option<String>,
        /// Environment variable holding the password (`password_env=`); set iff `user` is.
        password_env: Option<String>,
    },
    /// InfluxDB 2.x `POST /api/v2/write` (also VictoriaMetrics).
    V2 {
        /// Organization (`org=`).
        org: String,
        /// Bucket (`bucket=`).
        bucket: String,
        /// Environment variable holding the API token (`token_env=`); `None` = send no token.
        token_env: Option<String>,
    },
}

/// A validated `influxdb://`, `influxdb+https://`, `influxdb2://` or `influxdb2+https://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfluxSpec {
    /// The scheme as written (one of the four above).
    pub scheme: &'static str,
    /// v1 or v2, with the API's options.
    pub api: InfluxApi,
    /// `http://HOST:PORT` or `https://HOST:PORT`, then the path prefix if any (no trailing `/`).
    pub base_url: String,
    /// Timestamp precision of the lines and of the request.
    pub precision: Precision,
    /// Resource metadata keys written as extra tags (validated: no duplicates, no reserved names).
    pub tags: Vec<String>,
    /// Time limit of one HTTP request.
    pub timeout: Duration,
    /// Whether request bodies are gzip-compressed.
    pub gzip: bool,
    /// How backslashes in names and tags are written.
    pub backslash: Backslash,
    /// `tls_ca`, `tls_cert`, `tls_key`, `tls_insecure` (the `+https` schemes only; see
    /// [`hb_bus::tls`]).
    pub tls: hb_bus::Tls,
}

impl InfluxSpec {
    /// Parses `target` (`HOST[:PORT][/PREFIX]`) and the options of an InfluxDB publisher URL.
    pub fn parse(
        scheme: &str,
        target: &str,
        options: Vec<(String, String)>,
    ) -> Result<Self, PublisherUrlError> {
        let (scheme, v2, tls): (&'static str, bool, bool) = match scheme {
            "influxdb" => ("influxdb", false, false),
            "influxdb+https" => ("influxdb+https", false, true),
            "influxdb2" => ("influxdb2", true, false),
            "influxdb2+https" => ("influxdb2+https", true, true),
            other => {
                return Err(PublisherUrlError::Invalid(format!(
                    "`{other}` is not an InfluxDB scheme (valid: influxdb, influxdb+https, \
                     influxdb2, influxdb2+https)"
                )));
            }
        };
        let base_url = base_url(scheme, target, tls)?;
        let mut precision = Precision::Ns;
        let mut tags = Vec::new();
        let mut timeout = DEFAULT_TIMEOUT;
        let mut gzip = true;
        let mut backslash = Backslash::Literal;
        let (mut db, mut rp, mut user, mut password_env) = (None, None, None, None);
        let (mut org, mut bucket, mut token_env) = (None, None, Some(DEFAULT_TOKEN_ENV.to_owned()));
        let mut tls_pairs = Vec::new();
        for (option, value) in options {
            match (option.as_str(), v2) {
                ("tls_ca" | "tls_cert" | "tls_key" | "tls_insecure", _) => {
                    tls_pairs.push((option, value));
                }
                ("precision", _) => {
                    precision =
                        Precision::parse(&value).ok_or(PublisherUrlError::InvalidOption {
                            option: "precision",
                            value,
                            reason: "expected ns, us, ms or s",
                        })?;
                }
                ("tags", _) => tags = parse_tags(&value)?,
                ("timeout_ms", _) => {
                    let ms = value.parse::<u64>().ok().filter(|ms| *ms > 0).ok_or(
                        PublisherUrlError::InvalidOption {
                            option: "timeout_ms",
                            value,
                            reason: "expected a whole number of milliseconds > 0",
                        },
                    )?;
                    timeout = Duration::from_millis(ms);
                }
                ("gzip", _) => {
                    gzip = match value.as_str() {
                        "true" => true,
                        "false" => false,
                        _ => {
                            return Err(PublisherUrlError::InvalidOption {
                                option: "gzip",
                                value,
                                reason: "expected true or false",
                            });
                        }
                    };
                }
                ("backslash", _) => {
                    backslash = match value.as_str() {
                        "literal" => Backslash::Literal,
                        "escape" => Backslash::Escape,
                        _ => {
                            return Err(PublisherUrlError::InvalidOption {
                                option: "backslash",
                                value,
                                reason: "expected literal or escape",
                            });
                        }
                    };
                }
                ("db", false) => db = Some(name("db", value)?),
                ("rp", false) => rp = Some(value).filter(|v| !v.is_empty()),
                ("user", false) => user = Some(name("user", value)?),
                ("password_env", false) => password_env = Some(name("password_env", value)?),
                ("org", true) => org = Some(name("org", value)?),
                ("bucket", true) => bucket = Some(name("bucket", value)?),
                ("token_env", true) => token_env = Some(value).filter(|v| !v.is_empty()),
                _ => {
                    let valid = if v2 { V2_OPTIONS } else { V1_OPTIONS };
                    return Err(PublisherUrlError::UnknownOption {
                        scheme,
                        option,
                        valid,
                    });
                }
            }
        }
        let api = if v2 {
            let (Some(org), Some(bucket)) = (org, bucket) else {
                return Err(PublisherUrlError::Invalid(format!(
                    "{scheme}:// needs org= and bucket= ({scheme}://127.0.0.1:8086?org=ORG&\
                     bucket=BUCKET)"
                )));
            };
            InfluxApi::V2 {
                org,
                bucket,
                token_env,
            }
        } else {
            let Some(db) = db else {
                return Err(PublisherUrlError::Invalid(format!(
                    "{scheme}:// needs db= ({scheme}://127.0.0.1:8086?db=hb)"
                )));
            };
            if user.is_some() != password_env.is_some() {
                let msg = "user= and password_env= go together (password_env names the \
                           environment variable that holds the password)";
                return Err(PublisherUrlError::Invalid(msg.to_owned()));
            }
            InfluxApi::V1 {
                db,
                rp,
                user,
                password_env,
            }
        };
        let tls_given = !tls_pairs.is_empty();
        let tls_options = hb_bus::Tls::take(&mut tls_pairs)
            .map_err(|e| PublisherUrlError::Invalid(format!("{scheme}:// option {e}")))?;
        if tls_given && !tls {
            return Err(PublisherUrlError::Invalid(format!(
                "{scheme}:// takes no tls_ca, tls_cert, tls_key or tls_insecure: they are for \
                 https (use {scheme}+https://)"
            )));
        }
        Ok(Self {
            scheme,
            api,
            base_url,
            precision,
            tags,
            timeout,
            gzip,
            backslash,
            tls: tls_options,
        })
    }

    /// The URL the writer posts to (no secrets: credentials travel in a header).
    pub fn write_url(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        let path = match &self.api {
            InfluxApi::V1 { db, rp, .. } => {
                query.append_pair("db", db);
                if let Some(rp) = rp {
                    query.append_pair("rp", rp);
                }
                query.append_pair("precision", self.precision.v1());
                "/write"
            }
            InfluxApi::V2 { org, bucket, .. } => {
                query.append_pair("org", org);
                query.append_pair("bucket", bucket);
                query.append_pair("precision", self.precision.as_str());
                "/api/v2/write"
            }
        };
        format!("{}{path}?{}", self.base_url, query.finish())
    }

    /// The encoder for this URL's `tags`, `precision` and `backslash`.
    pub fn encoder(&self) -> Encoder {
        Encoder::new(&self.tags, self.precision, self.backslash)
    }

    /// A short description for logs: the URL with its options, secrets' variable names only.
    pub fn describe(&self) -> String {
        let host = self
            .base_url
            .split_once("://")
            .map_or(self.base_url.as_str(), |(_, rest)| rest);
        let mut query = form_urlencoded::Serializer::new(String::new());
        match &self.api {
            InfluxApi::V1 {
                db,
                rp,
                user,
                password_env,
            } => {
                query.append_pair("db", db);
                if let Some(rp) = rp {
                    query.append_pair("rp", rp);
                }
                if let (Some(user), Some(var)) = (user, password_env) {
                    query.append_pair("user", user);
                    query.append_pair("password_env", var);
                }
            }
            InfluxApi::V2 {
                org,
                bucket,
                token_env,
            } => {
                query.append_pair("org", org);
                query.append_pair("bucket", bucket);
                query.append_pair("token_env", token_env.as_deref().unwrap_or(""));
            }
        }
        query.append_pair("precision", self.precision.as_str());
        if !self.tags.is_empty() {
            query.append_pair("tags", &self.tags.join(","));
        }
        let tls = self.tls.query();
        let sep = if tls.is_empty() { "" } else { "&" };
        format!("{}://{host}?{}{sep}{tls}", self.scheme, query.finish())
    }
}

/// `http(s)://HOST:PORT[/PREFIX]` from the URL's target.
fn base_url(scheme: &str, target: &str, tls: bool) -> Result<String, PublisherUrlError> {
    let example = format!("{scheme}://127.0.0.1:8086");
    if target.is_empty() {
        return Err(PublisherUrlError::Invalid(format!(
            "{scheme}:// needs a host ({example})"
        )));
    }
    let http = if tls { "https" } else { "http" };
    let shown = hb_bus::secret_url::redact(&format!("{scheme}://{target}"));
    let invalid = |why: String| PublisherUrlError::Invalid(format!("{shown}: {why}"));
    let url = reqwest::Url::parse(&format!("{http}://{target}")).map_err(|e| {
        invalid(format!(
            "{e} (expected HOST[:PORT][/PREFIX], e.g. {example})"
        ))
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "credentials in the URL are not accepted (use user= and password_env=, or \
             token_env=)"
                .to_owned(),
        ));
    }
    if url.fragment().is_some() {
        return Err(invalid("a fragment (#...) is not accepted".to_owned()));
    }
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        return Err(invalid(format!("no host (expected e.g. {example})")));
    };
    let port = url.port().unwrap_or(DEFAULT_PORT);
    let prefix = url.path().trim_end_matches('/');
    Ok(format!("{http}://{host}:{port}{prefix}"))
}

/// Tag names the encoder always writes (or derives) itself, and InfluxDB's reserved keys.
const RESERVED_TAGS: [&str; 6] = [
    "resource_id",
    "project_id",
    "user_id",
    "host",
    "value",
    "time",
];

fn parse_tags(value: &str) -> Result<Vec<String>, PublisherUrlError> {
    let mut tags: Vec<String> = Vec::new();
    if value.is_empty() {
        return Ok(tags);
    }
    for key in value.split(',').map(str::trim) {
        let invalid = |reason| PublisherUrlError::InvalidOption {
            option: "tags",
            value: value.to_owned(),
            reason,
        };
        if key.is_empty() {
            return Err(invalid(
                "expected metadata keys separated by commas, none empty",
            ));
        }
        if RESERVED_TAGS.contains(&key) {
            return Err(invalid(
                "resource_id, project_id, user_id and host are always written; value and \
                 time are reserved by InfluxDB",
            ));
        }
        if tags.iter().any(|t| t == key) {
            return Err(invalid("a metadata key is listed twice"));
        }
        tags.push(key.to_owned());
    }
    Ok(tags)
}

fn name(option: &'static str, value: String) -> Result<String, PublisherUrlError> {
    if value.is_empty() {
        return Err(PublisherUrlError::InvalidOption {
            option,
            value,
            reason: "must not be empty",
        });
    }
    Ok(value)
}

#[cfg(test)]
#[path = "spec_tests.rs"]
mod tests;
