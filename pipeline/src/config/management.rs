//! `management:`: the HTTP management server of both binaries (status, health, metrics).
//!
//! ```yaml
//! management:
//!   listen: "127.0.0.1:8042"     # host:port, or off; default 127.0.0.1:8042 (collector), 8043 (agent)
//!   token_file: /etc/hb/token    # Bearer token for every request that changes state
//!   drain_timeout: 60s           # how long a reload waits for in-flight work
//! ```
//!
//! `HB_MANAGEMENT_LISTEN` overrides `listen` and `HB_MANAGEMENT_TOKEN` gives the token (instead
//! of `token_file`). A listen address that is not a loopback one needs a token: without one
//! the configuration is refused, so that nobody exposes an unauthenticated endpoint by
//! accident. Without any token every mutation is refused (403), also on loopback.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::raw::{At, RawManagement};
use super::{ConfigError, Origin, Validator};

/// Drain timeout when none is configured (as `hkp-plugin-core`'s).
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// A validated `management:` section (the defaults when there is none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Management {
    /// Where the server listens.
    pub listen: Listen,
    /// The token mutations need, if any.
    pub token: Option<Token>,
    /// How long a reload or a stop waits for a plugin's in-flight work.
    pub drain_timeout: Duration,
}

impl Default for Management {
    fn default() -> Self {
        Self {
            listen: Listen::Default,
            token: None,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
        }
    }
}

/// `management.listen`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    /// Not configured: the binary's default port on 127.0.0.1.
    Default,
    /// `off`: no management server.
    Off,
    /// An address (port 0: any free port, logged at start-up).
    At(SocketAddr),
}

impl Listen {
    /// The address to bind, with `default_port` on 127.0.0.1 for [`Listen::Default`];
    /// `None` when the server is off.
    pub fn address(self, default_port: u16) -> Option<SocketAddr> {
        match self {
            Self::Default => Some(SocketAddr::from(([127, 0, 0, 1], default_port))),
            Self::Off => None,
            Self::At(addr) => Some(addr),
        }
    }

    fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "off" | "false" | "none" => Ok(Self::Off),
            addr => addr.parse().map(Self::At).map_err(|_| {
                format!(
                    "must be host:port with an IP address (127.0.0.1:8042, [::1]:8042, \
                     0.0.0.0:8042) or off (got `{}`)",
                    super::cut(text)
                )
            }),
        }
    }

    fn is_loopback(self) -> bool {
        match self {
            Self::Default | Self::Off => true,
            Self::At(addr) => match addr.ip() {
                IpAddr::V4(ip) => ip.is_loopback(),
                IpAddr::V6(ip) => {
                    ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
                }
            },
        }
    }
}

/// The management token: compared in constant time, never shown (`Debug` and `Display` print
/// `***`).
#[derive(Clone)]
pub struct Token(String);

impl Token {
    /// A token (as read from `token_file` or `HB_MANAGEMENT_TOKEN`, trimmed).
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// Whether `given` (the part of an `Authorization` header after `Bearer `) is the token,
    /// in a time that does not depend on where they differ.
    pub fn matches(&self, given: &str) -> bool {
        // Digests of both, so that not even the token's length shows in the time taken.
        let (ours, theirs) = (
            Sha256::digest(self.0.as_bytes()),
            Sha256::digest(given.as_bytes()),
        );
        ours.as_slice().ct_eq(theirs.as_slice()).into()
    }

    /// The token itself, for a client (tests) that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl PartialEq for Token {
    fn eq(&self, other: &Self) -> bool {
        self.matches(&other.0)
    }
}

impl Eq for Token {}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The variable that overrides `management.listen`.
pub const LISTEN_VAR: &str = "HB_MANAGEMENT_LISTEN";
/// The variable that gives the token.
pub const TOKEN_VAR: &str = "HB_MANAGEMENT_TOKEN";

impl Validator<'_> {
    pub(super) fn management(
        &mut self,
        raw: Option<&At<RawManagement>>,
        base: &Path,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Management {
        let mut management = Management::default();
        let section = raw.map(|r| &r.value);
        let before = self.errors.len();
        // Where `listen` came from, to point at it if it needs a token.
        let mut listen_at = None;
        if let Some(text) = env(LISTEN_VAR) {
            match Listen::parse(&text) {
                Ok(listen) => management.listen = listen,
                Err(message) => self.env_error(LISTEN_VAR, message),
            }
        } else if let Some(listen) = section.and_then(|s| s.listen.as_ref()) {
            listen_at = Some(listen);
            match Listen::parse(&listen.value) {
                Ok(l) => management.listen = l,
                Err(message) => self.refuse(listen, "management.listen", message),
            }
        }
        if let Some(token) = env(TOKEN_VAR) {
            match token.trim() {
                "" => self.env_error(TOKEN_VAR, "the token must not be empty".into()),
                token => management.token = Some(Token(token.to_owned())),
            }
        } else if let Some(file) = section.and_then(|s| s.token_file.as_ref()) {
            let path = crate::publisher::resolve(base, &file.value);
            match std::fs::read_to_string(&path) {
                Ok(text) if text.trim().is_empty() => {
                    let msg = format!("{} is empty", path.display());
                    self.refuse(file, "management.token_file", msg);
                }
                Ok(text) => management.token = Some(Token(text.trim().to_owned())),
                Err(e) => {
                    let msg = format!("cannot read {}: {e}", path.display());
                    self.refuse(file, "management.token_file", msg);
                }
            }
        }
        if let Some(drain) = section.and_then(|s| s.drain_timeout.as_ref()) {
            match drain.value.duration() {
                Ok(d) => management.drain_timeout = d,
                Err(msg) => self.refuse(drain, "management.drain_timeout", msg),
            }
        }
        if let (Listen::At(addr), None, true) = (
            management.listen,
            &management.token,
            self.errors.len() == before,
        ) && !management.listen.is_loopback()
        {
            let message = format!(
                "{addr} is not a loopback address and no token is configured: set \
                 management.token_file or {TOKEN_VAR}, or listen on 127.0.0.1"
            );
            match listen_at {
                Some(listen) => self.refuse(listen, "management.listen", message),
                None => self.env_error(LISTEN_VAR, message),
            }
        }
        management
    }

    fn env_error(&mut self, var: &str, message: String) {
        self.errors.push(ConfigError {
            origin: Origin::Env(var.into()),
            key: String::new(),
            message,
        });
    }
}
