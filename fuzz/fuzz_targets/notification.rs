//! `Notification::decode` never panics, and a decoded notification converts through the repository's meters.d/ and events.d/ into finite, named samples.
#![no_main]

use std::path::Path;
use std::sync::LazyLock;

use hb_notification::{Definitions, Notification, Unmatched};
use libfuzzer_sys::fuzz_target;

static DEFINITIONS: LazyLock<Definitions> = LazyLock::new(|| {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let loaded = Definitions::load(
        Some(&repo.join("meters.d")),
        Some(&repo.join("events.d")),
        Unmatched::Keep,
    )
    .expect("meters.d/ and events.d/ load");
    assert!(
        loaded.skipped.is_empty(),
        "definitions skipped: {:?}",
        loaded.skipped
    );
    loaded.definitions
});

fuzz_target!(|data: &[u8]| {
    let Ok(notification) = Notification::decode(data) else {
        return;
    };
    let _ = (
        notification.message_id(),
        notification.timestamp(),
        notification.project_id(),
    );
    let converted = DEFINITIONS.convert(&notification);
    for sample in &converted.samples {
        assert!(!sample.name.is_empty(), "a sample without a name");
        assert!(sample.volume().is_finite(), "a non-finite volume");
        serde_json::to_vec(sample).expect("a converted sample serialises");
    }
    if let Some(event) = &converted.event {
        serde_json::to_vec(event).expect("a converted event serialises");
    }
});
