//! Serving each worker the schema versions it declared (docs/contracts.md §3,
//! docs/translations.md).
//!
//! A worker's hello lists, per namespace, the schema versions it understands;
//! each namespace is served in the newest of them that is registered (its
//! target), every value translated from the version it was written in. A
//! translated value carries the stored value's hash as `source_hash`, so the
//! worker's digest counts what the controller stores and digests compare as
//! usual. No I/O here: contract records are read by the caller's `load`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use statesync_core::canonical_bytes;
use statesync_core::digest::sha256;
use statesync_core::translate::{Translation, apply_chain, chain};
use statesync_core::value::{self, Value, python_repr};
use statesync_store::StoreError;

use crate::proto::{Change, Entry, Revision, change::Kind};

/// Per namespace, the schema version a worker is served in.
pub(crate) type Targets = BTreeMap<String, i32>;

/// Per namespace, the schema versions a worker understands (its hello).
pub(crate) type Declared = BTreeMap<String, Vec<i32>>;

/// Most translated revisions remembered; the cache starts over when full (a
/// revision is only served while it is recent).
const SERVED_ENTRIES: usize = 50_000;

/// None of the versions a worker declared for a namespace is registered
/// (`NoTranslationPathError`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "no translation path in namespace {} from schema v{from_version} to any of {}: {reason}",
    python_repr(.namespace),
    shown_list(.supported)
)]
pub struct NoTranslationPath {
    /// The namespace.
    pub namespace: String,
    /// Its newest registered version.
    pub from_version: i64,
    /// The versions the worker declared.
    pub supported: Vec<i32>,
    /// Why none fits.
    pub reason: String,
}

/// As Python shows a list of ints (the error's text is drawn there).
fn shown_list(versions: &[i32]) -> String {
    if versions.is_empty() {
        return "(none)".to_owned();
    }
    let items: Vec<String> = versions.iter().map(i32::to_string).collect();
    format!("[{}]", items.join(", "))
}

/// A namespace's contract as serving needs it: when each version started and
/// the translations between adjacent versions.
#[derive(Debug)]
pub(crate) struct Contract {
    namespace: String,
    /// `since_rev` of versions 1, 2, ... in order.
    since_revs: Vec<i64>,
    /// `translations[n]` translates between n and n + 1.
    translations: BTreeMap<i64, Translation>,
}

fn member<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    match value {
        Value::Object(members) => members.iter().find(|(k, _)| k == name).map(|(_, v)| v),
        _ => None,
    }
}

impl Contract {
    /// Reads a `_contracts` record (statesync/contracts/registry.py
    /// `Contract.to_json`): only the versions' `since_rev` and `translation`.
    pub(crate) fn parse(namespace: &str, record: &[u8]) -> Result<Contract, String> {
        let refused = |why: String| format!("the contract record of namespace {namespace:?} {why}");
        let data = value::parse(record).map_err(|e| refused(format!("is not I-JSON: {e}")))?;
        let Some(Value::Array(versions)) = member(&data, "versions") else {
            return Err(refused("has no 'versions' array".to_owned()));
        };
        let mut since_revs = Vec::with_capacity(versions.len());
        let mut translations = BTreeMap::new();
        for (index, version) in versions.iter().enumerate() {
            let expected = index as i64 + 1;
            if member(version, "version") != Some(&Value::Int(expected)) {
                return Err(refused(format!(
                    "lists versions/{index} out of order (not v{expected})"
                )));
            }
            let Some(Value::Int(since)) = member(version, "since_rev") else {
                return Err(refused(format!("has no since_rev in versions/{index}")));
            };
            since_revs.push(*since);
            if index == 0 {
                continue;
            }
            let low = expected - 1;
            let translation = match member(version, "translation") {
                None | Some(Value::Null) => Translation::identity(low),
                Some(written) => Translation::parse(written)
                    .map_err(|e| refused(format!("has a bad translation in versions/{index}: {e}")))?,
            };
            translations.insert(low, translation);
        }
        Ok(Contract {
            namespace: namespace.to_owned(),
            since_revs,
            translations,
        })
    }

