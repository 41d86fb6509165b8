//! Link layout of the release `hb-polling`: the functions a polling cycle runs, placed together.
//!
//! The kernel maps a binary's code in 64 KiB runs around each page it touches, so what a process
//! holds of its 16 MB of code depends on how spread out the code it runs is, not on how much of it
//! runs. `hot-text.ld` is a linker script that places first the functions one start-up and a
//! few cycles of the compute and central namespaces executed (written by `scripts/agent-layout`,
//! which profiles the release binary under callgrind): a cycle then holds about 3 MB of code
//! instead of 6. Functions are named without the hashes that change with a crate's metadata
//! where the name alone tells the function (scripts/agent-layout says when not); an entry that
//! no longer matches (the code changed since) is ignored, so a stale layout costs
//! memory, never a build: `scripts/bench-rss` says how much still matches.
//!
//! Also packs the relative relocations (DT_RELR), which shrinks the part of the binary the
//! dynamic loader reads at start-up from 585 kB to 15 kB, when the build runs on glibc 2.36 or
//! later: the binary then needs glibc 2.36 or later wherever it runs.
//!
//! Only for release builds on x86_64 Linux with glibc, where rustc links with lld by default
//! (GNU ld reads the same script); `HB_LINK_LAYOUT=0` builds without either, e.g. for another
//! linker or an older glibc where the binary is to run.

use std::env;

fn main() {
    println!("cargo::rerun-if-env-changed=HB_LINK_LAYOUT");
    let var = |name: &str| env::var(name).unwrap_or_default();
    let wanted = var("HB_LINK_LAYOUT") != "0"
        && var("PROFILE") == "release"
        && var("CARGO_CFG_TARGET_ARCH") == "x86_64"
        && var("CARGO_CFG_TARGET_OS") == "linux"
        && var("CARGO_CFG_TARGET_ENV") == "gnu";
    if !wanted {
        return;
    }
    let mut args = Vec::new();
    if build_glibc().is_some_and(|version| version >= (2, 36)) {
        args.push("-Wl,-z,pack-relative-relocs".to_owned());
    }
    let script = format!("{}/hot-text.ld", var("CARGO_MANIFEST_DIR"));
    if std::path::Path::new(&script).exists() {
        println!("cargo::rerun-if-changed=hot-text.ld");
        args.push(format!("-Wl,-T,{script}"));
    }
    for arg in args {
        println!("cargo::rustc-link-arg-bin=hb-polling={arg}");
    }
}

/// The version of the glibc this build runs on (`getconf GNU_LIBC_VERSION`: "glibc 2.36").
fn build_glibc() -> Option<(u32, u32)> {
    let out = std::process::Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let (major, minor) = text.trim().strip_prefix("glibc ")?.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}
