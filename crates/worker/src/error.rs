//! The replica's errors: what went wrong, and so what the worker does next.

use std::io;
use std::path::PathBuf;

/// Why a replica could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    /// The state directory cannot be trusted: the worker moves it aside and
    /// bootstraps from a snapshot.
    #[error("replica {} is corrupt: {reason}", path.display())]
    Corrupt {
        /// The replica file.
        path: PathBuf,
        /// What the check at open found.
        reason: String,
    },
    /// Another process holds the state directory's lock.
    #[error("state directory {} is in use by another worker process", path.display())]
    InUse {
        /// The state directory.
        path: PathBuf,
    },
    /// The state directory or its lock file could not be created or locked.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A revision could not be written; nothing of it was applied, in the file
    /// or in memory.
    #[error("replica {} could not be written: {source}", path.display())]
    Write {
        /// The replica file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The replica was closed: it can still be read, not written.
    #[error("the replica is closed")]
    Closed,
    /// A digest prefix that is not a string of at most 64 hex nibbles.
    #[error("prefix {0:?} is not at most 64 hex nibbles")]
    InvalidPrefix(String),
}
