//! The replica through its public API: what it promises across writes,
//! failures and reopening.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::Connection;
use statesync_core::digest::{Hash, NamespaceDigest, position, sha256};
use statesync_worker::{
    Changes, Entry, HeldKey, REPLICA_FILE, Replica, ReplicaError, Snapshot, read_offline,
};

fn entry(value: &str, rev: i64) -> Entry {
    Entry::new(value.as_bytes().to_vec(), rev, rev, 1)
}

fn puts(rev: i64, pairs: &[(&str, &str, &str)]) -> Changes {
    Changes {
        puts: pairs
            .iter()
            .map(|(ns, key, value)| (ns.to_string(), key.to_string(), entry(value, rev)))
            .collect(),
        ..Changes::default()
    }
}

fn held(ns: &str, key: &str, rev: i64, refused: Option<Hash>) -> HeldKey {
    HeldKey {
        namespace: ns.into(),
        key: key.into(),
        rev,
        reason: format!("refused at {rev}"),
        refused,
    }
}

fn root(replica: &Replica, ns: &str) -> Hash {
    replica.digest(ns).cloned().unwrap_or_default().root()
}

fn values(replica: &Replica, ns: &str) -> BTreeMap<String, Vec<u8>> {
    replica
        .range(ns, "")
        .map(|(k, e)| (k.to_owned(), e.value.clone()))
        .collect()
}

fn sql(dir: &Path, statements: &str) {
    let conn = Connection::open(dir.join(REPLICA_FILE)).expect("open the file");
    conn.execute_batch(statements).expect("edit the file");
}

#[test]
fn applied_revisions_are_there_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let mut replica = Replica::open(dir.path(), "w1").unwrap();
    replica
        .apply(
            1,
            puts(1, &[("a", "k1", "1"), ("a", "k2", "2"), ("b", "x", "true")]),
        )
        .unwrap();
    let mut second = puts(2, &[("a", "k1", "10")]);
    second.deletes.push(("a".into(), "k2".into()));
    replica.apply(2, second).unwrap();
    replica.advance(5).unwrap();
    replica.advance(3).unwrap(); // older: ignored
    let (ra, rb) = (root(&replica, "a"), root(&replica, "b"));
    replica.close();

    let reopened = Replica::open(dir.path(), "w1").unwrap();
    assert_eq!(reopened.applied_rev(), 5);
    assert_eq!(
        values(&reopened, "a"),
        BTreeMap::from([("k1".into(), b"10".to_vec())])
    );
    assert_eq!(reopened.get("a", "k1").unwrap().mod_rev, 2);
    assert_eq!(reopened.get("b", "x").unwrap().value, b"true");
    assert_eq!((root(&reopened, "a"), root(&reopened, "b")), (ra, rb));
    assert_eq!(reopened.digest("a").unwrap().count(), 1);
}

#[test]
fn a_revision_that_fails_midway_changes_nothing_on_disk_or_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mut replica = Replica::open(dir.path(), "w1").unwrap();
    replica
        .apply(1, puts(1, &[("a", "k1", "1"), ("a", "k2", "2")]))
        .unwrap();
    replica
        .apply(
            2,
            Changes {
                rejected: vec![held("a", "k2", 2, None)],
                ..Changes::default()
            },
        )
        .unwrap();
    let before = (root(&replica, "a"), values(&replica, "a"), replica.held().count());
    // The file refuses the third put, after two writes of the same revision succeeded.
    sql(
        dir.path(),
        "CREATE TRIGGER boom BEFORE INSERT ON kv WHEN NEW.key = 'boom'
         BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
    );
    let mut failing = puts(3, &[("a", "k1", "11"), ("a", "k2", "12"), ("a", "boom", "0")]);
    failing.deletes.push(("a".into(), "k1".into()));
    let err = replica.apply(3, failing).unwrap_err();
    assert!(matches!(err, ReplicaError::Write { .. }), "{err}");
    assert!(err.to_string().contains("injected failure"), "{err}");
    assert_eq!(replica.applied_rev(), 2);
    assert_eq!(
        (root(&replica, "a"), values(&replica, "a"), replica.held().count()),
        before
    );
    assert_eq!(
        replica.leaves("a", "").unwrap().len(),
        1,
        "k2 is held as a refused delete"
    );
    replica.close();

    sql(dir.path(), "DROP TRIGGER boom;");
    let reopened = Replica::open(dir.path(), "w1").unwrap();
    assert_eq!(reopened.applied_rev(), 2);
    assert_eq!(
        (
            root(&reopened, "a"),
            values(&reopened, "a"),
            reopened.held().count()
        ),
        before
    );
}

