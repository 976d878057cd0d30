//! The two ends of a Sync stream as state tables, without I/O: each takes
//! events in and says what to send or do; the gRPC loops around them only
//! move messages. `docs/wire.md` is the normative description of the
//! protocol.

pub mod controller;
pub mod worker;
