//! `Envelope::decode` and `decode_within` never panic on any bytes; what decodes re-encodes (signed and unsigned) to an equal envelope.
#![no_main]

use hb_sample::{Envelope, Limits, Secret};
use libfuzzer_sys::fuzz_target;

/// The secret the signed seeds (fuzz/examples/make_seeds.rs) were made with.
const SECRET: &[u8] = b"hb-fuzz-secret";

fuzz_target!(|data: &[u8]| {
    let Some((&choice, bytes)) = data.split_first() else {
        return;
    };
    let secret = Secret::new(SECRET);
    let with_secret = choice & 1 == 1;
    let decoded = Envelope::decode(bytes, with_secret.then_some(&secret));
    if let Ok(envelope) = &decoded {
        round_trip(envelope, &secret);
    }
    // Small limits: the refusals on the way, and the same envelope when within them.
    let limits = Limits {
        max_bytes: usize::from(choice >> 1) * 64,
        max_samples: usize::from(choice >> 5),
    };
    let within = Envelope::decode_within(bytes, with_secret.then_some(&secret), &limits);
    if let (Ok(a), Ok(b)) = (&decoded, &within) {
        assert_eq!(a, b, "decode_within gave another envelope than decode");
    }
});

fn round_trip(envelope: &Envelope, secret: &Secret) {
    let signed = envelope
        .encode(Some(secret))
        .expect("a decoded envelope encodes");
    let again = Envelope::decode(&signed, Some(secret)).expect("a signed re-encoding decodes");
    assert_eq!(&again, envelope, "signed re-encoding changed the envelope");
    let plain = envelope.encode(None).expect("a decoded envelope encodes");
    let again = Envelope::decode(&plain, None).expect("an unsigned re-encoding decodes");
    assert_eq!(
        &again, envelope,
        "unsigned re-encoding changed the envelope"
    );
}
