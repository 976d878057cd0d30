//! The user's say on each change: a [`Handler`] sees every change before it is
//! applied and may refuse it ([`Reject`]): the worker then NACKs the change,
//! keeps the key's last good value and holds the key (docs/wire.md, "Held keys").

use std::fmt;

/// Whether a change writes a value or removes the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// A new value.
    Put,
    /// The key is removed.
    Delete,
}

/// Where a change comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A command's revision, streamed in a batch.
    Command,
    /// A snapshot that replaced the replica (a resync).
    Snapshot,
    /// A repair after a digest descent found the key drifted. Applied as
    /// sent: a refusal is not honoured.
    Repair,
}

/// One change about to be applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChangeEvent<'a> {
    /// The revision it is applied at.
    pub rev: i64,
    /// Its namespace.
    pub ns: &'a str,
    /// Its key.
    pub key: &'a str,
    /// Put or delete.
    pub op: Op,
    /// The canonical JSON value of a put (None for a delete).
    pub value: Option<&'a [u8]>,
    /// The command's id: the idempotency key for external effects ("" for a
    /// snapshot or a repair).
    pub command_id: &'a str,
    /// The command's trace context ("" when none).
    pub trace: &'a str,
    /// The revision that created the key (0 for a delete).
    pub create_rev: i64,
    /// How many times the key was written (0 for a delete).
    pub version: i64,
    /// The schema version the value is served in (0: the namespace has none,
    /// or a delete).
    pub schema_version: i32,
    /// Where the change comes from.
    pub origin: Origin,
}

impl ChangeEvent<'_> {
    /// The value as JSON text (canonical JSON is UTF-8).
    pub fn value_text(&self) -> Option<&str> {
        self.value.and_then(|v| std::str::from_utf8(v).ok())
    }
}

/// A handler's refusal of a change, with the reason sent in the NACK.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reject {
    /// Why, in words an operator reads in `statesync status`.
    pub reason: String,
}

impl Reject {
    /// A refusal for `reason`.
    pub fn new(reason: impl Into<String>) -> Reject {
        Reject {
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rejected: {}", self.reason)
    }
}

impl std::error::Error for Reject {}

/// A handler could not decide because the worker is stopping: nothing of the
/// revision (or snapshot) it was asked about is applied, and the stream ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interrupted {
    /// Why, for the log.
    pub reason: String,
}

/// Sees each change before it is applied. It runs on the worker's sync task
/// (on a multi-threaded tokio runtime, in `block_in_place`, so a handler that
/// blocks holds up only its own worker); keep it short, or hand the work to a
/// task of your own.
pub trait Handler: Send {
    /// Accept (`Ok`) or refuse (`Err(Reject)`) the change.
    fn on_change(&mut self, change: &ChangeEvent<'_>) -> Result<(), Reject>;

    /// Decides on every change of one revision, snapshot or repair at once,
    /// in order: one verdict per change (a repair's verdicts are not
    /// honoured: it is applied as sent). The default asks
    /// [`Handler::on_change`] for each; a handler that pays per call (one
    /// that crosses into another language) decides them together.
    fn on_changes(&mut self, changes: &[ChangeEvent<'_>]) -> Result<Vec<Result<(), Reject>>, Interrupted> {
        Ok(changes.iter().map(|change| self.on_change(change)).collect())
    }

    /// The changes accepted in the last [`Handler::on_changes`] call are now
    /// in the replica (called after each revision, snapshot or repair that
    /// offered changes is applied).
    fn applied(&mut self) {}
}

impl<F> Handler for F
where
    F: FnMut(&ChangeEvent<'_>) -> Result<(), Reject> + Send,
{
    fn on_change(&mut self, change: &ChangeEvent<'_>) -> Result<(), Reject> {
        self(change)
    }
}

/// A handler that accepts every change.
#[derive(Clone, Copy, Debug, Default)]
pub struct AcceptAll;

impl Handler for AcceptAll {
    fn on_change(&mut self, _: &ChangeEvent<'_>) -> Result<(), Reject> {
        Ok(())
    }
}
