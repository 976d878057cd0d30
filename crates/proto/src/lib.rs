//! The wire contract, generated from `proto/statesync/v1/statesync.proto`:
//! messages, the `Statesync` server trait and its client. The server, the
//! worker's Sync client and the writer client share these types.

#![allow(missing_docs, clippy::all)]

tonic::include_proto!("statesync.v1");

#[cfg(feature = "json")]
include!(concat!(env!("OUT_DIR"), "/statesync.v1.serde.rs"));
