//! The meter and event definition loaders (`Definitions::parse`) never panic on any YAML text, and what they load converts a notification without panicking.
#![no_main]

use std::path::Path;
use std::sync::LazyLock;

use hb_notification::{Definitions, Notification, Unmatched};
use libfuzzer_sys::fuzz_target;

/// A notification for the loaded definitions to convert (an instance creation, as Nova sends).
static NOTIFICATION: LazyLock<Notification> = LazyLock::new(|| {
    Notification::decode(include_bytes!(
        "../corpus/notification/instance-create-end.json"
    ))
    .expect("the seed notification decodes")
});

// The input is a meters file, then (after the first NUL byte, if any) an events file.
fuzz_target!(|data: &[u8]| {
    let (meters, events) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &b""[..]),
    };
    let (Ok(meters), Ok(events)) = (std::str::from_utf8(meters), std::str::from_utf8(events))
    else {
        return;
    };
    let meter_files = [(Path::new("meters.d/fuzz.yaml"), meters)];
    let event_files = [(Path::new("events.d/fuzz.yaml"), events)];
    for unmatched in [Unmatched::Keep, Unmatched::Drop] {
        let loaded = Definitions::parse(&meter_files, &event_files, unmatched);
        for skipped in &loaded.skipped {
            let _ = skipped.to_string();
        }
        let converted = loaded.definitions.convert(&NOTIFICATION);
        for sample in &converted.samples {
            assert!(sample.volume().is_finite(), "a non-finite volume");
        }
    }
});
