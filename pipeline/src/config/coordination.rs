//! `coordination:`: the Redis group through which central agents share their work.
//!
//! ```yaml
//! coordination:
//!   backend_url: redis://127.0.0.1:6379/0
//!   group: central       # agents of one group divide the resources among themselves
//!   heartbeat: 1         # seconds between membership refreshes
//!   timeout: 3           # a member silent this long has left
//! ```

use std::time::Duration;

use hb_bus::SecretUrl;

use super::raw::{At, RawCoordination};
use super::{Seconds, Validator};

/// Heartbeat when none is configured.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(1);
/// Member timeout when none is configured.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
/// Group name when none is configured.
pub const DEFAULT_GROUP: &str = "central";

/// A validated `coordination:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coordination {
    /// `redis://` or `rediss://` URL of the backend (its password shown as `***`).
    pub backend_url: SecretUrl,
    /// Group name; agents of one group share the work.
    pub group: String,
    /// How often a member says it is alive.
    pub heartbeat: Duration,
    /// How long a member may stay silent before the others take over its share.
    pub timeout: Duration,
}

impl Validator<'_> {
    pub(super) fn coordination(&mut self, c: &At<RawCoordination>) -> Option<Coordination> {
        let raw = &c.value;
        let before = self.errors.len();
        let url = &raw.backend_url;
        match url::Url::parse(&url.value) {
            Ok(u) if matches!(u.scheme(), "redis" | "rediss") && u.host().is_some() => {
                // The TLS options (`?tls_ca=PATH&...`), checked (files read) at start-up.
                let mut pairs: Vec<(String, String)> = u.query_pairs().into_owned().collect();
                match hb_bus::Tls::take(&mut pairs) {
                    Err(e) => self.refuse(url, "coordination.backend_url", e.to_string()),
                    Ok(tls) if !tls.is_default() && u.scheme() != "rediss" => self.refuse(
                        url,
                        "coordination.backend_url",
                        "tls_ca, tls_cert, tls_key and tls_insecure are for TLS: use rediss://",
                    ),
                    Ok(_) => {}
                }
            }
            Ok(u) => self.refuse(
                url,
                "coordination.backend_url",
                format!(
                    "unsupported scheme `{}` (available: redis, rediss)",
                    u.scheme()
                ),
            ),
            Err(e) => self.refuse(url, "coordination.backend_url", format!("not a URL: {e}")),
        }
        let group = match &raw.group {
            Some(g) if g.value.is_empty() || g.value.contains(['*', '?', '[']) => {
                self.refuse(
                    g,
                    "coordination.group",
                    "must be a non-empty name without `*`, `?` or `[`",
                );
                String::new()
            }
            Some(g) => g.value.clone(),
            None => DEFAULT_GROUP.to_owned(),
        };
        let heartbeat = self.seconds(raw.heartbeat.as_ref(), "heartbeat", DEFAULT_HEARTBEAT);
        let timeout = self.seconds(raw.timeout.as_ref(), "timeout", DEFAULT_TIMEOUT);
        if timeout <= heartbeat {
            let msg = format!(
                "timeout ({}s) must be longer than heartbeat ({}s), or members would expire \
                 between two heartbeats",
                timeout.as_secs_f64(),
                heartbeat.as_secs_f64()
            );
            match &raw.timeout {
                Some(t) => self.refuse(t, "coordination.timeout", msg),
                None => self.refuse(c, "coordination.timeout", msg),
            }
        }
        (self.errors.len() == before).then(|| Coordination {
            backend_url: SecretUrl::new(url.value.as_str()),
            group,
            heartbeat,
            timeout,
        })
    }

    fn seconds(&mut self, v: Option<&At<Seconds>>, key: &str, default: Duration) -> Duration {
        let Some(v) = v else { return default };
        v.value.duration().unwrap_or_else(|msg| {
            self.refuse(v, format!("coordination.{key}"), msg);
            default
        })
    }
}
