//! The wire contract, generated from `proto/statesync/v1/statesync.proto`:
//! messages, the `Statesync` server trait and its client. The server, the
//! worker's Sync client and the writer client share these types.

#![allow(missing_docs, clippy::all)]

tonic::include_proto!("statesync.v1");

/// The trailing metadata key of a failed call's serialized [`Error`]
/// (`docs/errors.md`): the server writes it, every client decodes it.
pub const ERROR_METADATA_KEY: &str = "statesync-error-bin";

#[cfg(feature = "json")]
include!(concat!(env!("OUT_DIR"), "/statesync.v1.serde.rs"));
