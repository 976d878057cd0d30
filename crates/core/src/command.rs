//! Commands: atomic lists of ops with compares, checked once and fingerprinted.
//!
//! A writer's command arrives from anywhere (a Python object, a protobuf
//! message); [`prepare`] reads it through [`CommandSource`] in a fixed order,
//! so the first fault found is the same whatever the source, and refuses an
//! oversized command before converting any of its values.

use std::collections::HashSet;

use crate::canonical::{canonical_bytes, write_int, write_string};
use crate::digest::{Hash, sha256};
use crate::error::{CommandError, FailedCompare};
use crate::patch;
use crate::value::{Value, ValueError};

/// The namespace that holds each namespace's contract, keyed by namespace. Its
/// name is outside the user pattern, so only contract ops write it.
pub const CONTRACTS_NAMESPACE: &str = "_contracts";
/// The most UTF-8 bytes in a key.
pub const MAX_KEY_BYTES: usize = 1024;
/// The most characters in a trace context.
pub const MAX_TRACE_CHARS: usize = 1024;
/// The most characters in a command id.
pub const MAX_COMMAND_ID_CHARS: usize = 256;

/// Size limits enforced on every command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest canonical size of one value, after patches are applied.
    pub max_value_bytes: usize,
    /// Most ops (and, separately, compares) in one command.
    pub max_ops: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_value_bytes: 1024 * 1024,
            max_ops: 10_000,
        }
    }
}

/// One checked op. Values are canonical bytes.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Write a value.
    Put {
        /// Namespace.
        ns: String,
        /// Key.
        key: String,
        /// Canonical JSON.
        value: Vec<u8>,
        /// The schema version the value is written in (0: the current one).
        schema_version: i64,
        /// The revision the writer read the key at (0: none).
        base_rev: i64,
    },
    /// Apply an RFC 6902 JSON Patch to the current value.
    Patch {
        /// Namespace.
        ns: String,
        /// Key.
        key: String,
        /// The checked ops.
        ops: Vec<patch::Op>,
        /// Canonical JSON of the patch as written (every member), for the fingerprint.
        canonical: Vec<u8>,
    },
    /// Remove a key.
    Delete {
        /// Namespace.
        ns: String,
        /// Key.
        key: String,
    },
    /// Change a namespace's contract; written as the key `governed` of the
    /// contracts namespace.
    Contract {
        /// The namespace whose contract changes.
        governed: String,
        /// Canonical JSON of the request.
        request: Vec<u8>,
    },
}

impl Op {
    /// The op's kind as the log and the gate name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Put { .. } => "put",
            Op::Patch { .. } => "patch",
            Op::Delete { .. } => "delete",
            Op::Contract { .. } => "contract",
        }
    }

    /// The namespace the op writes (the contracts namespace for a contract op).
    pub fn ns(&self) -> &str {
        match self {
            Op::Put { ns, .. } | Op::Patch { ns, .. } | Op::Delete { ns, .. } => ns,
            Op::Contract { .. } => CONTRACTS_NAMESPACE,
        }
    }

    /// The key the op writes (the governed namespace for a contract op).
    pub fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::Patch { key, .. } | Op::Delete { key, .. } => key,
            Op::Contract { governed, .. } => governed,
        }
    }
}

/// What a compare expects of a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The key's mod_rev equals this (0: the key is absent).
    ModRev(i64),
    /// The key exists.
    Exists,
    /// The key is absent.
    Absent,
}

/// A condition the command needs to hold at commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compare {
    /// Namespace.
    pub ns: String,
    /// Key.
    pub key: String,
    /// What is expected.
    pub expect: Expect,
}

impl Compare {
    /// "mod_rev == 7", "exists" or "absent".
    pub fn describe(&self) -> String {
        match self.expect {
            Expect::ModRev(n) => format!("mod_rev == {n}"),
            Expect::Exists => "exists".into(),
            Expect::Absent => "absent".into(),
        }
    }

    /// The kind's name.
    pub fn kind(&self) -> &'static str {
        match self.expect {
            Expect::ModRev(_) => "mod_rev",
            Expect::Exists => "exists",
            Expect::Absent => "absent",
        }
    }

    /// None when the compare holds on a key whose mod_rev is `actual`.
    pub fn check(&self, actual: Option<i64>) -> Option<FailedCompare> {
        let holds = match self.expect {
            // mod_rev == 0 means "absent", as in etcd.
            Expect::ModRev(n) => actual.unwrap_or(0) == n,
            Expect::Exists => actual.is_some(),
            Expect::Absent => actual.is_none(),
        };
        (!holds).then(|| FailedCompare {
            ns: self.ns.clone(),
            key: self.key.clone(),
            expected: self.describe(),
            actual_mod_rev: actual,
        })
    }
}

