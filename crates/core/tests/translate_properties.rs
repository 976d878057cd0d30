//! The round-trip laws of translations (docs/translations.md §9), over
//! generated documents and translations.
//!
//! Documents use the member names "a", "b", "c" and "s/~" (plus typed members
//! for the converters and "x", "y" that only removes touch); translations put
//! values under fresh names ("f0", "f1", ...), which no document holds, so the
//! laws' preconditions hold by construction.

use proptest::prelude::*;
use statesync_core::patch::json_equal;
use statesync_core::translate::{Direction, Translation};
use statesync_core::value::{MAX_SAFE_INTEGER, Value};

const NAMES: [&str; 4] = ["a", "b", "c", "s/~"];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).prop_map(Value::Int),
        (-1e15f64..1e15).prop_map(Value::Float),
        "[a-z~/]{0,3}".prop_map(Value::String),
    ]
}

fn object_of(
    inner: impl Strategy<Value = Value>,
    names: &'static [&'static str],
) -> impl Strategy<Value = Value> {
    prop::collection::btree_map(prop::sample::select(names), inner, 0..4)
        .prop_map(|members| Value::Object(members.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
}

fn json() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            object_of(inner, &NAMES),
        ]
    })
}

/// A document: an object with some of the names, and typed members the
/// lossless converters accept.
fn doc() -> impl Strategy<Value = Value> {
    (
        object_of(json(), &["a", "b", "c", "s/~", "x", "y"]),
        prop::option::of(-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER),
        prop::option::of("[a-z]{0,3}"),
    )
        .prop_map(|(base, n, tag)| {
            let Value::Object(mut members) = base else {
                unreachable!("object_of gives objects")
            };
            members.extend(n.map(|n| ("n".to_owned(), Value::Int(n))));
            members.extend(tag.map(|t| ("tag".to_owned(), Value::String(t))));
            Value::Object(members)
        })
}

fn pointer(tokens: &[String]) -> String {
    tokens
        .iter()
        .map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1")))
        .collect()
}

fn op(kind: &str, members: &[(&str, Value)]) -> Value {
    let mut all = vec![("op".to_owned(), Value::String(kind.to_owned()))];
    all.extend(members.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    Value::Object(all)
}

fn text(s: String) -> Value {
    Value::String(s)
}

/// Choices for one op: its kind, a source, the shape of its target, a default.
type Choice = (u8, usize, u8, Value);

/// The ops of a translation built from `choices` (see the module docs);
/// `lossy` adds removes of "x" and "y".
fn ops(convert_n: bool, convert_tag: bool, choices: &[Choice], lossy: bool) -> Vec<Value> {
    let mut ops = Vec::new();
    if convert_n {
        ops.push(op(
            "convert",
            &[
                ("path", text("/n".into())),
                ("converter", text("int_to_string".into())),
            ],
        ));
    }
    if convert_tag {
        let converter = text("string_to_array".into());
        ops.push(op(
            "convert",
            &[("path", text("/tag".into())), ("converter", converter)],
        ));
    }
    let mut fresh = (0..).map(|i| format!("f{i}"));
    let mut sources: Vec<Vec<String>> = NAMES.iter().map(|n| vec![(*n).to_owned()]).collect();
    sources.push(vec!["a".into(), "b".into()]);
    sources.push(vec!["n".into()]);
    let mut parents: Vec<Vec<String>> = vec![Vec::new()];
    for (kind, source, shape, default) in choices {
        let src = sources[source % sources.len()].clone();
        let dst = match kind % if lossy { 4 } else { 3 } {
            0 => {
                let mut dst = src.clone();
                *dst.last_mut().expect("a path has a token") = fresh.next().expect("endless");
                ops.push(op(
                    "rename",
                    &[("from", text(pointer(&src))), ("to", text(pointer(&dst)))],
                ));
                dst
            }
            1 => {
                let mut parent = match shape % 3 {
                    0 => parents[usize::from(*shape) % parents.len()].clone(),
                    1 => vec![fresh.next().expect("endless")],
                    _ => vec![fresh.next().expect("endless"), fresh.next().expect("endless")],
                };
                parents.extend((1..=parent.len()).map(|i| parent[..i].to_vec()));
                if parent.starts_with(&src) {
                    parent.clear();
                }
                parent.push(fresh.next().expect("endless"));
                ops.push(op(
                    "move",
                    &[("from", text(pointer(&src))), ("to", text(pointer(&parent)))],
                ));
                parent
            }
            2 => {
                let mut path = parents[usize::from(*shape) % parents.len()].clone();
                path.push(fresh.next().expect("endless"));
                ops.push(op(
                    "add",
                    &[("path", text(pointer(&path))), ("default", default.clone())],
                ));
                path
            }
            _ => {
                let path = text(if shape % 2 == 0 { "/x" } else { "/y" }.to_owned());
                let mut members = vec![("path", path)];
                if shape % 4 < 2 {
                    members.push(("default", default.clone()));
                }
                ops.push(op("remove", &members));
                continue;
            }
        };
        sources.push(dst);
    }
    ops
}

fn translation(ops: Vec<Value>) -> Translation {
    let data = Value::Object(vec![
        ("format".into(), text("statesync.translation/1".into())),
        ("from".into(), Value::Int(1)),
        ("to".into(), Value::Int(2)),
        ("up".into(), Value::Array(ops)),
    ]);
    Translation::parse(&data).expect("generated translations are valid")
}

fn choices() -> impl Strategy<Value = Vec<Choice>> {
    prop::collection::vec((any::<u8>(), any::<usize>(), any::<u8>(), json()), 0..7)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Lossless ops: the derived `down` undoes `up`.
    #[test]
    fn lossless_translations_are_undone_by_down(
        doc in doc(), convert_n in any::<bool>(), convert_tag in any::<bool>(), choices in choices(),
    ) {
        let t = translation(ops(convert_n, convert_tag, &choices, false));
        let v2 = t.apply(doc.clone(), Direction::Up).expect("lossless ops apply to any document");
        let back = t.apply(v2, Direction::Down).expect("and back");
        prop_assert!(json_equal(&back, &doc), "{back:?} != {doc:?}");
    }

    /// Removes lose data, once: after one round the document is stable.
    #[test]
    fn lossy_translations_are_stable_after_one_round(
        doc in doc(), convert_n in any::<bool>(), choices in choices(),
    ) {
        let t = translation(ops(convert_n, false, &choices, true));
        let v2 = t.apply(doc, Direction::Up).expect("applies");
        let again = t.apply(t.apply(v2.clone(), Direction::Down).expect("down"), Direction::Up).expect("up");
        prop_assert!(json_equal(&again, &v2), "{again:?} != {v2:?}");
    }

    /// Any value is translated or refused, never a panic; a refusal names the
    /// op and the path, and the versions in the direction of travel.
    #[test]
    fn any_value_is_translated_or_refused(
        doc in json(), choices in choices(), convert_n in any::<bool>(), convert_tag in any::<bool>(),
    ) {
        let t = translation(ops(convert_n, convert_tag, &choices, true));
        for (direction, versions) in [(Direction::Up, (1, 2)), (Direction::Down, (2, 1))] {
            if let Err(e) = t.apply(doc.clone(), direction) {
                prop_assert!(e.op_index.is_some() && e.field.starts_with('/'), "{e}");
                prop_assert_eq!((e.from_version, e.to_version), (Some(versions.0), Some(versions.1)));
            }
        }
    }
}
