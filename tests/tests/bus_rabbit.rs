//! The bus acceptance scenarios on Rabbit (see `hb_tests::scenarios`).

use hb_tests::bus::Kind::Rabbit;
use hb_tests::scenarios;

#[test]
fn end_to_end() {
    scenarios::end_to_end(Rabbit);
}

#[test]
fn kill9_collector_mid_stream() {
    scenarios::kill9_collector(Rabbit);
}

#[test]
fn agent_connection_cut_for_10s() {
    scenarios::outage(Rabbit);
}

#[test]
fn agent_restart_replays_spool() {
    scenarios::restart_with_spool(Rabbit);
}

#[test]
fn two_collectors_share_the_load() {
    scenarios::two_collectors(Rabbit);
}
