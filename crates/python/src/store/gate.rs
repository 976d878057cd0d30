//! The write gate's host: what the Rust gate (`statesync_core::gate`) asks of
//! the Python product. Only a contract op calls into Python (registration is
//! control-plane policy); history reads stay in Rust, and a shadow policy's
//! disagreement is logged through Python's logging like the rest of the product.

use std::sync::Weak;

use statesync_core::gate::{ContractHost, Disagreement};

use super::errors::*;
use super::source::py_failure;
use super::*;

/// `registrar` is `statesync.contracts.registry.registered_record`; `store` the
/// store the gate commits to (weak: the store owns the gate).
pub(super) struct PyContractHost {
    pub(super) registrar: Py<PyAny>,
    pub(super) store: Weak<SqliteStore>,
}

impl ContractHost for PyContractHost {
    fn register(
        &mut self,
        ns: &str,
        current: Option<&[u8]>,
        request: &[u8],
        rev: i64,
        now_ms: i64,
    ) -> Result<Vec<u8>, CommandError> {
        Python::attach(|py| {
            let current = current.map(|c| PyBytes::new(py, c));
            self.registrar
                .bind(py)
                .call1((ns, current, PyBytes::new(py, request), rev, now_ms))
                .and_then(|record| record.extract::<Vec<u8>>())
                .map_err(|e| unwrap_gate_error(py, e))
        })
    }

    fn read_at(&mut self, ns: &str, key: &str, rev: i64) -> Result<Option<KeyRecord>, CommandError> {
        let store = self
            .store
            .upgrade()
            .ok_or(CommandError::Gate(Box::new(StoreError::Closed)))?;
        store
            .get(ns, key, Some(rev))
            .map_err(|e| CommandError::Gate(Box::new(e)))
    }

    fn shadow_disagreed(&mut self, d: &Disagreement) {
        Python::attach(|py| {
            let logged = py
                .import("logging")
                .and_then(|logging| logging.call_method1("getLogger", ("statesync.policy",)))
                .and_then(|log| {
                    log.call_method1(
                        "info",
                        (
                            "shadow policy %s would %s where %s does %s (namespace %r, key %r, base rev %d)",
                            d.candidate.0.name(),
                            &d.candidate.1,
                            d.active.0.name(),
                            &d.active.1,
                            &d.ns,
                            &d.key,
                            d.base_rev,
                        ),
                    )
                });
            if let Err(e) = logged {
                e.write_unraisable(py, None);
            }
        })
    }
}

/// A statesync error raised by the registrar stays itself; anything else is a
/// bug in it and fails this command only, as a store error.
fn unwrap_gate_error(py: Python<'_>, e: PyErr) -> CommandError {
    let statesync_error = errors_class(py, "StatesyncError").ok();
    match statesync_error {
        Some(cls) if e.is_instance(py, &cls) => py_failure(e),
        _ => {
            let wrapped = raise(py, "StoreError", (format!("contract registration failed: {e}"),));
            wrapped.set_cause(py, Some(e));
            py_failure(wrapped)
        }
    }
}
