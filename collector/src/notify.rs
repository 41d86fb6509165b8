//! Notification plugins: other services' notifications turned into samples and events by the
//! meter and event definitions named in `notifications:` (DESIGN §7).

use std::collections::HashSet;
use std::sync::Mutex;

use hb_bus::NotificationSources;
use hb_notification::{Converted, DefinitionError, Definitions, LoadError, Unmatched};
use hb_pipeline::config::{Notifications, UnmatchedEvents};
use hb_sample::{Event, Sample};

use crate::stats::{Stats, add};

/// Distinct (definition, field) misses logged once each before further ones are only counted.
const LOGGED_MISSES: usize = 1000;

/// The definitions in force and where notifications come from.
#[derive(Debug)]
pub struct Notifier {
    /// The loaded definitions.
    pub definitions: Definitions,
    /// What the consumer subscribes to.
    pub sources: NotificationSources,
    /// Misses already logged (each (definition, field) once).
    logged: Mutex<HashSet<(String, String)>>,
}

/// Loads the definitions `config` names: definitions that are wrong come back in the second
/// value, to be reported; a directory that cannot be read is an error.
pub fn load(config: &Notifications) -> Result<(Notifier, Vec<DefinitionError>), LoadError> {
    let unmatched = match config.unmatched_events {
        UnmatchedEvents::Keep => Unmatched::Keep,
        UnmatchedEvents::Drop => Unmatched::Drop,
    };
    let loaded = Definitions::load(Some(&config.meters), Some(&config.events), unmatched)?;
    let notifier = Notifier {
        definitions: loaded.definitions,
        sources: NotificationSources {
            exchanges: config.exchanges.clone(),
            topics: config.topics.clone(),
        },
        logged: Mutex::default(),
    };
    Ok((notifier, loaded.skipped))
}

impl Notifier {
    /// Converts one decoded notification, counting what it became and logging each kind of
    /// miss once.
    pub fn convert(
        &self,
        notification: &hb_notification::Notification,
        samples: &mut Vec<Sample>,
        events: &mut Vec<Event>,
        stats: &Stats,
    ) {
        let Converted {
            samples: made,
            event,
            misses,
        } = self.definitions.convert(notification);
        add(&stats.notifications, 1);
        add(&stats.notification_samples, made.len() as u64);
        samples.extend(made);
        if let Some(event) = event {
            add(&stats.events, 1);
            events.push(event);
        }
        if misses.is_empty() {
            return;
        }
        let total = add(&stats.definition_misses, misses.len() as u64);
        let mut logged = self
            .logged
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for miss in misses {
            let key = (miss.definition.clone(), miss.field.clone());
            if logged.len() < LOGGED_MISSES && logged.insert(key) {
                tracing::warn!(
                    definition = %miss.definition,
                    field = %miss.field,
                    message_id = %miss.message_id,
                    event_type = notification.event_type(),
                    reason = %miss.reason,
                    definition_misses_total = total,
                    "a definition found nothing to extract (logged once per definition and field; \
                     all are counted in definition_misses)"
                );
            }
        }
    }
}
