//! Store errors. No rusqlite error escapes the store: each becomes one of
//! these, with the cause's text kept.

use std::fmt;

use statesync_core::error::CommandError;

/// Why a store call failed.
#[derive(Debug)]
pub enum StoreError {
    /// The store is closed.
    Closed,
    /// Another process holds the data directory.
    InUse {
        /// The database file.
        path: String,
        /// The holder's pid, as it wrote it.
        holder: String,
    },
    /// The data cannot be trusted (or was written by an unknown format).
    Corrupt(String),
    /// A write's durability is unknown (fsync failed): the store acknowledges
    /// nothing more until it is restarted. Retrying a command with the same
    /// command id after the restart is safe.
    Failed(String),
    /// Storage refused an operation (a full disk, an I/O error on a read);
    /// nothing was written, and a retry with the same command id is safe.
    Io(String),
    /// A read asked for a revision below the compacted one.
    Compacted {
        /// Asked.
        rev: i64,
        /// The compacted revision.
        compacted: i64,
    },
    /// A read asked for a revision after the head.
    FutureRevision {
        /// Asked.
        rev: i64,
        /// The head.
        head: i64,
    },
    /// An argument is invalid (a bad name, a negative revision).
    Invalid(CommandError),
}

impl StoreError {
    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        StoreError::Invalid(CommandError::InvalidCommand {
            reason: reason.into(),
            ns: None,
            key: None,
        })
    }
}

impl From<CommandError> for StoreError {
    fn from(e: CommandError) -> Self {
        StoreError::Invalid(e)
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Closed => write!(f, "the store is closed"),
            StoreError::InUse { path, holder } => {
                write!(
                    f,
                    "{path} is in use by another process (pid {holder}); stop it first"
                )
            }
            StoreError::Corrupt(why) | StoreError::Failed(why) | StoreError::Io(why) => write!(f, "{why}"),
            StoreError::Compacted { rev, compacted } => {
                write!(
                    f,
                    "revision {rev} is compacted (history starts after {compacted})"
                )
            }
            StoreError::FutureRevision { rev, head } => {
                write!(f, "revision {rev} is after the head revision {head}")
            }
            StoreError::Invalid(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for StoreError {}
