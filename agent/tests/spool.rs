//! The on-disk spool: order, bound, restart, corruption.

use hb_agent::spool::{Spool, SpoolError};
use hb_bus::Outgoing;

fn message(n: usize) -> Outgoing {
    Outgoing::samples(
        "compute",
        "host-a",
        5,
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
    assert_eq!(first.routing_key, "samples.5.compute");
    assert_eq!(first.key, "host-a");
    assert_eq!(first.partition, Some(5));
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
    let size = 8 + 8 + "samples.5.compute\nhost-a\n5\n{\"envelope\":0}".len() as u64;
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

#[test]
fn an_entry_of_the_format_before_partitions_is_still_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let body = b"samples.compute\nhost-a\n{\"envelope\":0}";
    let mut file = b"HBSPOOL1".to_vec();
    file.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    file.extend_from_slice(&(body.len() as u32).to_le_bytes());
    file.extend_from_slice(body);
    std::fs::write(dir.path().join(format!("{:020}.env", 0)), file).expect("write");
    let mut spool = Spool::open(dir.path(), 1_000_000).expect("open");
    let old = spool.front(1).pop().expect("one").expect("readable");
    assert_eq!(
        (old.routing_key.as_str(), old.key.as_str()),
        ("samples.compute", "host-a")
    );
    assert_eq!(old.partition, None, "sent to the partition of its host");
    assert_eq!(
        old.partition_in(16),
        Some(hb_bus::partition::of("host-a", 16))
    );
}
