//! Change records and the hash chain (`docs/log-format.md`).
//!
//! Each committed change is linked into a chain:
//! `hash = SHA-256(prev_hash ‖ canonical change)`, where the canonical change
//! is the RFC 8785 form of the change object. Its members are fixed and the
//! value is canonical already, so the bytes are built directly from the parts.

use crate::canonical::{write_int, write_string};
use crate::digest::{Hash, sha256};

/// The `prev_hash` of the first change ever committed.
pub const GENESIS_HASH: Hash = [0; 32];

/// What a change does to its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChangeOp {
    /// The key holds a new value.
    Put,
    /// The key was removed.
    Delete,
}

impl ChangeOp {
    /// The name used in the log and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeOp::Put => "put",
            ChangeOp::Delete => "delete",
        }
    }

    /// Parses "put" or "delete".
    pub fn parse(name: &str) -> Option<ChangeOp> {
        match name {
            "put" => Some(ChangeOp::Put),
            "delete" => Some(ChangeOp::Delete),
            _ => None,
        }
    }
}

/// One key's change in one committed command, as workers receive it. For a
/// delete, `value` is None and `create_rev`/`version` are 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The command's revision.
    pub rev: i64,
    /// Orders the changes of one revision.
    pub seq: i64,
    /// The namespace.
    pub ns: String,
    /// The key.
    pub key: String,
    /// Put or delete.
    pub op: ChangeOp,
    /// Canonical JSON of the new value (puts only).
    pub value: Option<Vec<u8>>,
    /// The key's mod_rev before this change (0: it was absent).
    pub prev_mod_rev: i64,
    /// The revision that created the key (0 for a delete).
    pub create_rev: i64,
    /// How many times the key was written since it was created (0 for a delete).
    pub version: i64,
    /// The command's id.
    pub command_id: String,
    /// When the command was committed (milliseconds since the epoch).
    pub ts_ms: i64,
    /// W3C trace context carried from the writer.
    pub trace: Option<String>,
    /// The chain hash after this change.
    pub hash: Hash,
}

impl Change {
    /// The canonical bytes the chain hashes.
    pub fn canonical(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(160 + self.value.as_ref().map_or(0, Vec::len));
        out.extend_from_slice(b"{\"command_id\":");
        write_string(&self.command_id, &mut out);
        out.extend_from_slice(b",\"create_rev\":");
        write_int(self.create_rev, &mut out);
        out.extend_from_slice(b",\"key\":");
        write_string(&self.key, &mut out);
        out.extend_from_slice(b",\"ns\":");
        write_string(&self.ns, &mut out);
        out.extend_from_slice(b",\"op\":\"");
        out.extend_from_slice(self.op.as_str().as_bytes());
        out.extend_from_slice(b"\",\"prev_mod_rev\":");
        write_int(self.prev_mod_rev, &mut out);
        out.extend_from_slice(b",\"rev\":");
        write_int(self.rev, &mut out);
        out.extend_from_slice(b",\"seq\":");
        write_int(self.seq, &mut out);
        out.extend_from_slice(b",\"trace\":");
        match &self.trace {
            Some(trace) => write_string(trace, &mut out),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"ts_ms\":");
        write_int(self.ts_ms, &mut out);
        out.extend_from_slice(b",\"value\":");
        match &self.value {
            Some(value) => out.extend_from_slice(value),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"version\":");
        write_int(self.version, &mut out);
        out.push(b'}');
        out
    }

    /// Links this change after `prev_hash`: sets and returns its hash.
    pub fn link(&mut self, prev_hash: &Hash) -> Hash {
        self.hash = chain_hash(prev_hash, &self.canonical());
        self.hash
    }
}

/// `SHA-256(prev_hash ‖ canonical change)`.
pub fn chain_hash(prev_hash: &Hash, canonical_change: &[u8]) -> Hash {
    let mut data = Vec::with_capacity(32 + canonical_change.len());
    data.extend_from_slice(prev_hash);
    data.extend_from_slice(canonical_change);
    sha256(&data)
}
