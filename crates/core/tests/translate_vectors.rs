//! `conformance/translate/vectors.json` run against the Rust core: every list
//! (vectors, failures, invalid, canonical). The file holds translations that
//! are not I-JSON (a default beyond 2^53), so it is read with serde_json and
//! each member handed to the core as text, which the core parses strictly.

use std::path::PathBuf;

use serde_json::Value as Json;
use statesync_core::patch::json_equal;
use statesync_core::translate::{Direction, Translation, TranslationError};
use statesync_core::value::{Value, parse};

fn vectors() -> Json {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../conformance/translate/vectors.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file: Json = serde_json::from_str(&text).expect("the vector file is JSON");
    assert_eq!(file["format_version"], 1, "unknown format_version");
    file
}

fn value_of(json: &Json) -> Value {
    parse(&serde_json::to_vec(json).expect("JSON")).expect("a vector document is I-JSON")
}

fn translation(case: &Json) -> Result<Translation, TranslationError> {
    Translation::parse_json(&serde_json::to_vec(&case["translation"]).expect("JSON"))
}

fn direction(case: &Json) -> Direction {
    match case["direction"].as_str() {
        Some("up") => Direction::Up,
        Some("down") => Direction::Down,
        other => panic!("unknown direction {other:?}"),
    }
}

/// One vector's outcome: None when it passed, else why not.
type Outcome = Option<String>;

/// Runs one vector of a list.
type Runner = fn(&Json) -> Outcome;

fn applied(case: &Json) -> Outcome {
    let translation = match translation(case) {
        Ok(t) => t,
        Err(e) => return Some(format!("does not parse: {e}")),
    };
    let input = value_of(&case["input"]);
    let kept = input.clone();
    match translation.apply(input, direction(case)) {
        Ok(out) if json_equal(&out, &value_of(&case["output"])) => {
            assert_eq!(kept, value_of(&case["input"]));
            None
        }
        Ok(out) => Some(format!("gave {out:?}")),
        Err(e) => Some(format!("failed: {e}")),
    }
}

fn expected_error(case: &Json, result: Result<Value, TranslationError>) -> Outcome {
    assert_eq!(case["error"], "InvalidTranslationError");
    let index = case["op_index"]
        .as_u64()
        .map(|i| usize::try_from(i).expect("an index"));
    let field = case["field"].as_str().expect("a field");
    match result {
        Ok(out) => Some(format!("did not fail, gave {out:?}")),
        Err(e) if (e.op_index, e.field.as_str()) == (index, field) => None,
        Err(e) => Some(format!("failed at the wrong place: {e}")),
    }
}

fn failed(case: &Json) -> Outcome {
    match translation(case) {
        Ok(t) => expected_error(case, t.apply(value_of(&case["input"]), direction(case))),
        Err(e) => Some(format!("does not parse: {e}")),
    }
}

fn refused(case: &Json) -> Outcome {
    expected_error(case, translation(case).map(|t| t.to_value()))
}

fn canonical(case: &Json) -> Outcome {
    let expected = value_of(&case["canonical"]);
    let once = translation(case).map(|t| t.to_value());
    let twice = Translation::parse(&expected).map(|t| t.to_value());
    match (once, twice) {
        (Ok(a), Ok(b)) if json_equal(&a, &expected) && json_equal(&b, &expected) => None,
        other => Some(format!("gave {other:?}")),
    }
}

#[test]
fn translate_vectors() {
    let file = vectors();
    let runs: [(&str, Runner); 4] = [
        ("vectors", applied),
        ("failures", failed),
        ("invalid", refused),
        ("canonical", canonical),
    ];
    let mut total = 0;
    let mut problems = Vec::new();
    for (list, run) in runs {
        let cases = file[list].as_array().unwrap_or_else(|| panic!("no list {list}"));
        assert!(!cases.is_empty(), "{list} is empty");
        for case in cases {
            total += 1;
            if let Some(why) = run(case) {
                problems.push(format!("{list} / {}: {why}", case["name"]));
            }
        }
    }
    println!("translate vectors: {}/{total} passed", total - problems.len());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
