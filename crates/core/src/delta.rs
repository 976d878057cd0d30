//! Deltas on the sync stream: a JSON Patch from a key's previous value to its
//! new one, sent with the SHA-256 of the result so that a worker holding
//! another base notices instead of keeping a wrong value.
//!
//! [`make`] runs in the controller. It diffs two canonical values and keeps
//! the delta only when it is shorter than the new value and applying it to the
//! old one gives exactly the new canonical bytes, so a delta can never carry a
//! wrong value. [`diff`] is deterministic and simple: objects member by member,
//! arrays by their common head and tail and position by position in between,
//! and a container whose ops would be longer than replacing it is replaced.
//! Any RFC 6902 implementation can apply its output; [`apply`] is the worker's.

use std::collections::{HashMap, HashSet};
use std::fmt;

use crate::canonical::{canonical_bytes, canonical_len, string_len};
use crate::digest::sha256;
use crate::patch::{self, Op, PatchError, Pointer, json_equal, op_len, write_canonical_patch};
use crate::value::{self, Value, ValueError};

/// The ops that turn `old` into `new` (none when they are JSON-equal).
pub fn diff(old: &Value, new: &Value) -> Vec<Op> {
    let mut ops = Vec::new();
    diff_into(old, new, &mut Vec::new(), &mut ops);
    ops
}

/// The delta from canonical `old` to canonical `new`, or None when sending
/// `new` itself is better (the delta would not be shorter) or the delta does
/// not rebuild `new` byte for byte. Errors only when an input is not I-JSON.
pub fn make(old: &[u8], new: &[u8]) -> Result<Option<Vec<u8>>, ValueError> {
    let base = value::parse(old)?;
    let ops = diff(&base, &value::parse(new)?);
    let mut encoded = Vec::new();
    write_canonical_patch(&ops, &mut encoded);
    if encoded.len() >= new.len() {
        return Ok(None);
    }
    // No op of a diff adds more than its own length, so no intermediate
    // result is longer than the base and the delta together.
    let limit = old.len() + encoded.len();
    Ok(match patch::apply(base, &ops, limit) {
        Ok(result) if canonical_bytes(&result) == new => Some(encoded),
        _ => None,
    })
}

/// Why a delta was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeltaError {
    /// The base is not an I-JSON value.
    Base(ValueError),
    /// The delta is not JSON (or not I-JSON).
    Delta(ValueError),
    /// The delta is not a JSON Patch, or does not apply to the base.
    Patch(PatchError),
    /// The result's SHA-256 is not the one sent with the delta: the base was another value.
    HashMismatch,
}

impl fmt::Display for DeltaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeltaError::Base(e) => write!(f, "the base is not an I-JSON value: {e}"),
            DeltaError::Delta(e) => write!(f, "the delta is not I-JSON text: {e}"),
            DeltaError::Patch(e) => write!(f, "{e}"),
            DeltaError::HashMismatch => f.write_str("the result does not match its hash (wrong base)"),
        }
    }
}

impl std::error::Error for DeltaError {}

/// Applies the delta (JSON Patch text) to canonical `base` and returns the
/// canonical result, checked against `value_hash` (its SHA-256). There is no
/// size limit: the controller that sent the hash has already accepted the value.
pub fn apply(base: &[u8], delta: &[u8], value_hash: &[u8]) -> Result<Vec<u8>, DeltaError> {
    let doc = value::parse(base).map_err(DeltaError::Base)?;
    let ops = patch::parse(&value::parse(delta).map_err(DeltaError::Delta)?).map_err(DeltaError::Patch)?;
    let result = canonical_bytes(&patch::apply(doc, &ops, usize::MAX).map_err(DeltaError::Patch)?);
    if sha256(&result)[..] != *value_hash {
        return Err(DeltaError::HashMismatch);
    }
    Ok(result)
}

/// Appends the ops from `old` to `new` at the tokens `at`; returns their
/// length in the encoded patch (each op with its separating comma).
fn diff_into(old: &Value, new: &Value, at: &mut Vec<String>, ops: &mut Vec<Op>) -> usize {
    let start = ops.len();
    let len = match (old, new) {
        (Value::Object(a), Value::Object(b)) => diff_objects(a, b, at, ops),
        (Value::Array(a), Value::Array(b)) => diff_arrays(a, b, at, ops),
        _ if json_equal(old, new) => return 0,
        _ => return replace(new, at, ops),
    };
    if len == 0 {
        return 0;
    }
    // {"op":"replace","path":...,"value":...} and its comma.
    let replacing = 2 + 5 + string_len("replace") + 1 + 7 + path_len(at) + 1 + 8 + canonical_len(new) + 1;
    if replacing > len {
        return len;
    }
    ops.truncate(start);
    replace(new, at, ops)
}

fn path_len(at: &[String]) -> usize {
    string_len(Pointer::from_tokens(at.to_vec()).as_str())
}

fn push(op: Op, ops: &mut Vec<Op>) -> usize {
    let len = op_len(&op) + 1;
    ops.push(op);
    len
}

fn replace(new: &Value, at: &[String], ops: &mut Vec<Op>) -> usize {
    let path = Pointer::from_tokens(at.to_vec());
    push(
        Op::Replace {
            path,
            value: new.clone(),
        },
        ops,
    )
}

