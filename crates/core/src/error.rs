//! Why a command or a read is refused: typed, with the fields a caller needs
//! (namespace, key, JSON path, revisions). Each variant maps to one class of
//! the documented error tree (`docs/errors.md`), its gRPC status and its CLI
//! exit code; the mapping is done once, at each edge.

use std::fmt;

/// One compare that did not hold: what was expected and what is there now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedCompare {
    /// Namespace.
    pub ns: String,
    /// Key.
    pub key: String,
    /// "mod_rev == 7", "exists", "absent", or a policy's expectation.
    pub expected: String,
    /// The key's mod_rev now (None: absent).
    pub actual_mod_rev: Option<i64>,
}

/// A refusal. Nothing was written and no revision was used.
#[derive(Debug)]
pub enum CommandError {
    /// A namespace name is not valid.
    InvalidNamespace {
        /// The name as given.
        ns: String,
        /// Why.
        reason: String,
    },
    /// A key is not valid.
    InvalidKey {
        /// Namespace.
        ns: String,
        /// The key as given (shortened when too long).
        key: String,
        /// Why.
        reason: String,
    },
    /// A value is not I-JSON.
    InvalidValue {
        /// Namespace, when known.
        ns: Option<String>,
        /// Key, when known.
        key: Option<String>,
        /// JSON Pointer inside the value.
        path: String,
        /// Why.
        reason: String,
    },
    /// A JSON Patch is malformed or does not apply.
    InvalidPatch {
        /// Namespace.
        ns: String,
        /// Key.
        key: String,
        /// The failing op's index in the patch.
        index: Option<usize>,
        /// The failing op's path.
        path: Option<String>,
        /// Why.
        reason: String,
    },
    /// The command's shape is wrong.
    InvalidCommand {
        /// Why.
        reason: String,
        /// Namespace, when one is concerned.
        ns: Option<String>,
        /// Key, when one is concerned.
        key: Option<String>,
    },
    /// A value is larger than the limit.
    ValueTooLarge {
        /// Namespace.
        ns: String,
        /// Key.
        key: String,
        /// Its canonical size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Compares failed.
    Conflict(Vec<FailedCompare>),
    /// A patch targets an absent key.
    NotFound {
        /// Namespace.
        ns: String,
        /// Key.
        key: String,
    },
    /// The command id was committed before with different content.
    CommandIdReused {
        /// The id.
        command_id: String,
        /// Where it was committed.
        rev: i64,
    },
    /// Refused by a gate above the core (contracts, policies); the gate's own error.
    Gate(Box<dyn std::error::Error + Send + Sync>),
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::InvalidNamespace { ns, reason } => write!(f, "invalid namespace {ns:?}: {reason}"),
            CommandError::InvalidKey { ns, key, reason } => {
                write!(f, "invalid key in namespace {ns:?}: {key:?}: {reason}")
            }
            CommandError::InvalidValue {
                ns,
                key,
                path,
                reason,
            } => {
                write!(f, "invalid value ({ns:?}/{key:?} at {path:?}): {reason}")
            }
            CommandError::InvalidPatch {
                ns,
                key,
                index,
                path,
                reason,
            } => {
                write!(f, "invalid patch ({ns}/{key} op {index:?} at {path:?}): {reason}")
            }
            CommandError::InvalidCommand { reason, .. } => write!(f, "invalid command: {reason}"),
            CommandError::ValueTooLarge { ns, key, size, limit } => {
                write!(
                    f,
                    "value too large ({ns}/{key}): {size} canonical bytes, limit is {limit}"
                )
            }
            CommandError::Conflict(failed) => write!(f, "conflict: {} compare(s) failed", failed.len()),
            CommandError::NotFound { ns, key } => write!(f, "not found: {ns}/{key}"),
            CommandError::CommandIdReused { command_id, rev } => {
                write!(
                    f,
                    "command_id {command_id:?} was already committed at revision {rev} with different content"
                )
            }
            CommandError::Gate(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for CommandError {}
