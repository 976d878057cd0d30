//! The file format (tables and `meta` rows) and how rows become records.

use super::*;

/// The on-disk format this store reads and writes (the `meta` row `format_version`).
pub const FORMAT_VERSION: i64 = 1;
pub(super) const POS_BIAS: i128 = 1 << 63;
/// Parameters per bulk query stay under SQLite's limit.
pub(super) const PREFETCH: usize = 400;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kv (
    ns TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, vhash BLOB NOT NULL,
    create_rev INTEGER NOT NULL, mod_rev INTEGER NOT NULL, version INTEGER NOT NULL,
    pos INTEGER NOT NULL,
    PRIMARY KEY (ns, key)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_pos ON kv (ns, pos);
CREATE TABLE IF NOT EXISTS log (
    rev INTEGER NOT NULL, seq INTEGER NOT NULL, ns TEXT NOT NULL, key TEXT NOT NULL,
    op TEXT NOT NULL, value BLOB, prev_mod_rev INTEGER NOT NULL,
    create_rev INTEGER NOT NULL, version INTEGER NOT NULL, command_id TEXT NOT NULL,
    ts_ms INTEGER NOT NULL, trace TEXT, hash BLOB NOT NULL,
    PRIMARY KEY (rev, seq)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS log_key ON log (ns, key, rev);
CREATE TABLE IF NOT EXISTS commands (
    command_id TEXT PRIMARY KEY, fingerprint BLOB NOT NULL, rev INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS commands_ts ON commands (ts_ms);
CREATE TABLE IF NOT EXISTS digests (
    ns TEXT NOT NULL, rev INTEGER NOT NULL, root BLOB NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (ns, rev)) WITHOUT ROWID;
";

pub(super) const LOG_COLUMNS: &str =
    "rev, seq, ns, key, op, value, prev_mod_rev, create_rev, version, command_id, ts_ms, trace, hash";

/// The key's digest position as a signed 64-bit integer (order-preserving).
pub(super) fn pos_of(key: &str) -> i64 {
    let p = position(key);
    let high = u64::from_be_bytes(p[..8].try_into().expect("8 bytes"));
    (i128::from(high) - POS_BIAS) as i64
}

pub(super) fn hash_of(bytes: Vec<u8>) -> Hash {
    let mut out = [0u8; 32];
    if bytes.len() == 32 {
        out.copy_from_slice(&bytes);
    }
    out
}

pub(super) fn row_to_change(row: &rusqlite::Row<'_>) -> rusqlite::Result<Change> {
    let op: String = row.get(4)?;
    Ok(Change {
        rev: row.get(0)?,
        seq: row.get(1)?,
        ns: row.get(2)?,
        key: row.get(3)?,
        op: if op == "delete" {
            ChangeOp::Delete
        } else {
            ChangeOp::Put
        },
        value: row.get(5)?,
        prev_mod_rev: row.get(6)?,
        create_rev: row.get(7)?,
        version: row.get(8)?,
        command_id: row.get(9)?,
        ts_ms: row.get(10)?,
        trace: row.get(11)?,
        hash: hash_of(row.get(12)?),
    })
}

pub(super) fn meta_int(conn: &Connection, name: &str) -> rusqlite::Result<i64> {
    let value: Option<rusqlite::types::Value> = conn
        .query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| r.get(0))
        .optional()?;
    Ok(match value {
        Some(rusqlite::types::Value::Integer(n)) => n,
        Some(rusqlite::types::Value::Text(t)) => t.parse().unwrap_or(0),
        _ => 0,
    })
}

pub(super) fn meta_blob(conn: &Connection, name: &str) -> rusqlite::Result<Option<Vec<u8>>> {
    conn.query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| r.get(0))
        .optional()
}

/// A namespace's digest root and key count at `rev`.
pub(super) fn root_at(conn: &Connection, ns: &str, rev: i64) -> rusqlite::Result<(Hash, u64)> {
    let row = conn
        .query_row(
            "SELECT root, count FROM digests WHERE ns = ?1 AND rev <= ?2 ORDER BY rev DESC LIMIT 1",
            params![ns, rev],
            |r| Ok((hash_of(r.get(0)?), r.get::<_, i64>(1)?)),
        )
        .optional()?;
    Ok(row.map_or((fingerprint(0, U256::ZERO), 0), |(root, count)| {
        (root, count as u64)
    }))
}

pub(super) fn load_head(
    conn: &Connection,
    path: &Path,
    settings: &StoreSettings,
) -> Result<Sequencer, StoreError> {
    let corrupt = |e: rusqlite::Error| StoreError::Corrupt(format!("cannot open {}: {e}", path.display()));
    let head_rev = meta_int(conn, "head_rev").map_err(corrupt)?;
    let chain_head = meta_blob(conn, "chain_head")
        .map_err(corrupt)?
        .map(hash_of)
        .unwrap_or(GENESIS_HASH);
    let mut by_ns: HashMap<String, Vec<(String, Hash)>> = HashMap::new();
    {
        let mut stmt = conn.prepare("SELECT ns, key, vhash FROM kv").map_err(corrupt)?;
        let mut rows = stmt.query([]).map_err(corrupt)?;
        while let Some(r) = rows.next().map_err(corrupt)? {
            let ns: String = r.get(0).map_err(corrupt)?;
            by_ns
                .entry(ns)
                .or_default()
                .push((r.get(1).map_err(corrupt)?, hash_of(r.get(2).map_err(corrupt)?)));
        }
    }
    let mut digests = HashMap::new();
    for (ns, items) in by_ns {
        let digest = NamespaceDigest::from_items(items, |_, _| {});
        let recorded: Option<Vec<u8>> = conn
            .query_row(
                "SELECT root FROM digests WHERE ns = ?1 ORDER BY rev DESC LIMIT 1",
                [&ns],
                |r| r.get(0),
            )
            .optional()
            .map_err(corrupt)?;
        if let Some(root) = recorded
            && hash_of(root) != digest.root()
        {
            return Err(StoreError::Corrupt(format!(
                "namespace {ns:?}: the recorded digest does not match the stored keys"
            )));
        }
        digests.insert(ns, digest);
    }
    Ok(Sequencer {
        head_rev,
        chain_head,
        digests,
        limits: settings.limits,
    })
}
