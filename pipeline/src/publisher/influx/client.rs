//! [`InfluxWriter`]: posts line protocol to an InfluxDB write API, once per call, and says
//! which lines the server refused.
//!
//! One [`write`](InfluxWriter::write) is one attempt: the caller owns batching, retries and
//! back-off. Within that attempt the writer still sends more than one request when the answer
//! asks for it, always re-sending whole lines (InfluxDB overwrites a point written twice with
//! the same value, so a line sent again is harmless):
//!
//! - **413** (body larger than the server's limit): the batch is split in halves at a line
//!   boundary and each half is sent, recursively; a single line still too large is rejected.
//! - **400/422 naming refused lines** (a partial write): the lines the server names
//!   (`unable to parse '<line>': <reason>`) are rejected; when the server confirms that the
//!   rest was written (InfluxDB 1.x: `partial write: ... dropped=0`) the call ends, otherwise
//!   the rest is sent again to find out.
//! - **400/422 with a count but no lines** (`partial write: field type conflict: ...
//!   dropped=N`, `points beyond retention policy dropped=N`): if N is the whole batch, every
//!   line is rejected with that reason; otherwise the batch is bisected (halves re-sent until
//!   each refused line is alone) to find which. The bisection is bounded by
//!   [`MAX_ISOLATION_REQUESTS`]; lines still not told apart when it runs out are all reported
//!   rejected with the server's reason, prefixed `not isolated:` (some of them may have been
//!   written; re-sending them is harmless).
//!
//! Status classes: 2xx written; 429, 5xx and transport errors [retryable](InfluxError::Retryable)
//! (with `Retry-After` in seconds when the server sends it), except InfluxDB 1.x's 500 for a
//! missing retention policy, which is permanent; 401/403 [`InfluxError::Unauthorized`]; any
//! other 4xx, and a 400/422 that does not look like a partial write, [`InfluxError::Permanent`].
//!
//! Bodies are gzip-compressed (level 1) unless the URL says `gzip=false`. Note that InfluxDB
//! 1.x applies its `max-body-size` to the compressed body.

#[path = "isolate.rs"]
mod isolate;

use std::borrow::Cow;
use std::io::Write as _;
use std::time::Duration;

use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Certificate, Client, Identity, StatusCode, Url};

use super::{InfluxApi, InfluxSpec};
use crate::error_chain;
use isolate::{Outcome, classify, halves, refused, reject_all, strip_dropped};

/// How many extra requests one [`InfluxWriter::write`] may send to isolate refused lines.
pub const MAX_ISOLATION_REQUESTS: usize = 64;

/// The most of a server's error text kept in an error or a rejection reason.
const MAX_MESSAGE: usize = 1024;

/// What a write call achieved: the lines not listed in `rejected` are stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    /// Lines stored.
    pub written: usize,
    /// HTTP requests sent (1 unless a 413 or a partial write needed more).
    pub requests: usize,
    /// Lines the server refused (they will never be accepted as they are).
    pub rejected: Vec<Rejected>,
}

/// A line the server refused, with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The line, without its newline.
    pub line: String,
    /// The server's reason.
    pub reason: String,
}

/// Why a write call did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InfluxError {
    /// Worth another attempt later: 429, 5xx, timeout, connection refused or cut.
    #[error("{reason}")]
    Retryable {
        /// The server's `Retry-After`, when it sent one in seconds.
        retry_after: Option<Duration>,
        /// What happened, naming the URL.
        reason: String,
    },
    /// 401 or 403: the credentials are missing, wrong, or lack the write permission.
    #[error(
        "{url} refused the credentials ({status}): {message} (check user=/password_env= for \
         influxdb://, token_env= for influxdb2://)"
    )]
    Unauthorized {
        /// The write URL (it never holds a secret).
        url: String,
        /// 401 or 403.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// The request as a whole will never be accepted (unknown database or bucket, ...).
    #[error("{url} refused the write ({status}): {message}")]
    Permanent {
        /// The write URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
}

impl InfluxError {
    /// Whether the same batch may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable { .. })
    }
}