#[test]
fn a_replica_edited_behind_its_back_is_corrupt_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut replica = Replica::open(dir.path(), "w1").unwrap();
    replica.apply(3, puts(3, &[("ns", "k", r#"{"a":1}"#)])).unwrap();
    replica.close();

    let corrupt = |dir: &Path| match Replica::open(dir, "w1") {
        Err(ReplicaError::Corrupt { reason, .. }) => reason,
        Err(other) => panic!("not corrupt: {other}"),
        Ok(_) => panic!("opened"),
    };
    // Value and hash edited together: only the recorded digest can tell.
    let edited = br#"{"a":2}"#;
    let conn = Connection::open(dir.path().join(REPLICA_FILE)).unwrap();
    conn.execute(
        "UPDATE kv SET value = ?, vhash = ?",
        (&edited[..], &sha256(edited)[..]),
    )
    .unwrap();
    drop(conn);
    assert!(corrupt(dir.path()).contains("do not match the recorded digest"));
    sql(dir.path(), "UPDATE kv SET value = X'00';");
    assert!(corrupt(dir.path()).contains("value changed on disk"));
    sql(
        dir.path(),
        "DELETE FROM kv; UPDATE meta SET value = 'v0' WHERE name = 'format';",
    );
    assert!(corrupt(dir.path()).contains("unknown format"));

    for extra in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.path().join(format!("{REPLICA_FILE}{extra}")));
    }
    std::fs::write(dir.path().join(REPLICA_FILE), b"not a database".repeat(100)).unwrap();
    assert!(corrupt(dir.path()).contains("not a database"));
}

#[test]
fn one_state_directory_serves_one_worker() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = Replica::open(dir.path(), "w1").unwrap();
    assert!(matches!(
        Replica::open(dir.path(), "w2"),
        Err(ReplicaError::InUse { .. })
    ));
    first.close();
    assert!(matches!(
        first.apply(1, Changes::default()),
        Err(ReplicaError::Closed)
    ));
    Replica::open(dir.path(), "w2").unwrap();
}

#[test]
fn held_keys_and_their_digest_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let mut replica = Replica::open(dir.path(), "w1").unwrap();
    replica
        .apply(
            1,
            puts(
                1,
                &[("ns", "kept", "1"), ("ns", "gone", "2"), ("ns", "plain", "3")],
            ),
        )
        .unwrap();
    let sent = sha256(b"99");
    let rejected = vec![
        held("ns", "kept", 2, Some(sent)), // a refused put: counted with the value sent
        held("ns", "gone", 2, None),       // a refused delete: not counted
        held("ns", "never", 2, Some(sent)), // refused without a value before
    ];
    replica
        .apply(
            2,
            Changes {
                rejected: rejected.clone(),
                ..Changes::default()
            },
        )
        .unwrap();
    let (digest_root, leaves) = (root(&replica, "ns"), replica.leaves("ns", "").unwrap());
    replica.close();

    let mut reopened = Replica::open(dir.path(), "w1").unwrap();
    let mut expected = rejected;
    expected.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(reopened.held().collect::<Vec<_>>(), expected);
    assert_eq!(
        reopened.get("ns", "kept").unwrap().value,
        b"1",
        "the last good value stays"
    );
    assert_eq!(root(&reopened, "ns"), digest_root);
    let mut again = reopened.leaves("ns", "").unwrap();
    again.sort();
    let mut leaves = leaves;
    leaves.sort();
    assert_eq!(again, leaves);
    let counted: Vec<&str> = leaves.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(counted, ["kept", "never", "plain"]);

    // The next good value releases a held key, durably.
    reopened.apply(3, puts(3, &[("ns", "kept", "3")])).unwrap();
    reopened.close();
    let released = Replica::open(dir.path(), "w1").unwrap();
    let keys: Vec<String> = released.held().map(|h| h.key).collect();
    assert_eq!(keys, ["gone", "never"]);
}

