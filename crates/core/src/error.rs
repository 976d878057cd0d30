//! Why a command or a read is refused: typed, with the fields a caller needs
//! (namespace, key, JSON path, revisions). Each variant maps to one class of
//! the documented error tree (`docs/errors.md`), its gRPC status and its CLI
//! exit code; the mapping is done once, at each edge.

use std::fmt;

use crate::gate::merge::MergeConflict;
use crate::translate::TranslationError;
use crate::validate::Violation;

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
    /// A value does not conform to its namespace's schema.
    SchemaViolation {
        /// Namespace.
        ns: String,
        /// Key.
        key: String,
        /// The schema version it was checked against.
        schema_version: i64,
        /// Every violation, sorted by path then keyword.
        violations: Vec<Violation>,
    },
    /// A `merge` policy found paths both sides changed differently.
    MergeConflict {
        /// Namespace.
        ns: String,
        /// Key.
        key: String,
        /// The revision the writer read the key at.
        base_rev: i64,
        /// The key's mod_rev now (0: absent).
        current_mod_rev: i64,
        /// Every conflicting path, sorted.
        conflicts: Vec<MergeConflict>,
    },
    /// A value cannot be translated between two schema versions: a step is
    /// not registered.
    NoTranslationPath {
        /// Namespace.
        ns: String,
        /// The version the value is in.
        from_version: i64,
        /// The version it was to be translated to.
        to_version: i64,
        /// Why.
        reason: String,
    },
    /// A registered translation could not apply to a value.
    Translation {
        /// Namespace.
        ns: String,
        /// The failure, with the op and field.
        error: Box<TranslationError>,
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
            CommandError::SchemaViolation {
                ns,
                key,
                schema_version,
                violations,
            } => {
                write!(
                    f,
                    "value does not conform to schema v{schema_version} ({ns}/{key}): {} violation(s)",
                    violations.len()
                )
            }
            CommandError::MergeConflict {
                ns,
                key,
                base_rev,
                current_mod_rev,
                conflicts,
            } => write!(
                f,
                "merge conflict ({ns}/{key}): written from revision {base_rev}, changed since at \
                 revision {current_mod_rev}; {} path(s) conflict",
                conflicts.len()
            ),
            CommandError::NoTranslationPath {
                ns,
                from_version,
                to_version,
                reason,
            } => write!(
                f,
                "no translation path in namespace {ns:?} from schema v{from_version} to v{to_version}: {reason}"
            ),
            CommandError::Translation { ns, error } => write!(f, "namespace {ns:?}: {error}"),
            CommandError::Gate(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for CommandError {}
