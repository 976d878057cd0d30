//! statesync's worker side in Rust.
//!
//! Today this crate owns the worker's persisted [`Replica`]: the entries of
//! the namespaces a worker follows, the keys it holds back after refusing a
//! change (NACK), its applied revision and the per-namespace digests it
//! reports with every ACK. It will grow into the Rust worker SDK (a Sync
//! client around this replica); the Python worker runs on it through the
//! binding crate (`crates/python`), which converts at the edge: nothing here
//! knows Python.
//!
//! The [`client`] module is the writer client: commands, reads and waits
//! against a controller, with typed errors (its own docs hold an example).
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

pub mod client;
mod error;
pub mod replica;

pub use error::ReplicaError;
pub use replica::{Changes, Dump, Entry, FORMAT, HeldKey, REPLICA_FILE, Replica, Snapshot, read_offline};
