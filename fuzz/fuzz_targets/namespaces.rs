//! The agent's namespace loader (`hb_agent::namespaces::load`) never panics on any YAML text as a namespace file (built-in pollsters and plugin definitions).
#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;

/// One directory per process: `<dir>/<namespace>/fuzz.yaml` is rewritten for every input.
static DIR: LazyLock<PathBuf> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join(format!("hb-fuzz-namespaces-{}", std::process::id()));
    for ns in NAMESPACES {
        std::fs::create_dir_all(dir.join(ns)).expect("create the namespaces directory");
    }
    dir
});

const NAMESPACES: [&str; 3] = ["compute", "central", "custom"];

// The first byte picks the namespace; the rest is the file.
fuzz_target!(|data: &[u8]| {
    let Some((&choice, text)) = data.split_first() else {
        return;
    };
    let ns = NAMESPACES[usize::from(choice) % NAMESPACES.len()];
    for other in NAMESPACES {
        let _ = std::fs::remove_file(DIR.join(other).join("fuzz.yaml"));
    }
    std::fs::write(DIR.join(ns).join("fuzz.yaml"), text).expect("write the namespace file");
    match hb_agent::namespaces::load(&DIR, &[ns.to_owned()]) {
        Ok(loaded) => {
            for skipped in &loaded.skipped {
                let _ = skipped.to_string();
            }
        }
        Err(errors) => {
            let _ = errors.to_string();
        }
    }
});
