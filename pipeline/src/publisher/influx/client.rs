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

use std::borrow::Cow;
use std::collections::HashSet;
use std::io::Write as _;
use std::time::Duration;

use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Client, StatusCode, Url};

use super::{InfluxApi, InfluxSpec};

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
        let client = Client::builder()
            .timeout(spec.timeout)
            .connect_timeout(spec.timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("hb/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| client_error(error_chain(&e)))?;
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

/// Handles a partial write of `chunk`: rejects what is known, queues what must be re-sent.
fn refused<'b>(
    chunk: Cow<'b, [u8]>,
    refusal: Refusal,
    pending: &mut Vec<(Cow<'b, [u8]>, Option<String>)>,
    rejected: &mut Vec<Rejected>,
) {
    let count = line_count(&chunk);
    let named = refusal.named_lines(&chunk);
    if !named.is_empty() {
        let mut rest = Vec::new();
        for line in lines_of(&chunk) {
            match named.iter().find(|(l, _)| *l == trim_newline(line)) {
                Some((l, reason)) => rejected.push(Rejected {
                    line: String::from_utf8_lossy(l).into_owned(),
                    reason: (*reason).to_owned(),
                }),
                None => rest.extend_from_slice(line),
            }
        }
        // InfluxDB 1.x: `partial write: unable to parse ... dropped=0` = the rest is stored.
        let rest_written = refusal.partial && refusal.dropped == Some(0);
        if !rest.is_empty() && !rest_written {
            pending.push((Cow::Owned(rest), Some(refusal.message)));
        }
    } else if refusal.dropped == Some(count) || count == 1 {
        reject_all(&chunk, strip_dropped(&refusal.message), rejected);
    } else if let Ok((a, b)) = halves(chunk) {
        pending.push((b, Some(refusal.message.clone())));
        pending.push((a, Some(refusal.message)));
    }
}

/// What one request achieved.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Written,
    TooLarge(String),
    Refused(Refusal),
}

/// A 400/422 that refused some (or all) lines.
#[derive(Debug, PartialEq, Eq)]
struct Refusal {
    /// The server's message.
    message: String,
    /// It starts with `partial write`: what it does not count was stored.
    partial: bool,
    /// `dropped=N`, when the message ends with it.
    dropped: Option<usize>,
}

impl Refusal {
    /// Lines of `chunk` named by `unable to parse '<line>': <reason>`, with their reasons.
    fn named_lines<'c>(&self, chunk: &'c [u8]) -> Vec<(&'c [u8], &str)> {
        const MARK: &str = "unable to parse '";
        if !self.message.contains(MARK) {
            return Vec::new();
        }
        let known: HashSet<&[u8]> = lines_of(chunk).map(trim_newline).collect();
        let mut named = Vec::new();
        for part in self.message.split('\n') {
            let Some(at) = part.find(MARK) else { continue };
            let rest = &part[at + MARK.len()..];
            // The line may itself hold `': `: take the first split whose left side is a line.
            for (end, _) in rest.match_indices("': ") {
                if let Some(line) = known.get(&rest.as_bytes()[..end]) {
                    let reason = strip_dropped(&rest[end + 3..]);
                    named.push((*line, reason));
                    break;
                }
            }
        }
        named
    }
}

fn classify(
    status: StatusCode,
    message: String,
    retry_after: Option<Duration>,
    url: &str,
) -> Result<Outcome, InfluxError> {
    let code = status.as_u16();
    match code {
        413 => Ok(Outcome::TooLarge(format!(
            "line larger than the server's maximum request size: {message}"
        ))),
        400 | 422 if looks_partial(&message) || code == 422 => Ok(Outcome::Refused(Refusal {
            partial: message.starts_with("partial write"),
            dropped: dropped(&message),
            message,
        })),
        401 | 403 => Err(InfluxError::Unauthorized {
            url: url.to_owned(),
            status: code,
            message,
        }),
        500 if message.contains("retention policy not found") => Err(InfluxError::Permanent {
            url: url.to_owned(),
            status: code,
            message,
        }),
        429 | 500..=599 => Err(InfluxError::Retryable {
            retry_after,
            reason: format!("{url}: {status}: {message}"),
        }),
        _ => Err(InfluxError::Permanent {
            url: url.to_owned(),
            status: code,
            message,
        }),
    }
}