/// Why a writer could not be built (at start-up).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InfluxSetupError {
    /// The environment variable a secret is read from is unset or empty.
    #[error(
        "{publisher}: environment variable `{var}` (named by {option}=) is {state}; set it to \
         the {what}"
    )]
    MissingSecret {
        /// The publisher, described without secrets.
        publisher: String,
        /// The URL option naming the variable (`token_env` or `password_env`).
        option: &'static str,
        /// The variable.
        var: String,
        /// `not set` or `empty`.
        state: &'static str,
        /// `API token` or `password`.
        what: &'static str,
    },
    /// The HTTP client could not be built.
    #[error("{publisher}: cannot build the HTTP client: {reason}")]
    Client {
        /// The publisher, described without secrets.
        publisher: String,
        /// Why.
        reason: String,
    },
}

/// Posts line protocol to one InfluxDB write endpoint.
#[derive(Debug, Clone)]
pub struct InfluxWriter {
    client: Client,
    url: Url,
    headers: HeaderMap,
    gzip: bool,
    describe: String,
}

impl InfluxWriter {
    /// A writer for `spec`, reading secrets from the process environment.
    pub fn new(spec: &InfluxSpec) -> Result<Self, InfluxSetupError> {
        Self::with_env(spec, |var| std::env::var(var).ok())
    }

