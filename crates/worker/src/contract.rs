//! The schemas a controller registered for a namespace, read from its
//! contract record in `_contracts` (docs/contracts.md §1): the worker validates
//! each value against the schema of the version it was served in.

use std::collections::BTreeMap;

use statesync_core::validate::Schema;
use statesync_core::value::{Value, parse};

/// Compiles the schemas of the `declared` versions in `record`, the canonical
/// JSON of `ns`'s contract; a declared version the contract does not hold yet
/// is left out. Err names the namespace, the version and what is wrong.
pub(crate) fn registered_schemas(
    ns: &str,
    record: &[u8],
    declared: &[i32],
) -> Result<BTreeMap<i32, Schema>, String> {
    let contract = parse(record).map_err(|e| format!("the contract of {ns:?}: {e}"))?;
    let Some(Value::Array(versions)) = member(&contract, "versions") else {
        return Err(format!("the contract of {ns:?} has no \"versions\" list"));
    };
    let mut schemas = BTreeMap::new();
    for (index, registered) in versions.iter().enumerate() {
        let number = match member(registered, "version") {
            Some(Value::Int(n)) => i32::try_from(*n).ok(),
            _ => None,
        };
        let Some(number) = number else {
            return Err(format!(
                "the contract of {ns:?}: versions[{index}] has no integer \"version\""
            ));
        };
        if !declared.contains(&number) {
            continue;
        }
        let Some(schema) = member(registered, "schema") else {
            return Err(format!("the contract of {ns:?}, version {number}: no \"schema\""));
        };
        let compiled =
            Schema::compile(schema).map_err(|e| format!("the contract of {ns:?}, version {number}: {e}"))?;
        schemas.insert(number, compiled);
    }
    Ok(schemas)
}

/// The member `name` of an object; None for a missing member or a non-object.
fn member<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    match value {
        Value::Object(members) => members.iter().find(|(k, _)| k == name).map(|(_, v)| v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::registered_schemas;
    use statesync_core::value::parse;

    const CONTRACT: &str = r#"{"mode":"BACKWARD","namespace":"orders","versions":[
        {"schema":{"type":"object"},"since_rev":3,"translation":null,"version":1},
        {"schema":{"properties":{"qty":{"maximum":10}}},"since_rev":9,"translation":null,"version":2},
        {"schema":true,"since_rev":12,"translation":null,"version":3}]}"#;

    #[test]
    fn only_the_declared_versions_are_compiled() {
        let schemas = registered_schemas("orders", CONTRACT.as_bytes(), &[2, 4]).unwrap();
        assert_eq!(schemas.keys().copied().collect::<Vec<_>>(), [2]);
        assert!(!schemas[&2].is_valid(&parse(br#"{"qty":11}"#).unwrap()));
        assert!(schemas[&2].is_valid(&parse(br#"{"qty":10}"#).unwrap()));
    }

    #[test]
    fn a_malformed_contract_is_refused_naming_namespace_and_version() {
        let no_list = registered_schemas("orders", br#"{"namespace":"orders"}"#, &[1]).unwrap_err();
        assert!(
            no_list.contains("\"orders\"") && no_list.contains("versions"),
            "{no_list}"
        );
        let bad = br#"{"versions":[{"schema":{"type":"nothing"},"version":1}]}"#;
        let bad = registered_schemas("orders", bad, &[1]).unwrap_err();
        assert!(
            bad.contains("\"orders\", version 1") && bad.contains("nothing"),
            "{bad}"
        );
        let unnumbered =
            registered_schemas("orders", br#"{"versions":[{"schema":true}]}"#, &[1]).unwrap_err();
        assert!(unnumbered.contains("versions[0]"), "{unnumbered}");
        let not_json = registered_schemas("orders", b"{", &[1]).unwrap_err();
        assert!(not_json.starts_with("the contract of \"orders\""), "{not_json}");
    }
}
