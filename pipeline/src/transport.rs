//! The `transport` URL: which bus carries samples between agents and collectors.

use std::fmt;

/// A parsed transport URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// `memory://`: the agent runs the pipeline in its own process (the embedded default).
    Memory,
}

/// Schemes this build understands, for error messages.
pub const AVAILABLE: &str = "memory://";

/// Why a transport URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// No `scheme://`.
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
}

impl Transport {
    /// Parses a transport URL.
    pub fn parse(url: &str) -> Result<Self, TransportError> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(TransportError::NotAUrl(url.to_owned()));
        };
        match scheme {
            "memory" if rest.is_empty() => Ok(Self::Memory),
            "memory" => Err(TransportError::MemoryWithOptions(url.to_owned())),
            _ => Err(TransportError::Unsupported {
                scheme: scheme.to_owned(),
            }),
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory => f.write_str("memory://"),
        }
    }
}
