//! statesync's core: the semantics of values and digests, with no I/O.
//!
//! This crate owns what every statesync process must compute identically:
//! strict I-JSON parsing ([`value`]), RFC 8785 canonical bytes
//! ([`canonical`]), the per-namespace digests ([`digest`]) and the descent
//! that localizes their differences ([`descent`]), JSON Patch application
//! ([`patch`]), translations between schema versions ([`translate`]), JSON
//! Schema validation ([`validate`]), the write gate that enforces contracts and
//! conflict policies ([`gate`]), the deltas sent to workers ([`delta`])
//! and the sync protocol's state machines ([`sync`]). It opens no files or sockets, starts no threads and reads no clock; the store, the
//! server, the worker and the Python binding are built on it. The vectors in
//! `conformance/` hold it to the same bytes as every other implementation.

#![deny(unsafe_code)]

pub mod canonical;
pub mod command;
pub mod delta;
pub mod descent;
pub mod digest;
pub mod engine;
pub mod error;
pub mod gate;
pub mod log;
pub mod patch;
pub mod sequencer;
pub mod sync;
pub mod translate;
pub mod validate;
pub mod value;

pub use canonical::canonical_bytes;
pub use digest::{Hash, NamespaceDigest, Node, U256};
pub use patch::{Op, PatchError, PatchErrorKind, Pointer, json_equal};
pub use value::{ErrorKind, MAX_DEPTH, MAX_SAFE_INTEGER, Value, ValueError};
