//! The worker's replica: in memory, persisted in a state directory.
//!
//! One SQLite file ([`REPLICA_FILE`]) holds the entries, the keys held back
//! after a NACK, and the applied revision; each revision (or snapshot) is
//! written in one transaction together with the new applied revision, so a
//! crash never applies a change twice nor skips one, and a restarted worker
//! resumes from its applied revision. A write that fails changes nothing, on
//! disk or in memory. The file is checked at open (SQLite's quick check, the
//! format, every value against its hash, and each namespace's digest against
//! the one recorded with the last commit); a bad file is
//! [`ReplicaError::Corrupt`], and the worker moves it aside and resyncs. A
//! lock on the state directory keeps a second worker process out
//! ([`ReplicaError::InUse`]).
//!
//! SQLite runs in WAL mode with `synchronous=NORMAL`: a killed process loses
//! nothing committed; a power loss may lose the newest revisions, which the
//! worker simply receives again (the controller is the source of truth).

mod disk;
mod namespace;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::Transaction;
use statesync_core::digest::{Hash, NamespaceDigest, sha256};

use crate::ReplicaError;
use disk::Disk;
use namespace::{Held, Namespace};

/// The replica's file name inside a worker's state directory.
pub const REPLICA_FILE: &str = "replica.sqlite";

/// The on-disk format, recorded in the file's `meta` table.
pub const FORMAT: &str = "statesync.replica.v1";

/// One key's value as the replica holds it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Entry {
    /// The value's canonical JSON bytes, in the schema version it was served in.
    pub value: Vec<u8>,
    /// The revision that created the key.
    pub create_rev: i64,
    /// The revision that last changed it.
    pub mod_rev: i64,
    /// How many times it was written since it was created.
    pub version: i64,
    /// SHA-256 of `value`.
    pub vhash: Hash,
    /// The schema version `value` is in (0: the namespace has no schema).
    pub schema_version: i32,
    /// The controller's value hash, when `value` is a translation of it.
    pub source_hash: Option<Hash>,
}

impl Entry {
    /// An entry of an untranslated value, its hash computed here.
    pub fn new(value: Vec<u8>, create_rev: i64, mod_rev: i64, version: i64) -> Entry {
        Entry {
            vhash: sha256(&value),
            value,
            create_rev,
            mod_rev,
            version,
            schema_version: 0,
            source_hash: None,
        }
    }

    /// The hash the digest counts: the controller's value, as stored there.
    pub fn leaf(&self) -> &Hash {
        self.source_hash.as_ref().unwrap_or(&self.vhash)
    }
}

/// A key the worker kept at its last good value after refusing a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldKey {
    /// The key's namespace.
    pub namespace: String,
    /// The key.
    pub key: String,
    /// The revision of the refused change.
    pub rev: i64,
    /// Why it was refused (sent with the NACK).
    pub reason: String,
    /// The hash of the refused value as the controller holds it (None: the
    /// refused change was a delete). The digest counts the key with it, so a
    /// worker that is right except for the NACKs it reported agrees with the
    /// controller.
    pub refused: Option<Hash>,
}

/// What one revision changes, applied in this order.
#[derive(Clone, Debug, Default)]
pub struct Changes {
    /// (namespace, key, entry): new values; a put releases a held key.
    pub puts: Vec<(String, String, Entry)>,
    /// (namespace, key): deleted keys; a delete releases a held key.
    pub deletes: Vec<(String, String)>,
    /// Keys newly held back (their last good value, if any, stays).
    pub rejected: Vec<HeldKey>,
}

/// A whole replica's worth of state at one revision (a bootstrap).
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Entries by namespace and key, the refused ones already left at their
    /// last good value.
    pub entries: BTreeMap<String, BTreeMap<String, Entry>>,
    /// The snapshot's refused keys; earlier held keys are dropped.
    pub rejected: Vec<HeldKey>,
    /// The digests the caller already built over the snapshot as sent (the
    /// counted view, refused values included), to spare a second build; used
    /// only when they cover every namespace of `entries`.
    pub digests: Option<HashMap<String, NamespaceDigest>>,
}

/// A replica as `statesync replica dump` shows it, read without a worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dump {
    /// The worker that last wrote it.
    pub worker_id: String,
    /// Its applied revision.
    pub applied_rev: i64,
    /// Canonical values by namespace and key.
    pub namespaces: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    /// Its held keys, by namespace and key.
    pub held: Vec<HeldKey>,
}

enum Storage {
    Memory,
    Disk(Disk),
    Closed,
}

/// What a failed write puts back in memory, newest first.
enum Undo {
    Store(String, String, Option<Entry>),
    Hold(String, String, Option<Held>),
    Replace(BTreeMap<String, Namespace>),
}

