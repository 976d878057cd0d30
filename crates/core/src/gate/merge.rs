//! A deterministic three-way JSON merge, for the `merge` conflict policy.
//!
//! A writer that read a key at an old revision (it was offline, or it retries
//! after a timeout) sends its value. [`merge3`]`(base, current, writer)`
//! combines it with the current value, using the value at the writer's base
//! revision from history. `None` stands for an absent member or document.
//!
//! Rules, applied at the root and again at every member of objects that are
//! objects on all three sides ("equal" is JSON equality: `true` is not `1`,
//! numbers compare by value, so `1` and `1.0` are equal):
//!
//! 1. writer equals base: the writer changed nothing here; take current.
//! 2. current equals base: only the writer changed it; take writer.
//! 3. current equals writer: both made the same change; take it (current's form).
//! 4. base, current and writer are all objects: merge member by member over
//!    the union of member names (current's order, then the writer's new ones).
//!    A member missing on a side was deleted (or never added) there, so the
//!    same rules decide it.
//! 5. Otherwise both sides changed the value differently: one conflict at
//!    this path, and the merge does not look inside it.
//!
//! Arrays are atomic, like scalars: an element-wise merge is ambiguous
//! without element identities (inserted, or edited and shifted?), and any
//! guess can silently duplicate or drop data.
//!
//! Conflicts are sorted by path (RFC 6901 JSON Pointer, compared as strings;
//! `""` is the whole document); when there are any, the merged value keeps
//! the current side at each conflicting path and is only informative.

use crate::patch::json_equal;
use crate::value::{Value, pointer_token};

/// Both sides changed the value at `path` differently from `base`; each side
/// holds its value there (None: absent on that side).
#[derive(Clone, Debug, PartialEq)]
pub struct MergeConflict {
    /// RFC 6901 JSON Pointer (`""`: the whole document).
    pub path: String,
    /// The value at the writer's base revision.
    pub base: Option<Value>,
    /// The value now.
    pub current: Option<Value>,
    /// The value the writer sent.
    pub writer: Option<Value>,
}

/// The merged document (None: the key ends deleted) and every conflict.
#[derive(Clone, Debug, PartialEq)]
pub struct Merged {
    /// Meaningful only when `conflicts` is empty.
    pub value: Option<Value>,
    /// Sorted by path; paths never nest.
    pub conflicts: Vec<MergeConflict>,
}

/// Merges `writer`'s changes since `base` into `current` (see the module doc).
pub fn merge3(base: Option<&Value>, current: Option<&Value>, writer: Option<&Value>) -> Merged {
    let mut conflicts = Vec::new();
    let value = merge(base, current, writer, "", &mut conflicts);
    conflicts.sort_by(|a, b| a.path.cmp(&b.path));
    Merged { value, conflicts }
}

fn equal(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => json_equal(a, b),
        _ => false,
    }
}

fn member<'a>(members: &'a [(String, Value)], name: &str) -> Option<&'a Value> {
    members.iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

