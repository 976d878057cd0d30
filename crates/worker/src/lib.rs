//! statesync's worker SDK in Rust.
//!
//! - [`Worker`]: a worker process's sync loop (tokio + tonic): it keeps a
//!   replica of the namespaces it follows exactly in step with the controller,
//!   consulting a [`Handler`] before each change (which may [`Reject`] it:
//!   NACK, the last good value kept).
//! - [`Session`]: the worker end of the Sync protocol without I/O; the state
//!   table it follows is `statesync_core::sync::worker`.
//! - [`Replica`]: the persisted replica: entries, held keys (refused changes),
//!   the applied revision and the per-namespace digests reported with every
//!   ACK; [`SharedReplica`] lets a handler and other threads read it while
//!   the worker runs.
//!
//! The Python `Worker` is this [`Worker`], driven through the binding crate
//! (`crates/python`) with a [`Handler`] that decides on each revision's
//! changes in one call ([`Handler::on_changes`]); the binding converts at the
//! edge: nothing here knows Python.
//!
//! The [`client`] module is the writer client: commands, reads and waits
//! against a controller, with typed errors (its own docs hold an example).
//!
//! A worker that prints each change (it needs a running controller):
//!
//! ```no_run
//! use statesync_worker::{ChangeEvent, Reject, Worker};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let worker = Worker::builder("http://127.0.0.1:7070")
//!     .worker_id("edge-1")
//!     .namespace("routes")
//!     .data_dir("/var/lib/edge-1")
//!     .handler(|change: &ChangeEvent<'_>| {
//!         if change.value_text() == Some("null") {
//!             return Err(Reject::new("routes are objects"));
//!         }
//!         println!("{} {}/{} = {:?}", change.rev, change.ns, change.key, change.value_text());
//!         Ok(())
//!     })
//!     .start()?;
//! worker.wait_for(42).await?;
//! worker.stop().await?;
//! # Ok(())
//! # }
//! ```
//!
//! A worker that declares the schema versions it understands validates every
//! value it applies (a change's value, a delta's result, a snapshot entry;
//! not a repair) against the schema the controller registered for the
//! version the value was served in, read from the namespace's contract in
//! `_contracts` at connect and again when a newer declared version appears
//! (docs/contracts.md §3). It may also validate against a local JSON Schema
//! (draft 2020-12, formats asserted), checked first. A value that fails is
//! NACKed with the namespace, key, schema (and version) and first violation,
//! and its key is held at the last good value until a later good change.
//!
//! ```no_run
//! use statesync_core::validate::Schema;
//! use statesync_core::value::parse;
//! use statesync_worker::Worker;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let schema = parse(br#"{"type":"object","required":["sku"],"properties":{"qty":{"minimum":1}}}"#)?;
//! let worker = Worker::builder("127.0.0.1:7070") // or http://127.0.0.1:7070
//!     .worker_id("billing-1")
//!     .namespace("orders")
//!     .versions("orders", [1]) // served in v1, translated from newer versions
//!     .schema("orders", Schema::compile(&schema)?)
//!     .start()?;
//! worker.wait_for(42).await?;
//! worker.stop().await?;
//! # Ok(())
//! # }
//! ```
//!
//! The replica on its own:
//!
//! ```
//! use statesync_worker::{Changes, Entry, Replica};
//!
//! let dir = tempfile::tempdir()?;
//! let mut replica = Replica::open(dir.path(), "w1")?;
//! let entry = Entry::new(br#"{"port":80}"#.to_vec(), 7, 7, 1);
//! replica.apply(7, Changes {
//!     puts: vec![("routes".into(), "web".into(), entry)],
//!     ..Changes::default()
//! })?;
//! replica.close();
//!
//! let replica = Replica::open(dir.path(), "w1")?; // checked at open
//! assert_eq!(replica.applied_rev(), 7);
//! assert_eq!(replica.get("routes", "web").unwrap().value, br#"{"port":80}"#);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]
#![deny(unsafe_code)]

mod answer;
pub mod client;
mod contract;
mod error;
pub mod handler;
pub mod replica;
pub mod session;
mod worker;

pub use error::ReplicaError;
pub use handler::{AcceptAll, ChangeEvent, Handler, Interrupted, Op, Origin, Reject};
pub use replica::{
    Changes, Dump, Entry, FORMAT, HeldKey, REPLICA_FILE, Replica, SharedReplica, Snapshot, open_or_set_aside,
    read_offline,
};
pub use session::{Chaos, Counters, Options, Session, Step, StreamEnd};
pub use worker::{Status, StreamError, Worker, WorkerBuilder, WorkerError};
