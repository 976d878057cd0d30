//! The write gate: contracts and conflict policies enforced in the group commit.
//!
//! For every command that writes a namespace with a contract, declares a
//! schema version or a base revision, [`ContractGate`] (the sequencer's
//! [`Gate`]) takes each planned value through three steps, per key:
//!
//! 1. a value declared in an older schema version is checked against it and
//!    translated to the current version;
//! 2. a write based on an old revision (`base_rev`) the key changed since is
//!    decided by the namespace's conflict policy ([`policy`], [`merge`]), and
//!    a shadow policy, if set, is evaluated beside it and counted;
//! 3. the result is validated against the current schema.
//!
//! Parsed contracts and compiled schemas are cached per namespace and the
//! contract record's mod_rev. What is not per-key work stays with the host
//! ([`ContractHost`]): registering a contract (compatibility rules, owners and
//! policy names are the control plane's), reading a key's history, and
//! reporting a shadow policy's disagreement.

pub mod contract;
pub mod merge;
pub mod policy;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use self::contract::Contract;
use self::policy::{Decision, Policy, StaleWrite, decide, is_stale};
use crate::command::{CONTRACTS_NAMESPACE, Command, Op};
use crate::engine::{KeyRecord, PlannedChange, ReadKey};
use crate::error::CommandError;
use crate::log::ChangeOp;
use crate::sequencer::Gate;
use crate::value::{Value, parse};

/// What the gate asks of its environment.
pub trait ContractHost: Send {
    /// The contract record of namespace `ns` after `request` (the contract op's
    /// JSON) commits at `rev`; `current` is its record now (None: none yet).
    fn register(
        &mut self,
        ns: &str,
        current: Option<&[u8]>,
        request: &[u8],
        rev: i64,
        now_ms: i64,
    ) -> Result<Vec<u8>, CommandError>;

    /// A key's record at a retained revision (None: absent then).
    fn read_at(&mut self, ns: &str, key: &str, rev: i64) -> Result<Option<KeyRecord>, CommandError>;

    /// The shadow policy would have decided a stale write differently.
    fn shadow_disagreed(&mut self, disagreement: &Disagreement);
}

/// One stale write on which the shadow policy and the active one differ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disagreement {
    /// Namespace.
    pub ns: String,
    /// Key.
    pub key: String,
    /// The write's base revision.
    pub base_rev: i64,
    /// The active policy and what it does.
    pub active: (Policy, String),
    /// The candidate policy and what it would do.
    pub candidate: (Policy, String),
}

/// Per namespace: stale writes the shadow policy was evaluated on, and on how
/// many it disagreed with the active policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShadowStats {
    /// The policy in force at the last comparison.
    pub active: Policy,
    /// The candidate at the last comparison.
    pub candidate: Policy,
    /// Comparisons made.
    pub compared: u64,
    /// Of those, the ones that differed.
    pub disagreed: u64,
}

/// Shadow statistics, shared with whoever reports them (status, metrics).
pub type SharedShadowStats = Arc<Mutex<BTreeMap<String, ShadowStats>>>;

/// The sequencer's gate for contracts and conflict policies.
pub struct ContractGate {
    host: Box<dyn ContractHost>,
    /// Per namespace: the contract record's mod_rev and the parsed contract.
    cache: HashMap<String, (i64, Arc<Contract>)>,
    shadow: SharedShadowStats,
}

impl std::fmt::Debug for ContractGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContractGate")
            .field("cached", &self.cache.len())
            .finish_non_exhaustive()
    }
}

fn parse_planned(ns: &str, key: &str, bytes: &[u8]) -> Result<Value, CommandError> {
    // Planned values are canonical I-JSON (prepared or stored).
    parse(bytes).map_err(|e| CommandError::InvalidValue {
        ns: Some(ns.to_owned()),
        key: Some(key.to_owned()),
        path: e.pointer(),
        reason: e.reason,
    })
}

