//! The writer client's errors, decoded from what the controller sends.
//!
//! A failed call carries a `statesync.v1.Error` in its trailing metadata
//! (`docs/errors.md`, the normative table): its `code` decides the variant and
//! its JSON `detail` fills the fields. A failure without one is a transport
//! failure ([`Error::Unavailable`]) or a bare status ([`Error::Remote`]). The
//! client decides on the code, never on the message.

use serde_json::Value as Json;
use tonic::Code;

mod decode;

pub(in crate::client) use decode::with_causes;

/// One compare that did not hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedCompare {
    /// Namespace.
    pub namespace: String,
    /// Key.
    pub key: String,
    /// What the command expected: `mod_rev == N`, `exists` or `absent`.
    pub expected: String,
    /// The key's mod_rev now (None: the key is absent).
    pub actual_mod_rev: Option<i64>,
}

/// One way a value breaks its namespace's schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaViolation {
    /// JSON Pointer into the value ("" is the whole document).
    pub path: String,
    /// The JSON Schema keyword that failed (`required`, `type`...).
    pub keyword: String,
    /// Why, for people.
    pub message: String,
}

/// Which storage failure a [`Error::Store`] is (`StoreError` and its subclasses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// `StoreError`: storage refused the write (a full disk...); it was rolled back.
    Refused,
    /// `StoreClosedError`: the controller is shutting down.
    Closed,
    /// `StoreInUseError`: another process holds the store.
    InUse,
    /// `StoreFailedError`: an fsync failed; no write is acknowledged until the
    /// controller restarts.
    Failed,
    /// `StoreCorruptError`: the hash chain, a digest or the file format is broken.
    Corrupt,
}

impl StoreErrorKind {
    fn code(self) -> &'static str {
        match self {
            StoreErrorKind::Refused => "StoreError",
            StoreErrorKind::Closed => "StoreClosedError",
            StoreErrorKind::InUse => "StoreInUseError",
            StoreErrorKind::Failed => "StoreFailedError",
            StoreErrorKind::Corrupt => "StoreCorruptError",
        }
    }
}

