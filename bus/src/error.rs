//! Errors at the bus boundary, classified as retryable or permanent.

/// Why a bus operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BusError {
    /// The broker cannot be reached or the connection broke; retry later.
    #[error("{transport}: broker unreachable: {reason}")]
    Unreachable {
        /// `rabbit`, `kafka` or `redis`.
        transport: &'static str,
        /// What the client library said.
        reason: String,
    },
    /// The broker answered but did not take the message (nack, timeout of a confirm); retry.
    #[error("{transport}: broker did not confirm: {reason}")]
    NotConfirmed {
        /// `rabbit`, `kafka` or `redis`.
        transport: &'static str,
        /// What the broker or client said.
        reason: String,
    },
    /// Declaring queues, topics, streams or groups failed in a way retrying will not fix
    /// (access refused, a queue declared with other arguments, ...).
    #[error("{transport}: cannot set up {what}: {reason}")]
    Setup {
        /// `rabbit`, `kafka` or `redis`.
        transport: &'static str,
        /// The queue, topic, stream or group.
        what: String,
        /// What the broker said.
        reason: String,
    },
}

impl BusError {
    /// True when the same operation may succeed later.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::Setup { .. })
    }
}
