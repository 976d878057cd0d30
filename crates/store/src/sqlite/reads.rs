//! Reads: pinned read transactions on pooled connections, and snapshots.

use super::schema::*;
use super::*;

impl SqliteStore {
    fn reader(&self) -> Result<PooledReader<'_>, StoreError> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        let conn = lock_unpoisoned(&self.shared.readers).pop();
        let conn = match conn {
            Some(conn) => conn,
            None => connect(&self.shared.path, true)
                .map_err(|e| sql_error(&self.shared.path, "open a reader", e))?,
        };
        Ok(PooledReader {
            store: self,
            conn: Some(conn),
        })
    }

    /// Runs `read` in a read transaction pinned at `rev` (None: the head).
    fn read_txn<T>(
        &self,
        rev: Option<i64>,
        read: impl FnOnce(&Connection, Pinned) -> rusqlite::Result<Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        if let Some(r) = rev
            && r < 0
        {
            return Err(StoreError::invalid(format!(
                "a revision is an integer >= 0, got {r}"
            )));
        }
        let reader = self.reader()?;
        let conn = reader.conn.as_ref().expect("a pooled connection");
        let path = &self.shared.path;
        conn.execute_batch("BEGIN")
            .map_err(|e| sql_error(path, "read failed", e))?;
        let result = (|| {
            let head = meta_int(conn, "head_rev")?;
            let compacted = meta_int(conn, "compacted_rev")?;
            let at = rev.unwrap_or(head);
            if at > head {
                return Ok(Err(StoreError::FutureRevision { rev: at, head }));
            }
            if at < compacted {
                return Ok(Err(StoreError::Compacted { rev: at, compacted }));
            }
            read(
                conn,
                Pinned {
                    rev: at,
                    head,
                    compacted,
                },
            )
        })();
        let _ = conn.execute_batch("COMMIT");
        match result {
            Ok(inner) => inner,
            Err(_) if self.shared.closed.load(Ordering::Acquire) => Err(StoreError::Closed),
            Err(e) => Err(sql_error(path, "read failed", e)),
        }
    }

    /// A key's record at `rev` (None: the head); None when absent.
    pub fn get(&self, ns: &str, key: &str, rev: Option<i64>) -> Result<Option<KeyRecord>, StoreError> {
        check_readable_namespace(ns)?;
        check_key(ns, key)?;
        self.read_txn(rev, |conn, txn| {
            if txn.rev == txn.head {
                return conn
                    .query_row(
                        "SELECT value, create_rev, mod_rev, version FROM kv WHERE ns = ?1 AND key = ?2",
                        params![ns, key],
                        |r| {
                            Ok(KeyRecord {
                                ns: ns.into(),
                                key: key.into(),
                                value: r.get(0)?,
                                create_rev: r.get(1)?,
                                mod_rev: r.get(2)?,
                                version: r.get(3)?,
                            })
                        },
                    )
                    .optional()
                    .map(Ok);
            }
            let row = conn
                .query_row(
                    "SELECT op, value, create_rev, rev, version FROM log \
                     WHERE ns = ?1 AND key = ?2 AND rev <= ?3 ORDER BY rev DESC LIMIT 1",
                    params![ns, key, txn.rev],
                    |r| {
                        let op: String = r.get(0)?;
                        Ok((
                            op,
                            r.get::<_, Option<Vec<u8>>>(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                        ))
                    },
                )
                .optional()?;
            Ok(Ok(match row {
                Some((op, Some(value), create_rev, mod_rev, version)) if op == "put" => Some(KeyRecord {
                    ns: ns.into(),
                    key: key.into(),
                    value,
                    create_rev,
                    mod_rev,
                    version,
                }),
                _ => None,
            }))
        })
    }

    /// Up to `limit` keys of `ns` starting with `prefix`, in key order, after
    /// `start_after` when given, at `rev` (None: the head).
    pub fn range(
        &self,
        ns: &str,
        prefix: &str,
        rev: Option<i64>,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        check_readable_namespace(ns)?;
        check_limit(limit)?;
        let (op, from) = match start_after {
            Some(after) if after >= prefix => (">", after),
            _ => (">=", prefix),
        };
        self.read_txn(rev, |conn, txn| {
            let mut out = Vec::new();
            range_rows(conn, ns, txn, op, from, |record| {
                if !record.key.starts_with(prefix) {
                    return false; // keys sort by UTF-8 bytes: a prefix's keys are contiguous
                }
                out.push(record);
                out.len() < limit
            })?;
            Ok(Ok(out))
        })
    }

    /// Changes after `after_rev`, whole revisions only, in order; at least
    /// `limit` unless fewer remain (a revision is never split).
    pub fn changes(
        &self,
        after_rev: i64,
        limit: usize,
        namespaces: Option<&[String]>,
    ) -> Result<Vec<Change>, StoreError> {
        if after_rev < 0 {
            return Err(StoreError::invalid(format!(
                "a revision is an integer >= 0, got {after_rev}"
            )));
        }
        check_limit(limit)?;
        if let Some(names) = namespaces {
            for ns in names {
                check_readable_namespace(ns)?;
            }
        }
        self.read_txn(None, |conn, txn| {
            if after_rev < txn.compacted {
                return Ok(Err(StoreError::Compacted {
                    rev: after_rev,
                    compacted: txn.compacted,
                }));
            }
            if after_rev > txn.head {
                return Ok(Err(StoreError::FutureRevision {
                    rev: after_rev,
                    head: txn.head,
                }));
            }
            let (filter, names) = ns_filter(namespaces);
            let mut args: Vec<rusqlite::types::Value> = vec![after_rev.into()];
            args.extend(names.iter().cloned().map(Into::into));
            args.push((limit as i64).into());
            let sql =
                format!("SELECT {LOG_COLUMNS} FROM log WHERE rev > ? {filter} ORDER BY rev, seq LIMIT ?");
            let mut rows: Vec<Change> = conn
                .prepare_cached(&sql)?
                .query_map(params_from_iter(args), row_to_change)?
                .collect::<Result<_, _>>()?;
            if rows.len() == limit {
                // Never split a revision: one command's changes arrive together.
                let last = rows[rows.len() - 1].rev;
                rows.retain(|c| c.rev != last);
                let mut args: Vec<rusqlite::types::Value> = vec![last.into()];
                args.extend(names.iter().cloned().map(Into::into));
                let sql = format!("SELECT {LOG_COLUMNS} FROM log WHERE rev = ? {filter} ORDER BY seq");
                rows.extend(
                    conn.prepare_cached(&sql)?
                        .query_map(params_from_iter(args), row_to_change)?
                        .collect::<Result<Vec<_>, _>>()?,
                );
            }
            Ok(Ok(rows))
        })
    }

    /// A consistent view of `namespaces` (None: every one) at `rev` (None: the head).
    pub fn snapshot(
        &self,
        namespaces: Option<Vec<String>>,
        rev: Option<i64>,
        chunk_size: usize,
    ) -> Result<Snapshot, StoreError> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        if let Some(names) = &namespaces {
            for ns in names {
                check_readable_namespace(ns)?;
            }
        }
        check_limit(chunk_size)?;
        if let Some(r) = rev
            && r < 0
        {
            return Err(StoreError::invalid(format!(
                "a revision is an integer >= 0, got {r}"
            )));
        }
        Snapshot::open(&self.shared.path, namespaces, rev, chunk_size)
    }

    /// The namespaces that hold keys at the head.
    pub fn namespaces(&self) -> Vec<String> {
        let sequencer = lock_unpoisoned(&self.shared.sequencer);
        let mut names: Vec<String> = sequencer
            .digests
            .iter()
            .filter(|(_, d)| d.count() > 0)
            .map(|(ns, _)| ns.clone())
            .collect();
        names.sort();
        names
    }

    /// A namespace's digest root at `rev` (None: the head).
    pub fn digest(&self, ns: &str, rev: Option<i64>) -> Result<Hash, StoreError> {
        check_readable_namespace(ns)?;
        self.read_txn(rev, |conn, txn| Ok(Ok(root_at(conn, ns, txn.rev)?.0)))
    }

    /// The head digest trie's node at `prefix` (hex nibbles; "" is the root).
    pub fn digest_node(&self, ns: &str, prefix: &str) -> Result<Node, StoreError> {
        check_readable_namespace(ns)?;
        if prefix.len() > 64 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StoreError::invalid(format!(
                "a digest prefix is at most 64 hex nibbles, got {prefix:?}"
            )));
        }
        {
            let sequencer = lock_unpoisoned(&self.shared.sequencer);
            let materialized = match sequencer.digests.get(ns) {
                Some(digest) => digest.materialized_node(prefix),
                None => NamespaceDigest::new().materialized_node(prefix),
            };
            if let Some(node) = materialized {
                return Ok(node);
            }
        }
        let leaves = self.leaves(ns, prefix)?;
        Ok(Node::from_leaves(leaves.iter().map(|(k, h)| (k.as_str(), h))))
    }

    /// (key, value hash) of the head keys whose digest position starts with `prefix`.
    pub fn leaves(&self, ns: &str, prefix: &str) -> Result<Vec<(String, Hash)>, StoreError> {
        check_readable_namespace(ns)?;
        let prefix = prefix.to_ascii_lowercase();
        if prefix.len() > 64 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StoreError::invalid(format!(
                "a digest prefix is at most 64 hex nibbles, got {prefix:?}"
            )));
        }
        let nibbles = &prefix[..prefix.len().min(16)];
        let (lo, hi) = if nibbles.is_empty() {
            (i64::MIN, i64::MAX)
        } else {
            let lo = u64::from_str_radix(&format!("{nibbles:0<16}"), 16).expect("hex");
            let hi = u64::from_str_radix(&format!("{nibbles:f<16}"), 16).expect("hex");
            (
                (i128::from(lo) - POS_BIAS) as i64,
                (i128::from(hi) - POS_BIAS) as i64,
            )
        };
        let rows = self.read_txn(None, |conn, _| {
            let mut stmt =
                conn.prepare_cached("SELECT key, vhash FROM kv WHERE ns = ?1 AND pos BETWEEN ?2 AND ?3")?;
            let rows = stmt
                .query_map(params![ns, lo, hi], |r| {
                    Ok((r.get::<_, String>(0)?, hash_of(r.get(1)?)))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Ok(rows))
        })?;
        if prefix.len() > 16 {
            return Ok(rows
                .into_iter()
                .filter(|(k, _)| hex(&position(k)).starts_with(&prefix))
                .collect());
        }
        Ok(rows)
    }

    /// Recomputes the hash chain over the retained history.
    pub fn verify_chain(&self) -> Result<ChainReport, StoreError> {
        self.read_txn(None, |conn, txn| {
            let anchor = meta_blob(conn, "chain_anchor")?;
            let mut expected = anchor.map(hash_of).unwrap_or(GENESIS_HASH);
            let recorded_head = meta_blob(conn, "chain_head")?;
            let mut count = 0u64;
            let mut stmt = conn.prepare(&format!(
                "SELECT {LOG_COLUMNS} FROM log WHERE rev > ?1 ORDER BY rev, seq"
            ))?;
            let mut rows = stmt.query([txn.compacted])?;
            while let Some(row) = rows.next()? {
                let change = row_to_change(row)?;
                expected = chain_hash(&expected, &change.canonical());
                if expected != change.hash {
                    return Ok(Err(StoreError::Corrupt(format!(
                        "hash chain broken at revision {} (change #{}, {}/{}): the log was altered",
                        change.rev, change.seq, change.ns, change.key
                    ))));
                }
                count += 1;
            }
            if let Some(head) = recorded_head
                && hash_of(head) != expected
            {
                return Ok(Err(StoreError::Corrupt(
                    "hash chain head does not match the last change".into(),
                )));
            }
            Ok(Ok(ChainReport {
                from_rev: txn.compacted,
                to_rev: txn.head,
                changes: count,
                head_hash: expected,
            }))
        })
    }
}