/// The counted view, from scratch: entries not held, and held keys' refused values.
fn built_from_scratch(replica: &Replica, ns: &str) -> NamespaceDigest {
    let held: BTreeMap<String, Option<Hash>> = replica
        .held()
        .filter(|h| h.namespace == ns)
        .map(|h| (h.key, h.refused))
        .collect();
    let mut counted: Vec<(String, Hash)> = replica
        .range(ns, "")
        .filter(|(k, _)| !held.contains_key(*k))
        .map(|(k, e)| (k.to_owned(), *e.leaf()))
        .collect();
    counted.extend(held.into_iter().filter_map(|(k, h)| Some((k, h?))));
    NamespaceDigest::from_items(counted, |_, _| {})
}

#[test]
fn the_maintained_digest_equals_one_built_from_scratch() {
    let mut replica = Replica::in_memory("w1");
    let mut rev = 0;
    for round in 0..40i64 {
        rev += 1;
        let mut changes = Changes::default();
        for i in 0..25 {
            let key = format!("k{}", (round * 7 + i * 13) % 300);
            let mut e = entry(&format!("{round}"), rev);
            if i % 5 == 0 {
                e.source_hash = Some(sha256(key.as_bytes())); // a translated value
            }
            changes.puts.push(("ns".into(), key, e));
        }
        changes
            .deletes
            .push(("ns".into(), format!("k{}", (round * 11) % 300)));
        let refused = (round % 3 != 0).then(|| sha256(&round.to_be_bytes()));
        changes
            .rejected
            .push(held("ns", &format!("k{}", (round * 17) % 300), rev, refused));
        replica.apply(rev, changes).unwrap();
        if round == 10 {
            replica.leaves("ns", "0").unwrap(); // the index is maintained from here on
        }
        assert_eq!(
            root(&replica, "ns"),
            built_from_scratch(&replica, "ns").root(),
            "{round}"
        );
    }
}

#[test]
fn leaves_are_the_counted_keys_under_a_prefix() {
    let mut replica = Replica::in_memory("w1");
    let keys: Vec<String> = (0..3000).map(|i| format!("key-{i}")).collect();
    let mut changes = Changes::default();
    for key in &keys {
        changes.puts.push(("ns".into(), key.clone(), entry("1", 1)));
    }
    changes.rejected.push(held("ns", "key-7", 1, None));
    replica.apply(1, changes).unwrap();
    let hex = |key: &str| -> String { position(key).iter().map(|b| format!("{b:02x}")).collect() };
    let prefixes = ["", "a", "3f", "0c1", "ffff", "1234", "abcde", "0123456"];
    let more: Vec<String> = keys.iter().take(20).map(|k| hex(k)[..6].to_owned()).collect();
    for prefix in prefixes.iter().copied().chain(more.iter().map(String::as_str)) {
        let mut got: Vec<String> = replica
            .leaves("ns", prefix)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        got.sort();
        let mut want: Vec<String> = keys
            .iter()
            .filter(|k| *k != "key-7" && hex(k).starts_with(prefix))
            .cloned()
            .collect();
        want.sort();
        assert_eq!(got, want, "prefix {prefix:?}");
    }
    let whole = hex("key-42");
    assert_eq!(
        replica.leaves("ns", &whole).unwrap(),
        [("key-42".into(), sha256(b"1"))]
    );
    assert_eq!(replica.leaves("ns", &whole.to_uppercase()).unwrap().len(), 1);
    assert!(replica.leaves("other", "").unwrap().is_empty());
    assert!(matches!(
        replica.leaves("ns", "xyz"),
        Err(ReplicaError::InvalidPrefix(_))
    ));
}

