//! A namespace's contract record, as the write gate needs it.
//!
//! The record is what the control plane writes into the `_contracts`
//! namespace (`statesync.contracts.registry.Contract.to_json`):
//!
//! ```text
//! {"namespace": "orders", "mode": "BACKWARD", "owner": {...},
//!  "versions": [{"version": 1, "schema": {...}, "translation": null,
//!                "since_rev": 12, ...}, ...],
//!  "conflict_policy": "reject", "shadow_policy": null}
//! ```
//!
//! Only what admitting a write needs is read: each version's schema, its
//! translation from the version before (null: the identity) and the revision
//! it was registered at, and the two policies. Schemas compile on first use.

use std::sync::OnceLock;

use super::policy::Policy;
use crate::canonical_bytes;
use crate::error::CommandError;
use crate::translate::{ChainError, Translation, apply_chain, chain};
use crate::validate::Schema;
use crate::value::{Value, parse};

/// One registered schema version.
#[derive(Debug)]
struct Version {
    schema: Value,
    since_rev: i64,
    compiled: OnceLock<Schema>,
}

/// A parsed contract record.
#[derive(Debug)]
pub struct Contract {
    ns: String,
    versions: Vec<Version>,
    /// `translations[n - 1]` translates between versions n and n + 1.
    translations: Vec<Translation>,
    /// What a write based on an old revision does.
    pub conflict_policy: Policy,
    /// A candidate policy evaluated beside the active one, counted, never acted on.
    pub shadow_policy: Option<Policy>,
}

fn broken(ns: &str, why: impl std::fmt::Display) -> CommandError {
    CommandError::InvalidCommand {
        reason: format!("the contract record of namespace {ns:?} is not usable: {why}"),
        ns: Some(ns.to_owned()),
        key: None,
    }
}

fn member<'a>(object: &'a Value, name: &str) -> Option<&'a Value> {
    match object {
        Value::Object(members) => members.iter().find(|(k, _)| k == name).map(|(_, v)| v),
        _ => None,
    }
}

fn policy(ns: &str, record: &Value, name: &str) -> Result<Option<Policy>, CommandError> {
    match member(record, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Policy::parse(text)
            .map(Some)
            .ok_or_else(|| broken(ns, format!("{name} {text:?}"))),
        Some(_) => Err(broken(ns, format!("{name} is not a string"))),
    }
}

impl Contract {
    /// Parses the record of namespace `ns` (its canonical JSON bytes).
    pub fn parse(ns: &str, record: &[u8]) -> Result<Contract, CommandError> {
        let record = parse(record).map_err(|e| broken(ns, e.reason))?;
        let Some(Value::Array(entries)) = member(&record, "versions") else {
            return Err(broken(ns, "no versions array"));
        };
        let mut versions = Vec::with_capacity(entries.len());
        let mut translations = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            let number = index as i64 + 1;
            if !matches!(member(entry, "version"), Some(Value::Int(n)) if *n == number) {
                return Err(broken(ns, format!("versions[{index}] is not version {number}")));
            }
            let Some(Value::Int(since_rev)) = member(entry, "since_rev") else {
                return Err(broken(ns, format!("versions[{index}] has no since_rev")));
            };
            let schema = member(entry, "schema")
                .cloned()
                .ok_or_else(|| broken(ns, format!("versions[{index}] has no schema")))?;
            if index > 0 {
                translations.push(match member(entry, "translation") {
                    None | Some(Value::Null) => Translation::identity(number - 1),
                    Some(data) => Translation::parse(data).map_err(|e| broken(ns, e))?,
                });
            }
            versions.push(Version {
                schema,
                since_rev: *since_rev,
                compiled: OnceLock::new(),
            });
        }
        Ok(Contract {
            ns: ns.to_owned(),
            versions,
            translations,
            conflict_policy: policy(ns, &record, "conflict_policy")?.unwrap_or(Policy::Reject),
            shadow_policy: policy(ns, &record, "shadow_policy")?,
        })
    }

    /// The newest version (0: no schema yet).
    pub fn current(&self) -> i64 {
        self.versions.len() as i64
    }

    /// The schema version a value last written at `mod_rev` is in (at least
    /// 1): the newest registered before that revision.
    pub fn version_of(&self, mod_rev: i64) -> i64 {
        let before = self.versions.partition_point(|v| v.since_rev < mod_rev);
        (before as i64).max(1)
    }

    /// Checks `value` against schema `version`: every violation, or none.
    pub fn check(&self, version: i64, key: &str, value: &Value) -> Result<(), CommandError> {
        let entry = &self.versions[(version - 1) as usize];
        let schema = match entry.compiled.get() {
            Some(schema) => schema,
            None => {
                let compiled = Schema::compile(&entry.schema).map_err(|e| broken(&self.ns, e))?;
                entry.compiled.get_or_init(|| compiled)
            }
        };
        if schema.is_valid(value) {
            return Ok(());
        }
        Err(CommandError::SchemaViolation {
            ns: self.ns.clone(),
            key: key.to_owned(),
            schema_version: version,
            violations: schema.violations(value),
        })
    }

    /// `value` (in schema `from`) as canonical bytes in schema `to`.
    pub fn translate(&self, value: Value, from: i64, to: i64) -> Result<Vec<u8>, CommandError> {
        let (steps, direction) =
            chain(from, to, |low| self.translations.get((low - 1) as usize)).map_err(|e: ChainError| {
                CommandError::NoTranslationPath {
                    ns: self.ns.clone(),
                    from_version: from,
                    to_version: to,
                    reason: e.to_string(),
                }
            })?;
        let translated =
            apply_chain(value, &steps, direction).map_err(|error| CommandError::Translation {
                ns: self.ns.clone(),
                error: Box::new(error),
            })?;
        Ok(canonical_bytes(&translated))
    }
}
