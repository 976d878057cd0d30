//! The writer client against conformance/errors: each failed call, as the
//! controller sends it, decodes to what docs/errors.md says a client makes
//! of it (the code, retryability, exit status, the families it belongs to).

use base64::Engine as _;
use serde_json::Value;
use statesync_proto::ERROR_METADATA_KEY;
use statesync_worker::client::Error;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Status};

fn vectors() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../conformance/errors/vectors.json"
    );
    let text = std::fs::read_to_string(path).expect("conformance/errors/vectors.json");
    let file: Value = serde_json::from_str(&text).expect("JSON");
    file["vectors"].as_array().expect("vectors").clone()
}

fn failed_call(vector: &Value) -> Status {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(vector["error_bin"].as_str().expect("error_bin"))
        .expect("base64");
    let mut metadata = MetadataMap::new();
    metadata.insert_bin(ERROR_METADATA_KEY, MetadataValue::from_bytes(&bytes));
    let code = Code::from(vector["grpc_status"]["code"].as_i64().expect("status code") as i32);
    let message = vector["error"]["message"].as_str().unwrap_or_default();
    Status::with_metadata(code, message, metadata)
}

#[test]
fn every_error_vector_decodes_as_the_table_says() {
    let vectors = vectors();
    assert!(vectors.len() >= 25, "{} error vectors", vectors.len());
    for vector in &vectors {
        let name = vector["name"].as_str().expect("name");
        let expect = &vector["expect"];
        let error = Error::from_status(&failed_call(vector), "127.0.0.1:7700");
        let families: Vec<&str> = expect["is"]
            .as_array()
            .expect("is")
            .iter()
            .map(|c| c.as_str().expect("code"))
            .collect();
        if expect["known"].as_bool().expect("known") {
            assert!(
                !matches!(error, Error::Remote { .. }),
                "{name}: decoded as {error:?}"
            );
            assert_eq!(error.code(), expect["code"].as_str().expect("code"), "{name}");
        } else {
            // A code this client does not know: kept whole, under its own name.
            assert!(
                matches!(error, Error::Remote { .. }),
                "{name}: decoded as {error:?}"
            );
            assert_eq!(
                error.code(),
                vector["error"]["code"].as_str().expect("code"),
                "{name}"
            );
        }
        assert_eq!(
            error.is_retryable(),
            expect["retryable"].as_bool().expect("retryable"),
            "{name}"
        );
        assert_eq!(
            i64::from(error.exit_code()),
            expect["exit"].as_i64().expect("exit"),
            "{name}"
        );
        assert_eq!(
            error.is_invalid_input(),
            families.contains(&"InvalidInputError"),
            "{name}"
        );
        assert_eq!(error.is_conflict(), families.contains(&"ConflictError"), "{name}");
    }
}
