//! statesync's data-plane server: `statesync.v1.Statesync` over tonic.
//!
//! Commit, CommitStream, Get, Range and Snapshot run here, on the store,
//! without the interpreter, and so do the worker streams (Sync, WaitApplied,
//! Reconcile: the [`sync`] hub); every other call (status, compaction, the
//! control plane) is proxied unchanged to the Python servicer, so clients
//! use one address. The crate knows no Python: failures
//! are turned into what clients receive by an [`ErrorReporter`] that the
//! binding implements with the product's one error tree.

#![deny(unsafe_code)]

mod command;
pub mod error;
pub mod feed;
pub mod metrics;
mod proxy;
mod server;
mod service;
pub mod sync;

/// The wire contract, generated from `proto/statesync/v1/statesync.proto`.
pub use statesync_proto as proto;

pub use error::{ERROR_METADATA_KEY, ErrorReporter, NativeError, Reported, ServerError};
pub use metrics::{CommitCounters, CommitStats};
pub use proxy::PEER_METADATA_KEY;
pub use server::{Config, NATIVE_METHODS, RunningServer};
pub use sync::{HubSettings, SyncHub};
pub use tonic::Code;
