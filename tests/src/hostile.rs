//! Hostile-input scenarios, run against RabbitMQ and Redis by `tests/hostile.rs`: a collector
//! under attack or misconfiguration keeps consuming the other messages, and counts by reason
//! every message it refuses.

use std::time::Duration;

use hb_bus::{Outgoing, Transport};

use crate::bus::{Broker, Kind, break_dead_letters};
use crate::node::{Node, last, send, signed_envelopes, wait_until};

/// Times the collector said it is (re)connected and consuming.
fn connections(collector: &Node) -> usize {
    collector.log().matches(" consuming transport=").count()
}

/// A garbage message whose dead-letter destination is broken (on Redis a key of another
/// type, on RabbitMQ a deleted queue), followed by valid envelopes: the garbage is counted
/// as a dead-letter failure and dropped, everything after it arrives, and the collector
/// neither reconnects in a loop nor counts the garbage more than once.
pub fn poison_with_a_broken_dead_letter_destination(kind: Kind) {
    let broker = Broker::start(kind);
    let url = broker.direct("");
    let mut collector = Node::collector(&url);
    assert!(
        wait_until(Duration::from_secs(30), || connections(&collector) >= 1),
        "{}",
        collector.log()
    );
    break_dead_letters(&broker);
    let transport = Transport::parse(&url).expect("url");
    let garbage = Outgoing::samples("test", "poison", 0, b"not an envelope".to_vec());
    let (ids, envelopes) = signed_envelopes(&transport, 1, 5, 10);
    let mut messages = vec![garbage];
    messages.extend(envelopes);
    send_as_is(&broker, &transport, &messages);
    let arrived = wait_until(Duration::from_secs(30), || collector.lines() >= ids.len());
    // Long enough for a reconnection loop to show (it reconnected ~5 times a second).
    std::thread::sleep(Duration::from_secs(3));
    assert!(collector.term().success(), "{}", collector.log());
    let log = collector.log();
    let stopped = |key| last(&log, "hb-collector stopped", key);
    println!(
        "{kind:?} poison with a broken dead-letter destination: {} of {} samples, {} connections, messages {:?}, dead_letter_failures {:?}",
        collector.lines(),
        ids.len(),
        connections(&collector),
        stopped("messages"),
        stopped("dead_letter_failures"),
    );
    assert!(arrived, "the messages after the poison arrive:\n{log}");
    assert_eq!(connections(&collector), 1, "no reconnection:\n{log}");
    assert_eq!(stopped("dead_letter_failures"), Some(1), "{log}");
    assert_eq!(stopped("dead_lettered"), Some(0), "{log}");
    assert_eq!(stopped("messages"), Some(6), "received once each:\n{log}");
    assert!(
        log.contains("could not be dead-lettered; dropped") && log.contains("message_id="),
        "the drop is logged with the message id:\n{log}"
    );
}

/// Sends `messages` without declaring anything: hb's producer declares every queue on
/// RabbitMQ (the dead-letter one too), which would repair a deliberately broken destination.
fn send_as_is(broker: &Broker, transport: &Transport, messages: &[Outgoing]) {
    let Transport::Rabbit(spec) = transport else {
        return send(transport, messages);
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
        let uri = format!("amqp://guest:guest@127.0.0.1:{}/%2f", broker.port);
        let connection = lapin::Connection::connect(&uri, Default::default())
            .await
            .expect("connect");
        let channel = connection.create_channel().await.expect("channel");
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirms");
        for m in messages {
            let confirm = channel
                .basic_publish(
                    spec.exchange.as_str().into(),
                    m.routing_key.as_str().into(),
                    BasicPublishOptions::default(),
                    &m.payload,
                    lapin::BasicProperties::default(),
                )
                .await
                .expect("publish");
            assert!(confirm.await.expect("confirm").is_ack());
        }
    });
}
