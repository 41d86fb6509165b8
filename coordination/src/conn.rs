//! One lazily dialled Redis connection, dialled again after a failure.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisError};

/// A connection made on first use and forgotten by [`Lazy::reset`] after an error.
pub(crate) struct Lazy {
    client: Client,
    budget: Duration,
    conn: tokio::sync::Mutex<Option<MultiplexedConnection>>,
}

impl Lazy {
    /// Connections of `client` whose connecting and every answer take at most `budget`.
    pub(crate) fn new(client: Client, budget: Duration) -> Self {
        Self {
            client,
            budget,
            conn: tokio::sync::Mutex::new(None),
        }
    }

    /// The connection, dialled when there is none.
    pub(crate) async fn get(&self) -> Result<MultiplexedConnection, RedisError> {
        let mut conn = self.conn.lock().await;
        if let Some(c) = conn.as_ref() {
            return Ok(c.clone());
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.budget))
            .set_response_timeout(Some(self.budget));
        let c = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        *conn = Some(c.clone());
        Ok(c)
    }

    /// Forgets a connection that failed, so the next call dials again.
    pub(crate) async fn reset(&self) {
        *self.conn.lock().await = None;
    }
}