/// A checked command: all its ops apply at one new revision, or none does.
#[derive(Clone, Debug, PartialEq)]
pub struct Command {
    /// Idempotency key.
    pub command_id: String,
    /// The ops, in order; a key appears in at most one.
    pub ops: Vec<Op>,
    /// Conditions checked before any op.
    pub compares: Vec<Compare>,
    /// W3C trace context carried to every worker's apply.
    pub trace: Option<String>,
    /// What makes two commands "the same" for idempotency (not the id or trace).
    pub fingerprint: Hash,
}

/// The kind of an op as a source names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// A put.
    Put,
    /// A JSON Patch.
    Patch,
    /// A delete.
    Delete,
    /// A contract change.
    Contract,
}

/// An unchecked command, read field by field in the order [`prepare`] checks.
/// Each method returns the refusal a source-specific fault deserves (a name
/// that is not a string, a value that is not JSON).
pub trait CommandSource {
    /// The command id, not yet checked for length.
    fn command_id(&self) -> Result<String, CommandError>;
    /// How many ops.
    fn op_count(&self) -> usize;
    /// How many compares.
    fn compare_count(&self) -> usize;
    /// Op `i`'s kind.
    fn op_kind(&self, i: usize) -> Result<OpKind, CommandError>;
    /// Op `i`'s namespace (for a contract op, the governed namespace), not yet checked.
    fn op_ns(&self, i: usize) -> Result<String, CommandError>;
    /// Op `i`'s key, not yet checked (`ns` names the op in a refusal).
    fn op_key(&self, i: usize, ns: &str) -> Result<String, CommandError>;
    /// Op `i`'s value (put) or request (contract), checked as I-JSON; a
    /// refusal names `ns` and `key` (see [`value_error`]).
    fn op_value(&self, i: usize, ns: &str, key: &str) -> Result<Value, CommandError>;
    /// Op `i`'s (schema_version, base_rev); Err(repr) for one that is not an integer.
    fn op_versions(&self, i: usize) -> (Result<i64, String>, Result<i64, String>);
    /// Op `i`'s patch document, checked as I-JSON; a refusal names `ns`,
    /// `key` and the patch op (see [`patch_value_error`]).
    fn op_patch(&self, i: usize, ns: &str, key: &str) -> Result<Value, CommandError>;
    /// Compare `i`: namespace, key, kind name, and the mod_rev (Err(repr) if not an integer).
    fn compare(&self, i: usize) -> Result<(String, String, String, Result<i64, String>), CommandError>;
    /// The trace context.
    fn trace(&self) -> Result<Option<String>, CommandError>;
}

/// Checks a namespace name: `[a-z0-9][a-z0-9._-]{0,62}`.
pub fn check_namespace(ns: &str) -> Result<(), CommandError> {
    let bytes = ns.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 63
        && matches!(bytes[0], b'a'..=b'z' | b'0'..=b'9')
        && bytes[1..]
            .iter()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(CommandError::InvalidNamespace {
            ns: ns.to_owned(),
            reason: "must match [a-z0-9][a-z0-9._-]{0,62} (lowercase, 1 to 63 characters)".into(),
        })
    }
}

/// Checks a namespace that may be read: a user namespace or the contracts one.
pub fn check_readable_namespace(ns: &str) -> Result<(), CommandError> {
    if ns == CONTRACTS_NAMESPACE {
        Ok(())
    } else {
        check_namespace(ns)
    }
}

/// Checks a key: 1 to 1024 UTF-8 bytes, no NUL.
pub fn check_key(ns: &str, key: &str) -> Result<(), CommandError> {
    let refuse = |key: String, reason: String| CommandError::InvalidKey {
        ns: ns.to_owned(),
        key,
        reason,
    };
    if key.is_empty() {
        return Err(refuse(
            key.into(),
            "a key is 1 to 1024 UTF-8 bytes, this one is empty".into(),
        ));
    }
    if key.contains('\0') {
        return Err(refuse(key.into(), "a key may not contain NUL".into()));
    }
    if key.len() > MAX_KEY_BYTES {
        let shown: String = key.chars().take(40).collect();
        return Err(refuse(
            format!("{shown}..."),
            format!(
                "a key is at most {MAX_KEY_BYTES} UTF-8 bytes, this one is {}",
                key.len()
            ),
        ));
    }
    Ok(())
}

