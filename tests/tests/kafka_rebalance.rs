//! A Kafka rebalance on a single-threaded runtime like the collector's. A revocation waits (up
//! to 3 s) for the messages of the revoked partitions still in the sinks, so that their
//! acknowledgement is committed before the new owner reads. librdkafka runs that callback on
//! the thread that polls the consumer; when that was `recv`, on the runtime's only thread, the
//! wait stopped the very tasks that write and acknowledge: the whole collector froze for the
//! grace period and the wait could never succeed. The consumer now polls on its own thread.
//!
//! (Whether the commit made during the revocation then holds is up to the broker: Apache Kafka
//! accepts commits from the current generation while a rebalance is being prepared; the
//! librdkafka mock cluster used here refuses them, and tansu 0.6 does not serve a group across
//! a rebalance at all, so that part cannot be shown here.)

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hb_bus::{Consumer, Outgoing, Producer, Received, Transport};
use hb_tests::bus::{Broker, Kind};

const MESSAGES: usize = 30;

async fn receive(consumer: &mut Consumer, n: usize) -> Vec<Received> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < n && Instant::now() < deadline {
        got.extend(consumer.recv(n).await.expect("recv"));
    }
    assert_eq!(got.len(), n, "received");
    got
}

/// The current-thread runtime of `#[tokio::test]`, as in `hb-collector`.
#[tokio::test]
async fn a_revocation_waiting_for_the_sinks_does_not_stop_the_runtime() {
    // The mock cluster: tansu 0.6 does not serve a group correctly across a rebalance.
    let (broker, _outage) = Broker::faulty(Kind::Kafka);
    // A heartbeat every 2 s: the first member hears of the rebalance within 2 s of the join.
    let url = broker.direct("prefetch=100&session_timeout_ms=6000");
    let transport = Transport::parse(&url).expect("transport");
    let producer = Producer::new(&transport).expect("producer");
    for i in 0..MESSAGES {
        let payload = format!("message {i}").into_bytes();
        producer
            .send(&Outgoing::samples(
                "test",
                &format!("host-{i}"),
                (i % 3) as u32,
                payload,
            ))
            .await
            .expect("sent");
    }
    producer.close().await;

    // The first member holds every message, unacknowledged, as sinks that are slow would.
    let mut first = Consumer::connect(&transport).await.expect("first member");
    let held = receive(&mut first, MESSAGES).await;

    // Another task on the runtime notes the longest gap between its ticks.
    let longest = Arc::new(AtomicU64::new(0));
    let noted = Arc::clone(&longest);
    let ticker = tokio::spawn(async move {
        let mut last = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let gap = last.elapsed().as_millis() as u64;
            noted.fetch_max(gap, Ordering::Relaxed);
            last = Instant::now();
        }
    });

    // A second member joins; the first's partitions are revoked, with all 30 in its sinks.
    let mut second = Consumer::connect(&transport).await.expect("second member");
    let mut taken_over = Vec::new();
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        first.recv(100).await.expect("recv");
        taken_over.extend(second.recv(100).await.expect("recv"));
    }
    ticker.abort();
    let gap = longest.load(Ordering::Relaxed);
    println!(
        "rebalance: {} of {MESSAGES} held messages taken over; longest stall of the runtime {gap} ms",
        taken_over.len()
    );
    assert!(
        gap < 1500,
        "the runtime stood still for {gap} ms during the revocation"
    );
    // Never acknowledged: the second member read its share of them again.
    assert!(
        !taken_over.is_empty(),
        "the second member was given no partition within 20 s"
    );
    drop(held);
    first.close().await;
    second.close().await;
}
