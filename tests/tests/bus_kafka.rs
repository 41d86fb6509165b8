//! The bus acceptance scenarios on Kafka (see `hb_tests::scenarios`).

use hb_tests::bus::Kind::Kafka;
use hb_tests::scenarios;

#[test]
fn end_to_end() {
    scenarios::end_to_end(Kafka);
}

#[test]
fn kill9_collector_mid_stream() {
    scenarios::kill9_collector(Kafka);
}

#[test]
fn agent_connection_cut_for_10s() {
    scenarios::outage(Kafka);
}

#[test]
fn agent_restart_replays_spool() {
    scenarios::restart_with_spool(Kafka);
}

#[test]
fn two_collectors_share_the_load() {
    scenarios::two_collectors(Kafka);
}