/// Why a call failed. Each variant is one code of `docs/errors.md`; the
/// contract-administration codes a writer does not send (schemas,
/// translations) share [`Error::InvalidInput`].
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `InvalidNamespaceError`: a name not matching `[a-z0-9][a-z0-9._-]{0,62}`.
    #[error("invalid namespace {namespace:?}: {reason}")]
    InvalidNamespace {
        /// The name as given.
        namespace: String,
        /// Why.
        reason: String,
    },
    /// `InvalidKeyError`: keys are 1 to 1024 UTF-8 bytes, no NUL.
    #[error("invalid key in namespace {namespace:?}: {key:?}: {reason}")]
    InvalidKey {
        /// Namespace.
        namespace: String,
        /// The key as given (shortened when too long).
        key: String,
        /// Why.
        reason: String,
    },
    /// `InvalidValueError`: a value outside I-JSON, or not JSON at all.
    #[error("invalid value ({}): {reason}", where_(namespace.as_deref(), key.as_deref(), Some(path)))]
    InvalidValue {
        /// Namespace, when the value belongs to one.
        namespace: Option<String>,
        /// Key, when the value belongs to one.
        key: Option<String>,
        /// JSON Pointer of the offending member ("" is the root).
        path: String,
        /// Why.
        reason: String,
    },
    /// `InvalidPatchError`: a JSON Patch is malformed or does not apply.
    #[error("invalid patch ({}){}: {reason}", where_(Some(namespace), Some(key), path.as_deref()),
            op_index.map(|i| format!(" op #{i}")).unwrap_or_default())]
    InvalidPatch {
        /// Namespace.
        namespace: String,
        /// Key.
        key: String,
        /// The failing op's index (None: the patch as a whole).
        op_index: Option<u64>,
        /// The failing op's path.
        path: Option<String>,
        /// Why.
        reason: String,
    },
    /// `InvalidCommandError`: a malformed command (no ops, one key twice...).
    #[error("invalid command ({}): {reason}", where_(namespace.as_deref(), key.as_deref(), None))]
    InvalidCommand {
        /// Namespace, when one is concerned.
        namespace: Option<String>,
        /// Key, when one is concerned.
        key: Option<String>,
        /// Why.
        reason: String,
    },
    /// `ValueTooLargeError`: a value above the controller's limit.
    #[error(
        "value too large ({}): {size} canonical bytes, limit is {limit}",
        where_(Some(namespace), Some(key), None)
    )]
    ValueTooLarge {
        /// Namespace.
        namespace: String,
        /// Key.
        key: String,
        /// The value's canonical size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// `SchemaViolationError`: a value does not conform to its schema.
    #[error(
        "value does not conform to schema v{schema_version} ({}): {}",
        where_(Some(namespace), Some(key), None),
        describe_violations(violations)
    )]
    SchemaViolation {
        /// Namespace.
        namespace: String,
        /// Key.
        key: String,
        /// The schema version checked against.
        schema_version: i64,
        /// Every violation.
        violations: Vec<SchemaViolation>,
    },
    /// `CommandIdReusedError`: the id was committed before with different content.
    #[error(
        "command_id {command_id:?} was already committed at revision {committed_rev} with different content"
    )]
    CommandIdReused {
        /// The id.
        command_id: String,
        /// Where it was committed.
        committed_rev: i64,
    },
    /// `FutureRevisionError`: a read at a revision after the head.
    #[error("revision {requested_rev} is after the head revision {head_rev}")]
    FutureRevision {
        /// The revision asked for.
        requested_rev: i64,
        /// The head.
        head_rev: i64,
    },
    /// Another `InvalidInputError` (a schema, a compatibility mode or a
    /// translation was refused): `detail` holds its documented fields.
    #[error("{message}")]
    InvalidInput {
        /// The code (`IncompatibleSchemaError`...).
        code: String,
        /// The server's message.
        message: String,
        /// The fields, as `docs/errors.md` lists them.
        detail: Json,
    },
    /// `ConflictError`: a compare failed; nothing was written.
    #[error("conflict: {}", describe_failed(failed))]
    Conflict {
        /// Every compare that did not hold.
        failed: Vec<FailedCompare>,
    },
    /// `MergeConflictError`: a write from an old revision changed paths the
    /// key also changed since; nothing was written.
    #[error(
        "merge conflict ({}): written from revision {base_rev}, changed since at revision {current_mod_rev}",
        where_(Some(namespace), Some(key), None)
    )]
    MergeConflict {
        /// Namespace.
        namespace: String,
        /// Key.
        key: String,
        /// The revision the writer read.
        base_rev: i64,
        /// The key's mod_rev now.
        current_mod_rev: i64,
        /// One object per conflicting path: `path`, and `base`, `current`
        /// and `writer`, each `{"value": V}` or `{"absent": true}`.
        conflicts: Vec<Json>,
    },
    /// `NotFoundError`: the key is absent (a patch of an absent key...).
    #[error("not found: {}{}", where_(Some(namespace), Some(key), None),
            rev.map(|r| format!(" at revision {r}")).unwrap_or_default())]
    NotFound {
        /// Namespace.
        namespace: String,
        /// Key.
        key: String,
        /// The revision read at, when one was asked for.
        rev: Option<i64>,
    },
    /// `CompactedError`: history at the revision is gone.
    #[error("revision {requested_rev} is compacted (the oldest readable revision is {compacted_rev})")]
    Compacted {
        /// The revision asked for.
        requested_rev: i64,
        /// The oldest readable revision.
        compacted_rev: i64,
    },
    /// `UnavailableError`: the controller could not be reached or went away.
    #[error("server {address} is unavailable: {reason}{}", unknown_outcome(command_id.as_deref()))]
    Unavailable {
        /// The controller's address.
        address: String,
        /// What the transport said.
        reason: String,
        /// Set when a commit failed so: its command id. The command may or
        /// may not have been committed; retry it with this same id.
        command_id: Option<String>,
    },
    /// `StoreError` or a subclass: the controller's storage failed.
    #[error("{message}{}", unknown_outcome(command_id.as_deref()))]
    Store {
        /// Which failure.
        kind: StoreErrorKind,
        /// The server's message.
        message: String,
        /// Set when a commit failed so: its command id. The command may or
        /// may not have been committed; retry it with this same id.
        command_id: Option<String>,
    },
    /// `ProtocolError`: a peer broke the protocol.
    #[error("{message}")]
    Protocol {
        /// The server's message.
        message: String,
    },
    /// `RemoteError`: a code this client does not know (a newer server), or a
    /// status without a statesync error.
    #[error("{message}")]
    Remote {
        /// The code, or the gRPC status name for a bare status.
        code: String,
        /// The gRPC status.
        status: Code,
        /// The server's message.
        message: String,
        /// The error's fields as sent (`null` when none).
        detail: Json,
    },
}

