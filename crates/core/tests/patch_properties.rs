//! Properties of JSON Patch application and deltas, over generated values and ops.

use proptest::prelude::*;
use statesync_core::canonical::{canonical_bytes, canonical_len};
use statesync_core::delta;
use statesync_core::digest::sha256;
use statesync_core::patch::{self, Document, Op, Pointer, json_equal};
use statesync_core::value::{Value, parse};

/// Keys and strings drawn from a small alphabet, so that generated pointers
/// often name existing members, and escapes (`~`, `/`) and index-like names occur.
fn text() -> impl Strategy<Value = String> {
    prop::string::string_regex("[ab~/0-1é\"-]{0,3}").expect("a valid regex")
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..40).prop_map(Value::Int),
        prop_oneof![Just(1.0), Just(0.5), Just(-0.0), Just(1e21), -1e6f64..1e6].prop_map(Value::Float),
        text().prop_map(Value::String),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..5)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

/// Every location in `value`, as reference tokens.
fn locations(value: &Value, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(at.clone());
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                at.push(i.to_string());
                locations(item, at, out);
                at.pop();
            }
        }
        Value::Object(members) => {
            for (key, item) in members {
                at.push(key.clone());
                locations(item, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

/// A pointer into `doc`: an existing location, often one step further (a new
/// member, the end of an array, an index past it, a non-canonical index).
fn pointer(doc: &Value) -> impl Strategy<Value = Pointer> + use<> {
    let mut all = Vec::new();
    locations(doc, &mut Vec::new(), &mut all);
    let extra = prop_oneof![
        Just(None),
        Just(Some("-".to_owned())),
        Just(Some("9".to_owned())),
        Just(Some("01".to_owned())),
        text().prop_map(Some),
    ];
    (prop::sample::select(all), extra).prop_map(|(mut tokens, extra)| {
        tokens.extend(extra);
        Pointer::from_tokens(tokens)
    })
}

fn op(doc: &Value) -> impl Strategy<Value = Op> + use<> {
    (0..6u8, pointer(doc), pointer(doc), json()).prop_map(|(kind, path, from, value)| match kind {
        0 => Op::Add { path, value },
        1 => Op::Remove { path },
        2 => Op::Replace { path, value },
        3 => Op::Move { from, path },
        4 => Op::Copy { from, path },
        _ => Op::Test { path, value },
    })
}

fn doc_and_ops() -> impl Strategy<Value = (Value, Vec<Op>)> {
    json().prop_flat_map(|doc| {
        let ops = prop::collection::vec(op(&doc), 1..6);
        (Just(doc), ops)
    })
}

fn reparse(value: &Value) -> Value {
    parse(&canonical_bytes(value)).expect("canonical bytes parse")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn canonical_len_is_the_length_of_the_canonical_bytes(value in json()) {
        prop_assert_eq!(canonical_len(&value), canonical_bytes(&value).len());
    }

    #[test]
    fn json_equality_is_canonical_equality(a in json(), b in json()) {
        prop_assert!(json_equal(&a, &a));
        prop_assert!(json_equal(&a, &reparse(&a)));
        prop_assert_eq!(json_equal(&a, &b), canonical_bytes(&a) == canonical_bytes(&b));
    }

    #[test]
    fn a_failed_op_changes_nothing_and_sizes_stay_exact((doc, ops) in doc_and_ops()) {
        let mut document = Document::new(doc);
        for (index, op) in ops.iter().enumerate() {
            let before = document.value().clone();
            match document.apply_op(index, op) {
                Ok(()) => {}
                Err(err) => {
                    prop_assert_eq!(err.index, Some(index));
                    prop_assert_eq!(document.value(), &before, "{:?} changed the document", op);
                }
            }
            prop_assert_eq!(document.size(), canonical_len(document.value()), "after {:?}", op);
        }
    }

    #[test]
    fn results_are_canonical_fixed_points((doc, ops) in doc_and_ops()) {
        if let Ok(result) = patch::apply(doc, &ops, usize::MAX) {
            let bytes = canonical_bytes(&result);
            prop_assert_eq!(canonical_bytes(&reparse(&result)), bytes);
        }
    }

    #[test]
    fn a_patch_applies_as_its_canonical_bytes_do((doc, ops) in doc_and_ops()) {
        let mut encoded = Vec::new();
        patch::write_canonical_patch(&ops, &mut encoded);
        let parsed = patch::parse(&parse(&encoded).expect("a canonical patch parses")).expect("it is a patch");
        // Messages may differ (a `test` of 1.0 shows 1 once canonical); outcomes may not.
        let outcome = |ops: &[Op]| {
            patch::apply(doc.clone(), ops, usize::MAX)
                .map(|v| canonical_bytes(&v))
                .map_err(|e| (e.kind, e.index))
        };
        let (direct, again) = (outcome(&ops), outcome(&parsed));
        prop_assert_eq!(direct, again);
    }

    #[test]
    fn the_diff_from_a_to_b_gives_b(a in json(), b in json()) {
        let ops = delta::diff(&a, &b);
        let result = patch::apply(a.clone(), &ops, usize::MAX).expect("a diff applies");
        prop_assert_eq!(canonical_bytes(&result), canonical_bytes(&b));
        let (old, new) = (canonical_bytes(&a), canonical_bytes(&b));
        if let Some(d) = delta::make(&old, &new).expect("canonical inputs") {
            prop_assert!(d.len() < new.len());
            prop_assert_eq!(delta::apply(&old, &d, &sha256(&new)).expect("a delta applies"), new);
        }
    }
}
