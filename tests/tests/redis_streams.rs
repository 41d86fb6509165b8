//! Redis Streams stay bounded without losing what nobody read: a full stream refuses the
//! agent's XADD (the agent spools) instead of trimming unread entries, and collectors delete
//! what every group acknowledged.

use std::time::Duration;

use hb_bus::{Producer, Transport};
use hb_tests::bus::{Broker, Kind};
use hb_tests::node::{Node, signed_envelopes, wait_until};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn xlen(stream: &str) -> u64 {
    let client = redis::Client::open("redis://127.0.0.1:6379/0").expect("client");
    let mut c = client.get_connection().expect("connect");
    redis::cmd("XLEN").arg(stream).query(&mut c).expect("XLEN")
}

#[test]
fn a_full_stream_refuses_new_entries_and_keeps_the_unread_ones() {
    let broker = Broker::start(Kind::Redis);
    let url = broker.direct("maxlen=5&partitions=1");
    let transport = Transport::parse(&url).expect("url");
    let (_, messages) = signed_envelopes(&transport, 1, 10, 1);
    let results = runtime().block_on(async {
        let producer = Producer::new(&transport).expect("producer");
        let mut results = Vec::new();
        for m in &messages {
            results.push(producer.send(m).await);
        }
        producer.close().await;
        results
    });
    let refused: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(ToString::to_string))
        .collect();
    println!(
        "maxlen 5: {} confirmed, {} refused",
        10 - refused.len(),
        refused.len()
    );
    assert_eq!(refused.len(), 5, "{refused:?}");
    assert!(refused[0].contains("is full"), "{}", refused[0]);
    assert_eq!(
        xlen(&format!("{}samples.0", broker.prefix)),
        5,
        "the first five are kept"
    );
}

#[test]
fn acknowledged_entries_are_deleted() {
    let broker = Broker::start(Kind::Redis);
    let url = broker.direct("partitions=1");
    let mut collector = Node::collector(&url);
    let transport = Transport::parse(&url).expect("url");
    let (ids, messages) = signed_envelopes(&transport, 1, 50, 2);
    hb_tests::node::send(&transport, &messages);
    let stream = format!("{}samples.0", broker.prefix);
    assert!(
        wait_until(Duration::from_secs(30), || collector.lines() >= ids.len()),
        "{}",
        collector.log()
    );
    // Trimmed at most every 5 s, after an acknowledgement: send one more after that.
    std::thread::sleep(Duration::from_secs(6));
    let (_, more) = signed_envelopes(&transport, 1, 1, 1);
    hb_tests::node::send(&transport, &more);
    let trimmed = wait_until(Duration::from_secs(20), || xlen(&stream) <= 1);
    let left = xlen(&stream);
    assert!(collector.term().success(), "{}", collector.log());
    println!("51 envelopes consumed and acknowledged: {left} left in the stream");
    assert!(trimmed, "{left} entries left:\n{}", collector.log());
}