fn invalid(reason: impl Into<String>) -> CommandError {
    CommandError::InvalidCommand {
        reason: reason.into(),
        ns: None,
        key: None,
    }
}

fn invalid_at(reason: impl Into<String>, ns: &str, key: &str) -> CommandError {
    CommandError::InvalidCommand {
        reason: reason.into(),
        ns: Some(ns.to_owned()),
        key: Some(key.to_owned()),
    }
}

/// A value that is not I-JSON, in a put of `ns`/`key`.
pub fn value_error(ns: &str, key: &str, e: ValueError) -> CommandError {
    CommandError::InvalidValue {
        ns: Some(ns.to_owned()),
        key: Some(key.to_owned()),
        path: e.pointer(),
        reason: e.reason,
    }
}

/// A patch refused by the core, in a command's op on `ns`/`key`.
pub fn patch_refusal(ns: &str, key: &str, e: patch::PatchError) -> CommandError {
    match e.kind {
        patch::PatchErrorKind::TooLarge { size, limit } => CommandError::ValueTooLarge {
            ns: ns.to_owned(),
            key: key.to_owned(),
            size,
            limit,
        },
        _ => CommandError::InvalidPatch {
            ns: ns.to_owned(),
            key: key.to_owned(),
            index: e.index,
            path: e.path,
            reason: e.reason,
        },
    }
}

/// Checks a command completely and computes its canonical parts.
pub fn prepare(source: &dyn CommandSource, limits: &Limits) -> Result<Command, CommandError> {
    let command_id = source.command_id()?;
    let chars = command_id.chars().count();
    if !(1..=MAX_COMMAND_ID_CHARS).contains(&chars) {
        return Err(invalid("command_id must be a string of 1 to 256 characters"));
    }
    let (op_count, compare_count) = (source.op_count(), source.compare_count());
    if op_count == 0 {
        return Err(invalid("a command needs at least one op"));
    }
    if op_count > limits.max_ops || compare_count > limits.max_ops {
        return Err(invalid(format!(
            "a command holds at most {} ops and compares",
            limits.max_ops
        )));
    }
    let mut ops = Vec::with_capacity(op_count);
    let mut seen: HashSet<(String, String)> = HashSet::with_capacity(op_count);
    for i in 0..op_count {
        let kind = source.op_kind(i)?;
        let ns = source.op_ns(i)?;
        if kind == OpKind::Contract {
            if op_count != 1 || compare_count != 0 {
                return Err(CommandError::InvalidCommand {
                    reason: "a contract change is a command of its own".into(),
                    ns: Some(ns),
                    key: None,
                });
            }
            check_namespace(&ns)?;
            let request = source.op_value(i, CONTRACTS_NAMESPACE, &ns)?;
            ops.push(Op::Contract {
                request: crate::canonical::canonical_bytes(&request),
                governed: ns,
            });
            continue;
        }
        check_namespace(&ns)?;
        let key = source.op_key(i, &ns)?;
        check_key(&ns, &key)?;
        if !seen.insert((ns.clone(), key.clone())) {
            return Err(invalid_at("a key may appear in only one op", &ns, &key));
        }
        match kind {
            OpKind::Put => {
                let value = source.op_value(i, &ns, &key)?;
                let value = canonical_bytes(&value);
                if value.len() > limits.max_value_bytes {
                    return Err(CommandError::ValueTooLarge {
                        ns,
                        key,
                        size: value.len(),
                        limit: limits.max_value_bytes,
                    });
                }
                let (schema_version, base_rev) = source.op_versions(i);
                let mut numbers = [0i64; 2];
                for (slot, (name, number)) in numbers
                    .iter_mut()
                    .zip([("schema_version", schema_version), ("base_rev", base_rev)])
                {
                    *slot = match number {
                        Ok(n) if n >= 0 => n,
                        Ok(n) => {
                            return Err(invalid_at(
                                format!("{name} must be an integer >= 0, got {n}"),
                                &ns,
                                &key,
                            ));
                        }
                        Err(repr) => {
                            return Err(invalid_at(
                                format!("{name} must be an integer >= 0, got {repr}"),
                                &ns,
                                &key,
                            ));
                        }
                    };
                }
                ops.push(Op::Put {
                    ns,
                    key,
                    value,
                    schema_version: numbers[0],
                    base_rev: numbers[1],
                });
            }
            OpKind::Patch => {
                let doc = source.op_patch(i, &ns, &key)?;
                let parsed = patch::parse(&doc).map_err(|e| patch_refusal(&ns, &key, e))?;
                ops.push(Op::Patch {
                    canonical: canonical_bytes(&doc),
                    ops: parsed,
                    ns,
                    key,
                });
            }
            OpKind::Delete => ops.push(Op::Delete { ns, key }),
            OpKind::Contract => unreachable!("handled above"),
        }
    }
    let mut compares = Vec::with_capacity(compare_count);
    for i in 0..compare_count {
        let (ns, key, kind, mod_rev) = source.compare(i)?;
        check_namespace(&ns)?;
        check_key(&ns, &key)?;
        let expect = match kind.as_str() {
            "mod_rev" => match mod_rev {
                Ok(n) if n >= 0 => Expect::ModRev(n),
                Ok(n) => {
                    return Err(invalid_at(
                        format!("mod_rev compare needs a revision >= 0, got {n}"),
                        &ns,
                        &key,
                    ));
                }
                Err(repr) => {
                    return Err(invalid_at(
                        format!("mod_rev compare needs a revision >= 0, got {repr}"),
                        &ns,
                        &key,
                    ));
                }
            },
            "exists" => Expect::Exists,
            "absent" => Expect::Absent,
            other => {
                return Err(invalid_at(
                    format!(
                        "unknown compare kind {}: use mod_rev, exists or absent",
                        crate::value::python_repr(other)
                    ),
                    &ns,
                    &key,
                ));
            }
        };
        compares.push(Compare { ns, key, expect });
    }
    let trace = source.trace()?;
    if let Some(t) = &trace
        && t.chars().count() > MAX_TRACE_CHARS
    {
        return Err(invalid(format!(
            "trace must be valid Unicode of at most {MAX_TRACE_CHARS} characters"
        )));
    }
    let fingerprint = fingerprint(&ops, &compares);
    Ok(Command {
        command_id,
        ops,
        compares,
        trace,
        fingerprint,
    })
}

