//! Hostile input on RabbitMQ and Redis (see `hb_tests::hostile`).

use hb_tests::bus::Kind::{Rabbit, Redis};
use hb_tests::hostile;

#[test]
fn redis_poison_with_a_broken_dead_letter_destination() {
    hostile::poison_with_a_broken_dead_letter_destination(Redis);
}

#[test]
fn rabbit_poison_with_a_broken_dead_letter_destination() {
    hostile::poison_with_a_broken_dead_letter_destination(Rabbit);
}

#[test]
fn redis_large_and_forged_messages() {
    hostile::large_and_forged_messages(Redis, None);
}

#[test]
fn rabbit_large_and_forged_messages() {
    hostile::large_and_forged_messages(Rabbit, None);
}

/// One message of 195 MB (a million samples' worth) is refused unread and the rest flows.
#[test]
fn redis_a_195_mb_message() {
    hostile::large_and_forged_messages(Redis, Some(195));
}

/// RabbitMQ refuses messages over its `max_message_size` (128 MiB by default in 3.x, 16 MiB
/// since 4.0) at the publish: the largest one here is 120 MB.
#[test]
fn rabbit_a_120_mb_message() {
    hostile::large_and_forged_messages(Rabbit, Some(120));
}

#[test]
fn redis_replayed_envelopes() {
    hostile::replayed_envelopes(Redis);
}

#[test]
fn rabbit_replayed_envelopes() {
    hostile::replayed_envelopes(Rabbit);
}

#[test]
fn redis_replays_shared_by_collectors() {
    hostile::replays_shared_by_collectors(Redis);
}

#[test]
fn rabbit_replays_shared_by_collectors() {
    hostile::replays_shared_by_collectors(Rabbit);
}
