//! The on-disk spool: order, bound, restart, corruption.

use hb_agent::spool::{Spool, SpoolError};
use hb_bus::Outgoing;

fn message(n: usize) -> Outgoing {
    Outgoing::samples(
        "compute",
        "host-a",
        format!("{{\"envelope\":{n}}}").into_bytes(),
    )
}

fn payloads(spool: &mut Spool) -> Vec<String> {
    spool
        .front(100)
        .into_iter()
        .map(|m| String::from_utf8(m.expect("readable").payload).expect("utf8"))
        .collect()
}

#[test]
fn entries_come_back_in_order_and_survive_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spool = Spool::open(dir.path(), 1_000_000).expect("open");
    for n in 0..3 {
        assert_eq!(spool.push(&message(n)).expect("push"), 0);
    }
    drop(spool);
    let mut spool = Spool::open(dir.path(), 1_000_000).expect("reopen");
    assert_eq!(spool.len(), 3);
    let first = spool.front(1).pop().expect("one").expect("readable");
    assert_eq!(first.routing_key, "samples.compute");
    assert_eq!(first.key, "host-a");
    spool.pop_front();
    spool.push(&message(3)).expect("push");
    assert_eq!(
        payloads(&mut spool),
        ["{\"envelope\":1}", "{\"envelope\":2}", "{\"envelope\":3}"]
    );
}

#[test]
fn a_full_spool_drops_the_oldest_and_says_how_many() {
    let dir = tempfile::tempdir().expect("tempdir");
    let size = 8 + 8 + "samples.compute\nhost-a\n{\"envelope\":0}".len() as u64;
    let mut spool = Spool::open(dir.path(), size * 3).expect("open");
    let dropped: usize = (0..5).map(|n| spool.push(&message(n)).expect("push")).sum();
    assert_eq!(dropped, 2);
    assert_eq!(spool.bytes(), size * 3);
    assert_eq!(
        payloads(&mut spool),
        ["{\"envelope\":2}", "{\"envelope\":3}", "{\"envelope\":4}"]
    );
}

#[test]
fn a_corrupt_entry_is_moved_aside_and_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spool = Spool::open(dir.path(), 1_000_000).expect("open");
    for n in 0..3 {
        spool.push(&message(n)).expect("push");
    }
    let middle = dir.path().join(format!("{:020}.env", 1));
    let mut bytes = std::fs::read(&middle).expect("read");
    let last = bytes.len() - 2;
    bytes[last] ^= 0x20;
    std::fs::write(&middle, bytes).expect("write");
    std::fs::write(dir.path().join(format!("{:020}.env", 7)), b"HBSPOOL1 short").expect("write");

    let mut spool = Spool::open(dir.path(), 1_000_000).expect("reopen");
    let front = spool.front(10);
    let reasons: Vec<String> = front
        .iter()
        .filter_map(|r| match r {
            Err(SpoolError::Corrupt { reason, .. }) => Some(reason.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(reasons, ["checksum mismatch", "bad header"]);
    assert_eq!(spool.len(), 2);
    assert_eq!(
        payloads(&mut spool),
        ["{\"envelope\":0}", "{\"envelope\":2}"]
    );
    assert!(middle.with_extension("env.corrupt").exists());
}
