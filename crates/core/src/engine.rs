//! Commands to changes, with no I/O: the one place command semantics live.
//!
//! [`evaluate`] reads current key records through a callable (the store passes
//! its table plus the changes already planned in the same group commit),
//! checks the compares, applies the ops and returns the changes to write at
//! `rev`. It plans nothing when a compare fails or an op cannot apply.

use crate::canonical::canonical_bytes;
use crate::command::{Command, Limits, Op, patch_refusal};
use crate::error::CommandError;
use crate::log::ChangeOp;
use crate::patch;
use crate::value::parse;

/// A key's state: its canonical value and revisions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRecord {
    /// Namespace.
    pub ns: String,
    /// Key.
    pub key: String,
    /// Canonical JSON.
    pub value: Vec<u8>,
    /// The revision that created the key.
    pub create_rev: i64,
    /// The revision that last wrote it.
    pub mod_rev: i64,
    /// Writes since creation (1 for a new key).
    pub version: i64,
}

/// A change before it is stamped with time and chained: the key's state
/// before and after (None: absent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedChange {
    /// Namespace.
    pub ns: String,
    /// Key.
    pub key: String,
    /// Put or delete.
    pub op: ChangeOp,
    /// The key before.
    pub before: Option<KeyRecord>,
    /// The key after.
    pub record: Option<KeyRecord>,
}

impl PlannedChange {
    /// The key's mod_rev before the change (0: absent).
    pub fn prev_mod_rev(&self) -> i64 {
        self.before.as_ref().map_or(0, |b| b.mod_rev)
    }

    /// The same change with another new value (a translation or a merge).
    pub fn with_value(mut self, value: Vec<u8>) -> Self {
        if let Some(record) = &mut self.record {
            record.value = value;
        }
        self
    }
}

/// A key's record at the head, as this group commit sees it.
pub type ReadKey<'a> = dyn FnMut(&str, &str) -> Option<KeyRecord> + 'a;

/// A key's current value in the form a patch is written against (the
/// namespace's current schema version).
pub type Rebase<'a> = dyn FnMut(&KeyRecord) -> Result<Vec<u8>, CommandError> + 'a;

/// The changes `command` makes when committed at `rev`.
///
/// A contract op plans the request itself as the record's value; the contract
/// gate turns it into the namespace's new contract. Deleting an absent key
/// plans no change.
pub fn evaluate(
    command: &Command,
    read: &mut ReadKey<'_>,
    rev: i64,
    limits: &Limits,
    mut rebase: Option<&mut Rebase<'_>>,
) -> Result<Vec<PlannedChange>, CommandError> {
    let failed: Vec<_> = command
        .compares
        .iter()
        .filter_map(|c| c.check(read(&c.ns, &c.key).map(|r| r.mod_rev)))
        .collect();
    if !failed.is_empty() {
        return Err(CommandError::Conflict(failed));
    }
    let mut planned = Vec::with_capacity(command.ops.len());
    for op in &command.ops {
        let (ns, key) = (op.ns(), op.key());
        let current = read(ns, key);
        let value = match op {
            Op::Delete { .. } => {
                if let Some(before) = current {
                    planned.push(PlannedChange {
                        ns: ns.to_owned(),
                        key: key.to_owned(),
                        op: ChangeOp::Delete,
                        before: Some(before),
                        record: None,
                    });
                }
                continue;
            }
            Op::Patch { ops, .. } => {
                let Some(current) = &current else {
                    return Err(CommandError::NotFound {
                        ns: ns.to_owned(),
                        key: key.to_owned(),
                    });
                };
                let base = match rebase.as_deref_mut() {
                    Some(rebase) => rebase(current)?,
                    None => current.value.clone(),
                };
                // Stored values are canonical I-JSON: parsing them cannot fail
                // unless the store was altered, which is then reported as such.
                let doc = parse(&base).map_err(|e| CommandError::InvalidValue {
                    ns: Some(ns.to_owned()),
                    key: Some(key.to_owned()),
                    path: e.pointer(),
                    reason: format!("the stored value does not parse: {}", e.reason),
                })?;
                let result =
                    patch::apply(doc, ops, limits.max_value_bytes).map_err(|e| patch_refusal(ns, key, e))?;
                canonical_bytes(&result)
            }
            Op::Put { value, .. } => value.clone(),
            Op::Contract { request, .. } => request.clone(),
        };
        let record = KeyRecord {
            ns: ns.to_owned(),
            key: key.to_owned(),
            value,
            create_rev: current.as_ref().map_or(rev, |c| c.create_rev),
            mod_rev: rev,
            version: current.as_ref().map_or(1, |c| c.version + 1),
        };
        planned.push(PlannedChange {
            ns: ns.to_owned(),
            key: key.to_owned(),
            op: ChangeOp::Put,
            before: current,
            record: Some(record),
        });
    }
    Ok(planned)
}