    /// The newest version (0: no schema yet).
    pub(crate) fn current(&self) -> i64 {
        self.since_revs.len() as i64
    }

    /// The version a value last written at `mod_rev` is in (at least 1): the
    /// last one registered before it.
    pub(crate) fn version_of(&self, mod_rev: i64) -> i64 {
        let before = self.since_revs.partition_point(|&since| since < mod_rev);
        (before as i64).max(1)
    }

    /// The newest registered version among `supported` (a worker's declaration).
    pub(crate) fn serving_version(&self, supported: &[i32]) -> Result<i32, NoTranslationPath> {
        let current = self.current();
        supported
            .iter()
            .copied()
            .filter(|&v| 1 <= v && i64::from(v) <= current)
            .max()
            .ok_or_else(|| NoTranslationPath {
                namespace: self.namespace.clone(),
                from_version: current,
                supported: supported.to_vec(),
                reason: format!("the registered versions are 1..{current}"),
            })
    }

    /// `value` (canonical JSON in version `from`) as canonical bytes in `to`.
    pub(crate) fn translate(&self, value: &[u8], from: i64, to: i64) -> Result<Vec<u8>, String> {
        let doc = value::parse(value).map_err(|e| e.to_string())?;
        let (steps, direction) = chain(from, to, |n| self.translations.get(&n)).map_err(|e| e.to_string())?;
        let translated = apply_chain(doc, &steps, direction).map_err(|e| e.to_string())?;
        Ok(canonical_bytes(&translated))
    }
}

/// What a value was turned into for one worker.
struct Served {
    value: Vec<u8>,
    schema_version: i32,
    /// The stored value's hash, when the value was translated.
    source_hash: Option<Vec<u8>>,
}

impl Contract {
    /// The stored `value`, written at `mod_rev`, in version `target`. A value
    /// that cannot be translated is served as stored (the worker refuses the
    /// version it does not know, NACKs and keeps its last good value).
    fn serve(&self, key: &str, value: &[u8], mod_rev: i64, target: i32) -> Served {
        let stored = self.version_of(mod_rev);
        if stored == i64::from(target) {
            return Served {
                value: value.to_vec(),
                schema_version: target,
                source_hash: None,
            };
        }
        match self.translate(value, stored, i64::from(target)) {
            Ok(translated) => Served {
                value: translated,
                schema_version: target,
                source_hash: Some(sha256(value).to_vec()),
            },
            Err(error) => {
                log::error!("{}/{key}: cannot serve in v{target}: {error}", self.namespace);
                Served {
                    value: value.to_vec(),
                    schema_version: i32::try_from(stored).unwrap_or(0),
                    source_hash: None,
                }
            }
        }
    }
}

/// The contracts read so far, by namespace (None: the namespace has none).
#[derive(Default)]
struct Contracts {
    known: HashMap<String, Option<Arc<Contract>>>,
    /// Bumped at every contract change: a record read before must not be kept.
    generation: u64,
}

/// A revision as served: its revision, and per namespace it holds, the
/// target it was served in (None: as stored).
type ServedKey = (i64, Vec<(String, Option<i32>)>);

