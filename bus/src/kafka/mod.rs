//! Kafka: topics `<prefix>samples`, `<prefix>heartbeats`, `<prefix>dead` (created through the
//! admin API with the configured partitions and replication; brokers that do not auto-create
//! topics need this), an idempotent producer with `acks=all`, linger and compression. A samples
//! envelope goes to the partition hb chose for its resources (`crc32(resource) mod
//! partitions`, see [`crate::partition`]), so the samples topic must have exactly `partitions`
//! partitions (checked); the consumer group divides them among the collectors.
//!
//! Collectors form one consumer group. After each acknowledgement the offset of every touched
//! partition is committed (asynchronously) up to the contiguous watermark of acknowledged
//! messages: a message acknowledged while an earlier one is still in a sink does not move it,
//! and a crash redelivers at most what was in flight.
//!
//! Collectors given [`NotificationSources`](crate::NotificationSources) also subscribe to
//! their topics (under the services' names, e.g. `notifications.info`, where oslo.messaging's
//! Kafka driver publishes), created like hb's own when missing; their partitions are
//! acknowledged, committed and handed over on a rebalance like the others.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

use crate::{BusError, KafkaSpec, Topic};

mod consumer;
mod offsets;
mod poller;
mod producer;

pub use consumer::{Acker, Consumer};
pub use producer::Producer;

const TRANSPORT: &str = "kafka";

pub(crate) fn unreachable(e: KafkaError) -> BusError {
    BusError::Unreachable {
        transport: TRANSPORT,
        reason: e.to_string(),
    }
}

pub(crate) fn setup(what: &str, e: impl std::fmt::Display) -> BusError {
    BusError::Setup {
        transport: TRANSPORT,
        what: what.to_owned(),
        reason: e.to_string(),
    }
}

/// Routes librdkafka's own logs and transient errors to `debug`: while a broker is away it
/// reports every reconnection attempt, and hb already says once that it is spooling.
#[derive(Clone, Copy, Default)]
pub struct Quiet;

impl ClientContext for Quiet {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        if matches!(
            level,
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical
        ) {
            tracing::error!(facility, "librdkafka: {message}");
        } else {
            tracing::debug!(facility, "librdkafka: {message}");
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal) {
            tracing::error!(%error, reason, "librdkafka fatal error");
        } else {
            tracing::debug!(%error, reason, "librdkafka");
        }
    }
}

impl ConsumerContext for Quiet {}

pub(crate) fn base(spec: &KafkaSpec) -> Result<ClientConfig, BusError> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &spec.brokers);
    let protocol = match (spec.tls, spec.sasl.is_some()) {
        (false, false) => "plaintext",
        (true, false) => "ssl",
        (false, true) => "sasl_plaintext",
        (true, true) => "sasl_ssl",
    };
    config.set("security.protocol", protocol);
    if spec.tls {
        let tls = &spec.tls_options;
        tls.warn_if_insecure(&format_args!("kafka {spec}"));
        match &tls.ca {
            Some(ca) => config.set("ssl.ca.location", ca.path.to_string_lossy()),
            // The OpenSSL linked in (rdkafka's `ssl-vendored`) looks for CA certificates under
            // its own build prefix, not the system's: librdkafka's probe finds the system's
            // store (/etc/ssl/certs, /etc/pki/tls, ...).
            None => config.set("ssl.ca.location", "probe"),
        };
        if let Some(id) = &tls.identity {
            config.set("ssl.certificate.location", id.cert.path.to_string_lossy());
            config.set("ssl.key.location", id.key.path.to_string_lossy());
        }
        if tls.insecure {
            config.set("enable.ssl.certificate.verification", "false");
            config.set("ssl.endpoint.identification.algorithm", "none");
        } else {
            // librdkafka >= 2.0 verifies the host name by default; said here so it stays.
            config.set("enable.ssl.certificate.verification", "true");
            config.set("ssl.endpoint.identification.algorithm", "https");
        }
    }
    if let Some(sasl) = &spec.sasl {
        let password = sasl.password().map_err(|reason| BusError::Setup {
            transport: TRANSPORT,
            what: "SASL authentication".to_owned(),
            reason,
        })?;
        config.set("sasl.mechanism", &sasl.mechanism);
        config.set("sasl.username", &sasl.username);
        config.set("sasl.password", password);
    }
    Ok(config)
}

