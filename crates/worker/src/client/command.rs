//! Commands a writer builds: ops, compares, an id and a trace context.
//!
//! A [`Command`] is checked by the core's `prepare` (the code the controller
//! runs) before it is sent, so a bad namespace, key, value or patch fails
//! with the same typed error, naming the JSON path, without a network call.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use statesync_core::command::{self, CommandSource, Expect, Limits, OpKind, value_error};
use statesync_core::error::CommandError;
use statesync_core::value::{self, Value};
use statesync_proto::{CommandRequest, DeleteOp, PatchOp, PutOp, compare, op};

use super::Error;

/// JSON as given: a `serde_json::Value`, or text to be parsed strictly.
#[derive(Clone, Debug, PartialEq)]
enum Json {
    Value(serde_json::Value),
    Text(Vec<u8>),
}

impl Json {
    /// The I-JSON value; a refusal names `ns`, `key` and the JSON path.
    fn parse(&self, ns: &str, key: &str) -> Result<Value, CommandError> {
        let parsed = match self {
            // serde_json prints every number it holds, so one outside I-JSON
            // (an integer above 2^53 - 1) is refused by the strict parser.
            Json::Value(v) => value::parse(v.to_string().as_bytes()),
            Json::Text(text) => value::parse(text),
        };
        parsed.map_err(|e| value_error(ns, key, e))
    }
}

/// A put: a value for a key, with the optional schema version it is written
/// in and the revision it was derived from.
#[derive(Clone, Debug, PartialEq)]
pub struct Put {
    ns: String,
    key: String,
    value: Json,
    schema_version: i32,
    base_rev: i64,
}

impl Put {
    /// A put of a JSON value.
    pub fn new(ns: impl Into<String>, key: impl Into<String>, value: serde_json::Value) -> Put {
        Put::of(ns, key, Json::Value(value))
    }

    /// A put of raw JSON text, parsed strictly (duplicate keys, lone
    /// surrogates and integers outside ±(2^53−1) are refused).
    pub fn json(ns: impl Into<String>, key: impl Into<String>, text: impl Into<Vec<u8>>) -> Put {
        Put::of(ns, key, Json::Text(text.into()))
    }

    fn of(ns: impl Into<String>, key: impl Into<String>, value: Json) -> Put {
        Put {
            ns: ns.into(),
            key: key.into(),
            value,
            schema_version: 0,
            base_rev: 0,
        }
    }

    /// The schema version the value is written in (0, the default: the
    /// namespace's current one).
    pub fn schema_version(mut self, version: i32) -> Put {
        self.schema_version = version;
        self
    }

    /// The revision the writer read the key at: when the key changed since,
    /// the namespace's conflict policy decides (reject, last-durable-wins, merge).
    pub fn base_rev(mut self, rev: i64) -> Put {
        self.base_rev = rev;
        self
    }
}

#[derive(Clone, Debug, PartialEq)]
enum PendingOp {
    Put(Put),
    Patch { ns: String, key: String, patch: Json },
    Delete { ns: String, key: String },
}

