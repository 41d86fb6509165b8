//! The bus acceptance scenarios on Redis (see `hb_tests::scenarios`).

use hb_tests::bus::Kind::Redis;
use hb_tests::scenarios;

#[test]
fn end_to_end() {
    scenarios::end_to_end(Redis);
}

#[test]
fn kill9_collector_mid_stream() {
    scenarios::kill9_collector(Redis);
}

#[test]
fn agent_connection_cut_for_10s() {
    scenarios::outage(Redis);
}

#[test]
fn agent_restart_replays_spool() {
    scenarios::restart_with_spool(Redis);
}

#[test]
fn two_collectors_share_the_load() {
    scenarios::two_collectors(Redis);
}
