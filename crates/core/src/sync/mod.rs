//! The two ends of a Sync stream as state tables, without I/O (docs/wire.md).

pub mod worker;