fn diff_objects(
    a: &[(String, Value)],
    b: &[(String, Value)],
    at: &mut Vec<String>,
    ops: &mut Vec<Op>,
) -> usize {
    let in_b: HashMap<&str, &Value> = b.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let in_a: HashSet<&str> = a.iter().map(|(k, _)| k.as_str()).collect();
    let mut len = 0;
    for (key, old) in a {
        at.push(key.clone());
        len += match in_b.get(key.as_str()) {
            Some(new) => diff_into(old, new, at, ops),
            None => push(
                Op::Remove {
                    path: Pointer::from_tokens(at.clone()),
                },
                ops,
            ),
        };
        at.pop();
    }
    for (key, new) in b.iter().filter(|(k, _)| !in_a.contains(k.as_str())) {
        at.push(key.clone());
        len += push(
            Op::Add {
                path: Pointer::from_tokens(at.clone()),
                value: new.clone(),
            },
            ops,
        );
        at.pop();
    }
    len
}

fn diff_arrays(a: &[Value], b: &[Value], at: &mut Vec<String>, ops: &mut Vec<Op>) -> usize {
    let head = a.iter().zip(b).take_while(|(x, y)| json_equal(x, y)).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| json_equal(x, y))
        .count();
    let (a, b) = (&a[head..a.len() - tail], &b[head..b.len() - tail]);
    let paired = a.len().min(b.len());
    let mut len = 0;
    for (i, (old, new)) in a.iter().zip(b).enumerate() {
        at.push((head + i).to_string());
        len += diff_into(old, new, at, ops);
        at.pop();
    }
    // Surplus old elements go one by one from the same index; missing new
    // ones are inserted in order after the paired ones.
    at.push((head + paired).to_string());
    for _ in paired..a.len() {
        len += push(
            Op::Remove {
                path: Pointer::from_tokens(at.clone()),
            },
            ops,
        );
    }
    at.pop();
    for (i, new) in b.iter().enumerate().skip(paired) {
        at.push((head + i).to_string());
        len += push(
            Op::Add {
                path: Pointer::from_tokens(at.clone()),
                value: new.clone(),
            },
            ops,
        );
        at.pop();
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(text: &str) -> Vec<u8> {
        canonical_bytes(&value::parse(text.as_bytes()).unwrap())
    }

    fn delta(old: &str, new: &str) -> Option<String> {
        make(&canonical(old), &canonical(new))
            .unwrap()
            .map(|d| String::from_utf8(d).unwrap())
    }

    #[test]
    fn small_changes_give_small_deltas() {
        let pad = "x".repeat(200);
        let cases = [
            (
                format!(r#"{{"a": 1, "pad": "{pad}"}}"#),
                format!(r#"{{"a": 2, "pad": "{pad}"}}"#),
                r#"[{"op":"replace","path":"/a","value":2}]"#,
            ),
            (
                format!(r#"{{"items": [1, 2, 3, 4, 5, 6, 7, 8, 9], "pad": "{pad}"}}"#),
                format!(r#"{{"items": [1, 2, 3, 4, 0, 5, 6, 7, 8, 9], "pad": "{pad}"}}"#),
                r#"[{"op":"add","path":"/items/4","value":0}]"#,
            ),
            (
                format!(r#"{{"items": [1, 2, 3, 4, 5, 6, 7, 8, 9], "pad": "{pad}"}}"#),
                format!(r#"{{"items": [2, 3, 4, 5, 6, 7, 8, 9], "pad": "{pad}"}}"#),
                r#"[{"op":"remove","path":"/items/0"}]"#,
            ),
            (
                format!(r#"{{"old": 1, "a/b": {{"c~": [true]}}, "pad": "{pad}"}}"#),
                format!(r#"{{"a/b": {{"c~": [false]}}, "new": null, "pad": "{pad}"}}"#),
                r#"[{"op":"replace","path":"/a~1b/c~0","value":[false]},{"op":"remove","path":"/old"},{"op":"add","path":"/new","value":null}]"#,
            ),
        ];
        for (old, new, expected) in cases {
            assert_eq!(delta(&old, &new).as_deref(), Some(expected), "{old} -> {new}");
        }
    }

    #[test]
    fn a_container_is_replaced_when_that_is_shorter() {
        let ops = diff(
            &value::parse(br#"{"a": [1, 2, 3]}"#).unwrap(),
            &value::parse(br#"{"a": [4, 5, 6]}"#).unwrap(),
        );
        assert_eq!(ops.len(), 1);
        assert_eq!(ops[0].path().as_str(), "/a");
    }

    #[test]
    fn no_delta_when_the_value_is_as_short() {
        assert_eq!(delta("1", "2"), None);
        assert_eq!(delta(r#"{"a": 1}"#, r#"{"b": 2}"#), None);
    }

    #[test]
    fn equal_values_give_an_empty_delta() {
        let text = r#"{"a": [1, {"b": "cccccccccccccccccccccccc"}]}"#;
        assert_eq!(delta(text, text).as_deref(), Some("[]"));
    }

    #[test]
    fn apply_checks_the_hash() {
        let with = |a: i32, pad: &str| canonical(&format!(r#"{{"a": {a}, "pad": "{}"}}"#, pad.repeat(50)));
        let (old, new) = (with(1, "x"), with(2, "x"));
        let d = make(&old, &new).unwrap().unwrap();
        assert_eq!(apply(&old, &d, &sha256(&new)).unwrap(), new);
        let wrong = with(5, "y");
        assert_eq!(apply(&wrong, &d, &sha256(&new)), Err(DeltaError::HashMismatch));
        assert!(matches!(
            apply(&old, b"{nope", &sha256(&new)),
            Err(DeltaError::Delta(_))
        ));
        assert!(matches!(
            apply(&old, b"{}", &sha256(&new)),
            Err(DeltaError::Patch(_))
        ));
        let missing = br#"[{"op": "remove", "path": "/zz"}]"#;
        assert!(matches!(
            apply(&old, missing, &sha256(&new)),
            Err(DeltaError::Patch(_))
        ));
        assert!(matches!(apply(b"{", &d, &sha256(&new)), Err(DeltaError::Base(_))));
    }
}
