//! Checking an envelope's signature over the bytes as received, before anything is built from
//! them: a forged or unsigned message costs one pass over its bytes, never a parsed document.

use hmac::Mac;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{EnvelopeError, SIGNED_TAIL, Secret, TAIL_LEN};

/// Checks the signature of `bytes`: the HMAC of the bytes as received with the top-level
/// `signature` member (and the comma that joins it to its neighbour) taken out. hb writes the
/// signature last ([`super::Envelope::encode`]), which is checked without parsing; a producer
/// that puts it elsewhere (a sorted dump, as Python's `json.dumps(sort_keys=True)` writes it)
/// costs one pass of the parser that builds nothing.
pub(super) fn verify(secret: &Secret, bytes: &[u8]) -> Result<(), EnvelopeError> {
    let bytes = bytes.trim_ascii_end();
    if verify_as_sent(secret, bytes) {
        return Ok(());
    }
    #[derive(Deserialize)]
    struct Top<'a> {
        #[serde(borrow, default)]
        signature: Option<&'a RawValue>,
    }
    let top: Top<'_> = serde_json::from_slice(bytes)?;
    let Some(raw) = top.signature else {
        return Err(EnvelopeError::MissingSignature);
    };
    let Some((before, after)) = without_member(bytes, raw.get()) else {
        return Err(EnvelopeError::BadSignature);
    };
    let hex = raw.get().trim_matches('"');
    let signature = hex::decode(hex).map_err(|_| EnvelopeError::BadSignature)?;
    let mut mac = secret.mac();
    mac.update(before);
    mac.update(after);
    mac.verify_slice(&signature)
        .map_err(|_| EnvelopeError::BadSignature)
}

/// True when `bytes` end with the signature member as [`super::Envelope::encode`] writes it
/// and the HMAC of the rest (closed with `}`) matches it.
pub(super) fn verify_as_sent(secret: &Secret, bytes: &[u8]) -> bool {
    let Some(head_len) = bytes.len().checked_sub(TAIL_LEN) else {
        return false;
    };
    let (head, tail) = bytes.split_at(head_len);
    if !tail.starts_with(SIGNED_TAIL.as_bytes()) || !tail.ends_with(b"\"}") {
        return false;
    }
    let Ok(signature) = hex::decode(&tail[SIGNED_TAIL.len()..tail.len() - 2]) else {
        return false;
    };
    let mut mac = secret.mac();
    mac.update(head);
    mac.update(b"}");
    mac.verify_slice(&signature).is_ok()
}

/// `bytes` around the member whose value is `value` (a slice of `bytes`): what comes before
/// its key (without the comma that precedes it when it is the last member) and what comes
/// after its value (without the comma that follows it otherwise). `None` when its key is not
/// written plainly as `"signature"`.
fn without_member<'a>(bytes: &'a [u8], value: &str) -> Option<(&'a [u8], &'a [u8])> {
    let start = (value.as_ptr() as usize).checked_sub(bytes.as_ptr() as usize)?;
    let end = start + value.len();
    let key_end = bytes[..start]
        .trim_ascii_end()
        .strip_suffix(b":")?
        .trim_ascii_end();
    let key_start = key_end.strip_suffix(b"\"signature\"")?.len();
    let rest = &bytes[end..];
    if let Some(after) = rest.trim_ascii_start().strip_prefix(b",") {
        return Some((&bytes[..key_start], after.trim_ascii_start()));
    }
    let before = bytes[..key_start].trim_ascii_end();
    let before = before.strip_suffix(b",").unwrap_or(before);
    Some((before, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(secret: &Secret, unsigned: &str) -> String {
        super::super::sign(secret, unsigned.as_bytes())
    }

    #[test]
    fn a_signature_anywhere_at_the_top_verifies_over_the_rest() {
        let secret = Secret::new("s");
        let rest = r#"{"a":1,"b":[1,2],"c":"x"}"#;
        let sig = signed(&secret, rest);
        for text in [
            format!(r#"{{"a":1,"b":[1,2],"c":"x","signature":"{sig}"}}"#),
            format!(r#"{{"a":1,"b":[1,2],"signature":"{sig}","c":"x"}}"#),
            format!(r#"{{"signature":"{sig}","a":1,"b":[1,2],"c":"x"}}"#),
            format!("{{\"a\":1,\"b\":[1,2],\"c\":\"x\",\"signature\":\"{sig}\"}}\n"),
        ] {
            verify(&secret, text.as_bytes()).unwrap_or_else(|e| panic!("{text}: {e}"));
        }
    }

    #[test]
    fn refusals_are_classified_without_building_anything() {
        let secret = Secret::new("s");
        let rest = r#"{"a":1}"#;
        let sig = signed(&secret, rest);
        let check = |text: &str| verify(&secret, text.as_bytes());
        assert!(matches!(
            check(r#"{"a":1}"#),
            Err(EnvelopeError::MissingSignature)
        ));
        assert!(matches!(
            check(&format!(r#"{{"a":2,"signature":"{sig}"}}"#)),
            Err(EnvelopeError::BadSignature)
        ));
        assert!(matches!(
            check(r#"{"a":1,"signature":"zz"}"#),
            Err(EnvelopeError::BadSignature)
        ));
        assert!(matches!(
            check(&format!(
                r#"{{"a":1,"signature":"{sig}","signature":"{sig}"}}"#
            )),
            Err(EnvelopeError::Malformed(_))
        ));
        assert!(matches!(
            check(&format!(r#"{{"a":1,"\u0073ignature":"{sig}"}}"#)),
            Err(EnvelopeError::BadSignature)
        ));
        assert!(matches!(
            check("not json"),
            Err(EnvelopeError::Malformed(_))
        ));
        // A nested `signature` is not the envelope's.
        assert!(matches!(
            check(&format!(r#"{{"a":{{"signature":"{sig}"}}}}"#)),
            Err(EnvelopeError::MissingSignature)
        ));
    }
}