/// What makes two commands "the same" for idempotency: every op's kind, names,
/// versions and canonical value or patch, and every compare, joined by 0x1e.
/// The bytes are those the first (Python) implementation stored, so command
/// ids remembered in an existing data directory still match.
pub fn fingerprint(ops: &[Op], compares: &[Compare]) -> Hash {
    let mut data = Vec::with_capacity(128);
    let mut first = true;
    let part = |data: &mut Vec<u8>, first: &mut bool| {
        if !*first {
            data.push(0x1e);
        }
        *first = false;
    };
    for op in ops {
        part(&mut data, &mut first);
        data.push(b'[');
        write_string(op.kind(), &mut data);
        data.push(b',');
        write_string(op.ns(), &mut data);
        data.push(b',');
        write_string(op.key(), &mut data);
        if let Op::Put {
            schema_version,
            base_rev,
            ..
        } = op
            && (*schema_version != 0 || *base_rev != 0)
        {
            data.push(b',');
            write_int(*schema_version, &mut data);
            data.push(b',');
            write_int(*base_rev, &mut data);
        }
        data.push(b']');
        part(&mut data, &mut first);
        match op {
            Op::Put { value, .. } => data.extend_from_slice(value),
            Op::Contract { request, .. } => data.extend_from_slice(request),
            _ => {}
        }
        // An empty patch adds no part (as the first implementation did).
        if let Op::Patch {
            ops: patch,
            canonical,
            ..
        } = op
            && !patch.is_empty()
        {
            part(&mut data, &mut first);
            data.extend_from_slice(canonical);
        }
    }
    for c in compares {
        part(&mut data, &mut first);
        data.push(b'[');
        write_string(&c.ns, &mut data);
        data.push(b',');
        write_string(&c.key, &mut data);
        data.push(b',');
        write_string(c.kind(), &mut data);
        data.push(b',');
        write_int(if let Expect::ModRev(n) = c.expect { n } else { 0 }, &mut data);
        data.push(b']');
    }
    sha256(&data)
}