/// A replica shared between the worker's sync task and its readers (a
/// handler, another thread): a cheap handle to one replica behind a mutex.
/// The sync task holds the lock only while it reads or writes, never while a
/// handler runs, so a handler may read the replica.
#[derive(Clone)]
pub struct SharedReplica(Arc<Mutex<Replica>>);

impl SharedReplica {
    /// Shares `replica`.
    pub fn new(replica: Replica) -> SharedReplica {
        SharedReplica(Arc::new(Mutex::new(replica)))
    }

    /// The replica, waiting for the lock. A write that panicked leaves the
    /// replica as the failed write found it (writes change memory only after
    /// the file), so a poisoned lock is taken over.
    pub fn lock(&self) -> MutexGuard<'_, Replica> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The replica if no one holds the lock now.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, Replica>> {
        match self.0.try_lock() {
            Ok(replica) => Some(replica),
            Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }
}

impl std::fmt::Debug for SharedReplica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedReplica")
    }
}

/// Opens the replica in `dir` for a worker; a corrupt one is moved aside
/// (to `<dir>.corrupt-<unix seconds>`, returned with why) and the worker
/// starts empty, to be bootstrapped by a snapshot.
pub fn open_or_set_aside(
    dir: &Path,
    worker_id: &str,
) -> Result<(Replica, Option<(PathBuf, String)>), ReplicaError> {
    match Replica::open(dir, worker_id) {
        Err(ReplicaError::Corrupt { reason, .. }) => {
            let stamp = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let name = dir
                .file_name()
                .map_or_else(|| "replica".into(), |n| n.to_string_lossy().into_owned());
            let aside = dir.with_file_name(format!("{name}.corrupt-{stamp}"));
            std::fs::rename(dir, &aside).map_err(|source| ReplicaError::Io {
                path: dir.to_owned(),
                source,
            })?;
            Ok((Replica::open(dir, worker_id)?, Some((aside, reason))))
        }
        other => Ok((other?, None)),
    }
}

/// Entries by namespace and key, the held-back keys, and the applied revision.
pub struct Replica {
    worker_id: String,
    applied_rev: i64,
    namespaces: BTreeMap<String, Namespace>,
    storage: Storage,
}

impl Replica {
    /// Opens (or creates) the replica in `state_dir`, taking its lock and
    /// checking the file; `worker_id` is recorded with every write.
    pub fn open(state_dir: impl AsRef<Path>, worker_id: &str) -> Result<Replica, ReplicaError> {
        let (disk, loaded) = Disk::open(state_dir.as_ref(), worker_id)?;
        let mut held = loaded.held;
        let mut namespaces: BTreeMap<String, Namespace> = loaded
            .entries
            .into_iter()
            .map(|(ns, entries)| {
                let held = held.remove(&ns).unwrap_or_default();
                (ns, Namespace::build(entries, held, None))
            })
            .collect();
        for (ns, held) in held {
            namespaces.insert(ns, Namespace::build(BTreeMap::new(), held, None));
        }
        for (ns, recorded) in &loaded.roots {
            let root = namespaces
                .get(ns)
                .map_or_else(|| NamespaceDigest::new().root(), |s| s.digest.root());
            if disk::hex(&root) != *recorded {
                return Err(ReplicaError::Corrupt {
                    path: disk.path.clone(),
                    reason: format!("namespace {ns:?}: entries do not match the recorded digest"),
                });
            }
        }
        Ok(Replica {
            worker_id: worker_id.to_owned(),
            applied_rev: loaded.applied_rev,
            namespaces,
            storage: Storage::Disk(disk),
        })
    }

    /// A replica kept in memory only (a worker without a state directory).
    pub fn in_memory(worker_id: &str) -> Replica {
        Replica {
            worker_id: worker_id.to_owned(),
            applied_rev: 0,
            namespaces: BTreeMap::new(),
            storage: Storage::Memory,
        }
    }

    /// Closes the file and releases the state directory's lock. The replica
    /// can still be read; writes fail with [`ReplicaError::Closed`].
    pub fn close(&mut self) {
        self.storage = Storage::Closed;
    }

    // ------------------------------------------------------------ reads

    /// The worker id recorded with every write.
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// The last revision applied (0: none yet).
    pub fn applied_rev(&self) -> i64 {
        self.applied_rev
    }

    /// `key`'s entry in namespace `ns`.
    pub fn get(&self, ns: &str, key: &str) -> Option<&Entry> {
        self.namespaces.get(ns)?.entries.get(key)
    }