pub(super) struct PooledReader<'a> {
    store: &'a SqliteStore,
    conn: Option<Connection>,
}

impl Drop for PooledReader<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && !self.store.shared.closed.load(Ordering::Acquire)
        {
            lock_unpoisoned(&self.store.shared.readers).push(conn);
        }
    }
}

#[derive(Clone, Copy)]
pub(super) struct Pinned {
    rev: i64,
    head: i64,
    compacted: i64,
}

pub(super) fn ns_filter(namespaces: Option<&[String]>) -> (String, Vec<String>) {
    match namespaces {
        None => (String::new(), Vec::new()),
        Some(names) => (
            format!("AND ns IN ({})", vec!["?"; names.len()].join(",")),
            names.to_vec(),
        ),
    }
}

/// Streams `ns`'s records at `txn.rev` with `key <key_op> key_from`, in key
/// order, to `each` until it returns false. The bound is the index's own
/// range, so a page deep into a namespace costs what a page at its start does.
pub(super) fn range_rows(
    conn: &Connection,
    ns: &str,
    txn: Pinned,
    key_op: &str,
    key_from: &str,
    mut each: impl FnMut(KeyRecord) -> bool,
) -> rusqlite::Result<()> {
    let mut args: Vec<rusqlite::types::Value> = vec![ns.to_owned().into(), key_from.to_owned().into()];
    let sql = if txn.rev == txn.head {
        format!(
            "SELECT ns, key, value, create_rev, mod_rev, version FROM kv \
             WHERE ns = ? AND key {key_op} ? ORDER BY key"
        )
    } else {
        args.push(txn.rev.into());
        // SQLite takes the bare columns from the row holding max(rev).
        format!(
            "SELECT ns, key, value, create_rev, rev, version FROM (\
               SELECT ns, key, op, value, create_rev, max(rev) AS rev, version FROM log \
               WHERE ns = ? AND key {key_op} ? AND rev <= ? GROUP BY key\
             ) WHERE op = 'put' ORDER BY key"
        )
    };
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(args))?;
    while let Some(r) = rows.next()? {
        let record = KeyRecord {
            ns: r.get(0)?,
            key: r.get(1)?,
            value: r.get(2)?,
            create_rev: r.get(3)?,
            mod_rev: r.get(4)?,
            version: r.get(5)?,
        };
        if !each(record) {
            break;
        }
    }
    Ok(())
}

