//! The replica's file: one SQLite database in the state directory, and the
//! lock that keeps a second worker process out of it.
//!
//! The format is shared with every statesync release that wrote a replica
//! (`statesync replica dump` reads it too): tables `meta` (name, value),
//! `kv` and `held`, and meta rows `format`, `applied_rev`, `worker_id` and one
//! `root:<ns>` per namespace (the hex digest recorded with the last commit).

use std::collections::{BTreeMap, HashMap, btree_map};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use rusqlite::types::FromSqlError;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior, params};
use statesync_core::digest::{Hash, sha256};

use super::namespace::Held;
use super::{Entry, FORMAT, HeldKey, REPLICA_FILE};
use crate::ReplicaError;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kv (
    ns TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, create_rev INTEGER NOT NULL,
    mod_rev INTEGER NOT NULL, version INTEGER NOT NULL, vhash BLOB NOT NULL,
    schema_version INTEGER NOT NULL DEFAULT 0, source_hash BLOB NOT NULL DEFAULT x'',
    PRIMARY KEY (ns, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS held (
    ns TEXT NOT NULL, key TEXT NOT NULL, rev INTEGER NOT NULL, reason TEXT NOT NULL,
    auth_hash BLOB NOT NULL, PRIMARY KEY (ns, key)) WITHOUT ROWID;
";

/// A reason the file cannot be trusted (becomes [`ReplicaError::Corrupt`]).
pub(crate) struct Bad(pub String);

impl From<rusqlite::Error> for Bad {
    fn from(err: rusqlite::Error) -> Self {
        Bad(err.to_string())
    }
}

impl From<FromSqlError> for Bad {
    fn from(err: FromSqlError) -> Self {
        Bad(err.to_string())
    }
}

/// Rows by namespace and key, as read at open.
pub(crate) type Rows<T> = BTreeMap<String, BTreeMap<String, T>>;

/// What the file holds, read and checked row by row.
pub(crate) struct Loaded {
    pub applied_rev: i64,
    pub entries: Rows<Entry>,
    pub held: Rows<Held>,
    /// `root:<ns>` rows: the digest recorded with the last commit.
    pub roots: HashMap<String, String>,
}

/// The open file and the state directory's lock (released when dropped).
pub(crate) struct Disk {
    conn: Connection,
    pub path: PathBuf,
    _lock: File,
}

impl Disk {
    /// Creates `state_dir` if needed, takes its lock and opens the replica file.
    pub fn open(state_dir: &Path, worker_id: &str) -> Result<(Disk, Loaded), ReplicaError> {
        let io = |source| ReplicaError::Io {
            path: state_dir.to_owned(),
            source,
        };
        fs::create_dir_all(state_dir).map_err(io)?;
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(state_dir.join(".lock"))
            .map_err(io)?;
        // flock(2) on Linux: released by the kernel when the process dies.
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(ReplicaError::InUse {
                    path: state_dir.to_owned(),
                });
            }
            Err(TryLockError::Error(source)) => return Err(io(source)),
        }
        let path = state_dir.join(REPLICA_FILE);
        let corrupt = |Bad(reason)| ReplicaError::Corrupt {
            path: path.clone(),
            reason,
        };
        let conn = Connection::open(&path).map_err(|e| corrupt(e.into()))?;
        let loaded = prepare(&conn, worker_id).map_err(corrupt)?;
        Ok((
            Disk {
                conn,
                path,
                _lock: lock,
            },
            loaded,
        ))
    }

    /// Starts the one transaction a revision (or a snapshot) is written in.
    pub fn begin(&mut self) -> rusqlite::Result<Transaction<'_>> {
        self.conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
    }
}