    /// The entries of `ns` whose key starts with `prefix`, sorted by key.
    pub fn range<'a>(&'a self, ns: &str, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a Entry)> + 'a {
        let entries = self.namespaces.get(ns).map(|s| &s.entries);
        entries.into_iter().flat_map(move |entries| {
            entries
                .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
                .take_while(move |(key, _)| key.starts_with(prefix))
                .map(|(key, entry)| (key.as_str(), entry))
        })
    }

    /// The schema version the values of `ns` were served in (one for all of
    /// them: a change of version re-sends the state); None when it has none.
    pub fn schema_version(&self, ns: &str) -> Option<i32> {
        let (_, entry) = self.namespaces.get(ns)?.entries.first_key_value()?;
        Some(entry.schema_version)
    }

    /// The digest of `ns` (None: nothing counted there yet). It covers the
    /// counted view: a held key counts with the value the controller sent.
    pub fn digest(&self, ns: &str) -> Option<&NamespaceDigest> {
        self.namespaces.get(ns).map(|s| &s.digest)
    }

    /// The held-back keys, by namespace and key.
    pub fn held(&self) -> impl Iterator<Item = HeldKey> + '_ {
        self.namespaces.iter().flat_map(|(ns, space)| {
            space.held.iter().map(move |(key, held)| HeldKey {
                namespace: ns.clone(),
                key: key.clone(),
                rev: held.rev,
                reason: held.reason.clone(),
                refused: held.refused,
            })
        })
    }

    /// The (key, counted hash) pairs of `ns` whose position starts with the hex
    /// `prefix`, for a digest descent. The by-bucket index behind it is built
    /// on the first call for a namespace.
    pub fn leaves(&mut self, ns: &str, prefix: &str) -> Result<Vec<(String, Hash)>, ReplicaError> {
        let nibbles = namespace::nibbles(prefix).ok_or_else(|| ReplicaError::InvalidPrefix(prefix.into()))?;
        Ok(self
            .namespaces
            .get_mut(ns)
            .map(|space| space.leaves(&nibbles))
            .unwrap_or_default())
    }

    // ------------------------------------------------------------ writes

    /// Applies revision `rev` atomically: puts, deletes and newly held keys,
    /// with the new applied revision.
    pub fn apply(&mut self, rev: i64, changes: Changes) -> Result<(), ReplicaError> {
        self.write(rev, |namespaces, tx, undo| {
            let mut touched = BTreeSet::new();
            for (ns, key, entry) in changes.puts {
                if let Some(tx) = tx {
                    disk::put(tx, &ns, &key, &entry)?;
                }
                let space = namespaces.entry(ns.clone()).or_default();
                undo.push(Undo::Store(
                    ns.clone(),
                    key.clone(),
                    space.store(&key, Some(entry)),
                ));
                release(space, tx, &ns, key, undo)?;
                touched.insert(ns);
            }
            for (ns, key) in changes.deletes {
                if let Some(tx) = tx {
                    disk::delete(tx, &ns, &key)?;
                }
                let space = namespaces.entry(ns.clone()).or_default();
                undo.push(Undo::Store(ns.clone(), key.clone(), space.store(&key, None)));
                release(space, tx, &ns, key, undo)?;
                touched.insert(ns);
            }
            for held in changes.rejected {
                let HeldKey {
                    namespace: ns,
                    key,
                    rev,
                    reason,
                    refused,
                } = held;
                let record = Held { rev, reason, refused };
                if let Some(tx) = tx {
                    disk::hold(tx, &ns, &key, &record)?;
                }
                let space = namespaces.entry(ns.clone()).or_default();
                let previous = space.hold(&key, Some(record));
                undo.push(Undo::Hold(ns.clone(), key, previous));
                touched.insert(ns);
            }
            Ok(touched.into_iter().collect())
        })
    }

    /// Records that nothing changed for this replica's namespaces through
    /// `rev` (a progress notice); an older `rev` is ignored.
    pub fn advance(&mut self, rev: i64) -> Result<(), ReplicaError> {
        if rev <= self.applied_rev {
            return Ok(());
        }
        self.write(rev, |_, _, _| Ok(Vec::new()))
    }

    /// Replaces the whole replica with `snapshot` at revision `rev`.
    pub fn replace(&mut self, rev: i64, snapshot: Snapshot) -> Result<(), ReplicaError> {
        let Snapshot {
            entries,
            rejected,
            mut digests,
        } = snapshot;
        if let Some(given) = &digests
            && !entries.keys().all(|ns| given.contains_key(ns))
        {
            digests = None;
        }
        self.write(rev, |namespaces, tx, undo| {
            if let Some(tx) = tx {
                disk::clear(tx)?;
                for (ns, keyed) in &entries {
                    disk::put_all(tx, ns, keyed.iter().map(|(k, e)| (k.as_str(), e)))?;
                }
            }
            let mut held: BTreeMap<String, BTreeMap<String, Held>> = BTreeMap::new();
            for h in rejected {
                let record = Held {
                    rev: h.rev,
                    reason: h.reason,
                    refused: h.refused,
                };
                if let Some(tx) = tx {
                    disk::hold(tx, &h.namespace, &h.key, &record)?;
                }
                held.entry(h.namespace).or_default().insert(h.key, record);
            }
            let touched: Vec<String> = entries.keys().cloned().collect();
            let mut fresh = BTreeMap::new();
            for (ns, keyed) in entries {
                let given = digests.as_mut().and_then(|d| d.remove(&ns));
                let held = held.remove(&ns).unwrap_or_default();
                fresh.insert(ns, Namespace::build(keyed, held, given));
            }
            for (ns, held) in held {
                fresh.insert(ns, Namespace::build(BTreeMap::new(), held, None));
            }
            undo.push(Undo::Replace(std::mem::replace(namespaces, fresh)));
            Ok(touched)
        })
    }

    /// Runs `change` in one transaction with the new applied revision and the
    /// digests of the namespaces it returns; on failure, undoes it in memory.
    fn write<F>(&mut self, rev: i64, change: F) -> Result<(), ReplicaError>
    where
        F: FnOnce(
            &mut BTreeMap<String, Namespace>,
            Option<&Transaction<'_>>,
            &mut Vec<Undo>,
        ) -> rusqlite::Result<Vec<String>>,
    {
        let Replica {
            worker_id,
            applied_rev,
            namespaces,
            storage,
        } = self;
        let mut undo = Vec::new();
        let result = match storage {
            Storage::Closed => return Err(ReplicaError::Closed),
            // Without a transaction nothing can fail; the type still says it could.
            Storage::Memory => {
                change(namespaces, None, &mut undo)
                    .map(drop)
                    .map_err(|source| ReplicaError::Write {
                        path: ":memory:".into(),
                        source,
                    })
            }
            Storage::Disk(disk) => {
                let commit = || {
                    let tx = disk.begin()?;
                    let touched = change(namespaces, Some(&tx), &mut undo)?;
                    let roots = touched.iter().map(|ns| {
                        let root = namespaces
                            .get(ns)
                            .map_or_else(|| NamespaceDigest::new().root(), |s| s.digest.root());
                        (ns.as_str(), root)
                    });
                    disk::meta(&tx, rev, worker_id, roots)?;
                    tx.commit()
                };
                commit().map_err(|source| ReplicaError::Write {
                    path: disk.path.clone(),
                    source,
                })
            }
        };
        match result {
            Ok(()) => {
                *applied_rev = rev;
                Ok(())
            }
            Err(err) => {
                for step in undo.into_iter().rev() {
                    match step {
                        Undo::Store(ns, key, entry) => {
                            namespaces.entry(ns).or_default().store(&key, entry);
                        }
                        Undo::Hold(ns, key, held) => {
                            namespaces.entry(ns).or_default().hold(&key, held);
                        }
                        Undo::Replace(previous) => *namespaces = previous,
                    }
                }
                Err(err)
            }
        }
    }
}