impl PendingOp {
    fn names(&self) -> (&str, &str) {
        match self {
            PendingOp::Put(p) => (&p.ns, &p.key),
            PendingOp::Patch { ns, key, .. } | PendingOp::Delete { ns, key } => (ns, key),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
struct PendingCompare {
    ns: String,
    key: String,
    expect: Expect,
}

/// An atomic list of ops: all apply at one new revision, or none does.
///
/// Every command has an id, generated unless one is given. Retrying a
/// command with the **same id** is always safe: one that was committed is
/// answered with its original revision (`replayed`) and written once. Keep
/// the command (or its id) to retry after an error whose
/// [`Error::unknown_outcome`] is set; never resend it with a new id.
///
/// ```
/// use serde_json::json;
/// use statesync_worker::client::{Command, Put};
///
/// let command = Command::new()
///     .put("routes", "web", json!({"port": 80}))
///     .put_op(Put::json("routes", "api", r#"{"port": 8080}"#).base_rev(7))
///     .patch("routes", "db", json!([{"op": "replace", "path": "/port", "value": 5433}]))
///     .delete("routes", "old")
///     .compare_mod_rev("routes", "web", 12)
///     .compare_absent("routes", "api")
///     .command_id("deploy-42");
/// assert_eq!(command.id(), "deploy-42");
/// assert_eq!(command.to_request()?.ops.len(), 4);
/// # Ok::<(), statesync_worker::client::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Command {
    ops: Vec<PendingOp>,
    compares: Vec<PendingCompare>,
    command_id: String,
    trace: Option<String>,
}

impl Default for Command {
    fn default() -> Self {
        Command::new()
    }
}

impl Command {
    /// An empty command with a new, unique id.
    pub fn new() -> Command {
        Command {
            ops: Vec::new(),
            compares: Vec::new(),
            command_id: new_command_id(),
            trace: None,
        }
    }

    /// Put a JSON value.
    pub fn put(self, ns: impl Into<String>, key: impl Into<String>, value: serde_json::Value) -> Command {
        self.put_op(Put::new(ns, key, value))
    }

    /// Put raw JSON text (parsed strictly before it is sent).
    pub fn put_json(
        self,
        ns: impl Into<String>,
        key: impl Into<String>,
        text: impl Into<Vec<u8>>,
    ) -> Command {
        self.put_op(Put::json(ns, key, text))
    }

    /// Put with a schema version or a base revision.
    pub fn put_op(mut self, put: Put) -> Command {
        self.ops.push(PendingOp::Put(put));
        self
    }

    /// Apply an RFC 6902 JSON Patch document (an array of ops) to the key's value.
    pub fn patch(
        mut self,
        ns: impl Into<String>,
        key: impl Into<String>,
        patch: serde_json::Value,
    ) -> Command {
        self.ops.push(PendingOp::Patch {
            ns: ns.into(),
            key: key.into(),
            patch: Json::Value(patch),
        });
        self
    }

    /// Apply a JSON Patch given as JSON text.
    pub fn patch_json(
        mut self,
        ns: impl Into<String>,
        key: impl Into<String>,
        text: impl Into<Vec<u8>>,
    ) -> Command {
        self.ops.push(PendingOp::Patch {
            ns: ns.into(),
            key: key.into(),
            patch: Json::Text(text.into()),
        });
        self
    }

    /// Remove a key (removing an absent key changes nothing).
    pub fn delete(mut self, ns: impl Into<String>, key: impl Into<String>) -> Command {
        self.ops.push(PendingOp::Delete {
            ns: ns.into(),
            key: key.into(),
        });
        self
    }

    /// Commit only if the key's mod_rev is `rev` (0: the key is absent).
    pub fn compare_mod_rev(self, ns: impl Into<String>, key: impl Into<String>, rev: i64) -> Command {
        self.compare(ns, key, Expect::ModRev(rev))
    }

    /// Commit only if the key exists.
    pub fn compare_exists(self, ns: impl Into<String>, key: impl Into<String>) -> Command {
        self.compare(ns, key, Expect::Exists)
    }

    /// Commit only if the key is absent.
    pub fn compare_absent(self, ns: impl Into<String>, key: impl Into<String>) -> Command {
        self.compare(ns, key, Expect::Absent)
    }

    fn compare(mut self, ns: impl Into<String>, key: impl Into<String>, expect: Expect) -> Command {
        self.compares.push(PendingCompare {
            ns: ns.into(),
            key: key.into(),
            expect,
        });
        self
    }

    /// Use this id instead of the generated one (1 to 256 characters).
    pub fn command_id(mut self, id: impl Into<String>) -> Command {
        self.command_id = id.into();
        self
    }

    /// The W3C trace context (`traceparent`) carried to every worker's apply.
    pub fn trace(mut self, traceparent: impl Into<String>) -> Command {
        self.trace = Some(traceparent.into());
        self
    }

    /// The command's id.
    pub fn id(&self) -> &str {
        &self.command_id
    }

    /// The wire request, after the checks the controller makes (names,
    /// values, patches, compares, the id and the trace; sizes are left to the
    /// controller, whose limits are its own).
    pub fn to_request(&self) -> Result<CommandRequest, Error> {
        let unlimited = Limits {
            max_value_bytes: usize::MAX,
            max_ops: usize::MAX,
        };
        let checked = command::prepare(self, &unlimited)?;
        let ops = checked
            .ops
            .into_iter()
            .map(|o| statesync_proto::Op { op: Some(wire_op(o)) });
        let compares = checked.compares.into_iter().map(|c| statesync_proto::Compare {
            ns: c.ns,
            key: c.key,
            target: Some(match c.expect {
                Expect::ModRev(rev) => compare::Target::ModRev(rev),
                Expect::Exists => compare::Target::Exists(true),
                Expect::Absent => compare::Target::Exists(false),
            }),
        });
        Ok(CommandRequest {
            ops: ops.collect(),
            compares: compares.collect(),
            command_id: checked.command_id,
            trace: checked.trace.unwrap_or_default(),
            tag: 0,
        })
    }
}

fn wire_op(checked: command::Op) -> op::Op {
    match checked {
        command::Op::Put {
            ns,
            key,
            value,
            schema_version,
            base_rev,
        } => op::Op::Put(PutOp {
            ns,
            key,
            value,
            // It came from the i32 of a `Put`.
            schema_version: schema_version as i32,
            base_rev,
        }),
        command::Op::Patch {
            ns, key, canonical, ..
        } => op::Op::Patch(PatchOp {
            ns,
            key,
            patch: canonical,
        }),
        command::Op::Delete { ns, key } => op::Op::Delete(DeleteOp { ns, key }),
        command::Op::Contract { governed, request } => op::Op::Contract(statesync_proto::ContractOp {
            ns: governed,
            request,
        }),
    }
}

/// The builder as the core's `prepare` reads a command.
impl CommandSource for Command {
    fn command_id(&self) -> Result<String, CommandError> {
        Ok(self.command_id.clone())
    }

    fn op_count(&self) -> usize {
        self.ops.len()
    }

    fn compare_count(&self) -> usize {
        self.compares.len()
    }

    fn op_kind(&self, i: usize) -> Result<OpKind, CommandError> {
        Ok(match self.ops[i] {
            PendingOp::Put(_) => OpKind::Put,
            PendingOp::Patch { .. } => OpKind::Patch,
            PendingOp::Delete { .. } => OpKind::Delete,
        })
    }

    fn op_ns(&self, i: usize) -> Result<String, CommandError> {
        Ok(self.ops[i].names().0.to_owned())
    }

    fn op_key(&self, i: usize, _ns: &str) -> Result<String, CommandError> {
        Ok(self.ops[i].names().1.to_owned())
    }

    fn op_value(&self, i: usize, ns: &str, key: &str) -> Result<Value, CommandError> {
        match &self.ops[i] {
            PendingOp::Put(put) => put.value.parse(ns, key),
            _ => Err(CommandError::InvalidCommand {
                reason: format!("op {i} has no value"),
                ns: Some(ns.to_owned()),
                key: Some(key.to_owned()),
            }),
        }
    }

    fn op_versions(&self, i: usize) -> (Result<i64, String>, Result<i64, String>) {
        match &self.ops[i] {
            PendingOp::Put(put) => (Ok(i64::from(put.schema_version)), Ok(put.base_rev)),
            _ => (Ok(0), Ok(0)),
        }
    }

    fn op_patch(&self, i: usize, ns: &str, key: &str) -> Result<Value, CommandError> {
        match &self.ops[i] {
            PendingOp::Patch { patch, .. } => patch.parse(ns, key),
            _ => Err(CommandError::InvalidCommand {
                reason: format!("op {i} has no patch"),
                ns: Some(ns.to_owned()),
                key: Some(key.to_owned()),
            }),
        }
    }

    fn compare(&self, i: usize) -> Result<(String, String, String, Result<i64, String>), CommandError> {
        let c = &self.compares[i];
        let (kind, rev) = match c.expect {
            Expect::ModRev(rev) => ("mod_rev", rev),
            Expect::Exists => ("exists", 0),
            Expect::Absent => ("absent", 0),
        };
        Ok((c.ns.clone(), c.key.clone(), kind.to_owned(), Ok(rev)))
    }

    fn trace(&self) -> Result<Option<String>, CommandError> {
        Ok(self.trace.clone())
    }
}

/// A new id, unique without a syscall per id: a random per-process prefix and
/// a counter (the Python client's scheme).
fn new_command_id() -> String {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let prefix = PREFIX.get_or_init(|| {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        format!("{:016x}", hasher.finish())
    });
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}