/// Sets the file up and reads it, checking everything but the digests.
fn prepare(conn: &Connection, worker_id: &str) -> Result<Loaded, Bad> {
    // WAL + NORMAL: a killed process loses nothing committed; a power loss may
    // lose the newest revisions, which the controller simply sends again.
    conn.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let status: String = conn.query_row("PRAGMA quick_check", [], |row| row.get(0))?;
    if status != "ok" {
        return Err(Bad(format!("integrity check failed: {status}")));
    }
    conn.execute_batch(SCHEMA)?;
    let columns = conn
        .prepare("PRAGMA table_info(kv)")?
        .query_map([], |row| row.get::<_, String>(1))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    if !columns.iter().any(|c| c == "schema_version") {
        // A replica from before contracts.
        conn.execute_batch(
            "ALTER TABLE kv ADD COLUMN schema_version INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE kv ADD COLUMN source_hash BLOB NOT NULL DEFAULT x'';",
        )?;
    }
    let meta = read_meta(conn)?;
    if meta.is_empty() {
        let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
        for (name, value) in [("format", FORMAT), ("applied_rev", "0"), ("worker_id", worker_id)] {
            tx.execute("INSERT INTO meta VALUES (?, ?)", params![name, value])?;
        }
        tx.commit()?;
        return Ok(Loaded {
            applied_rev: 0,
            entries: Rows::new(),
            held: Rows::new(),
            roots: HashMap::new(),
        });
    }
    match meta.get("format") {
        Some(format) if format == FORMAT => {}
        Some(other) => return Err(Bad(format!("unknown format {other:?}"))),
        None => return Err(Bad("no format recorded".into())),
    }
    let applied_rev = meta
        .get("applied_rev")
        .and_then(|rev| rev.parse().ok())
        .ok_or_else(|| Bad("no applied revision recorded".into()))?;
    let roots = meta
        .iter()
        .filter_map(|(name, value)| Some((name.strip_prefix("root:")?.to_owned(), value.clone())))
        .collect();
    Ok(Loaded {
        applied_rev,
        entries: read_entries(conn)?,
        held: read_held(conn)?,
        roots,
    })
}

fn read_meta(conn: &Connection) -> rusqlite::Result<HashMap<String, String>> {
    conn.prepare("SELECT name, value FROM meta")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect()
}

fn read_entries(conn: &Connection) -> Result<Rows<Entry>, Bad> {
    let mut select = conn.prepare(
        "SELECT ns, key, value, create_rev, mod_rev, version, vhash, schema_version, source_hash
         FROM kv",
    )?;
    // Rows come in key order: gathered in runs of one namespace, each run
    // becomes a map in one bulk build rather than key by key.
    let mut runs: Vec<(String, Vec<(String, Entry)>)> = Vec::new();
    let mut cursor = select.query([])?;
    while let Some(row) = cursor.next()? {
        let ns = row.get_ref(0)?.as_str()?;
        let key: String = row.get(1)?;
        let value: Vec<u8> = row.get(2)?;
        let (vhash, source_hash) = (row.get_ref(6)?.as_blob()?, row.get_ref(8)?.as_blob()?);
        let changed = || Bad(format!("namespace {ns:?}, key {key:?}: value changed on disk"));
        if sha256(&value)[..] != vhash[..] {
            return Err(changed());
        }
        let entry = Entry {
            vhash: hash_of(vhash).ok_or_else(changed)?,
            source_hash: optional_hash(source_hash).ok_or_else(changed)?,
            value,
            create_rev: row.get(3)?,
            mod_rev: row.get(4)?,
            version: row.get(5)?,
            schema_version: row.get(7)?,
        };
        match runs.last_mut() {
            Some((last, run)) if last == ns => run.push((key, entry)),
            _ => runs.push((ns.to_owned(), vec![(key, entry)])),
        }
    }
    let mut rows = Rows::<Entry>::new();
    for (ns, run) in runs {
        match rows.entry(ns) {
            btree_map::Entry::Vacant(slot) => {
                slot.insert(run.into_iter().collect());
            }
            btree_map::Entry::Occupied(mut slot) => slot.get_mut().extend(run),
        }
    }
    Ok(rows)
}

fn read_held(conn: &Connection) -> Result<Rows<Held>, Bad> {
    let mut rows = Rows::<Held>::new();
    for held in read_held_keys(conn)? {
        let record = Held {
            rev: held.rev,
            reason: held.reason,
            refused: held.refused,
        };
        rows.entry(held.namespace).or_default().insert(held.key, record);
    }
    Ok(rows)
}

fn read_held_keys(conn: &Connection) -> Result<Vec<HeldKey>, Bad> {
    let mut select = conn.prepare("SELECT ns, key, rev, reason, auth_hash FROM held")?;
    let mut cursor = select.query([])?;
    let mut out = Vec::new();
    while let Some(row) = cursor.next()? {
        let (namespace, key): (String, String) = (row.get(0)?, row.get(1)?);
        let auth: Vec<u8> = row.get(4)?;
        let Some(refused) = optional_hash(&auth) else {
            return Err(Bad(format!(
                "namespace {namespace:?}, key {key:?}: the held key's hash is not a hash"
            )));
        };
        out.push(HeldKey {
            namespace,
            key,
            rev: row.get(2)?,
            reason: row.get(3)?,
            refused,
        });
    }
    Ok(out)
}

