//! `conformance/validate/vectors.json` against the Rust validator: the same
//! values accepted and refused, with the same (path, keyword) violations, as
//! the controller's jsonschema-rs.

use std::path::PathBuf;

use serde_json::Value as Json;
use statesync_core::validate::Schema;
use statesync_core::value::{Value, parse};

fn value_of(value: &Json) -> Value {
    // Vector values are JSON in the file: serialize them and parse strictly.
    parse(&serde_json::to_vec(value).unwrap()).expect("a vector value is I-JSON")
}

/// What went wrong with one vector, or None when it passed.
fn run(case: &Json) -> Option<String> {
    let schema = match Schema::compile(&value_of(&case["schema"])) {
        Ok(schema) => schema,
        Err(e) => return Some(e.to_string()),
    };
    let value = value_of(&case["value"]);
    let found: Vec<(String, String)> = schema
        .violations(&value)
        .into_iter()
        .map(|v| (v.path, v.keyword))
        .collect();
    let expected: Vec<(String, String)> = case["violations"]
        .as_array()
        .expect("violations is a list")
        .iter()
        .map(|v| {
            let field = |name: &str| v[name].as_str().expect("a string").to_owned();
            (field("path"), field("keyword"))
        })
        .collect();
    let valid = case["valid"].as_bool().expect("valid is a boolean");
    if found != expected {
        return Some(format!("violations {found:?}, expected {expected:?}"));
    }
    if schema.is_valid(&value) != valid {
        return Some(format!("is_valid is {}, expected {valid}", !valid));
    }
    None
}

#[test]
fn validate_vectors() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../conformance/validate/vectors.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file: Json = serde_json::from_str(&text).expect("vector file is JSON");
    assert_eq!(file["format_version"], 1, "unknown format_version");
    let cases = file["vectors"].as_array().expect("a list of vectors");
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            let name = case["name"].as_str().expect("a name");
            run(case).map(|why| format!("{name}: {why}"))
        })
        .collect();
    println!(
        "validate vectors: {}/{} passed",
        cases.len() - failures.len(),
        cases.len()
    );
    assert!(!cases.is_empty(), "no vectors");
    assert!(failures.is_empty(), "failed vectors:\n{}", failures.join("\n"));
}
