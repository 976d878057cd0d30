//! The sync protocol's ends, without I/O: each takes events in and says what
//! to send or do; the gRPC loops around them only move messages.
//! `docs/wire.md` is the normative description of the protocol.

pub mod controller;
