//! The language-neutral vectors in `conformance/`, run against the Rust core.

use std::path::PathBuf;

use serde_json::Value as Json;
use statesync_core::canonical::canonical_bytes;
use statesync_core::digest::{self, NamespaceDigest, Node, U256};
use statesync_core::patch;
use statesync_core::value::{Value, parse};

fn vectors(rel: &str) -> Json {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../conformance")
        .join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file: Json = serde_json::from_str(&text).expect("vector file is JSON");
    assert_eq!(file["format_version"], 1, "{rel}: unknown format_version");
    file
}

fn list<'a>(file: &'a Json, field: &str) -> &'a Vec<Json> {
    file[field]
        .as_array()
        .unwrap_or_else(|| panic!("no list {field}"))
}

fn text(v: &Json) -> &str {
    v.as_str().expect("a string")
}

fn value_of(value: &Json) -> Value {
    // Vector values are JSON in the file: serialize them and parse strictly.
    let json = serde_json::to_vec(value).unwrap();
    parse(&json).expect("a vector value is I-JSON")
}

fn canonical_of(value: &Json) -> Vec<u8> {
    canonical_bytes(&value_of(value))
}

#[test]
fn canonical_valid() {
    let file = vectors("canonical/vectors.json");
    let cases = list(&file, "valid");
    assert!(cases.len() >= 40);
    for case in cases {
        let name = text(&case["name"]);
        let value = parse(text(&case["input"]).as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let bytes = canonical_bytes(&value);
        assert_eq!(hex::encode(&bytes), text(&case["canonical_hex"]), "{name}");
        assert_eq!(
            hex::encode(digest::sha256(&bytes)),
            text(&case["sha256"]),
            "{name}"
        );
        let again = canonical_bytes(&parse(&bytes).unwrap());
        assert_eq!(again, bytes, "{name}: canonical bytes are a fixed point");
    }
}

#[test]
fn canonical_invalid() {
    let file = vectors("canonical/vectors.json");
    let cases = list(&file, "invalid");
    assert!(cases.len() >= 20);
    for case in cases {
        let name = text(&case["name"]);
        let raw = match case.get("input_hex").and_then(Json::as_str) {
            Some(h) => hex::decode(h).unwrap(),
            // serde_json refuses lone surrogates, so such inputs are written as escapes.
            None => text(&case["input"]).as_bytes().to_vec(),
        };
        let err = parse(&raw).expect_err(name);
        assert_eq!(err.kind.code(), text(&case["error"]), "{name}: {err}");
    }
}

fn hash32(v: &Json) -> [u8; 32] {
    hex::decode(text(v)).unwrap().try_into().unwrap()
}

#[test]
fn digest_cases() {
    let file = vectors("digest/vectors.json");
    let empty = NamespaceDigest::new();
    assert_eq!(hex::encode(empty.root()), text(&file["empty_root"]));
    for case in list(&file, "cases") {
        let name = text(&case["name"]);
        let mut pairs = Vec::new();
        for item in list(case, "items") {
            let key = text(&item["key"]).to_owned();
            let canonical = canonical_of(&item["value"]);
            assert_eq!(canonical, text(&item["canonical"]).as_bytes(), "{name}/{key}");
            let vhash = digest::value_hash(&canonical);
            assert_eq!(vhash, hash32(&item["value_hash"]), "{name}/{key}");
            assert_eq!(digest::position(&key), hash32(&item["position"]), "{name}/{key}");
            assert_eq!(
                digest::leaf_value(&key, &vhash),
                U256::from_be_bytes(&hash32(&item["leaf"]))
            );
            pairs.push((key, vhash));
        }
        let built = NamespaceDigest::from_items(pairs.iter().map(|(k, h)| (k.as_str(), h)), |_, _| {});
        let mut incremental = NamespaceDigest::new();
        for (key, vhash) in pairs.iter().rev() {
            incremental.update(key, None, Some(vhash));
        }
        for digest in [&built, &incremental] {
            assert_eq!(digest.count(), case["count"].as_u64().unwrap(), "{name}");
            assert_eq!(hex::encode(digest.root()), text(&case["root"]), "{name}");
            for node in list(case, "nodes") {
                let prefix = text(&node["prefix"]);
                let got = digest.materialized_node(prefix).unwrap_or_else(|| {
                    Node::from_leaves(
                        pairs
                            .iter()
                            .filter(|(k, _)| hex::encode(digest::position(k)).starts_with(prefix))
                            .map(|(k, h)| (k.as_str(), h)),
                    )
                });
                assert_eq!(got.count, node["count"].as_u64().unwrap(), "{name} {prefix}");
                assert_eq!(
                    got.sum,
                    U256::from_be_bytes(&hash32(&node["sum"])),
                    "{name} {prefix}"
                );
                assert_eq!(
                    hex::encode(got.fingerprint()),
                    text(&node["fingerprint"]),
                    "{name} {prefix}"
                );
            }
        }
    }
}

fn apply_patch(case: &Json) -> Result<Value, patch::PatchError> {
    let ops = patch::parse(&value_of(&case["patch"]))?;
    patch::apply(value_of(&case["document"]), &ops, usize::MAX)
}

#[test]
fn patch_vectors() {
    let file = vectors("patch/vectors.json");
    let cases = list(&file, "vectors");
    assert!(cases.len() >= 30);
    for case in cases {
        let name = text(&case["name"]);
        let result = apply_patch(case).unwrap_or_else(|e| panic!("{name}: {e}"));
        let bytes = canonical_bytes(&result);
        assert_eq!(bytes, text(&case["canonical"]).as_bytes(), "{name}");
        assert_eq!(
            canonical_bytes(&parse(&bytes).unwrap()),
            bytes,
            "{name}: a fixed point"
        );
    }
}

#[test]
fn patch_failures() {
    let file = vectors("patch/vectors.json");
    let cases = list(&file, "failures");
    assert!(cases.len() >= 30);
    for case in cases {
        let name = text(&case["name"]);
        let err = apply_patch(case).expect_err(name);
        assert_eq!(err.kind.code(), text(&case["error"]), "{name}: {err}");
        assert_eq!(
            err.index,
            case["op_index"].as_u64().map(|i| i as usize),
            "{name}: {err}"
        );
    }
}

#[test]
fn log_chains() {
    use statesync_core::log::{Change, ChangeOp, GENESIS_HASH};
    let file = vectors("log/vectors.json");
    assert_eq!(hex::encode(GENESIS_HASH), text(&file["genesis_prev_hash"]));
    for chain in list(&file, "chains") {
        let name = text(&chain["name"]);
        let mut prev = hash32(&chain["anchor"]);
        for case in list(chain, "changes") {
            let f = &case["change"];
            let op = ChangeOp::parse(text(&f["op"])).expect("put or delete");
            let mut change = Change {
                rev: f["rev"].as_i64().unwrap(),
                seq: f["seq"].as_i64().unwrap(),
                ns: text(&f["ns"]).to_owned(),
                key: text(&f["key"]).to_owned(),
                op,
                value: (op == ChangeOp::Put).then(|| canonical_of(&f["value"])),
                prev_mod_rev: f["prev_mod_rev"].as_i64().unwrap(),
                create_rev: f["create_rev"].as_i64().unwrap(),
                version: f["version"].as_i64().unwrap(),
                command_id: text(&f["command_id"]).to_owned(),
                ts_ms: f["ts_ms"].as_i64().unwrap(),
                trace: f["trace"].as_str().map(str::to_owned),
                hash: [0; 32],
            };
            assert_eq!(
                hex::encode(change.canonical()),
                text(&case["canonical_hex"]),
                "{name}"
            );
            assert_eq!(hex::encode(prev), text(&case["prev_hash"]), "{name}");
            prev = change.link(&prev);
            assert_eq!(hex::encode(prev), text(&case["hash"]), "{name}");
        }
        assert_eq!(hex::encode(prev), text(&chain["head"]), "{name}");
    }
}
