//! Where notifications come from: the exchanges, topics and streams other services publish
//! to in their own format (OpenStack's JSON, DESIGN §3). The bus delivers them as raw bytes,
//! as [`Topic::Notifications`](crate::Topic::Notifications); it never decodes them.

use crate::BusError;

/// Where a collector reads notifications other services publish, for
/// [`Consumer::connect_with`](crate::Consumer::connect_with).
///
/// | transport | `exchanges` | `topics` |
/// |---|---|---|
/// | RabbitMQ | the topic exchanges the services publish to (`nova`, `cinder`, `glance`, `swift`, `neutron`, `openstack`, ...) | the routing keys (binding keys: `*` and `#` work) |
/// | Kafka | unused | topic names (oslo.messaging's Kafka driver publishes to `notifications.info`, ...) |
/// | Redis Streams | unused | stream names |
///
/// On RabbitMQ the collectors share one durable queue, `<prefix>notifications`, bound to every
/// exchange with every routing key: they get their own copy of each notification, whatever
/// else consumes the services' queues. Bindings are only ever added: an exchange or routing
/// key removed from the sources stays bound until the binding is removed on the broker, and
/// collectors started without sources leave the queue filling until it is deleted.
///
/// On Kafka and Redis the topics and streams keep their own names (hb's `prefix` does not
/// apply); the collectors read them with their consumer group, from the beginning the first
/// time the group meets them (as for hb's own streams), and create those that are missing.
///
/// Names must not be empty, and on Kafka and Redis not those of hb's own streams; repeated
/// names count once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationSources {
    /// RabbitMQ exchanges; unused on Kafka and Redis.
    pub exchanges: Vec<String>,
    /// RabbitMQ routing keys, Kafka topics or Redis streams.
    pub topics: Vec<String>,
}

/// OpenStack's defaults: the control exchanges of the services that publish notifications
/// (`openstack` is oslo.messaging's default `control_exchange`), and the `notifications`
/// topic at the `info` and `error` priorities (oslo.messaging publishes to
/// `<topic>.<priority>`; `debug`, `warn`, `critical`, `audit` and `sample` are left out).
impl Default for NotificationSources {
    fn default() -> Self {
        let strings = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect();
        Self {
            exchanges: strings(&["nova", "cinder", "glance", "swift", "neutron", "openstack"]),
            topics: strings(&["notifications.info", "notifications.error"]),
        }
    }
}

impl NotificationSources {
    /// The sources without repeated names, or why they cannot be used on `transport`:
    /// an empty name, no topic (or no exchange when `exchanges` are used), or a topic named
    /// like one of hb's own streams (`own`).
    pub(crate) fn checked(
        &self,
        transport: &'static str,
        uses_exchanges: bool,
        own: &[String],
    ) -> Result<Self, BusError> {
        let refuse = |reason: String| BusError::Setup {
            transport,
            what: "notification sources".to_owned(),
            reason,
        };
        if self.exchanges.iter().any(String::is_empty) {
            let reason = format!("empty exchange name (exchanges: {:?})", self.exchanges);
            return Err(refuse(reason));
        }
        if self.topics.iter().any(String::is_empty) {
            let reason = format!("empty topic name (topics: {:?})", self.topics);
            return Err(refuse(reason));
        }
        if uses_exchanges && self.exchanges.is_empty() {
            return Err(refuse("no exchange to read notifications from".to_owned()));
        }
        if self.topics.is_empty() {
            let reason = "no topic to read notifications from (e.g. notifications.info)";
            return Err(refuse(reason.to_owned()));
        }
        if let Some(name) = self.topics.iter().find(|t| own.contains(t)) {
            let reason = format!("topic `{name}` is one of hb's own streams");
            return Err(refuse(reason));
        }
        Ok(Self {
            exchanges: distinct(&self.exchanges),
            topics: distinct(&self.topics),
        })
    }
}

/// `names` without repeats, in their first order.
fn distinct(names: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        if !out.contains(name) {
            out.push(name.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(exchanges: &[&str], topics: &[&str]) -> NotificationSources {
        NotificationSources {
            exchanges: exchanges.iter().map(|s| (*s).to_owned()).collect(),
            topics: topics.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn refusal(result: Result<NotificationSources, BusError>) -> String {
        let error = result.expect_err("refused");
        assert!(!error.is_retryable(), "{error}");
        error.to_string()
    }

    #[test]
    fn defaults_are_openstack_s() {
        let d = NotificationSources::default();
        assert_eq!(d.exchanges.len(), 6);
        assert!(d.exchanges.iter().any(|e| e == "nova"));
        assert_eq!(d.topics, ["notifications.info", "notifications.error"]);
        assert_eq!(d.checked("rabbit", true, &[]).expect("valid"), d);
    }

    #[test]
    fn empty_names_are_refused() {
        let empty_exchange = sources(&["nova", ""], &["notifications.info"]);
        let message = refusal(empty_exchange.checked("kafka", false, &[]));
        assert_eq!(
            message,
            r#"kafka: cannot set up notification sources: empty exchange name (exchanges: ["nova", ""])"#
        );
        let empty_topic = sources(&["nova"], &["notifications.info", ""]);
        let message = refusal(empty_topic.checked("rabbit", true, &[]));
        assert!(message.contains("empty topic name"), "{message}");
    }

    #[test]
    fn nothing_to_read_is_refused() {
        let no_exchange = sources(&[], &["notifications.info"]);
        let message = refusal(no_exchange.checked("rabbit", true, &[]));
        assert!(message.contains("no exchange"), "{message}");
        assert!(no_exchange.checked("redis", false, &[]).is_ok());
        let no_topic = sources(&["nova"], &[]);
        let message = refusal(no_topic.checked("redis", false, &[]));
        assert!(message.contains("no topic"), "{message}");
    }

    #[test]
    fn hb_s_own_streams_are_refused_and_repeats_dropped() {
        let own = ["hb.samples".to_owned(), "hb.dead".to_owned()];
        let clash = sources(&[], &["notifications.info", "hb.dead"]);
        let message = refusal(clash.checked("kafka", false, &own));
        assert!(
            message.contains("`hb.dead` is one of hb's own"),
            "{message}"
        );
        let repeated = sources(&["nova", "nova"], &["a", "b", "a"]);
        let checked = repeated.checked("kafka", false, &own).expect("valid");
        assert_eq!(checked, sources(&["nova"], &["a", "b"]));
    }
}