impl ContractGate {
    /// A gate asking `host` for what is not its own work.
    pub fn new(host: Box<dyn ContractHost>) -> ContractGate {
        ContractGate {
            host,
            cache: HashMap::new(),
            shadow: SharedShadowStats::default(),
        }
    }

    /// The shadow statistics this gate keeps, to read while it runs.
    pub fn shadow_stats(&self) -> SharedShadowStats {
        self.shadow.clone()
    }

    /// Namespace `ns`'s contract at the head (None: it has none).
    fn contract(&mut self, read: &mut ReadKey<'_>, ns: &str) -> Result<Option<Arc<Contract>>, CommandError> {
        let Some(record) = read(CONTRACTS_NAMESPACE, ns) else {
            return Ok(None);
        };
        if let Some((mod_rev, contract)) = self.cache.get(ns)
            && *mod_rev == record.mod_rev
        {
            return Ok(Some(contract.clone()));
        }
        let contract = Arc::new(Contract::parse(ns, &record.value)?);
        self.cache
            .insert(ns.to_owned(), (record.mod_rev, contract.clone()));
        Ok(Some(contract))
    }

    fn contract_change(
        &mut self,
        change: PlannedChange,
        read: &mut ReadKey<'_>,
        rev: i64,
        now_ms: i64,
    ) -> Result<PlannedChange, CommandError> {
        let ns = change.key.clone();
        let current = read(CONTRACTS_NAMESPACE, &ns);
        let request = change
            .record
            .as_ref()
            .map(|r| r.value.clone())
            .unwrap_or_default();
        let record = self.host.register(
            &ns,
            current.as_ref().map(|r| r.value.as_slice()),
            &request,
            rev,
            now_ms,
        )?;
        Ok(change.with_value(record))
    }

    /// A value declared in an older version (`declared`, 0: none), checked
    /// against it and translated to the current version.
    fn translated(
        change: PlannedChange,
        contract: Option<&Contract>,
        declared: i64,
    ) -> Result<PlannedChange, CommandError> {
        let current = contract.map_or(0, Contract::current);
        if declared > current {
            let have = if current > 0 {
                format!("the newest registered is v{current}")
            } else {
                "it has no schema".to_owned()
            };
            return Err(CommandError::InvalidCommand {
                reason: format!("schema_version {declared} declared, but {have}"),
                ns: Some(change.ns),
                key: Some(change.key),
            });
        }
        let Some(contract) = contract.filter(|_| declared != 0 && declared != current) else {
            return Ok(change);
        };
        let bytes = change
            .record
            .as_ref()
            .map(|r| r.value.as_slice())
            .unwrap_or_default();
        let doc = parse_planned(&change.ns, &change.key, bytes)?;
        contract.check(declared, &change.key, &doc)?;
        let value = contract.translate(doc, declared, current)?;
        Ok(change.with_value(value))
    }

    /// The conflict policy applied to a write based on `base_rev` (None: the
    /// write merged into "deleted", which the key already is).
    fn resolved(
        &mut self,
        change: PlannedChange,
        contract: Option<&Contract>,
        read: &mut ReadKey<'_>,
        base_rev: i64,
    ) -> Result<Option<PlannedChange>, CommandError> {
        if let Some(current) = &change.before
            && current.mod_rev <= base_rev
        {
            return Ok(Some(change)); // unchanged since the writer read it
        }
        let mut base = self.host.read_at(&change.ns, &change.key, base_rev)?;
        if !is_stale(base_rev, base.as_ref(), change.before.as_ref()) {
            return Ok(Some(change));
        }
        if let Some(base) = &mut base {
            base.value = self.rebase(read, base)?;
        }
        let writer = change
            .record
            .as_ref()
            .map(|r| r.value.as_slice())
            .unwrap_or_default();
        let write = StaleWrite {
            ns: &change.ns,
            key: &change.key,
            base_rev,
            base: base.as_ref(),
            current: change.before.as_ref(),
            writer,
        };
        let active = contract.map_or(Policy::Reject, |c| c.conflict_policy);
        let decision = decide(active, &write);
        if let Some(candidate) = contract.and_then(|c| c.shadow_policy).filter(|p| *p != active) {
            self.compare(
                &write,
                (active, &decision),
                (candidate, &decide(candidate, &write)),
            );
        }
        match decision {
            Decision::Refuse(e) => Err(e),
            Decision::Write(value) => Ok(Some(change.with_value(value))),
            Decision::KeepDeleted => Ok(change.before.map(|before| PlannedChange {
                ns: change.ns,
                key: change.key,
                op: ChangeOp::Delete,
                before: Some(before),
                record: None,
            })),
        }
    }

