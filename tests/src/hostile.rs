//! Hostile-input scenarios, run against RabbitMQ and Redis by `tests/hostile.rs`: a collector
//! under attack or misconfiguration keeps consuming the other messages, and counts by reason
//! every message it refuses.

use std::time::Duration;

use hb_bus::{Outgoing, Transport};
use hb_sample::{Envelope, Sample, SampleType, Secret};

use crate::bus::{Broker, Kind, block_on, break_dead_letters};
use crate::node::{Node, coordinated_collector, last, send, signed_envelopes, wait_until};

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
    block_on(async {
        use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
        let (_connection, channel) = broker.rabbit_channel().await;
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

/// An envelope of about `bytes` bytes, signed with the wrong secret: a forgery the collector
/// must refuse without building anything from it.
fn forged(bytes: usize) -> Vec<u8> {
    let at = chrono::Utc::now();
    let one = Sample::new("forged", SampleType::Gauge, "1", 1.0, "forger", at).expect("sample");
    let per = serde_json::to_vec(&one).expect("json").len() + 1;
    let samples = vec![one; bytes / per];
    let producer = hb_sample::Producer {
        host: "forger".into(),
        agent_id: "forger/a".into(),
        namespaces: vec!["test".into()],
    };
    Envelope::samples(producer, 1, samples)
        .encode(Some(&Secret::new("not the shared secret")))
        .expect("encode")
}

/// Memory amplification and size limits: eight forged 15 MB envelopes (under the 16 MiB
/// limit, wrong signature), eight 20 MB messages (over it), then valid envelopes, and, when
/// `huge` is given, one message of that many MB. The forgeries are refused without being
/// parsed, the large ones dead-lettered unread (their first 64 KiB kept), the valid samples
/// all arrive, and the collector's peak RSS stays bounded.
pub fn large_and_forged_messages(kind: Kind, huge: Option<usize>) {
    let broker = Broker::start(kind);
    // RabbitMQ pushes up to `prefetch` deliveries per queue whatever their size (it has no
    // byte prefetch) and the client reads each whole: there, memory is bounded by `prefetch`
    // times the message size, which the README tells operators to size; 4 here, as for
    // `prefetch_bytes` (64 MiB) of `max_message_bytes` (16 MiB) messages.
    let url = broker.direct(
        match (kind, std::env::var("HB_HOSTILE_PREFETCH")) {
            (_, Ok(n)) => format!("prefetch={n}"),
            (Kind::Rabbit, _) => "prefetch=4".into(),
            _ => String::new(),
        }
        .as_str(),
    );
    let mut collector = Node::collector(&url);
    assert!(
        wait_until(Duration::from_secs(30), || connections(&collector) >= 1),
        "{}",
        collector.log()
    );
    let transport = Transport::parse(&url).expect("url");
    let message = |payload: Vec<u8>| Outgoing::samples("test", "big", 0, payload);
    let mut messages = Vec::new();
    if let Some(mb) = huge {
        messages.push(message(vec![b' '; mb << 20]));
    } else {
        let forgery = forged(15 << 20);
        assert!(forgery.len() < 16 << 20 && forgery.len() > 14 << 20);
        messages.extend((0..8).map(|_| message(forgery.clone())));
        messages.extend((0..8).map(|_| message(vec![b'['; 20 << 20])));
    }
    let (refused, oversized) = if huge.is_some() { (0, 1) } else { (8, 8) };
    send(&transport, &messages);
    drop(messages);
    let (ids, envelopes) = signed_envelopes(&transport, 1, 5, 10);
    send(&transport, &envelopes);
    let arrived = wait_until(Duration::from_secs(120), || {
        collector.lines() >= ids.len()
            && collector
                .log()
                .contains(&format!("oversized_total={oversized}"))
    });
    let peak_mb = collector.peak_rss_kib() / 1024;
    assert!(collector.term().success(), "{}", collector.log());
    let log = collector.log();
    let stopped = |key| last(&log, "hb-collector stopped", key);
    println!(
        "{kind:?} large and forged messages (huge {huge:?} MB): {} of {} samples, peak RSS {peak_mb} MB, refused {:?}, oversized {:?}, dead-lettered {:?}, connections {}",
        collector.lines(),
        ids.len(),
        stopped("refused"),
        stopped("oversized"),
        stopped("dead_lettered"),
        connections(&collector),
    );
    assert!(arrived, "{log}");
    assert_eq!(stopped("refused"), Some(refused), "{log}");
    assert_eq!(stopped("oversized"), Some(oversized), "{log}");
    assert_eq!(stopped("dead_lettered"), Some(oversized), "{log}");
    assert_eq!(connections(&collector), 1, "{log}");
    assert!(
        log.contains("bytes refused (max_message_bytes is 16777216)"),
        "{log}"
    );
    // 280 MB of messages (or one of 120 or 195 MB); before the limits, eight 20 MB messages
    // took a collector to 2.4 GB. (On RabbitMQ with `prefetch=100`, all sixteen are pushed
    // at once: 362 MB.) Redis entries over the limit are cut by the reading script, so a
    // 195 MB one costs nothing; RabbitMQ's client reads a message whole into a buffer that
    // grows by doubling, up to 2.5 times its size at once, so there one message's cost is
    // bounded by the broker's `max_message_size` (128 MiB by default in RabbitMQ 3.x, as
    // here, 16 MiB since 4.0; a larger message is refused at the publish).
    let bound = match (kind, huge) {
        (Kind::Rabbit, Some(mb)) => 50 + mb as u64 * 5 / 2,
        _ => 300,
    };
    assert!(
        peak_mb < bound,
        "peak RSS {peak_mb} MB, over {bound}:\n{log}"
    );
}

/// Replays: valid envelopes captured and sent again, and a validly signed one sent eight days
/// ago. The copies and the old one are refused and counted (`replayed`), nothing is written
/// twice, and new envelopes from the same producer still arrive.
pub fn replayed_envelopes(kind: Kind) {
    let broker = Broker::start(kind);
    let url = broker.direct("");
    let mut collector = Node::collector(&url);
    let transport = Transport::parse(&url).expect("url");
    let (ids, captured) = signed_envelopes(&transport, 1, 5, 10);
    send(&transport, &captured);
    assert!(
        wait_until(Duration::from_secs(30), || collector.lines() >= ids.len()),
        "{}",
        collector.log()
    );
    // The broker's copies are acknowledged: now the same bytes again, and an old envelope.
    // Acknowledged once the sink wrote them (a batch timeout at most): then replayed.
    std::thread::sleep(Duration::from_secs(2));
    send(&transport, &captured);
    let at = chrono::Utc::now() - chrono::Duration::days(8);
    let sample =
        Sample::new("load.test", SampleType::Gauge, "1", 1.0, "load-0", at).expect("sample");
    let producer = hb_sample::Producer {
        host: "load-0".into(),
        agent_id: "load-0/old".into(),
        namespaces: vec!["test".into()],
    };
    let mut old = Envelope::samples(producer, 1, vec![sample]);
    old.sent_at = at;
    let old = old
        .encode(Some(&Secret::new(crate::node::SECRET)))
        .expect("encode");
    let partition = hb_bus::partition::of("load-0", transport.common().map_or(1, |c| c.partitions));
    send(
        &transport,
        &[Outgoing::samples("test", "load-0", partition, old)],
    );
    let (new_ids, fresh) = signed_envelopes(&transport, 1, 1, 10);
    send(&transport, &fresh);
    let total = ids.len() + new_ids.len();
    let done = wait_until(Duration::from_secs(30), || {
        collector.lines() >= total && collector.log().contains("replayed_total=6")
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(collector.term().success(), "{}", collector.log());
    let log = collector.log();
    let stopped = |key| last(&log, "hb-collector stopped", key);
    println!(
        "{kind:?} replayed envelopes: {} samples written of {total}, replayed {:?}, refused {:?}",
        collector.lines(),
        stopped("replayed"),
        stopped("refused"),
    );
    assert!(done, "{log}");
    assert_eq!(collector.lines(), total, "nothing written twice:\n{log}");
    assert_eq!(stopped("replayed"), Some(6), "{log}");
    assert!(
        log.contains("was acknowledged already") && log.contains("more than max_age_s"),
        "{log}"
    );
}

/// Replays across collectors: envelopes one collector acknowledged, sent again once it has
/// stopped, are refused by the next one (the numbers are kept in the coordination backend:
/// on Redis the bus's own, on RabbitMQ the `coordination:` Redis), and new envelopes of the
/// same producer still arrive. Kept in each collector's memory, the second would take them.
pub fn replays_shared_by_collectors(kind: Kind) {
    let broker = Broker::start(kind);
    let url = broker.direct("");
    let yaml = coordinated_collector(&url);
    let start = || match kind {
        Kind::Rabbit => Node::collector_with(&yaml),
        _ => Node::collector(&url),
    };
    let transport = Transport::parse(&url).expect("url");
    let (ids, captured) = signed_envelopes(&transport, 1, 5, 10);
    let mut first = start();
    send(&transport, &captured);
    let written = wait_until(Duration::from_secs(30), || first.lines() >= ids.len());
    // Stopping acknowledges what the sink wrote, and records it.
    assert!(first.term().success(), "{}", first.log());
    assert!(written, "{}", first.log());
    let mut second = start();
    assert!(
        wait_until(Duration::from_secs(30), || connections(&second) >= 1),
        "{}",
        second.log()
    );
    send(&transport, &captured);
    let (new_ids, fresh) = signed_envelopes(&transport, 1, 1, 10);
    send(&transport, &fresh);
    let replayed = format!("replayed_total={}", captured.len());
    let done = wait_until(Duration::from_secs(30), || {
        second.lines() >= new_ids.len() && second.log().contains(&replayed)
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(second.term().success(), "{}", second.log());
    let log = second.log();
    println!(
        "{kind:?} replays shared by collectors: the second collector wrote {} samples of {} new, replayed {:?}",
        second.lines(),
        new_ids.len(),
        last(&log, "hb-collector stopped", "replayed"),
    );
    assert!(done, "{log}");
    assert!(log.contains("replay protection on shared=true"), "{log}");
    assert_eq!(
        second.lines(),
        new_ids.len(),
        "nothing written twice:
{log}"
    );
    assert_eq!(
        last(&log, "hb-collector stopped", "replayed"),
        Some(captured.len() as u64),
        "{log}"
    );
}
