//! Which transports this build carries: one Cargo feature each (`rabbit`, `kafka`, `redis`,
//! all on by default). Every transport URL parses in every build; one whose transport was left
//! out is refused with [`NotInBuild`] when a producer or consumer is made for it, and
//! configuration loading checks it up front ([`NotInBuild::check`]).

use crate::{BusError, Transport};

/// The transports built in, by feature name, in the order of the features.
pub const BUILT_WITH: &[&str] = &[
    #[cfg(feature = "rabbit")]
    "rabbit",
    #[cfg(feature = "kafka")]
    "kafka",
    #[cfg(feature = "redis")]
    "redis",
];

/// A transport URL whose transport this build does not carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "transport `{scheme}://` is not in this build (built with: {}); rebuild with `--features {feature}`",
    built_with()
)]
pub struct NotInBuild {
    /// The scheme as hb names the transport (`rabbit`, `kafka`, `redis`).
    pub scheme: &'static str,
    /// The Cargo feature that builds it in.
    pub feature: &'static str,
}

impl NotInBuild {
    /// `Err` when `transport` is not built in; `memory://` always is.
    pub fn check(transport: &Transport) -> Result<(), Self> {
        match feature(transport) {
            Some(f) if !BUILT_WITH.contains(&f) => Err(Self {
                scheme: f,
                feature: f,
            }),
            _ => Ok(()),
        }
    }

    /// The refusal for `transport`, which is not built in.
    #[cfg(not(all(feature = "rabbit", feature = "kafka", feature = "redis")))]
    pub(crate) fn of(transport: &Transport) -> Self {
        let f = feature(transport).unwrap_or("memory");
        Self {
            scheme: f,
            feature: f,
        }
    }
}

impl From<NotInBuild> for BusError {
    fn from(e: NotInBuild) -> Self {
        BusError::Setup {
            transport: e.scheme,
            what: "its transport".to_owned(),
            reason: e.to_string(),
        }
    }
}

/// The feature `transport` needs; `None` for `memory://`.
fn feature(transport: &Transport) -> Option<&'static str> {
    match transport {
        Transport::Memory => None,
        Transport::Rabbit(_) => Some("rabbit"),
        Transport::Kafka(_) => Some("kafka"),
        Transport::Redis(_) => Some("redis"),
    }
}

fn built_with() -> String {
    if BUILT_WITH.is_empty() {
        "no bus transport, memory:// only".to_owned()
    } else {
        BUILT_WITH.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_transport_is_built_in_exactly_when_its_feature_is() {
        let urls = [
            (
                "rabbit",
                "rabbit://guest:guest@127.0.0.1:5672/",
                cfg!(feature = "rabbit"),
            ),
            ("kafka", "kafka://127.0.0.1:9092", cfg!(feature = "kafka")),
            ("redis", "redis://127.0.0.1:6379/0", cfg!(feature = "redis")),
        ];
        assert_eq!(NotInBuild::check(&Transport::Memory), Ok(()));
        for (name, url, built) in urls {
            let transport = Transport::parse(url).unwrap();
            let checked = NotInBuild::check(&transport);
            assert_eq!(checked.is_ok(), built, "{name}");
            assert_eq!(BUILT_WITH.contains(&name), built, "{name}");
            if let Err(e) = checked {
                let message = e.to_string();
                assert!(
                    message.starts_with(&format!("transport `{name}://` is not in this build")),
                    "{message}"
                );
                assert!(message.contains(&format!("--features {name}")), "{message}");
                let producer = crate::Producer::new(&transport).err().unwrap().to_string();
                assert!(producer.contains(&message), "{producer}");
            }
        }
    }
}
