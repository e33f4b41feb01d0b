//! The UCloud request signature: SHA-1 over the sorted parameters followed by the private key.
//!
//! Every parameter except `Signature` takes part, sorted by name in byte
//! order, each written as its name immediately followed by its value. Values
//! from a form or query string are used as decoded text. Values from a JSON
//! body are flattened: a string as itself, a number as its JSON text, a bool
//! as `true`/`false`, null as nothing, an array as its elements in order and
//! an object as its own sorted name+value pairs.

use std::collections::BTreeMap;

use serde_json::Value;
use sha1::{Digest, Sha1};

/// The parameter that carries the signature and is left out of it.
pub const SIGNATURE_PARAM: &str = "Signature";

/// Lowercase hex SHA-1 signature of `params` under `private_key`.
pub fn sign(params: &BTreeMap<String, Value>, private_key: &str) -> String {
    let mut hasher = Sha1::new();
    let mut text = String::new();
    for (name, value) in params {
        if name == SIGNATURE_PARAM {
            continue;
        }
        text.clear();
        text.push_str(name);
        flatten_into(value, &mut text);
        hasher.update(text.as_bytes());
    }
    hasher.update(private_key.as_bytes());
    hex::encode(hasher.finalize())
}

/// Compares in constant time so the signature cannot be guessed byte by byte.
pub fn verify(params: &BTreeMap<String, Value>, private_key: &str, given: &str) -> bool {
    use subtle::ConstantTimeEq;
    let expected = sign(params, private_key);
    let given = given.to_ascii_lowercase();
    expected.len() == given.len() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

fn flatten_into(value: &Value, out: &mut String) {
    match value {
        Value::Null => {}
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => out.push_str(s),
        Value::Array(items) => items.iter().for_each(|v| flatten_into(v, out)),
        Value::Object(map) => {
            let sorted: BTreeMap<&String, &Value> = map.iter().collect();
            for (k, v) in sorted {
                out.push_str(k);
                flatten_into(v, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn strings(pairs: &[(&str, &str)]) -> BTreeMap<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect()
    }

    #[test]
    fn ucloud_public_test_vector() {
        let params = strings(&[
            ("Action", "DescribeUHostInstance"),
            ("Region", "cn-bj2"),
            ("Limit", "10"),
            ("PublicKey", "ucloudsomeone@example.com1296235120854146120"),
        ]);
        let sig = sign(&params, "46f09bb9fab4f12dfc160dae12273d5332b5debe");
        assert_eq!(sig, "cba5cf5ec4d4233d206b1b54951e3787350a642f");
        assert!(verify(
            &params,
            "46f09bb9fab4f12dfc160dae12273d5332b5debe",
            "CBA5CF5EC4D4233D206B1B54951E3787350A642F"
        ));
        assert!(!verify(&params, "wrong", &sig));
    }

    #[test]
    fn signature_param_is_left_out() {
        let mut params = strings(&[("Action", "X")]);
        let plain = sign(&params, "k");
        params.insert("Signature".into(), Value::String("anything".into()));
        assert_eq!(sign(&params, "k"), plain);
    }

    #[test]
    fn json_values_flatten_without_indexes() {
        let mut params = BTreeMap::new();
        params.insert("Action".to_string(), json!("ListPMV2"));
        params.insert("Limit".to_string(), json!(10));
        params.insert("PMIDs".to_string(), json!(["a", "b"]));
        params.insert("Tags".to_string(), json!([{"Value": "v", "Key": "k"}]));
        params.insert("On".to_string(), json!(true));
        let flat = strings(&[
            ("Action", "ListPMV2"),
            ("Limit", "10"),
            ("On", "true"),
            ("PMIDs", "ab"),
            ("Tags", "KeykValuev"),
        ]);
        assert_eq!(sign(&params, "k"), sign(&flat, "k"));
    }
}
