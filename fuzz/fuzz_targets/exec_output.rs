//! The exec pollster's output parser never panics; what it accepts is a finite, named, declared sample.
#![no_main]

use hb_agent::plugins::exec::output;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&choice, stdout)) = data.split_first() else {
        return;
    };
    let meters: Vec<glob::Pattern> = match choice % 3 {
        0 => vec![glob::Pattern::new("*").unwrap()],
        1 => vec![
            glob::Pattern::new("app.*").unwrap(),
            glob::Pattern::new("queue.depth").unwrap(),
        ],
        _ => Vec::new(),
    };
    let cut = choice & 0x80 != 0;
    let parsed = output::parse(stdout, &meters, cut);
    let lines = stdout.split(|b| *b == b'\n').count();
    assert!(parsed.measurements.len() + parsed.bad <= lines);
    assert!(parsed.reasons.len() <= output::REASONS_KEPT.min(parsed.bad));
    for m in &parsed.measurements {
        assert!(m.volume.is_finite(), "accepted a non-finite volume");
        assert!(
            meters.iter().any(|p| p.matches(&m.meter)),
            "undeclared meter {}",
            m.meter
        );
    }
    let _ = parsed.summary();
});
