//! Conflict policies: what a write based on an old revision does
//! (`docs/conflicts.md`).
//!
//! A writer sends `base_rev`, the revision it read the key at. When the key
//! changed since, the namespace's policy decides: `reject` (compare-and-swap,
//! a conflict naming the revisions), `last-durable-wins` (the write applies as
//! sent) or `merge` (a three-way merge with the value at `base_rev` as the
//! common ancestor). [`decide`] is pure: the gate reads the base from history.

use sha2::{Digest, Sha256};

use super::merge::{MergeConflict, merge3};
use crate::canonical_bytes;
use crate::engine::KeyRecord;
use crate::error::{CommandError, FailedCompare};
use crate::value::{Value, parse};

/// A namespace's conflict policy, as its contract record names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Compare-and-swap (the default).
    Reject,
    /// The later commit wins.
    LastDurableWins,
    /// A three-way JSON merge.
    Merge,
}

impl Policy {
    /// The name in contract records and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Reject => "reject",
            Policy::LastDurableWins => "last-durable-wins",
            Policy::Merge => "merge",
        }
    }

    /// The policy called `name`.
    pub fn parse(name: &str) -> Option<Policy> {
        [Policy::Reject, Policy::LastDurableWins, Policy::Merge]
            .into_iter()
            .find(|p| p.name() == name)
    }
}

/// What a policy does with a stale write.
#[derive(Debug)]
pub enum Decision {
    /// Write these canonical bytes.
    Write(Vec<u8>),
    /// The merge leaves the key deleted.
    KeepDeleted,
    /// Refuse the command.
    Refuse(CommandError),
}

impl Decision {
    /// What the decision does, comparable across policies (for shadow mode).
    pub fn summary(&self) -> String {
        match self {
            Decision::Refuse(_) => "refuse".into(),
            Decision::KeepDeleted => "keep deleted".into(),
            Decision::Write(value) => {
                let hash = Sha256::digest(value);
                let short: String = hash[..6].iter().map(|b| format!("{b:02x}")).collect();
                format!("write {} bytes (sha256 {short})", value.len())
            }
        }
    }
}

/// Did the key change after the writer read it at `base_rev`? (`base`: the
/// key at `base_rev`, needed only when it is absent now.)
pub fn is_stale(base_rev: i64, base: Option<&KeyRecord>, current: Option<&KeyRecord>) -> bool {
    match current {
        None => base.is_some(),
        Some(current) => current.mod_rev > base_rev,
    }
}

/// A stale write to one key: the key at the writer's base revision and now
/// (None: absent) and the value the writer sent.
#[derive(Debug)]
pub struct StaleWrite<'a> {
    /// Namespace.
    pub ns: &'a str,
    /// Key.
    pub key: &'a str,
    /// The revision the writer read the key at.
    pub base_rev: i64,
    /// The key at `base_rev`, its value in the current schema version.
    pub base: Option<&'a KeyRecord>,
    /// The key now.
    pub current: Option<&'a KeyRecord>,
    /// The writer's canonical value.
    pub writer: &'a [u8],
}

/// The policy's decision for a stale write ([`is_stale`] is true).
pub fn decide(policy: Policy, write: &StaleWrite<'_>) -> Decision {
    let actual = write.current.map(|c| c.mod_rev);
    match policy {
        Policy::LastDurableWins => Decision::Write(write.writer.to_vec()),
        Policy::Reject => Decision::Refuse(CommandError::Conflict(vec![FailedCompare {
            ns: write.ns.to_owned(),
            key: write.key.to_owned(),
            expected: format!(
                "unchanged since revision {} (the write's base revision)",
                write.base_rev
            ),
            actual_mod_rev: actual,
        }])),
        Policy::Merge => {
            let stored =
                |record: Option<&KeyRecord>| record.map(|r| parse_stored(write, &r.value)).transpose();
            let (base, current, writer) = match (
                stored(write.base),
                stored(write.current),
                parse_stored(write, write.writer),
            ) {
                (Ok(base), Ok(current), Ok(writer)) => (base, current, writer),
                (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return Decision::Refuse(e),
            };
            let merged = merge3(base.as_ref(), current.as_ref(), Some(&writer));
            if !merged.conflicts.is_empty() {
                return Decision::Refuse(CommandError::MergeConflict {
                    ns: write.ns.to_owned(),
                    key: write.key.to_owned(),
                    base_rev: write.base_rev,
                    current_mod_rev: actual.unwrap_or(0),
                    conflicts: merged.conflicts,
                });
            }
            match merged.value {
                None => Decision::KeepDeleted,
                Some(value) => Decision::Write(canonical_bytes(&value)),
            }
        }
    }
}

/// A stored or prepared value: canonical I-JSON, so it parses unless the store
/// was altered, which is then reported as such.
fn parse_stored(write: &StaleWrite<'_>, bytes: &[u8]) -> Result<Value, CommandError> {
    parse(bytes).map_err(|e| CommandError::InvalidValue {
        ns: Some(write.ns.to_owned()),
        key: Some(write.key.to_owned()),
        path: e.pointer(),
        reason: format!("the stored value does not parse: {}", e.reason),
    })
}

/// A conflict as the error tree describes it: each side wrapped so absence is
/// never confused with a value (`{"value": V}` or `{"absent": true}`).
pub fn conflict_value(conflict: &MergeConflict) -> Value {
    let side = |v: &Option<Value>| match v {
        Some(v) => Value::Object(vec![("value".into(), v.clone())]),
        None => Value::Object(vec![("absent".into(), Value::Bool(true))]),
    };
    Value::Object(vec![
        ("path".into(), Value::String(conflict.path.clone())),
        ("base".into(), side(&conflict.base)),
        ("current".into(), side(&conflict.current)),
        ("writer".into(), side(&conflict.writer)),
    ])
}
