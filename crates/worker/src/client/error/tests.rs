use serde_json::json;
use statesync_proto::ERROR_METADATA_KEY;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Status};

use super::{Error, FailedCompare, SchemaViolation, StoreErrorKind};

const ADDRESS: &str = "127.0.0.1:7700";

/// A failed call as the controller sends it: the status and, in its
/// metadata, the serialized error.
fn status(code: Code, error_code: &str, detail: serde_json::Value) -> Status {
    let message = format!("{error_code} happened");
    let error = statesync_proto::Error {
        code: error_code.into(),
        message: message.clone(),
        detail: detail.to_string().into_bytes(),
        retryable: false,
    };
    let mut metadata = MetadataMap::new();
    metadata.insert_bin(
        ERROR_METADATA_KEY,
        MetadataValue::from_bytes(&prost::Message::encode_to_vec(&error)),
    );
    Status::with_metadata(code, message, metadata)
}

#[test]
fn a_conflict_names_each_failed_compare_and_the_actual_revision() {
    let detail = json!({
        "error": "ConflictError",
        "message": "conflict: app/k: expected mod_rev == 3, mod_rev is 5",
        "failed": [
            {"namespace": "app", "key": "k", "expected": "mod_rev == 3", "actual_mod_rev": 5},
            {"namespace": "app", "key": "gone", "expected": "exists", "actual_mod_rev": null},
        ],
    });
    let error = Error::from_status(&status(Code::Aborted, "ConflictError", detail), ADDRESS);
    assert_eq!(
        error,
        Error::Conflict {
            failed: vec![
                FailedCompare {
                    namespace: "app".into(),
                    key: "k".into(),
                    expected: "mod_rev == 3".into(),
                    actual_mod_rev: Some(5),
                },
                FailedCompare {
                    namespace: "app".into(),
                    key: "gone".into(),
                    expected: "exists".into(),
                    actual_mod_rev: None,
                },
            ],
        }
    );
    assert!(error.is_conflict());
    assert!(!error.is_retryable());
    assert_eq!(error.exit_code(), 3);
    assert_eq!(error.code(), "ConflictError");
    assert_eq!(
        error.to_string(),
        "conflict: app/k: expected mod_rev == 3, mod_rev is 5; app/gone: expected exists, key is absent"
    );
}

#[test]
fn an_invalid_value_names_namespace_key_and_json_path_and_keeps_a_null_key() {
    let detail = json!({"namespace": "app", "key": null, "path": "/a/0", "reason": "duplicate key"});
    let error = Error::from_status(
        &status(Code::InvalidArgument, "InvalidValueError", detail),
        ADDRESS,
    );
    assert_eq!(
        error,
        Error::InvalidValue {
            namespace: Some("app".into()),
            key: None,
            path: "/a/0".into(),
            reason: "duplicate key".into(),
        }
    );
    assert!(error.is_invalid_input());
    assert_eq!(error.exit_code(), 4);
}

#[test]
fn a_schema_violation_lists_every_violation() {
    let detail = json!({
        "namespace": "app", "key": "k", "schema_version": 2,
        "violations": [{"path": "/port", "keyword": "type", "message": "not an integer"}],
    });
    let error = Error::from_status(
        &status(Code::InvalidArgument, "SchemaViolationError", detail),
        ADDRESS,
    );
    let Error::SchemaViolation {
        violations,
        schema_version,
        ..
    } = &error
    else {
        panic!("decoded as {error:?}");
    };
    assert_eq!(*schema_version, 2);
    let expected = SchemaViolation {
        path: "/port".into(),
        keyword: "type".into(),
        message: "not an integer".into(),
    };
    assert_eq!(violations, &vec![expected]);
    assert!(
        error.to_string().contains("/port: not an integer [type]"),
        "{error}"
    );
}

#[test]
fn a_failed_store_is_retryable_and_a_commit_it_fails_has_an_unknown_outcome() {
    let detail = json!({"reason": "fsync failed"});
    let error = Error::from_status(&status(Code::Unavailable, "StoreFailedError", detail), ADDRESS);
    assert!(matches!(
        error,
        Error::Store {
            kind: StoreErrorKind::Failed,
            ..
        }
    ));
    assert!(error.is_retryable());
    assert_eq!(error.exit_code(), 7);
    assert_eq!(
        error.unknown_outcome(),
        None,
        "a read's failure leaves no command in doubt"
    );

    let error = error.in_commit("cmd-1");
    assert_eq!(error.unknown_outcome(), Some("cmd-1"));
    assert!(
        error.to_string().contains("retry it with the same command_id"),
        "{error}"
    );
}

#[test]
fn a_corrupt_store_is_not_retryable() {
    let error = Error::from_status(&status(Code::DataLoss, "StoreCorruptError", json!({})), ADDRESS);
    assert_eq!(error.code(), "StoreCorruptError");
    assert!(!error.is_retryable());
    assert_eq!(error.in_commit("c").unknown_outcome(), Some("c"));
}

#[test]
fn transport_failures_without_an_error_are_unavailable_and_retryable() {
    for code in [Code::Unavailable, Code::DeadlineExceeded, Code::Cancelled] {
        let error = Error::from_status(&Status::new(code, "connection reset"), ADDRESS);
        assert_eq!(
            error,
            Error::Unavailable {
                address: ADDRESS.into(),
                reason: "connection reset".into(),
                command_id: None,
            }
        );
        assert!(error.is_retryable());
        assert_eq!(error.exit_code(), 5);
        let in_commit = error.in_commit("cmd-7");
        assert_eq!(in_commit.unknown_outcome(), Some("cmd-7"));
        assert!(
            in_commit
                .to_string()
                .contains("\"cmd-7\" may or may not have been committed")
        );
    }
}

