//! What hb-polling loads at start-up: only the C library's parts, never a dynamic OpenSSL or
//! zlib (librdkafka's are linked in, ARCHITECTURE.md "The agent's footprint"), read from the
//! binary's dynamic section with binutils' readelf.

#![cfg(all(target_os = "linux", target_env = "gnu"))]

use std::process::Command;

#[test]
fn the_agent_needs_no_shared_openssl_or_zlib() {
    let bin = env!("CARGO_BIN_EXE_hb-polling");
    let out = Command::new("readelf")
        .args(["--dynamic", "--wide", bin])
        .output()
        .expect("readelf (binutils) runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dynamic = String::from_utf8_lossy(&out.stdout);
    let needed: Vec<&str> = dynamic
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| l.split('[').nth(1)?.split(']').next())
        .collect();
    assert!(
        needed.iter().any(|l| l.starts_with("libc.so")),
        "{needed:?}"
    );
    for lib in ["libssl", "libcrypto", "libz"] {
        assert!(
            !needed.iter().any(|l| l.starts_with(lib)),
            "hb-polling needs {lib} at run time: {needed:?}"
        );
    }
}