/// Messages that refuse lines rather than the request.
fn looks_partial(message: &str) -> bool {
    [
        "partial write",
        "unable to parse",
        "field type conflict",
        "dropped=",
        "beyond retention policy",
    ]
    .iter()
    .any(|m| message.contains(m))
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

/// `N` of a message ending in `dropped=N`.
fn dropped(message: &str) -> Option<usize> {
    let at = message.rfind("dropped=")?;
    message[at + "dropped=".len()..].trim().parse().ok()
}

fn strip_dropped(reason: &str) -> &str {
    match reason.rfind(" dropped=") {
        Some(at) if reason[at + 9..].trim().parse::<usize>().is_ok() => &reason[..at],
        _ => reason,
    }
}

fn reject_all(chunk: &[u8], reason: &str, rejected: &mut Vec<Rejected>) {
    for line in lines_of(chunk) {
        rejected.push(Rejected {
            line: String::from_utf8_lossy(trim_newline(line)).into_owned(),
            reason: reason.to_owned(),
        });
    }
}

/// The lines of `chunk`, each with its newline (the last one may lack it).
fn lines_of(chunk: &[u8]) -> impl Iterator<Item = &[u8]> {
    chunk.split_inclusive(|b| *b == b'\n')
}

fn trim_newline(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\n").unwrap_or(line)
}

fn line_count(chunk: &[u8]) -> usize {
    lines_of(chunk).count()
}

/// Splits `chunk` into two non-empty runs of whole lines, near the middle; `None` for one line.
fn split_half(chunk: &[u8]) -> Option<(std::ops::Range<usize>, std::ops::Range<usize>)> {
    let body = trim_newline(chunk);
    let middle = body.len() / 2;
    let at = match body[middle..].iter().position(|b| *b == b'\n') {
        Some(i) => middle + i + 1,
        None => body[..middle].iter().rposition(|b| *b == b'\n')? + 1,
    };
    Some((0..at, at..chunk.len()))
}

/// Some lines of the batch, borrowed from it or rebuilt.
type Chunk<'b> = Cow<'b, [u8]>;

/// `chunk` as two runs of whole lines, or itself back when it is one line.
fn halves(chunk: Chunk<'_>) -> Result<(Chunk<'_>, Chunk<'_>), Chunk<'_>> {
    let Some((a, b)) = split_half(&chunk) else {
        return Err(chunk);
    };
    Ok(match chunk {
        Cow::Borrowed(all) => (Cow::Borrowed(&all[a]), Cow::Borrowed(&all[b])),
        Cow::Owned(all) => (Cow::Owned(all[a].to_vec()), Cow::Owned(all[b].to_vec())),
    })
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

/// reqwest's top-level message hides the cause ("error sending request"); append the causes.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "http://127.0.0.1:8086/write?db=hb&precision=n";

    fn outcome(status: u16, body: &str) -> Result<Outcome, InfluxError> {
        let status = StatusCode::from_u16(status).unwrap();
        classify(status, error_message(body.as_bytes(), status), None, URL)
    }

    fn refusal(body: &str) -> Refusal {
        match outcome(400, body) {
            Ok(Outcome::Refused(r)) => r,
            other => panic!("not a refusal: {other:?}"),
        }
    }

    #[test]
    fn influxdb_1_partial_writes_as_it_sends_them() {
        // What influxd 1.6 answered in this repository's tests.
        let r = refusal(
            r#"{"error":"partial write: field type conflict: input field \"value\" on measurement \"m1\" is type float, already exists as type string dropped=2"}"#,
        );
        assert!(r.partial);
        assert_eq!(r.dropped, Some(2));
        assert!(r.named_lines(b"m1 value=1.0 5\n").is_empty());

        let r = refusal(
            r#"{"error":"partial write: unable to parse 'bad line here': invalid field format\nunable to parse 'oops=1 x': invalid field format dropped=0"}"#,
        );
        assert_eq!((r.partial, r.dropped), (true, Some(0)));
        let chunk = b"bad line here\nm3 value=1 7\noops=1 x\nm3 value=2 8\n";
        assert_eq!(
            r.named_lines(chunk),
            [
                (&b"bad line here"[..], "invalid field format"),
                (&b"oops=1 x"[..], "invalid field format")
            ]
        );

        let r = refusal(r#"{"error":"unable to parse 'a': b': invalid field format"}"#);
        assert_eq!((r.partial, r.dropped), (false, None));
        assert_eq!(
            r.named_lines(b"a': b\n"),
            [(&b"a': b"[..], "invalid field format")]
        );

        let r = refusal(r#"{"error":"field type conflict"}"#);
        assert_eq!((r.partial, r.dropped), (false, None));
    }

    #[test]
    fn influxdb_2_messages() {
        let r = match outcome(
            422,
            r#"{"code":"unprocessable entity","message":"failure writing points to database: partial write: points beyond retention policy dropped=1"}"#,
        ) {
            Ok(Outcome::Refused(r)) => r,
            other => panic!("{other:?}"),
        };
        assert!(!r.partial);
        assert_eq!(r.dropped, Some(1));
        assert!(r.message.starts_with("failure writing points"));
    }

    #[test]
    fn status_classes() {
        assert!(matches!(
            outcome(413, r#"{"error":"Request Entity Too Large"}"#),
            Ok(Outcome::TooLarge(_))
        ));
        assert_eq!(
            outcome(401, r#"{"error":"authorization failed"}"#),
            Err(InfluxError::Unauthorized {
                url: URL.into(),
                status: 401,
                message: "authorization failed".into()
            })
        );
        assert!(matches!(
            outcome(403, "{}"),
            Err(InfluxError::Unauthorized { status: 403, .. })
        ));
        assert_eq!(
            outcome(404, r#"{"error":"database not found: \"nodb\""}"#),
            Err(InfluxError::Permanent {
                url: URL.into(),
                status: 404,
                message: "database not found: \"nodb\"".into()
            })
        );
        assert!(matches!(
            outcome(400, r#"{"error":"bad precision"}"#),
            Err(InfluxError::Permanent { .. })
        ));
        assert!(matches!(
            outcome(500, r#"{"error":"retention policy not found: nope"}"#),
            Err(InfluxError::Permanent { .. })
        ));
        for code in [429, 500, 502, 503] {
            let e = outcome(code, "busy").unwrap_err();
            assert!(e.is_retryable(), "{code}");
            assert!(e.to_string().starts_with(URL), "{e}");
        }
        let e = outcome(401, "").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{URL} refused the credentials (401): Unauthorized (check user=/password_env= \
                 for influxdb://, token_env= for influxdb2://)"
            )
        );
    }

    #[test]
    fn refusals_reject_what_is_known_and_resend_the_rest() {
        let chunk: Cow<'_, [u8]> = Cow::Borrowed(b"a 1\nbad\nc 3\nd 4\n");
        let run = |message: &str| {
            let (mut pending, mut rejected) = (Vec::new(), Vec::new());
            let refusal = refusal(message);
            refused(chunk.clone(), refusal, &mut pending, &mut rejected);
            let pending: Vec<(String, bool)> = pending
                .into_iter()
                .map(|(c, why)| (String::from_utf8(c.into_owned()).unwrap(), why.is_some()))
                .collect();
            let rejected: Vec<(String, String)> =
                rejected.into_iter().map(|r| (r.line, r.reason)).collect();
            (pending, rejected)
        };
        let bad = ("bad".to_owned(), "invalid field format".to_owned());
        // The server confirms the rest was stored.
        let (pending, rejected) = run(
            r#"{"error":"partial write: unable to parse 'bad': invalid field format dropped=0"}"#,
        );
        assert_eq!((pending, rejected), (vec![], vec![bad.clone()]));
        // It does not: the rest is sent again.
        let (pending, rejected) = run(r#"{"error":"unable to parse 'bad': invalid field format"}"#);
        assert_eq!(pending, [("a 1\nc 3\nd 4\n".to_owned(), true)]);
        assert_eq!(rejected, [bad]);
        // Everything dropped: everything rejected, without `dropped=`.
        let (pending, rejected) = run(r#"{"error":"partial write: conflict dropped=4"}"#);
        assert!(pending.is_empty());
        assert_eq!(rejected.len(), 4);
        assert_eq!(
            rejected[3],
            ("d 4".to_owned(), "partial write: conflict".to_owned())
        );
        // Some dropped, none named: bisect.
        let (pending, rejected) = run(r#"{"error":"partial write: conflict dropped=1"}"#);
        assert_eq!(
            pending,
            [
                ("c 3\nd 4\n".to_owned(), true),
                ("a 1\nbad\n".to_owned(), true)
            ]
        );
        assert!(rejected.is_empty());
    }

    #[test]
    fn long_messages_are_cut() {
        let long = "é".repeat(2000);
        let m = error_message(long.as_bytes(), StatusCode::BAD_REQUEST);
        assert!(m.len() <= MAX_MESSAGE + 3 && m.ends_with("..."));
    }

    #[test]
    fn halves_split_at_line_boundaries() {
        let chunk = b"aaaa\nb\nc\ndddddd\n";
        let (a, b) = split_half(chunk).unwrap();
        assert_eq!(&chunk[a], b"aaaa\nb\nc\n");
        assert_eq!(&chunk[b], b"dddddd\n");
        let chunk = b"a\nbbbbbbbbbbbbbbbb\n";
        let (a, b) = split_half(chunk).unwrap();
        assert_eq!(
            (&chunk[a], &chunk[b]),
            (&b"a\n"[..], &b"bbbbbbbbbbbbbbbb\n"[..])
        );
        assert_eq!(split_half(b"only\n"), None);
        assert_eq!(split_half(b"only"), None);
        assert_eq!(line_count(b"a\nb\n"), 2);
        assert_eq!(line_count(b"a\nb"), 2);
    }

    #[test]
    fn dropped_counts() {
        assert_eq!(dropped("partial write: x dropped=12"), Some(12));
        assert_eq!(dropped("partial write: x"), None);
        assert_eq!(
            strip_dropped("invalid field format dropped=0"),
            "invalid field format"
        );
        assert_eq!(strip_dropped("a dropped=b"), "a dropped=b");
    }

    #[test]
    fn basic_auth_encoding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"user:p@ss"), "dXNlcjpwQHNz");
    }

    #[test]
    fn gzip_round_trips() {
        use std::io::Read as _;
        let body = b"m value=1.0 1\n".repeat(100);
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gzip(&body)[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, body);
    }

    #[test]
    fn missing_secrets_name_the_variable() {
        let spec = super::super::InfluxSpec::parse(
            "influxdb2",
            "127.0.0.1:1",
            vec![("org".into(), "o".into()), ("bucket".into(), "b".into())],
        )
        .unwrap();
        let e = InfluxWriter::with_env(&spec, |_| None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "influxdb2://127.0.0.1:1?org=o&bucket=b&token_env=INFLUX_TOKEN&precision=ns: \
             environment variable `INFLUX_TOKEN` (named by token_env=) is not set; set it to the \
             API token"
        );
        let e = InfluxWriter::with_env(&spec, |_| Some(String::new())).unwrap_err();
        assert!(e.to_string().contains("is empty"));
        let writer = InfluxWriter::with_env(&spec, |_| Some("s3cret".into())).unwrap();
        assert!(!format!("{writer:?}").contains("s3cret"));
    }
}
