//! `hb_pipeline::Config::parse` never panics on any UTF-8 text (a valid config or a list of errors).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = hb_pipeline::Config::parse(text, Path::new("pipeline.yaml"), |_| None);
});