    /// Shadow mode: count, and report, where the candidate policy would differ.
    fn compare(
        &mut self,
        write: &StaleWrite<'_>,
        active: (Policy, &Decision),
        candidate: (Policy, &Decision),
    ) {
        let (summary, shadow) = (active.1.summary(), candidate.1.summary());
        let disagreed = summary != shadow;
        {
            let mut stats = self.shadow.lock().unwrap_or_else(PoisonError::into_inner);
            let entry = stats.entry(write.ns.to_owned()).or_insert(ShadowStats {
                active: active.0,
                candidate: candidate.0,
                compared: 0,
                disagreed: 0,
            });
            (entry.active, entry.candidate) = (active.0, candidate.0);
            entry.compared += 1;
            entry.disagreed += u64::from(disagreed);
        }
        if disagreed {
            self.host.shadow_disagreed(&Disagreement {
                ns: write.ns.to_owned(),
                key: write.key.to_owned(),
                base_rev: write.base_rev,
                active: (active.0, summary),
                candidate: (candidate.0, shadow),
            });
        }
    }
}

impl Gate for ContractGate {
    fn rebase(&mut self, read: &mut ReadKey<'_>, record: &KeyRecord) -> Result<Vec<u8>, CommandError> {
        let Some(contract) = self.contract(read, &record.ns)? else {
            return Ok(record.value.clone());
        };
        let (stored, current) = (contract.version_of(record.mod_rev), contract.current());
        if current == 0 || stored == current {
            return Ok(record.value.clone());
        }
        let doc = parse_planned(&record.ns, &record.key, &record.value)?;
        contract.translate(doc, stored, current)
    }

    fn admit(
        &mut self,
        command: &Command,
        planned: Vec<PlannedChange>,
        read: &mut ReadKey<'_>,
        rev: i64,
        now_ms: i64,
    ) -> Result<Vec<PlannedChange>, CommandError> {
        let mut admitted = Vec::with_capacity(planned.len());
        for change in planned {
            if change.record.is_none() {
                admitted.push(change);
                continue;
            }
            if change.ns == CONTRACTS_NAMESPACE {
                admitted.push(self.contract_change(change, read, rev, now_ms)?);
                continue;
            }
            // The last op on a key made its planned change.
            let (declared, base_rev) = command
                .ops
                .iter()
                .rev()
                .find(|op| op.ns() == change.ns && op.key() == change.key)
                .map_or((0, 0), |op| match op {
                    Op::Put {
                        schema_version,
                        base_rev,
                        ..
                    } => (*schema_version, *base_rev),
                    _ => (0, 0),
                });
            let contract = self.contract(read, &change.ns)?;
            let mut change = Self::translated(change, contract.as_deref(), declared)?;
            if base_rev != 0 {
                match self.resolved(change, contract.as_deref(), read, base_rev)? {
                    Some(resolved) => change = resolved,
                    None => continue,
                }
            }
            if let (Some(record), Some(contract)) = (&change.record, &contract)
                && contract.current() > 0
            {
                let doc = parse_planned(&change.ns, &change.key, &record.value)?;
                contract.check(contract.current(), &change.key, &doc)?;
            }
            admitted.push(change);
        }
        Ok(admitted)
    }
}
