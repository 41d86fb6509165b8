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
