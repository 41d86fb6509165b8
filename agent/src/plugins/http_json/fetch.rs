//! The HTTP side of a definition: the client and its headers and credentials, one GET per
//! page, and the walk along `next` links.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use hb_pipeline::error_chain;
use reqwest::header::{ACCEPT, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, Url, redirect};
use serde_json::{Map, Value};

use super::path::Expr;
use super::secret::{self, Inline, Secret};
use super::share::{Pages, SharedPages};
use crate::plugins::{Context, FieldError};
use crate::pollster::PollError;

/// The largest response body read; a bigger one fails the run.
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// Redirects followed, to the same scheme, host and port only.
const MAX_REDIRECTS: usize = 5;

/// Headers whose value is a credential and may not be written inline.
const CREDENTIAL_HEADERS: [&str; 3] = ["authorization", "proxy-authorization", "cookie"];

/// Fetches the pages of one definition.
pub struct Fetcher {
    client: Client,
    url: Url,
    basic_auth: Option<(Secret, Secret)>,
    next: Option<Expr>,
    max_pages: u32,
    /// The listing this definition shares with the others that read the same request.
    shared: Arc<SharedPages>,
}

impl Fetcher {
    /// A fetcher of `url` (already checked) and the pages `next` links to, at most
    /// `max_pages` of them, sharing its listing through `shared`.
    pub fn new(
        url: Url,
        client: Client,
        basic_auth: Option<(Secret, Secret)>,
        next: Option<Expr>,
        max_pages: u32,
        shared: Arc<SharedPages>,
    ) -> Self {
        Self {
            client,
            url,
            basic_auth,
            next,
            max_pages,
            shared,
        }
    }

    /// Hands each page of the listing to `each`: the first page and the pages `next` leads
    /// to, fetched now or, when other definitions read the same request, the listing one of
    /// them fetched this cycle. Any failed page fails the run (a partial listing would be
    /// mistaken for the whole).
    pub async fn pages(
        &self,
        pollster: &str,
        mut each: impl FnMut(&Url, &Value) -> Result<(), PollError> + Send,
    ) -> Result<(), PollError> {
        // Only the definitions hold their share once loading is over.
        if Arc::strong_count(&self.shared) == 1 {
            return self.walk(pollster, |url, body| each(url, &body)).await;
        }
        let fetch = async {
            let mut pages = Pages::new();
            self.walk(pollster, |url, body| {
                pages.push((url.clone(), body));
                Ok(())
            })
            .await
            .map(|()| pages)
        };
        for (url, body) in self.shared.get(fetch).await?.iter() {
            each(url, body)?;
        }
        Ok(())
    }

    /// GETs the pages one by one, handing each body to `each` once its `next` link is read.
    async fn walk(
        &self,
        pollster: &str,
        mut each: impl FnMut(&Url, Value) -> Result<(), PollError> + Send,
    ) -> Result<(), PollError> {
        let mut url = self.url.clone();
        let mut seen = HashSet::from([url.clone()]);
        for page in 1.. {
            let body = self.get(&url).await?;
            let link = self.next.as_ref().and_then(|next| next.first(&body));
            each(&url, body)?;
            let Some(next) = &self.next else { break };
            let Some(link) = link else { break };
            let next_url = match self.follow(&link) {
                Ok(Some(u)) => u,
                Ok(None) => break,
                Err(reason) => {
                    tracing::warn!(pollster, %url, next = %next, %reason, "pagination stopped");
                    break;
                }
            };
            if page >= self.max_pages {
                tracing::warn!(pollster, max_pages = self.max_pages, %url, "pagination stopped at `max_pages`; later pages were not read");
                break;
            }
            if !seen.insert(next_url.clone()) {
                tracing::warn!(pollster, %url, next = %next_url, "pagination stopped: the next page was already read");
                break;
            }
            url = next_url;
        }
        Ok(())
    }

    /// The URL a `next` value leads to: `None` to stop (null, empty); an error when it is
    /// not a string or leaves the first URL's scheme, host and port (credentials go only
    /// there).
    fn follow(&self, link: &Value) -> Result<Option<Url>, String> {
        let text = match link {
            Value::Null => return Ok(None),
            Value::String(s) if s.trim().is_empty() => return Ok(None),
            Value::String(s) => s.trim(),
            other => return Err(format!("the next link is not a string but {other}")),
        };
        let url = self
            .url
            .join(text)
            .map_err(|e| format!("the next link `{text}` is not a URL: {e}"))?;
        if url.origin() != self.url.origin() {
            return Err(format!(
                "the next link `{url}` leaves {}; only the first URL's scheme, host and port are followed",
                self.url.origin().ascii_serialization()
            ));
        }
        Ok(Some(url))
    }

