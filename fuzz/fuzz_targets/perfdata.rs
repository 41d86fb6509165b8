//! The Nagios output and performance data parser never panics, and keeps at most `REASONS_KEPT` reasons.
#![no_main]

use hb_agent::plugins::nagios::perfdata;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let output = perfdata::parse(text);
    assert!(output.reasons.len() <= perfdata::REASONS_KEPT);
    assert!(output.reasons.len() <= output.bad);
    for perf in &output.perfdata {
        let _ = perfdata::kind_and_unit(&perf.uom);
    }
    // The performance data part alone, as the parser reads it after the `|`.
    let mut alone = perfdata::Output::default();
    perfdata::perfdata(text, &mut alone);
});