    /// A writer for `spec`, reading secrets through `env` (the variable's name to its value).
    pub fn with_env(
        spec: &InfluxSpec,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, InfluxSetupError> {
        let describe = spec.describe();
        let secret = |option: &'static str, var: &str, what: &'static str| {
            let missing = |state| InfluxSetupError::MissingSecret {
                publisher: describe.clone(),
                option,
                var: var.to_owned(),
                state,
                what,
            };
            match env(var) {
                None => Err(missing("not set")),
                Some(value) if value.is_empty() => Err(missing("empty")),
                Some(value) => Ok(value),
            }
        };
        let client_error = |reason: String| InfluxSetupError::Client {
            publisher: describe.clone(),
            reason,
        };
        let authorization = match &spec.api {
            InfluxApi::V1 {
                user: Some(user),
                password_env: Some(var),
                ..
            } => {
                let password = secret("password_env", var, "password")?;
                Some(format!(
                    "Basic {}",
                    base64(format!("{user}:{password}").as_bytes())
                ))
            }
            InfluxApi::V1 { .. } => None,
            InfluxApi::V2 {
                token_env: Some(var),
                ..
            } => Some(format!("Token {}", secret("token_env", var, "API token")?)),
            InfluxApi::V2 {
                token_env: None, ..
            } => None,
        };
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        if spec.gzip {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        if let Some(value) = authorization {
            let mut value = HeaderValue::from_str(&value).map_err(|_| {
                client_error("the secret holds characters not allowed in a header".to_owned())
            })?;
            value.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, value);
        }
        let url = Url::parse(&spec.write_url()).map_err(|e| client_error(e.to_string()))?;
        // The process-wide TLS provider; a second install attempt is harmless.
        let _already_installed = rustls::crypto::ring::default_provider().install_default();
        let mut builder = Client::builder()
            .timeout(spec.timeout)
            .connect_timeout(spec.timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("hb/", env!("CARGO_PKG_VERSION")));
        let tls = &spec.tls;
        tls.warn_if_insecure(&format_args!("the influxdb publisher {describe}"));
        if let Some(ca) = &tls.ca {
            let certs = Certificate::from_pem_bundle(&ca.pem).map_err(|e| {
                client_error(format!("tls_ca {}: {}", ca.path.display(), error_chain(&e)))
            })?;
            // Added to the system's roots (the platform verifier), not instead of them.
            builder = builder.tls_certs_merge(certs);
        }
        if let Some(id) = &tls.identity {
            let mut pem = id.cert.pem.clone();
            pem.push(b'\n');
            pem.extend_from_slice(&id.key.pem);
            let identity = Identity::from_pem(&pem).map_err(|e| {
                client_error(format!(
                    "tls_cert {} with tls_key {}: {}",
                    id.cert.path.display(),
                    id.key.path.display(),
                    error_chain(&e)
                ))
            })?;
            builder = builder.identity(identity);
        }
        if tls.insecure {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        let client = builder.build().map_err(|e| client_error(error_chain(&e)))?;
        Ok(Self {
            client,
            url,
            headers,
            gzip: spec.gzip,
            describe,
        })
    }

    /// The publisher URL, without secrets, for logs.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// The write endpoint (no secrets).
    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// Writes `body` (`lines` lines of line protocol, each ending in `\n`): one attempt, with
    /// the extra requests described in the [module docs](self).
    pub async fn write(&self, body: &[u8], lines: usize) -> Result<Written, InfluxError> {
        let mut rejected = Vec::new();
        // Chunks still to send, each with the reason it is ambiguous (bisection) if it is.
        let mut pending: Vec<(Cow<'_, [u8]>, Option<String>)> = vec![(Cow::Borrowed(body), None)];
        let mut isolation_left = MAX_ISOLATION_REQUESTS;
        let mut requests = 0;
        while let Some((chunk, ambiguous)) = pending.pop() {
            if chunk.is_empty() {
                continue;
            }
            if let Some(reason) = &ambiguous {
                if isolation_left == 0 {
                    let reason = format!("not isolated: {}", strip_dropped(reason));
                    reject_all(&chunk, &reason, &mut rejected);
                    continue;
                }
                isolation_left -= 1;
            }
            requests += 1;
            match self.post(&chunk).await? {
                Outcome::Written => {}
                Outcome::TooLarge(reason) => match halves(chunk) {
                    Ok((a, b)) => {
                        // Splitting is not isolation: it keeps the chunk's ambiguity.
                        pending.push((b, ambiguous.clone()));
                        pending.push((a, ambiguous));
                    }
                    Err(line) => reject_all(&line, &reason, &mut rejected),
                },
                Outcome::Refused(refusal) => {
                    refused(chunk, refusal, &mut pending, &mut rejected);
                }
            }
        }
        Ok(Written {
            written: lines.saturating_sub(rejected.len()),
            requests,
            rejected,
        })
    }

    async fn post(&self, chunk: &[u8]) -> Result<Outcome, InfluxError> {
        let body = if self.gzip {
            gzip(chunk)
        } else {
            chunk.to_vec()
        };
        let response = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .body(body)
            .send()
            .await
            .map_err(|e| self.transport(&e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(Outcome::Written);
        }
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = response.bytes().await.map_err(|e| self.transport(&e))?;
        let message = error_message(&text, status);
        classify(status, message, retry_after, self.url.as_str())
    }

    fn transport(&self, e: &reqwest::Error) -> InfluxError {
        let what = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "connection failed"
        } else {
            "request failed"
        };
        InfluxError::Retryable {
            retry_after: None,
            reason: format!("{}: {what}: {}", self.url, error_chain(e)),
        }
    }
}

/// The error text of a response: `error` (v1) or `message` (v2) of a JSON body, else the body.
fn error_message(body: &[u8], status: StatusCode) -> String {
    let parsed: Option<String> = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("error")
                .or_else(|| v.get("message"))
                .and_then(|m| m.as_str().map(str::to_owned))
        });
    let text = parsed.unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned());
    let text = if text.is_empty() {
        status.canonical_reason().unwrap_or("no message").to_owned()
    } else {
        text
    };
    truncate(text)
}

fn truncate(mut text: String) -> String {
    if text.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
    text
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4 + 64),
        flate2::Compression::fast(),
    );
    // Writing to a Vec cannot fail.
    encoder.write_all(body).expect("gzip into memory");
    encoder.finish().expect("gzip into memory")
}

fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for group in input.chunks(3) {
        let b = [
            group[0],
            *group.get(1).unwrap_or(&0),
            *group.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= group.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
