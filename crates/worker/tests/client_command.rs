//! The writer client's commands are checked before anything is sent, with the
//! errors the controller would give, and reach the wire in canonical form.

use proptest::prelude::*;
use serde_json::json;
use statesync_proto::{compare, op};
use statesync_worker::client::{Command, Error, Put};

#[test]
fn values_and_patches_are_sent_as_canonical_json() {
    let request = Command::new()
        .put("app", "a", json!({"b": 2, "a": [1.0, "x"]}))
        .put_json("app", "b", "{ \"z\" : 1 , \"y\" : null }")
        .patch("app", "c", json!([{"value": 5, "path": "/n", "op": "replace"}]))
        .delete("app", "d")
        .trace("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        .to_request()
        .expect("a valid command");
    let bytes: Vec<&[u8]> = request
        .ops
        .iter()
        .filter_map(|o| match o.op.as_ref()? {
            op::Op::Put(p) => Some(p.value.as_slice()),
            op::Op::Patch(p) => Some(p.patch.as_slice()),
            _ => None,
        })
        .collect();
    assert_eq!(
        bytes,
        [
            br#"{"a":[1,"x"],"b":2}"#.as_slice(),
            br#"{"y":null,"z":1}"#,
            br#"[{"op":"replace","path":"/n","value":5}]"#,
        ]
    );
    assert!(matches!(request.ops[3].op, Some(op::Op::Delete(ref d)) if d.key == "d"));
    assert_eq!(
        request.trace,
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    );
}

#[test]
fn compares_schema_versions_and_base_revisions_reach_the_wire() {
    let request = Command::new()
        .put_op(Put::new("app", "k", json!(1)).schema_version(3).base_rev(9))
        .compare_mod_rev("app", "k", 7)
        .compare_exists("app", "e")
        .compare_absent("app", "n")
        .command_id("id-1")
        .to_request()
        .unwrap();
    let Some(op::Op::Put(put)) = &request.ops[0].op else {
        panic!("{request:?}")
    };
    assert_eq!((put.schema_version, put.base_rev), (3, 9));
    let targets: Vec<_> = request.compares.iter().map(|c| c.target).collect();
    assert_eq!(
        targets,
        [
            Some(compare::Target::ModRev(7)),
            Some(compare::Target::Exists(true)),
            Some(compare::Target::Exists(false)),
        ]
    );
    assert_eq!(request.command_id, "id-1");
}

#[test]
fn a_value_outside_i_json_fails_locally_naming_namespace_key_and_path() {
    let error = Command::new()
        .put("app", "k", json!({"ok": [1, {"big": 9_007_199_254_740_993_u64}]}))
        .to_request()
        .unwrap_err();
    let Error::InvalidValue {
        namespace, key, path, ..
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!(
        (namespace.as_deref(), key.as_deref(), path.as_str()),
        (Some("app"), Some("k"), "/ok/1/big")
    );

    let error = Command::new()
        .put_json("app", "k", r#"{"x": {"a": 1, "a": 2}}"#)
        .to_request()
        .unwrap_err();
    assert!(
        matches!(&error, Error::InvalidValue { path, .. } if path == "/x"),
        "{error:?}"
    );
    assert_eq!(error.exit_code(), 4);
    assert!(!error.is_retryable());
}

#[test]
fn bad_names_patches_and_shapes_fail_locally() {
    let error = Command::new().put("App", "k", json!(1)).to_request().unwrap_err();
    assert!(
        matches!(&error, Error::InvalidNamespace { namespace, .. } if namespace == "App"),
        "{error:?}"
    );

    let error = Command::new().delete("app", "").to_request().unwrap_err();
    assert!(matches!(error, Error::InvalidKey { .. }), "{error:?}");

    let error = Command::new()
        .patch("app", "k", json!([{"op": "jump", "path": "/a"}]))
        .to_request()
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::InvalidPatch {
                op_index: Some(0),
                ..
            }
        ),
        "{error:?}"
    );

    let error = Command::new()
        .put("app", "k", json!(1))
        .delete("app", "k")
        .to_request()
        .unwrap_err();
    assert!(matches!(error, Error::InvalidCommand { .. }), "{error:?}");

    let error = Command::new().to_request().unwrap_err();
    assert!(matches!(error, Error::InvalidCommand { .. }), "{error:?}");

    let error = Command::new()
        .delete("app", "k")
        .command_id("")
        .to_request()
        .unwrap_err();
    assert!(matches!(error, Error::InvalidCommand { .. }), "{error:?}");
}

#[test]
fn generated_ids_are_unique_and_kept_across_retries() {
    let first = Command::new().delete("app", "k");
    let second = Command::new().delete("app", "k");
    assert_ne!(first.id(), second.id());
    // Building the request again (a retry) keeps the id.
    assert_eq!(
        first.to_request().unwrap().command_id,
        first.to_request().unwrap().command_id
    );
    assert_eq!(first.to_request().unwrap().command_id, first.id());
}

proptest! {
    /// Any integer is sent exactly when I-JSON holds it, and refused at its path otherwise.
    #[test]
    fn integers_are_sent_exactly_or_refused_at_their_path(n in any::<i64>()) {
        let result = Command::new().put("app", "k", json!({"n": n})).to_request();
        if n.unsigned_abs() <= statesync_core::MAX_SAFE_INTEGER.unsigned_abs() {
            let request = result.unwrap();
            let Some(op::Op::Put(put)) = &request.ops[0].op else { panic!() };
            prop_assert_eq!(put.value.clone(), format!("{{\"n\":{n}}}").into_bytes());
        } else {
            let refused = matches!(result, Err(Error::InvalidValue { ref path, .. }) if path == "/n");
            prop_assert!(refused, "{:?}", result);
        }
    }
}