/// A consistent view of namespaces at one revision, read in chunks: an open
/// read transaction on its own connection, paged by (namespace, key).
pub struct Snapshot {
    conn: Connection,
    txn: Pinned,
    chunk_size: usize,
    /// The namespace being read (an index into `namespaces`) and the last key
    /// read from it.
    reading: usize,
    after: Option<String>,
    /// The revision.
    pub rev: i64,
    /// The namespaces, sorted.
    pub namespaces: Vec<String>,
    /// Each namespace's digest root and key count at `rev`.
    pub digests: Vec<(String, Hash, u64)>,
}

impl Snapshot {
    fn open(
        path: &Path,
        namespaces: Option<Vec<String>>,
        rev: Option<i64>,
        chunk_size: usize,
    ) -> Result<Self, StoreError> {
        let err = |e: rusqlite::Error| sql_error(path, "snapshot failed", e);
        let conn = connect(path, true).map_err(err)?;
        conn.execute_batch("BEGIN").map_err(err)?;
        let head = meta_int(&conn, "head_rev").map_err(err)?;
        let compacted = meta_int(&conn, "compacted_rev").map_err(err)?;
        let at = rev.unwrap_or(head);
        if at > head {
            return Err(StoreError::FutureRevision { rev: at, head });
        }
        if at < compacted {
            return Err(StoreError::Compacted { rev: at, compacted });
        }
        let mut names = match namespaces {
            Some(names) => names,
            None => {
                let mut stmt = conn.prepare("SELECT DISTINCT ns FROM digests").map_err(err)?;
                stmt.query_map([], |r| r.get(0))
                    .map_err(err)?
                    .collect::<Result<Vec<String>, _>>()
                    .map_err(err)?
            }
        };
        names.sort();
        names.dedup();
        let mut digests = Vec::with_capacity(names.len());
        for ns in &names {
            let (root, count) = root_at(&conn, ns, at).map_err(err)?;
            digests.push((ns.clone(), root, count));
        }
        Ok(Snapshot {
            conn,
            txn: Pinned {
                rev: at,
                head,
                compacted,
            },
            chunk_size,
            reading: 0,
            after: None,
            rev: at,
            namespaces: names,
            digests,
        })
    }

    /// The next chunk of records in (namespace, key) order; empty at the end.
    pub fn next_chunk(&mut self) -> Result<Vec<KeyRecord>, StoreError> {
        let limit = self.chunk_size;
        let mut out = Vec::with_capacity(limit);
        while out.len() < limit
            && let Some(ns) = self.namespaces.get(self.reading)
        {
            let (op, from) = match &self.after {
                Some(key) => (">", key.as_str()),
                None => (">=", ""),
            };
            range_rows(&self.conn, ns, self.txn, op, from, |record| {
                out.push(record);
                out.len() < limit
            })
            .map_err(|e| StoreError::Io(format!("snapshot failed: {e}")))?;
            if out.len() < limit {
                // The namespace ended inside this chunk: the next one fills it.
                self.reading += 1;
                self.after = None;
            } else if let Some(last) = out.last() {
                self.after = Some(last.key.clone());
            }
        }
        Ok(out)
    }
}
