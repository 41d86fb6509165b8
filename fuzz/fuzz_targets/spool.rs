//! The agent's spool reader (`Spool::open` + `front`) never panics on any entry file; an entry it reads is pushed back and read again unchanged.
#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;

use hb_agent::spool::Spool;
use libfuzzer_sys::fuzz_target;

/// One directory per process, emptied for every input.
static DIR: LazyLock<PathBuf> =
    LazyLock::new(|| std::env::temp_dir().join(format!("hb-fuzz-spool-{}", std::process::id())));

// First byte, bit 0 clear: the rest is the entry file as is. Bit 0 set: the rest is an
// entry's body, given a valid header (bit 1 picks the `HBSPOOL1` format) so that the
// framing past the checksum is reached.
fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let file = if choice & 1 == 0 {
        rest.to_vec()
    } else {
        let magic: &[u8] = if choice & 2 == 0 {
            b"HBSPOOL2"
        } else {
            b"HBSPOOL1"
        };
        let mut file = magic.to_vec();
        file.extend_from_slice(&crc32fast::hash(rest).to_le_bytes());
        file.extend_from_slice(&(rest.len() as u32).to_le_bytes());
        file.extend_from_slice(rest);
        file
    };
    let dir = &*DIR;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("create the spool directory");
    std::fs::write(dir.join("00000000000000000000.env"), &file).expect("write the entry");
    let mut spool = Spool::open(dir, 1 << 30).expect("open the spool");
    let read = spool.front(10);
    assert!(read.len() <= 1);
    let Some(Ok(message)) = read.into_iter().next() else {
        return;
    };
    // Written by push, read by front: the same message.
    spool.pop_front(1);
    assert!(spool.is_empty());
    spool.push(&message).expect("push");
    let mut again = spool.front(10);
    assert_eq!(again.len(), 1, "a pushed entry did not read back");
    let again = match again.remove(0) {
        Ok(again) => again,
        Err(e) => panic!("a pushed entry did not read back: {e}"),
    };
    assert_eq!(again.routing_key, message.routing_key);
    assert_eq!(again.key, message.key);
    assert_eq!(again.partition, message.partition);
    assert_eq!(again.payload, message.payload);
});
