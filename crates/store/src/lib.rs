//! statesync's embedded store.
//!
//! The backend persists what the core's `Sequencer` builds, atomically and
//! durably, and answers reads; command semantics (compares, patches, the
//! gate's contracts and policies, idempotency, the chain and the digests) live
//! in `statesync-core`, above it. [`SqliteStore`] is the embedded default.

#![deny(unsafe_code)]

pub mod error;
pub mod sqlite;

pub use error::StoreError;
pub use sqlite::{ChainReport, Snapshot, SqliteStore};
use statesync_core::command::Limits;

/// How a store keeps data. Every field has a safe default.
#[derive(Clone, Debug, PartialEq)]
pub struct StoreSettings {
    /// Size limits applied to every command.
    pub limits: Limits,
    /// How long a committed command id is remembered (independent of compaction).
    pub idempotency_retention_s: f64,
    /// Auto-compact to keep at most this many revisions of history (None: keep all).
    pub history_retention_revisions: Option<i64>,
    /// Auto-compact history older than this many seconds (None: keep all).
    pub history_retention_s: Option<f64>,
    /// How often retention (idempotency records, auto-compaction) is applied.
    pub maintenance_interval_s: f64,
    /// Most commands in one group commit (one transaction, one fsync).
    pub max_batch: usize,
    /// Most ops in one group commit (a single larger command still commits alone).
    pub max_batch_ops: usize,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            limits: Limits::default(),
            idempotency_retention_s: 24.0 * 3600.0,
            history_retention_revisions: None,
            history_retention_s: None,
            maintenance_interval_s: 5.0,
            max_batch: 2048,
            max_batch_ops: 10_000,
        }
    }
}