/// A put or a delete releases `key` if it was held.
fn release(
    space: &mut Namespace,
    tx: Option<&Transaction<'_>>,
    ns: &str,
    key: String,
    undo: &mut Vec<Undo>,
) -> rusqlite::Result<()> {
    if let Some(held) = space.hold(&key, None) {
        if let Some(tx) = tx {
            disk::release(tx, ns, &key)?;
        }
        undo.push(Undo::Hold(ns.to_owned(), key, Some(held)));
    }
    Ok(())
}

/// The replica in `state_dir` as `statesync replica dump` prints it, read
/// without a lock or checks (its worker may be running).
pub fn read_offline(state_dir: impl AsRef<Path>) -> Result<Dump, ReplicaError> {
    let path = state_dir.as_ref().join(REPLICA_FILE);
    let corrupt = |reason: String| ReplicaError::Corrupt {
        path: path.clone(),
        reason,
    };
    if !path.exists() {
        return Err(corrupt(
            "no replica file (is this a worker's --state-dir?)".into(),
        ));
    }
    let read = disk::read_offline(&path).map_err(|disk::Bad(reason)| corrupt(reason))?;
    let applied_rev = match read.meta.get("applied_rev") {
        None => 0,
        Some(rev) => rev
            .parse()
            .map_err(|_| corrupt(format!("applied revision {rev:?} is not a number")))?,
    };
    Ok(Dump {
        worker_id: read.meta.get("worker_id").cloned().unwrap_or_default(),
        applied_rev,
        namespaces: read.values,
        held: read.held,
    })
}
