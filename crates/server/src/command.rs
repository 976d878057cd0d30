//! Commands as they arrive on the wire, read by the core's `prepare`.
//!
//! `prepare` asks for each field in its own order and refuses an oversized
//! command by its op count before any value is parsed; values and patches are
//! parsed here, strictly, only when it asks for them.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use statesync_core::command::{CommandSource, OpKind, value_error};
use statesync_core::error::CommandError;
use statesync_core::value::{self, Value};

use crate::proto::{CommandRequest, compare, op};

fn invalid(reason: String) -> CommandError {
    CommandError::InvalidCommand {
        reason,
        ns: None,
        key: None,
    }
}

/// A command request as `prepare` reads it (the request type is the proto
/// crate's, so the core's trait is implemented on this view of it).
pub(crate) struct WireCommand<'a>(pub(crate) &'a CommandRequest);

impl WireCommand<'_> {
    fn op(&self, i: usize) -> Option<&op::Op> {
        self.0.ops[i].op.as_ref()
    }
}

impl CommandSource for WireCommand<'_> {
    fn command_id(&self) -> Result<String, CommandError> {
        Ok(self.0.command_id.clone())
    }

    fn op_count(&self) -> usize {
        self.0.ops.len()
    }

    fn compare_count(&self) -> usize {
        self.0.compares.len()
    }

    fn op_kind(&self, i: usize) -> Result<OpKind, CommandError> {
        match self.op(i) {
            Some(op::Op::Put(_)) => Ok(OpKind::Put),
            Some(op::Op::Patch(_)) => Ok(OpKind::Patch),
            Some(op::Op::Delete(_)) => Ok(OpKind::Delete),
            Some(op::Op::Contract(_)) => Ok(OpKind::Contract),
            None => Err(invalid(format!("op {i} has no put, patch, delete or contract"))),
        }
    }

    fn op_ns(&self, i: usize) -> Result<String, CommandError> {
        Ok(match self.op(i) {
            Some(op::Op::Put(p)) => p.ns.clone(),
            Some(op::Op::Patch(p)) => p.ns.clone(),
            Some(op::Op::Delete(d)) => d.ns.clone(),
            Some(op::Op::Contract(c)) => c.ns.clone(),
            None => String::new(),
        })
    }

    fn op_key(&self, i: usize, _ns: &str) -> Result<String, CommandError> {
        Ok(match self.op(i) {
            Some(op::Op::Put(p)) => p.key.clone(),
            Some(op::Op::Patch(p)) => p.key.clone(),
            Some(op::Op::Delete(d)) => d.key.clone(),
            Some(op::Op::Contract(c)) => c.ns.clone(),
            None => String::new(),
        })
    }

    fn op_value(&self, i: usize, ns: &str, key: &str) -> Result<Value, CommandError> {
        let text = match self.op(i) {
            Some(op::Op::Put(p)) => &p.value,
            Some(op::Op::Contract(c)) => &c.request,
            _ => return Err(invalid(format!("op {i} has no value"))),
        };
        value::parse(text).map_err(|e| value_error(ns, key, e))
    }

    fn op_versions(&self, i: usize) -> (Result<i64, String>, Result<i64, String>) {
        match self.op(i) {
            Some(op::Op::Put(p)) => (Ok(i64::from(p.schema_version)), Ok(p.base_rev)),
            _ => (Ok(0), Ok(0)),
        }
    }

    fn op_patch(&self, i: usize, ns: &str, key: &str) -> Result<Value, CommandError> {
        match self.op(i) {
            // The core checks the document's shape (an array of op objects).
            Some(op::Op::Patch(p)) => value::parse(&p.patch).map_err(|e| value_error(ns, key, e)),
            _ => Err(invalid(format!("op {i} has no patch"))),
        }
    }

    fn compare(&self, i: usize) -> Result<(String, String, String, Result<i64, String>), CommandError> {
        let c = &self.0.compares[i];
        let (kind, mod_rev) = match c.target {
            Some(compare::Target::ModRev(n)) => ("mod_rev", n),
            Some(compare::Target::Exists(true)) => ("exists", 0),
            Some(compare::Target::Exists(false)) => ("absent", 0),
            None => {
                return Err(invalid(format!(
                    "compare on {}/{} has no mod_rev or exists",
                    c.ns, c.key
                )));
            }
        };
        Ok((c.ns.clone(), c.key.clone(), kind.to_owned(), Ok(mod_rev)))
    }

    fn trace(&self) -> Result<Option<String>, CommandError> {
        Ok((!self.0.trace.is_empty()).then(|| self.0.trace.clone()))
    }
}

/// Ids for commands sent without one: unique without a syscall per id, a
/// random per-process prefix and a counter (as the Python client makes them).
pub(crate) struct CommandIds {
    prefix: String,
    next: AtomicU64,
}

impl CommandIds {
    pub(crate) fn new() -> Self {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        CommandIds {
            prefix: format!("{:016x}", hasher.finish()),
            next: AtomicU64::new(1),
        }
    }

    pub(crate) fn assign(&self, request: &mut CommandRequest) {
        if request.command_id.is_empty() {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            request.command_id = format!("{}-{n}", self.prefix);
        }
    }
}
