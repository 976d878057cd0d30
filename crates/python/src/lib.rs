//! `statesync._native`: the thin PyO3 binding of the Rust crates.
//!
//! It converts at the edge and holds no semantics of its own: values are
//! checked, canonicalized and hashed, and patches applied, by `statesync-core`;
//! the worker's replica is `statesync-worker`'s. Refusals are raised as
//! `ValueRefused(kind, tokens, reason)`, `PatchRefused(kind, op index, path,
//! reason)`, `TranslationRefused(reason, op index, field, from_version, to_version)`,
//! `ReplicaCorrupt(path, reason)` and `ReplicaInUse(path)`; the
//! Python package turns them into its typed errors (it knows the namespace and
//! key, this layer does not).

use pyo3::prelude::*;

mod descent;
mod digest;
mod log;
mod patch;
mod replica;
mod server;
mod store;
mod translate;
mod values;
mod worker;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    values::register(m)?;
    digest::register(m)?;
    descent::register(m)?;
    patch::register(m)?;
    replica::register(m)?;
    log::register(m)?;
    store::register(m)?;
    server::register(m)?;
    translate::register(m)?;
    worker::register(m)?;
    Ok(())
}