impl Error {
    /// The code of `docs/errors.md` (the Python class name): `ConflictError`...
    pub fn code(&self) -> &str {
        match self {
            Error::InvalidNamespace { .. } => "InvalidNamespaceError",
            Error::InvalidKey { .. } => "InvalidKeyError",
            Error::InvalidValue { .. } => "InvalidValueError",
            Error::InvalidPatch { .. } => "InvalidPatchError",
            Error::InvalidCommand { .. } => "InvalidCommandError",
            Error::ValueTooLarge { .. } => "ValueTooLargeError",
            Error::SchemaViolation { .. } => "SchemaViolationError",
            Error::CommandIdReused { .. } => "CommandIdReusedError",
            Error::FutureRevision { .. } => "FutureRevisionError",
            Error::InvalidInput { code, .. } | Error::Remote { code, .. } => code,
            Error::Conflict { .. } => "ConflictError",
            Error::MergeConflict { .. } => "MergeConflictError",
            Error::NotFound { .. } => "NotFoundError",
            Error::Compacted { .. } => "CompactedError",
            Error::Unavailable { .. } => "UnavailableError",
            Error::Store { kind, .. } => kind.code(),
            Error::Protocol { .. } => "ProtocolError",
        }
    }

    /// Whether the same request may succeed later unchanged (with backoff).
    /// A code this client does not know is never retryable.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Unavailable { .. } => true,
            Error::Store { kind, .. } => matches!(
                kind,
                StoreErrorKind::Closed | StoreErrorKind::InUse | StoreErrorKind::Failed
            ),
            _ => false,
        }
    }

    /// `InvalidInputError` or a subclass: the request must change before it
    /// is sent again.
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            Error::InvalidNamespace { .. }
                | Error::InvalidKey { .. }
                | Error::InvalidValue { .. }
                | Error::InvalidPatch { .. }
                | Error::InvalidCommand { .. }
                | Error::ValueTooLarge { .. }
                | Error::SchemaViolation { .. }
                | Error::CommandIdReused { .. }
                | Error::FutureRevision { .. }
                | Error::InvalidInput { .. }
        )
    }

    /// `ConflictError` or `MergeConflictError`: nothing was written; re-read,
    /// rebuild the command and send it with a new command id.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict { .. } | Error::MergeConflict { .. })
    }

    /// The id of the command this error leaves in doubt: a commit that failed
    /// in transport or in storage may or may not have been committed.
    /// Retrying it with this same id is always safe (the controller answers a
    /// committed id with its original revision); a new id could apply it twice.
    pub fn unknown_outcome(&self) -> Option<&str> {
        match self {
            Error::Unavailable { command_id, .. } | Error::Store { command_id, .. } => command_id.as_deref(),
            _ => None,
        }
    }

    /// The exit status a command-line tool reports for this error
    /// (`docs/errors.md`, column "exit").
    pub fn exit_code(&self) -> i32 {
        match self {
            e if e.is_invalid_input() => 4,
            e if e.is_conflict() => 3,
            Error::NotFound { .. } => 1,
            Error::Compacted { .. } => 6,
            Error::Unavailable { .. } => 5,
            Error::Store {
                kind: StoreErrorKind::Closed | StoreErrorKind::InUse,
                ..
            } => 5,
            _ => 7,
        }
    }
}

fn where_(namespace: Option<&str>, key: Option<&str>, path: Option<&str>) -> String {
    let mut parts = Vec::new();
    if let Some(ns) = namespace {
        parts.push(format!("namespace {ns:?}"));
    }
    if let Some(key) = key {
        parts.push(format!("key {key:?}"));
    }
    match path {
        Some("") => parts.push("at the document root".into()),
        Some(p) => parts.push(format!("at JSON path {p:?}")),
        None => {}
    }
    parts.join(", ")
}

fn describe_failed(failed: &[FailedCompare]) -> String {
    let each = failed.iter().map(|f| match f.actual_mod_rev {
        Some(rev) => format!(
            "{}/{}: expected {}, mod_rev is {rev}",
            f.namespace, f.key, f.expected
        ),
        None => format!(
            "{}/{}: expected {}, key is absent",
            f.namespace, f.key, f.expected
        ),
    });
    each.collect::<Vec<_>>().join("; ")
}

fn describe_violations(violations: &[SchemaViolation]) -> String {
    let each = violations.iter().map(|v| {
        let path = if v.path.is_empty() { "(root)" } else { &v.path };
        format!("{path}: {} [{}]", v.message, v.keyword)
    });
    each.collect::<Vec<_>>().join("; ")
}

fn unknown_outcome(command_id: Option<&str>) -> String {
    command_id
        .map(|id| {
            format!(" (command {id:?} may or may not have been committed: retry it with the same command_id)")
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
