//! Partitioned consumption on every broker (see `hb_tests::partitions`): stateful
//! transformers stay exact with several collectors, through a `kill -9` and a newcomer.

use hb_tests::bus::Kind;
use hb_tests::partitions::delta_and_rate_across_moves;

#[test]
fn rabbit_delta_and_rate_across_moves() {
    delta_and_rate_across_moves(Kind::Rabbit);
}

#[test]
fn redis_delta_and_rate_across_moves() {
    delta_and_rate_across_moves(Kind::Redis);
}

#[test]
fn kafka_delta_and_rate_across_moves() {
    delta_and_rate_across_moves(Kind::Kafka);
}
