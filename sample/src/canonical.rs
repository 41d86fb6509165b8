//! The canonical JSON encoding that envelope signatures are computed over.
//!
//! Rules, so that any implementation can reproduce the bytes:
//!
//! - UTF-8 JSON with no insignificant whitespace;
//! - object members sorted by key, comparing the keys' UTF-8 bytes;
//! - arrays keep their order;
//! - strings escape only `"`, `\` and control characters (`\n`, `\u001f`, ...), everything
//!   else is written as is;
//! - numbers keep the form they were decoded with: integers as integers, other numbers in
//!   their shortest round-trip decimal form (`1.0`, `0.25`, `1e-7`).
//!
//! The encoding works on a parsed [`serde_json::Value`], so a verifier canonicalises exactly
//! what it received, whatever whitespace or member order the producer used.

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::Value;

/// The canonical bytes of `value`.
pub fn to_vec(value: &Value) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&Sorted(value))
}

/// Serialises a value with every object's members in key order.
struct Sorted<'a>(&'a Value);

impl Serialize for Sorted<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Object(members) => {
                let mut sorted: Vec<_> = members.iter().collect();
                sorted.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                let mut map = s.serialize_map(Some(sorted.len()))?;
                for (k, v) in sorted {
                    map.serialize_entry(k, &Sorted(v))?;
                }
                map.end()
            }
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for v in items {
                    seq.serialize_element(&Sorted(v))?;
                }
                seq.end()
            }
            scalar => scalar.serialize(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_order_and_whitespace_do_not_matter() {
        let a: Value = serde_json::from_str(r#"{ "b": [1, {"z": null, "a": true}], "a": "x\ny" }"#)
            .expect("json");
        let b: Value =
            serde_json::from_str(r#"{"a":"x\ny","b":[1,{"a":true,"z":null}]}"#).expect("json");
        let expected = br#"{"a":"x\ny","b":[1,{"a":true,"z":null}]}"#;
        assert_eq!(to_vec(&a).expect("encode"), expected);
        assert_eq!(to_vec(&b).expect("encode"), expected);
    }

    #[test]
    fn numbers_keep_their_decoded_form() {
        let v: Value =
            serde_json::from_str(r#"[1, 1.0, 0.25, 1e-7, -3, 120000000000.0]"#).expect("json");
        assert_eq!(
            String::from_utf8(to_vec(&v).expect("encode")).expect("utf-8"),
            "[1,1.0,0.25,1e-7,-3,120000000000.0]"
        );
    }

    #[test]
    fn keys_sort_by_bytes() {
        let v: Value = serde_json::from_str(r#"{"é":1,"z":2,"Z":3,"_":4}"#).expect("json");
        assert_eq!(
            String::from_utf8(to_vec(&v).expect("encode")).expect("utf-8"),
            r#"{"Z":3,"_":4,"z":2,"é":1}"#
        );
    }
}
