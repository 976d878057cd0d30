//! Group commit without I/O: a batch of prepared commands becomes one atomic write.
//!
//! The [`Sequencer`] owns the head: the head revision, the hash chain's last
//! hash and every namespace's digest. [`Sequencer::build`] runs a batch of
//! commands in order (each sees the effects of the ones before it), assigns
//! revisions, stamps and chains the changes, and returns each command's
//! outcome plus the [`BatchWrite`] a backend persists in one transaction.
//! After the write is durable the backend calls `confirm`; if it failed,
//! `abort` puts the head back as it was.

use std::collections::{HashMap, HashSet};

use crate::command::{CONTRACTS_NAMESPACE, Command, Limits, Op};
use crate::digest::{Hash, NamespaceDigest, value_hash};
use crate::engine::{KeyRecord, PlannedChange, ReadKey, evaluate};
use crate::error::CommandError;
use crate::log::Change;

/// What idempotency remembers of a committed command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandRecord {
    /// The command id.
    pub command_id: String,
    /// Its content's fingerprint.
    pub fingerprint: Hash,
    /// Its revision.
    pub rev: i64,
    /// When it was committed.
    pub ts_ms: i64,
}

/// A namespace's digest right after the command at `rev` touched it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamespaceRoot {
    /// Namespace.
    pub ns: String,
    /// Revision.
    pub rev: i64,
    /// The digest root.
    pub root: Hash,
    /// Its key count.
    pub count: u64,
}

/// A command is durable at `rev`; `replayed` when this is the original outcome
/// returned again for a repeated command id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    /// The revision.
    pub rev: i64,
    /// The command id.
    pub command_id: String,
    /// When it was committed.
    pub ts_ms: i64,
    /// A repeated id: nothing was written now.
    pub replayed: bool,
}

/// A command's outcome.
pub type Outcome = Result<Committed, CommandError>;

type NsKey = (String, String);

/// Everything one group commit persists, atomically.
#[derive(Debug, Default)]
pub struct BatchWrite {
    /// The head after the batch.
    pub head_rev: i64,
    /// The chain's last hash after the batch.
    pub chain_head: Hash,
    /// Every change, in revision and sequence order.
    pub changes: Vec<Change>,
    /// The committed commands.
    pub commands: Vec<CommandRecord>,
    /// Digest roots after each command, per namespace it touched.
    pub roots: Vec<NamespaceRoot>,
    /// Final state of every key the batch touched (None: deleted).
    pub state: HashMap<NsKey, Option<KeyRecord>>,
    /// SHA-256 of each final value in `state`.
    pub value_hashes: HashMap<NsKey, Hash>,
    undo: Vec<(NsKey, Option<Hash>, Option<Hash>)>,
}

impl BatchWrite {
    /// Nothing to write (every command failed or was a replay).
    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }
}