pub(crate) fn producer(spec: &KafkaSpec) -> Result<FutureProducer<Quiet>, BusError> {
    base(spec)?
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", spec.linger.as_millis().to_string())
        .set("compression.type", &spec.compression)
        .set("message.timeout.ms", spec.timeout.as_millis().to_string())
        .create_with_context(Quiet)
        .map_err(|e| setup("the producer", e))
}

/// Creates the topics hb uses, and the `extra` ones (notifications), that the broker does not
/// have yet (asking first, so that a broker without CreateTopics, or an account without the
/// right to use it, works with topics made by an administrator or the services).
pub(crate) async fn ensure_topics(spec: &KafkaSpec, extra: &[String]) -> Result<(), BusError> {
    let admin: AdminClient<Quiet> = base(spec)?
        .create_with_context(Quiet)
        .map_err(|e| setup("the admin client", e))?;
    let timeout = spec.timeout;
    let (admin, existing) = tokio::task::spawn_blocking(move || {
        let existing: Result<HashMap<String, usize>, KafkaError> =
            admin.inner().fetch_metadata(None, timeout).map(|m| {
                m.topics()
                    .iter()
                    .filter(|t| t.error().is_none() && !t.partitions().is_empty())
                    .map(|t| (t.name().to_owned(), t.partitions().len()))
                    .collect()
            });
        (admin, existing)
    })
    .await
    .map_err(|e| setup("topic metadata", e))?;
    let existing = existing.map_err(unreachable)?;
    let samples = spec.common.name(Topic::Samples);
    let partitions = spec.common.partitions;
    if let Some(&n) = existing.get(&samples)
        && n != partitions as usize
    {
        // Agents write partition `crc32(resource) mod partitions` themselves, so every member
        // must agree with the topic.
        return Err(setup(
            &format!("topic `{samples}`"),
            format!(
                "it has {n} partitions and the transport says partitions={partitions}: set \
                 partitions={n} on every agent and collector, or recreate the topic"
            ),
        ));
    }
    let missing: Vec<String> = Topic::ALL
        .iter()
        .map(|t| spec.common.name(*t))
        .chain(extra.iter().cloned())
        .filter(|n| !existing.contains_key(n))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let topics: Vec<NewTopic<'_>> = missing
        .iter()
        .map(|n| {
            NewTopic::new(
                n,
                partitions as i32,
                TopicReplication::Fixed(spec.replication),
            )
        })
        .collect();
    let options = AdminOptions::new()
        .operation_timeout(Some(timeout))
        .request_timeout(Some(timeout));
    let results = admin
        .create_topics(&topics, &options)
        .await
        .map_err(unreachable)?;
    for result in results {
        match result {
            Ok(name) => {
                tracing::info!(topic = %name, partitions, "kafka topic created")
            }
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => return Err(setup(&format!("topic `{name}`"), code)),
        }
    }
    Ok(())
}

/// Sends and waits for the delivery report.
pub(crate) async fn send(
    producer: &FutureProducer<Quiet>,
    timeout: Duration,
    topic: &str,
    partition: Option<crate::Partition>,
    key: &str,
    payload: &[u8],
    headers: OwnedHeaders,
) -> Result<(), BusError> {
    let mut record = FutureRecord::to(topic)
        .key(key)
        .payload(payload)
        .headers(headers);
    if let Some(p) = partition {
        record = record.partition(p as i32);
    }
    producer
        .send(record, Timeout::After(timeout))
        .await
        .map(drop)
        .map_err(|(e, _)| BusError::NotConfirmed {
            transport: TRANSPORT,
            reason: e.to_string(),
        })
}