#[test]
fn a_snapshot_replaces_everything_and_drops_earlier_held_keys() {
    let dir = tempfile::tempdir().unwrap();
    let mut replica = Replica::open(dir.path(), "w1").unwrap();
    replica
        .apply(1, puts(1, &[("a", "old", "1"), ("c", "x", "1")]))
        .unwrap();
    replica
        .apply(
            2,
            Changes {
                rejected: vec![held("a", "old", 2, None)],
                ..Changes::default()
            },
        )
        .unwrap();
    let entries = BTreeMap::from([(
        "a".to_string(),
        BTreeMap::from([
            ("new".to_string(), entry("5", 9)),
            ("kept".to_string(), entry("6", 4)),
        ]),
    )]);
    let snapshot = Snapshot {
        entries: entries.clone(),
        rejected: vec![held("a", "kept", 9, Some(sha256(b"7")))],
        digests: None,
    };
    replica.replace(9, snapshot).unwrap();
    let built = root(&replica, "a");
    assert_eq!(built, built_from_scratch(&replica, "a").root());
    // Digests the caller built already are taken as they are.
    let given = built_from_scratch(&replica, "a");
    let mut other = Replica::in_memory("w2");
    let snapshot = Snapshot {
        entries,
        rejected: vec![held("a", "kept", 9, Some(sha256(b"7")))],
        digests: Some([("a".to_string(), given)].into()),
    };
    other.replace(9, snapshot).unwrap();
    assert_eq!(root(&other, "a"), built);
    replica.close();

    let reopened = Replica::open(dir.path(), "w1").unwrap();
    assert_eq!(reopened.applied_rev(), 9);
    assert_eq!(
        values(&reopened, "a").into_keys().collect::<Vec<_>>(),
        ["kept", "new"]
    );
    assert!(reopened.get("c", "x").is_none());
    assert_eq!(reopened.held().map(|h| h.key).collect::<Vec<_>>(), ["kept"]);
    assert_eq!(root(&reopened, "a"), built);
}

#[test]
fn a_dump_reads_the_file_while_its_worker_runs() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        read_offline(dir.path()),
        Err(ReplicaError::Corrupt { .. })
    ));
    let mut replica = Replica::open(dir.path(), "w1").unwrap();
    replica
        .apply(4, puts(4, &[("b", "y", "2"), ("a", "x", "1")]))
        .unwrap();
    replica
        .apply(
            5,
            Changes {
                rejected: vec![held("a", "x", 5, None)],
                ..Changes::default()
            },
        )
        .unwrap();
    let dump = read_offline(dir.path()).unwrap();
    assert_eq!((dump.worker_id.as_str(), dump.applied_rev), ("w1", 5));
    assert_eq!(dump.namespaces["a"]["x"], b"1");
    assert_eq!(dump.namespaces.keys().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(dump.held, [held("a", "x", 5, None)]);
}

#[test]
fn a_replica_from_before_contracts_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let value = b"1";
    let root = NamespaceDigest::from_items([("k", sha256(value))], |_, _| {}).root();
    let hex: String = root.iter().map(|b| format!("{b:02x}")).collect();
    let conn = Connection::open(dir.path().join(REPLICA_FILE)).unwrap();
    conn.execute_batch(
        "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
         CREATE TABLE kv (ns TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,
             create_rev INTEGER NOT NULL, mod_rev INTEGER NOT NULL, version INTEGER NOT NULL,
             vhash BLOB NOT NULL, PRIMARY KEY (ns, key)) WITHOUT ROWID;
         INSERT INTO meta VALUES ('format', 'statesync.replica.v1'), ('applied_rev', '8'),
             ('worker_id', 'old');",
    )
    .unwrap();
    conn.execute(
        "INSERT INTO kv VALUES ('ns', 'k', ?, 1, 8, 2, ?)",
        (&value[..], &sha256(value)[..]),
    )
    .unwrap();
    conn.execute("INSERT INTO meta VALUES ('root:ns', ?)", [hex])
        .unwrap();
    drop(conn);
    let replica = Replica::open(dir.path(), "old").unwrap();
    assert_eq!(replica.applied_rev(), 8);
    assert_eq!(replica.get("ns", "k").unwrap().schema_version, 0);
    assert_eq!(replica.schema_version("ns"), Some(0));
}