fn hash_of(bytes: &[u8]) -> Option<Hash> {
    bytes.try_into().ok()
}

/// Empty: None; 32 bytes: the hash; anything else is not a hash (outer None).
fn optional_hash(bytes: &[u8]) -> Option<Option<Hash>> {
    if bytes.is_empty() {
        Some(None)
    } else {
        hash_of(bytes).map(Some)
    }
}

// ------------------------------------------------------------------ writes

pub(crate) fn put(tx: &Transaction<'_>, ns: &str, key: &str, e: &Entry) -> rusqlite::Result<()> {
    put_all(tx, ns, [(key, e)])
}

/// Writes entries of `ns` with one statement (a snapshot's many keys).
pub(crate) fn put_all<'a>(
    tx: &Transaction<'_>,
    ns: &str,
    entries: impl IntoIterator<Item = (&'a str, &'a Entry)>,
) -> rusqlite::Result<()> {
    let mut insert = tx.prepare_cached("INSERT OR REPLACE INTO kv VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")?;
    for (key, e) in entries {
        let source: &[u8] = e.source_hash.as_ref().map_or(&[], |h| &h[..]);
        insert.execute(params![
            ns,
            key,
            e.value,
            e.create_rev,
            e.mod_rev,
            e.version,
            &e.vhash[..],
            e.schema_version,
            source
        ])?;
    }
    Ok(())
}

pub(crate) fn delete(tx: &Transaction<'_>, ns: &str, key: &str) -> rusqlite::Result<()> {
    tx.prepare_cached("DELETE FROM kv WHERE ns = ? AND key = ?")?
        .execute(params![ns, key])?;
    Ok(())
}

pub(crate) fn hold(tx: &Transaction<'_>, ns: &str, key: &str, held: &Held) -> rusqlite::Result<()> {
    let auth: &[u8] = held.refused.as_ref().map_or(&[], |h| &h[..]);
    tx.prepare_cached("INSERT OR REPLACE INTO held VALUES (?, ?, ?, ?, ?)")?
        .execute(params![ns, key, held.rev, held.reason, auth])?;
    Ok(())
}

pub(crate) fn release(tx: &Transaction<'_>, ns: &str, key: &str) -> rusqlite::Result<()> {
    tx.prepare_cached("DELETE FROM held WHERE ns = ? AND key = ?")?
        .execute(params![ns, key])?;
    Ok(())
}

/// Empties the replica (before a snapshot's rows are written).
pub(crate) fn clear(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch("DELETE FROM kv; DELETE FROM held; DELETE FROM meta WHERE name LIKE 'root:%';")
}

/// The applied revision and worker id, and the digest of each namespace written.
pub(crate) fn meta<'a>(
    tx: &Transaction<'_>,
    rev: i64,
    worker_id: &str,
    roots: impl IntoIterator<Item = (&'a str, Hash)>,
) -> rusqlite::Result<()> {
    let mut set = tx.prepare_cached("INSERT OR REPLACE INTO meta VALUES (?, ?)")?;
    set.execute(params!["applied_rev", rev.to_string()])?;
    set.execute(params!["worker_id", worker_id])?;
    for (ns, root) in roots {
        set.execute(params![format!("root:{ns}"), hex(&root)])?;
    }
    Ok(())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ------------------------------------------------------------------ offline

/// What [`read_offline`](super::read_offline) reads, before it is shaped.
pub(crate) struct Offline {
    pub meta: HashMap<String, String>,
    pub values: Rows<Vec<u8>>,
    pub held: Vec<HeldKey>,
}

/// Reads the file without a lock and without checks (a worker may be running).
pub(crate) fn read_offline(path: &Path) -> Result<Offline, Bad> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    let meta = read_meta(&conn)?;
    let mut values = Rows::<Vec<u8>>::new();
    let mut select = conn.prepare("SELECT ns, key, value FROM kv ORDER BY ns, key")?;
    let mut cursor = select.query([])?;
    while let Some(row) = cursor.next()? {
        values
            .entry(row.get(0)?)
            .or_default()
            .insert(row.get(1)?, row.get(2)?);
    }
    let held = read_held_keys(&conn)?;
    Ok(Offline { meta, values, held })
}