/// Contracts and conflict policies, consulted for the commands that need them:
/// it may rewrite a patch's base and admit, rewrite or refuse planned changes.
pub trait Gate {
    /// A key's value in the namespace's current schema version.
    fn rebase(&mut self, read: &mut ReadKey<'_>, record: &KeyRecord) -> Result<Vec<u8>, CommandError>;

    /// The changes to write for `command`, or a refusal.
    fn admit(
        &mut self,
        command: &Command,
        planned: Vec<PlannedChange>,
        read: &mut ReadKey<'_>,
        rev: i64,
        now_ms: i64,
    ) -> Result<Vec<PlannedChange>, CommandError>;
}

/// Every (namespace, key) that building `commands` reads, with the contract
/// record of every namespace written.
pub fn keys_read(commands: &[Command]) -> HashSet<NsKey> {
    let mut keys = HashSet::new();
    for c in commands {
        for op in &c.ops {
            keys.insert((op.ns().to_owned(), op.key().to_owned()));
            keys.insert((CONTRACTS_NAMESPACE.to_owned(), op.ns().to_owned()));
        }
        for cmp in &c.compares {
            keys.insert((cmp.ns.clone(), cmp.key.clone()));
        }
    }
    keys
}

/// Whether the gate has anything to do with `command`: a contract op, a
/// declared schema version, a base revision, or a namespace with a contract.
fn needs_gate(command: &Command, read: &mut ReadKey<'_>) -> bool {
    command.ops.iter().any(|op| match op {
        Op::Contract { .. } => true,
        Op::Put {
            schema_version,
            base_rev,
            ..
        } if *schema_version != 0 || *base_rev != 0 => true,
        _ => read(CONTRACTS_NAMESPACE, op.ns()).is_some(),
    })
}

/// The head and the batch builder.
#[derive(Debug, Default)]
pub struct Sequencer {
    /// The last committed revision.
    pub head_rev: i64,
    /// The chain's last hash.
    pub chain_head: Hash,
    /// Every namespace's digest at the head.
    pub digests: HashMap<String, NamespaceDigest>,
    /// Limits applied to patches' results.
    pub limits: Limits,
}

impl Sequencer {
    /// Runs `commands` in order on top of the head. `read` gives a key's
    /// record at the head, `lookup` a committed command's record.
    pub fn build(
        &mut self,
        commands: &[Command],
        read: &mut ReadKey<'_>,
        lookup: &mut dyn FnMut(&str) -> Option<CommandRecord>,
        now_ms: i64,
        mut gate: Option<&mut dyn Gate>,
    ) -> (Vec<Outcome>, BatchWrite) {
        let mut batch = BatchWrite {
            head_rev: self.head_rev,
            chain_head: self.chain_head,
            ..Default::default()
        };
        let mut seen: HashMap<String, CommandRecord> = HashMap::new();
        let mut outcomes = Vec::with_capacity(commands.len());
        for command in commands {
            let prior = seen
                .get(&command.command_id)
                .cloned()
                .or_else(|| lookup(&command.command_id));
            if let Some(prior) = prior {
                outcomes.push(if prior.fingerprint != command.fingerprint {
                    Err(CommandError::CommandIdReused {
                        command_id: command.command_id.clone(),
                        rev: prior.rev,
                    })
                } else {
                    Ok(Committed {
                        rev: prior.rev,
                        command_id: command.command_id.clone(),
                        ts_ms: prior.ts_ms,
                        replayed: true,
                    })
                });
                continue;
            }
            let rev = batch.head_rev + 1;
            let state = &batch.state;
            let mut read_through = |ns: &str, key: &str| match state.get(&(ns.to_owned(), key.to_owned())) {
                Some(record) => record.clone(),
                None => read(ns, key),
            };
            let planned = plan(
                command,
                &mut read_through,
                rev,
                &self.limits,
                now_ms,
                gate.as_deref_mut(),
            );
            let planned = match planned {
                Ok(planned) => planned,
                Err(e) => {
                    outcomes.push(Err(e));
                    continue;
                }
            };
            let mut touched: Vec<String> = Vec::new();
            for (seq, p) in planned.into_iter().enumerate() {
                let mut change = Change {
                    rev,
                    seq: seq as i64,
                    ns: p.ns.clone(),
                    key: p.key.clone(),
                    op: p.op,
                    value: p.record.as_ref().map(|r| r.value.clone()),
                    prev_mod_rev: p.prev_mod_rev(),
                    create_rev: p.record.as_ref().map_or(0, |r| r.create_rev),
                    version: p.record.as_ref().map_or(0, |r| r.version),
                    command_id: command.command_id.clone(),
                    ts_ms: now_ms,
                    trace: command.trace.clone(),
                    hash: [0; 32],
                };
                batch.chain_head = change.link(&batch.chain_head);
                batch.changes.push(change);
                let old = p.before.as_ref().map(|b| value_hash(&b.value));
                let new = p.record.as_ref().map(|r| value_hash(&r.value));
                let nskey = (p.ns.clone(), p.key.clone());
                match new {
                    Some(h) => batch.value_hashes.insert(nskey.clone(), h),
                    None => batch.value_hashes.remove(&nskey),
                };
                self.digests
                    .entry(p.ns.clone())
                    .or_default()
                    .update(&p.key, old.as_ref(), new.as_ref());
                batch.undo.push((nskey.clone(), old, new));
                batch.state.insert(nskey, p.record);
                if !touched.contains(&p.ns) {
                    touched.push(p.ns);
                }
            }
            for ns in touched {
                let digest = &self.digests[&ns];
                batch.roots.push(NamespaceRoot {
                    ns,
                    rev,
                    root: digest.root(),
                    count: digest.count(),
                });
            }
            let record = CommandRecord {
                command_id: command.command_id.clone(),
                fingerprint: command.fingerprint,
                rev,
                ts_ms: now_ms,
            };
            seen.insert(command.command_id.clone(), record.clone());
            batch.commands.push(record);
            batch.head_rev = rev;
            outcomes.push(Ok(Committed {
                rev,
                command_id: command.command_id.clone(),
                ts_ms: now_ms,
                replayed: false,
            }));
        }
        (outcomes, batch)
    }

    /// The batch is durable: it is the new head.
    pub fn confirm(&mut self, batch: &BatchWrite) {
        self.head_rev = batch.head_rev;
        self.chain_head = batch.chain_head;
    }

    /// The batch was not written: undo its digest updates.
    pub fn abort(&mut self, batch: &BatchWrite) {
        for ((ns, key), old, new) in batch.undo.iter().rev() {
            if let Some(digest) = self.digests.get_mut(ns) {
                digest.update(key, new.as_ref(), old.as_ref());
            }
        }
    }
}

fn plan(
    command: &Command,
    read: &mut ReadKey<'_>,
    rev: i64,
    limits: &Limits,
    now_ms: i64,
    gate: Option<&mut (dyn Gate + '_)>,
) -> Result<Vec<PlannedChange>, CommandError> {
    let gate = match gate {
        Some(gate) if needs_gate(command, read) => gate,
        _ => {
            if command.ops.iter().any(|op| matches!(op, Op::Contract { .. })) {
                return Err(CommandError::InvalidCommand {
                    reason: "this store has no contract gate".into(),
                    ns: None,
                    key: None,
                });
            }
            return evaluate(command, read, rev, limits, None);
        }
    };
    let planned = {
        // The rebase hook and the evaluation both read: share `read` through a cell.
        let read_cell = std::cell::RefCell::new(&mut *read);
        let mut rebase = |record: &KeyRecord| {
            let mut r = read_cell.borrow_mut();
            gate.rebase(&mut **r, record)
        };
        let mut read_eval = |ns: &str, key: &str| (read_cell.borrow_mut())(ns, key);
        evaluate(command, &mut read_eval, rev, limits, Some(&mut rebase))?
    };
    gate.admit(command, planned, read, rev, now_ms)
}
