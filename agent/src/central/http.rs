//! `http.response`: GETs URL targets (redirects are not followed; the body is read to the end).
//! `http.response.time` (s) is the time until the whole response was read, only when a
//! response arrived; `http.response.status` is its HTTP status code, or 0 when there was no
//! response, with metadata `result` (`success` when any response arrived, `timeout`,
//! `connection_failed`, `error`) and `error`.
//!
//! ```yaml
//! targets:
//!   - {name: keystone, url: "http://127.0.0.1:5000/v3", timeout: 2}
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use hb_pipeline::error_chain;
use reqwest::{Client, Url, redirect};

use super::{Locator, check_owned, locate};
use crate::coordination::Share;
use crate::namespaces::{DefError, PollsterDef};
use crate::pollster::{Implementation, Measurement, NetPollster, PollFuture};

/// The `http.response` pollster.
pub struct HttpResponse {
    client: Client,
    targets: Vec<Target>,
}

struct Target {
    /// `<pollster>/<target>`: what coordinated agents divide.
    key: String,
    name: String,
    url: Url,
    timeout: Duration,
}

/// Builds the pollster from its declaration.
pub fn build(def: &PollsterDef) -> Result<Implementation, DefError> {
    let mut targets = Vec::new();
    for (i, t) in def.targets()?.iter().enumerate() {
        let (name, timeout, raw) = locate(i, t, "http.response", Locator::Url, "")?;
        let field = format!("targets[{i}].url");
        let shown = hb_bus::secret_url::redact(raw);
        let url = Url::parse(raw)
            .map_err(|e| DefError::at(t, &field, format!("invalid URL `{shown}`: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(DefError::at(
                t,
                field,
                format!("`{shown}` is not an absolute http:// or https:// URL"),
            ));
        }
        targets.push(Target {
            key: format!("{}/{name}", def.name.value),
            name,
            url,
            timeout,
        });
    }
    // The process-wide TLS provider; a second install attempt (another pollster) is harmless.
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
    let client = Client::builder()
        .redirect(redirect::Policy::none())
        .user_agent(concat!("hb-polling/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| DefError::at(&def.name, "", format!("cannot build the HTTP client: {e}")))?;
    Ok(Implementation::Net(Arc::new(HttpResponse {
        client,
        targets,
    })))
}

impl NetPollster for HttpResponse {
    fn poll<'a>(&'a self, share: &'a Share) -> PollFuture<'a> {
        Box::pin(async move {
            let checks = check_owned(&self.targets, share, |t| &t.key, |t| check(&self.client, t));
            Ok(checks.await)
        })
    }
}

async fn check(client: &Client, t: &Target) -> Vec<Measurement> {
    let started = Instant::now();
    let request = async {
        let response = client.get(t.url.clone()).send().await?;
        let status = response.status();
        response.bytes().await?;
        Ok::<_, reqwest::Error>(status)
    };
    let outcome = tokio::time::timeout(t.timeout, request).await;
    let elapsed = started.elapsed().as_secs_f64();
    let sample = |meter: &'static str, volume: f64| {
        Measurement::new(meter, volume, t.url.as_str())
            .with("target", t.name.as_str())
            .with("url", t.url.as_str())
    };
    let (result, error) = match outcome {
        Ok(Ok(status)) => {
            return vec![
                sample("http.response.time", elapsed),
                sample("http.response.status", f64::from(status.as_u16()))
                    .with("result", "success"),
            ];
        }
        Ok(Err(e)) if e.is_timeout() => ("timeout", e.to_string()),
        Ok(Err(e)) if e.is_connect() => ("connection_failed", error_chain(&e)),
        Ok(Err(e)) => ("error", error_chain(&e)),
        Err(_) => (
            "timeout",
            format!("no complete response within {:?}", t.timeout),
        ),
    };
    vec![
        sample("http.response.status", 0.0)
            .with("result", result)
            .with("error", error),
    ]
}