#[test]
fn a_bare_status_is_a_remote_error_named_by_the_status() {
    let error = Error::from_status(&Status::new(Code::Internal, "boom"), ADDRESS);
    assert_eq!(error.code(), "INTERNAL");
    assert!(matches!(
        error,
        Error::Remote {
            status: Code::Internal,
            ..
        }
    ));
    assert!(!error.is_retryable());
    assert_eq!(error.exit_code(), 7);
    assert_eq!(error.in_commit("c").unknown_outcome(), None);
}

#[test]
fn an_unknown_code_is_kept_whole_and_never_retryable() {
    let detail = json!({"what": 1});
    let mut status = status(Code::Unavailable, "BrandNewError", detail.clone());
    let error = Error::from_status(&status, ADDRESS);
    assert_eq!(
        error,
        Error::Remote {
            code: "BrandNewError".into(),
            status: Code::Unavailable,
            message: "BrandNewError happened".into(),
            detail,
        }
    );
    assert!(!error.is_retryable());

    // A known code whose fields are missing is not guessed at.
    status = self::status(Code::Aborted, "ConflictError", json!({"failed": [{"key": "k"}]}));
    let error = Error::from_status(&status, ADDRESS);
    assert!(
        matches!(&error, Error::Remote { code, .. } if code == "ConflictError"),
        "{error:?}"
    );
}

#[test]
fn undecodable_error_metadata_is_reported_not_dropped() {
    let mut metadata = MetadataMap::new();
    metadata.insert_bin(ERROR_METADATA_KEY, MetadataValue::from_bytes(b"\xff\xff\xff"));
    let status = Status::with_metadata(Code::Aborted, "garbled", metadata);
    let error = Error::from_status(&status, ADDRESS);
    assert!(
        matches!(&error, Error::Remote { code, .. } if code == "ABORTED"),
        "{error:?}"
    );
    assert!(error.to_string().contains("could not be decoded"), "{error}");
}

/// Every code of `docs/errors.md` (the normative table) decodes to its own
/// variant, with the table's exit status and retryability.
#[test]
fn every_documented_code_decodes_with_the_documented_exit_and_retryability() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/errors.md"))
        .expect("docs/errors.md");
    // One detail holding every field any code lists.
    let detail = json!({
        "namespace": "app", "key": "k", "path": "/a", "reason": "r", "op_index": 0,
        "size": 2, "limit": 1, "schema_version": 1, "violations": [], "command_id": "c",
        "committed_rev": 1, "requested_rev": 1, "head_rev": 1, "failed": [], "base_rev": 1,
        "current_mod_rev": 2, "conflicts": [], "rev": 1, "compacted_rev": 1, "address": "a",
    });
    let table = doc
        .split("## Error codes")
        .nth(1)
        .expect("an Error codes section");
    let table = table.split("\n## ").next().unwrap_or(table);
    let mut checked = 0;
    for row in table.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let code = cells[1].trim_matches('`');
        if code == "StatesyncError" || code == "RemoteError" {
            continue; // the base and the client-side fallback are never decoded
        }
        let (retryable, exit) = (cells[4] == "yes", cells[5].parse::<i32>().expect(row));
        let wire = statesync_proto::Error {
            code: code.into(),
            message: "m".into(),
            detail: detail.to_string().into_bytes(),
            retryable,
        };
        let error = Error::from_wire(wire, Code::Internal);
        assert_eq!(error.code(), code, "{error:?}");
        assert_eq!(error.exit_code(), exit, "{code}");
        assert_eq!(error.is_retryable(), retryable, "{code}");
        checked += 1;
    }
    assert!(checked >= 20, "read {checked} codes from docs/errors.md");
}

#[test]
fn local_refusals_keep_their_fields() {
    let error = Error::from(statesync_core::error::CommandError::InvalidPatch {
        ns: "app".into(),
        key: "k".into(),
        index: Some(1),
        path: Some("/x".into()),
        reason: "no such member".into(),
    });
    assert_eq!(
        error,
        Error::InvalidPatch {
            namespace: "app".into(),
            key: "k".into(),
            op_index: Some(1),
            path: Some("/x".into()),
            reason: "no such member".into(),
        }
    );
    assert_eq!(
        error.to_string(),
        "invalid patch (namespace \"app\", key \"k\", at JSON path \"/x\") op #1: no such member"
    );
}

proptest::proptest! {
    /// Whatever names and revisions a conflict reports, as the Python server
    /// serializes it, decode to exactly those fields.
    #[test]
    fn any_conflict_decodes_to_its_fields(
        failed in proptest::collection::vec(
            ("\\PC{1,12}", "\\PC{1,12}", "mod_rev == [0-9]{1,5}|exists|absent",
             proptest::option::of(0i64..=(1 << 53))),
            1..5,
        ),
    ) {
        let failed: Vec<FailedCompare> = failed
            .into_iter()
            .map(|(namespace, key, expected, actual_mod_rev)| FailedCompare {
                namespace, key, expected, actual_mod_rev,
            })
            .collect();
        let detail = json!({
            "error": "ConflictError",
            "message": "conflict",
            "failed": failed.iter().map(|f| json!({
                "namespace": f.namespace, "key": f.key, "expected": f.expected,
                "actual_mod_rev": f.actual_mod_rev,
            })).collect::<Vec<_>>(),
        });
        let error = Error::from_status(&status(Code::Aborted, "ConflictError", detail), ADDRESS);
        proptest::prop_assert_eq!(error, Error::Conflict { failed });
    }
}