fn merge(
    base: Option<&Value>,
    current: Option<&Value>,
    writer: Option<&Value>,
    path: &str,
    conflicts: &mut Vec<MergeConflict>,
) -> Option<Value> {
    if equal(writer, base) {
        return current.cloned();
    }
    if equal(current, base) {
        return writer.cloned();
    }
    if equal(current, writer) {
        return current.cloned();
    }
    if let (Some(Value::Object(b)), Some(Value::Object(c)), Some(Value::Object(w))) = (base, current, writer)
    {
        let names = c
            .iter()
            .map(|(k, _)| k)
            .chain(w.iter().map(|(k, _)| k).filter(|k| member(c, k).is_none()));
        let merged = names
            .filter_map(|name| {
                let at = format!("{path}{}", pointer_token(name));
                merge(member(b, name), member(c, name), member(w, name), &at, conflicts)
                    .map(|value| (name.clone(), value))
            })
            .collect();
        return Some(Value::Object(merged));
    }
    conflicts.push(MergeConflict {
        path: path.to_owned(),
        base: base.cloned(),
        current: current.cloned(),
        writer: writer.cloned(),
    });
    current.cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical_bytes;
    use crate::value::parse;
    use proptest::prelude::*;

    fn doc(text: &str) -> Value {
        parse(text.as_bytes()).unwrap()
    }

    fn text(value: &Option<Value>) -> String {
        value.as_ref().map_or("MISSING".into(), |v| {
            String::from_utf8(canonical_bytes(v)).unwrap()
        })
    }

    fn merged(base: &str, current: &str, writer: &str) -> Merged {
        let side = |t: &str| (t != "MISSING").then(|| doc(t));
        merge3(side(base).as_ref(), side(current).as_ref(), side(writer).as_ref())
    }

    #[test]
    fn disjoint_member_changes_combine() {
        let m = merged(r#"{"a":1,"b":1}"#, r#"{"a":2,"b":1}"#, r#"{"a":1,"b":3,"c":4}"#);
        assert!(m.conflicts.is_empty());
        assert_eq!(text(&m.value), r#"{"a":2,"b":3,"c":4}"#);
    }

    #[test]
    fn a_member_deleted_on_one_side_and_unchanged_on_the_other_is_deleted() {
        let m = merged(r#"{"a":1,"b":1}"#, r#"{"b":1}"#, r#"{"a":1,"b":2}"#);
        assert_eq!(text(&m.value), r#"{"b":2}"#);
        let m = merged(r#"{"a":1}"#, r#"{"a":2}"#, "{}");
        assert_eq!(m.conflicts.len(), 1, "deleted on one side, modified on the other");
        assert_eq!(m.conflicts[0].path, "/a");
        assert_eq!(m.conflicts[0].writer, None);
    }

    #[test]
    fn conflicts_are_sorted_escaped_and_do_not_nest() {
        let m = merged(
            r#"{"z":1,"a/b":{"x":1},"arr":[1]}"#,
            r#"{"z":2,"a/b":{"x":2},"arr":[1,2]}"#,
            r#"{"z":3,"a/b":{"x":3},"arr":[1,3]}"#,
        );
        let paths: Vec<&str> = m.conflicts.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, ["/arr", "/a~1b/x", "/z"], "sorted as strings: 'r' < '~'");
    }

    #[test]
    fn whole_documents_may_be_absent() {
        let m = merged(r#"{"a":1}"#, "MISSING", r#"{"a":1}"#);
        assert_eq!((text(&m.value), m.conflicts.len()), ("MISSING".into(), 0));
        let m = merged("MISSING", r#"{"a":1}"#, r#"{"b":1}"#);
        assert_eq!(m.conflicts.len(), 1, "an object both sides added with no base");
        assert_eq!(m.conflicts[0].path, "");
        let m = merged(r#"{"a":1}"#, "MISSING", r#"{"a":2}"#);
        assert_eq!(
            (m.conflicts[0].current.clone(), text(&m.value)),
            (None, "MISSING".into())
        );
    }

    #[test]
    fn numbers_compare_by_value_and_true_is_not_one() {
        let m = merged(r#"{"a":1}"#, r#"{"a":1.0}"#, r#"{"a":2}"#);
        assert_eq!(text(&m.value), r#"{"a":2}"#);
        let m = merged(r#"{"a":1}"#, r#"{"a":true}"#, r#"{"a":2}"#);
        assert_eq!(m.conflicts.len(), 1);
    }

    fn json() -> impl Strategy<Value = Value> {
        let scalar = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-3i64..4).prop_map(Value::Int),
            "[ab]{0,2}".prop_map(Value::String),
        ];
        scalar.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                prop::collection::btree_map("[a-c/~]{1,2}", inner, 0..4)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    fn side() -> impl Strategy<Value = Option<Value>> {
        prop::option::weighted(0.9, json())
    }

    proptest! {
        #[test]
        fn merging_identical_sides_is_the_identity(v in side()) {
            let m = merge3(v.as_ref(), v.as_ref(), v.as_ref());
            prop_assert!(m.conflicts.is_empty());
            prop_assert_eq!(text(&m.value), text(&v));
        }

        #[test]
        fn a_one_sided_change_wins(base in side(), changed in side()) {
            let by_writer = merge3(base.as_ref(), base.as_ref(), changed.as_ref());
            prop_assert!(by_writer.conflicts.is_empty());
            prop_assert_eq!(text(&by_writer.value), text(&changed));
            let by_current = merge3(base.as_ref(), changed.as_ref(), base.as_ref());
            prop_assert!(by_current.conflicts.is_empty());
            prop_assert_eq!(text(&by_current.value), text(&changed));
        }

        #[test]
        fn the_same_change_on_both_sides_is_taken_once(base in side(), changed in side()) {
            let m = merge3(base.as_ref(), changed.as_ref(), changed.as_ref());
            prop_assert!(m.conflicts.is_empty());
            prop_assert_eq!(text(&m.value), text(&changed));
        }

        #[test]
        fn swapping_the_sides_finds_the_same_conflicts(b in side(), c in side(), w in side()) {
            let one = merge3(b.as_ref(), c.as_ref(), w.as_ref());
            let other = merge3(b.as_ref(), w.as_ref(), c.as_ref());
            let paths = |m: &Merged| m.conflicts.iter().map(|c| c.path.clone()).collect::<Vec<_>>();
            prop_assert_eq!(paths(&one), paths(&other));
            prop_assert!(one.conflicts.windows(2).all(|p| p[0].path < p[1].path));
            if one.conflicts.is_empty() {
                prop_assert_eq!(text(&one.value), text(&other.value));
            }
        }
    }
}