    async fn get(&self, url: &Url) -> Result<Value, PollError> {
        let fail = |what: String| PollError::Other(format!("GET {url}: {what}"));
        let mut request = self.client.get(url.clone());
        if let Some((user, password)) = &self.basic_auth {
            request = request.basic_auth(user.expose(), Some(password.expose()));
        }
        let mut response = request.send().await.map_err(|e| fail(error_chain(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(fail(format!("HTTP status {status}")));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_BODY as u64)
        {
            return Err(fail(format!(
                "the response is larger than {MAX_BODY} bytes"
            )));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| fail(error_chain(&e)))? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(fail(format!(
                    "the response is larger than {MAX_BODY} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| fail(format!("the response is not JSON: {e}")))
    }
}

/// Checks `url`: absolute http or https, no credentials in it.
pub fn parse_url(raw: &str) -> Result<Url, FieldError> {
    let refuse = |m: String| FieldError::new("url", m);
    let url = Url::parse(raw).map_err(|e| {
        let shown = hb_bus::secret_url::redact(raw);
        refuse(format!("invalid URL `{shown}`: {e}"))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(refuse(format!(
            "`{raw}` is not an absolute http:// or https:// URL"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse(
            "credentials do not belong in the URL; use `basic_auth` or `headers`".into(),
        ));
    }
    Ok(url)
}

/// Reads `headers:` (name → a string, `{env: VAR}` or `{file: path}`); credentials are
/// marked sensitive so that they never appear in debug output.
pub fn headers(raw: &Map<String, Value>, ctx: &Context<'_>) -> Result<HeaderMap, FieldError> {
    let mut map = HeaderMap::new();
    map.insert(ACCEPT, HeaderValue::from_static("application/json"));
    for (name, value) in raw {
        let field = format!("headers.{name}");
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| FieldError::new(&field, "not a valid HTTP header name"))?;
        let credential = CREDENTIAL_HEADERS.contains(&header.as_str());
        let inline = if credential {
            Inline::Refused
        } else {
            Inline::Allowed
        };
        let text = secret::read(value, &field, inline, ctx)?;
        let mut header_value = HeaderValue::from_str(text.expose()).map_err(|_| {
            FieldError::new(
                &field,
                "the value is not a valid HTTP header value (visible ASCII only)",
            )
        })?;
        header_value.set_sensitive(credential || value.is_object());
        map.insert(header, header_value);
    }
    Ok(map)
}

/// Reads `basic_auth: {username, password}`: the user name may be written inline, the
/// password comes from `{env: VAR}` or `{file: path}`.
pub fn basic_auth(raw: &Value, ctx: &Context<'_>) -> Result<(Secret, Secret), FieldError> {
    let Value::Object(fields) = raw else {
        return Err(FieldError::new(
            "basic_auth",
            "expected {username: ..., password: {env: VAR} or {file: path}}",
        ));
    };
    if let Some(key) = fields
        .keys()
        .find(|k| !matches!(k.as_str(), "username" | "password"))
    {
        return Err(FieldError::new(
            format!("basic_auth.{key}"),
            "unknown field, expected `username` or `password`",
        ));
    }
    let get = |key: &str| {
        fields
            .get(key)
            .ok_or_else(|| FieldError::new(format!("basic_auth.{key}"), "missing"))
    };
    let user = secret::read(
        get("username")?,
        "basic_auth.username",
        Inline::Allowed,
        ctx,
    )?;
    let password = secret::read(
        get("password")?,
        "basic_auth.password",
        Inline::Refused,
        ctx,
    )?;
    Ok((user, password))
}

/// One client per definition: its headers, redirects to the same origin only, connection
/// attempts bounded by the run timeout.
pub fn client(headers: HeaderMap, timeout: Duration) -> Result<Client, FieldError> {
    // The process-wide TLS provider; a second install attempt (another pollster) is harmless.
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
    let same_origin = redirect::Policy::custom(|attempt| {
        let first = attempt.previous().first().map(Url::origin);
        if attempt.previous().len() > MAX_REDIRECTS || first != Some(attempt.url().origin()) {
            attempt.stop()
        } else {
            attempt.follow()
        }
    });
    Client::builder()
        .redirect(same_origin)
        .default_headers(headers)
        .connect_timeout(timeout)
        .user_agent(concat!("hb-polling/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| FieldError::new("", format!("cannot build the HTTP client: {e}")))
}
