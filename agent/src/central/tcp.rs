//! `tcp.connect`: connects to `host:port` targets. `tcp.connect.time` (s) is the time to
//! establish the connection (only when it succeeds); `tcp.connect.status` is 1 when it
//! succeeded and 0 when not, with metadata `result` (`success`, `timeout`,
//! `connection_failed`, `resolve_failed`) and `error`.
//!
//! ```yaml
//! targets:
//!   - {name: rabbitmq, address: "127.0.0.1:5672", timeout: 2}
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use super::{Locator, check_owned, classify_io, locate};
use crate::coordination::Share;
use crate::namespaces::{DefError, PollsterDef};
use crate::pollster::{Implementation, Measurement, NetPollster, PollFuture};

/// The `tcp.connect` pollster.
pub struct TcpConnect {
    targets: Vec<Target>,
}

struct Target {
    /// `<pollster>/<target>`: what coordinated agents divide.
    key: String,
    name: String,
    address: String,
    timeout: Duration,
}

/// Builds the pollster from its declaration.
pub fn build(def: &PollsterDef) -> Result<Implementation, DefError> {
    let mut targets = Vec::new();
    for (i, t) in def.targets()?.iter().enumerate() {
        let (name, timeout, address) = locate(i, t, "tcp.connect", Locator::Address, "host:port")?;
        let well_formed = address
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
        if !well_formed {
            return Err(DefError::at(
                t,
                format!("targets[{i}].address"),
                format!("`{address}` is not host:port"),
            ));
        }
        let address = address.to_owned();
        targets.push(Target {
            key: format!("{}/{name}", def.name.value),
            name,
            address,
            timeout,
        });
    }
    Ok(Implementation::Net(Arc::new(TcpConnect { targets })))
}

impl NetPollster for TcpConnect {
    fn poll<'a>(&'a self, share: &'a Share) -> PollFuture<'a> {
        Box::pin(async move { Ok(check_owned(&self.targets, share, |t| &t.key, check).await) })
    }
}

async fn check(t: &Target) -> Vec<Measurement> {
    let started = Instant::now();
    let outcome = tokio::time::timeout(t.timeout, connect(&t.address)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let sample = |meter: &'static str, volume: f64| {
        Measurement::new(meter, volume, &t.address)
            .with("target", t.name.as_str())
            .with("address", t.address.as_str())
    };
    let (result, error) = match outcome {
        Ok(Ok(_stream)) => {
            return vec![
                sample("tcp.connect.time", elapsed),
                sample("tcp.connect.status", 1.0).with("result", "success"),
            ];
        }
        Ok(Err((result, e))) => (result, e.to_string()),
        Err(_) => ("timeout", format!("no connection within {:?}", t.timeout)),
    };
    vec![
        sample("tcp.connect.status", 0.0)
            .with("result", result)
            .with("error", error),
    ]
}

/// Resolves, then connects to the first address that answers.
async fn connect(address: &str) -> Result<TcpStream, (&'static str, std::io::Error)> {
    let addrs: Vec<_> = tokio::net::lookup_host(address)
        .await
        .map_err(|e| ("resolve_failed", e))?
        .collect();
    TcpStream::connect(&addrs[..])
        .await
        .map_err(|e| (classify_io(&e), e))
}