/// Contracts by namespace (cached until a change to their record passes
/// through the feed) and the revisions translated so far, shared by every
/// stream: workers on the same targets translate each revision once.
#[derive(Default)]
pub(crate) struct Versions {
    contracts: Mutex<Contracts>,
    served: Mutex<HashMap<ServedKey, Arc<Revision>>>,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Versions {
    /// The contracts of `namespaces` changed: forget them and every
    /// translation made with them.
    pub(crate) fn changed(&self, namespaces: &BTreeSet<String>) {
        {
            let mut contracts = locked(&self.contracts);
            for ns in namespaces {
                contracts.known.remove(ns);
            }
            contracts.generation += 1;
        }
        locked(&self.served).clear();
    }

    /// How many contract changes were seen: a stream whose targets were
    /// computed at an older generation computes them again.
    pub(crate) fn generation(&self) -> u64 {
        locked(&self.contracts).generation
    }

    /// `namespace`'s contract; `load` reads its record (None: there is none).
    /// A record that cannot be read as a contract is logged and the
    /// namespace served as stored.
    pub(crate) fn contract(
        &self,
        namespace: &str,
        load: &impl Fn(&str) -> Result<Option<Vec<u8>>, StoreError>,
    ) -> Result<Option<Arc<Contract>>, StoreError> {
        let generation = {
            let contracts = locked(&self.contracts);
            if let Some(known) = contracts.known.get(namespace) {
                return Ok(known.clone());
            }
            contracts.generation
        };
        let parsed = load(namespace)?.and_then(|record| match Contract::parse(namespace, &record) {
            Ok(contract) => Some(Arc::new(contract)),
            Err(error) => {
                log::error!("{error}: serving {namespace:?} as stored");
                None
            }
        });
        let mut contracts = locked(&self.contracts);
        if contracts.generation == generation {
            contracts.known.insert(namespace.to_owned(), parsed.clone());
        }
        Ok(parsed)
    }

    /// The version each declared namespace is served in (namespaces without
    /// a schema are served as stored and have none).
    pub(crate) fn targets(
        &self,
        declared: &Declared,
        load: &impl Fn(&str) -> Result<Option<Vec<u8>>, StoreError>,
    ) -> Result<Result<Targets, NoTranslationPath>, StoreError> {
        let mut targets = Targets::new();
        for (ns, versions) in declared {
            let Some(contract) = self.contract(ns, load)? else {
                continue;
            };
            if contract.current() == 0 {
                continue;
            }
            match contract.serving_version(versions) {
                Ok(target) => targets.insert(ns.clone(), target),
                Err(refusal) => return Ok(Err(refusal)),
            };
        }
        Ok(Ok(targets))
    }

    /// `revision` with each put in a target namespace in its target version;
    /// translated once per revision and set of targets.
    pub(crate) fn revision(
        &self,
        revision: &Arc<Revision>,
        targets: &Targets,
        load: &impl Fn(&str) -> Result<Option<Vec<u8>>, StoreError>,
    ) -> Result<Arc<Revision>, StoreError> {
        if !revision.changes.iter().any(|c| targets.contains_key(&c.ns)) {
            return Ok(revision.clone());
        }
        let namespaces: BTreeSet<&str> = revision.changes.iter().map(|c| c.ns.as_str()).collect();
        let key: ServedKey = (
            revision.rev,
            namespaces
                .into_iter()
                .map(|ns| (ns.to_owned(), targets.get(ns).copied()))
                .collect(),
        );
        if let Some(served) = locked(&self.served).get(&key) {
            return Ok(served.clone());
        }
        let mut served = (**revision).clone();
        for change in &mut served.changes {
            if let Some(&target) = targets.get(&change.ns)
                && change.kind == Kind::Put as i32
                && let Some(contract) = self.contract(&change.ns, load)?
            {
                serve_change(&contract, change, revision.rev, target);
            }
        }
        let served = Arc::new(served);
        let mut cache = locked(&self.served);
        if cache.len() >= SERVED_ENTRIES {
            cache.clear();
        }
        cache.insert(key, served.clone());
        Ok(served)
    }

    /// A snapshot or repair entry in its target version.
    pub(crate) fn entry(
        &self,
        mut entry: Entry,
        targets: &Targets,
        load: &impl Fn(&str) -> Result<Option<Vec<u8>>, StoreError>,
    ) -> Result<Entry, StoreError> {
        if let Some(&target) = targets.get(&entry.ns)
            && let Some(contract) = self.contract(&entry.ns, load)?
        {
            let served = contract.serve(&entry.key, &entry.value, entry.mod_rev, target);
            entry.value = served.value;
            entry.schema_version = served.schema_version;
            entry.source_hash = served.source_hash.unwrap_or_default();
        }
        Ok(entry)
    }
}

fn serve_change(contract: &Contract, change: &mut Change, rev: i64, target: i32) {
    let served = contract.serve(&change.key, &change.value, rev, target);
    change.schema_version = served.schema_version;
    if let Some(source_hash) = served.source_hash {
        change.value_hash = sha256(&served.value).to_vec();
        change.value = served.value;
        change.source_hash = source_hash;
    }
}

#[cfg(test)]
mod tests;
