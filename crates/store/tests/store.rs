//! The SQLite store from Rust: group commit (what each group commit takes, seen
//! by a listener), idempotency, conflicts, reads at revisions, snapshots in
//! chunks, compaction and the chain, across a reopen.
//! (The Python suite `statesync.testing.store_suite` runs the same behaviour
//! through the binding; these tests hold the crate to it on its own.)

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use statesync_core::command::{Command, CommandSource, Limits, OpKind, prepare};
use statesync_core::digest::{Hash, position, value_hash};
use statesync_core::error::CommandError;
use statesync_core::sequencer::{Committed, Outcome};
use statesync_core::value::{Value, ValueError};
use statesync_store::sqlite::Reply;
use statesync_store::{SqliteStore, StoreError, StoreSettings};

/// A command written in Rust: (kind, namespace, key, value as JSON text).
struct Cmd {
    id: String,
    ops: Vec<(OpKind, &'static str, String, String)>,
    compares: Vec<(&'static str, String, &'static str, i64)>,
}

impl CommandSource for Cmd {
    fn command_id(&self) -> Result<String, CommandError> {
        Ok(self.id.clone())
    }
    fn op_count(&self) -> usize {
        self.ops.len()
    }
    fn compare_count(&self) -> usize {
        self.compares.len()
    }
    fn op_kind(&self, i: usize) -> Result<OpKind, CommandError> {
        Ok(self.ops[i].0)
    }
    fn op_ns(&self, i: usize) -> Result<String, CommandError> {
        Ok(self.ops[i].1.to_owned())
    }
    fn op_key(&self, i: usize, _ns: &str) -> Result<String, CommandError> {
        Ok(self.ops[i].2.clone())
    }
    fn op_value(&self, i: usize, ns: &str, key: &str) -> Result<Value, CommandError> {
        statesync_core::value::parse(self.ops[i].3.as_bytes())
            .map_err(|e: ValueError| statesync_core::command::value_error(ns, key, e))
    }
    fn op_versions(&self, _i: usize) -> (Result<i64, String>, Result<i64, String>) {
        (Ok(0), Ok(0))
    }
    fn op_patch(&self, i: usize, ns: &str, key: &str) -> Result<Value, CommandError> {
        self.op_value(i, ns, key)
    }
    fn compare(&self, i: usize) -> Result<(String, String, String, Result<i64, String>), CommandError> {
        let (ns, key, kind, rev) = &self.compares[i];
        Ok((ns.to_string(), key.clone(), kind.to_string(), Ok(*rev)))
    }
    fn trace(&self) -> Result<Option<String>, CommandError> {
        Ok(None)
    }
}

fn put(id: &str, key: &str, json: &str) -> Command {
    let source = Cmd {
        id: id.into(),
        ops: vec![(OpKind::Put, "apps", key.into(), json.into())],
        compares: vec![],
    };
    prepare(&source, &Limits::default()).expect("a valid command")
}

fn committed(store: &SqliteStore, command: Command) -> i64 {
    store
        .commit(command)
        .expect("the store is open")
        .expect("committed")
        .rev
}

#[test]
fn commits_read_back_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let store = SqliteStore::open(&path, StoreSettings::default(), None).unwrap();
    assert_eq!(committed(&store, put("c1", "a", r#"{"v": 1.0}"#)), 1);
    assert_eq!(committed(&store, put("c2", "a", "2")), 2);
    assert_eq!(committed(&store, put("c3", "b", "[]")), 3);
    // Idempotent: the same id and content is the original outcome.
    let replay = store.commit(put("c1", "a", r#"{"v": 1}"#)).unwrap().unwrap();
    assert_eq!((replay.rev, replay.replayed), (1, true));
    // The same id with other content is refused.
    let reused = store.commit(put("c1", "a", "7")).unwrap();
    assert!(matches!(
        reused,
        Err(CommandError::CommandIdReused { rev: 1, .. })
    ));
    assert_eq!(
        store.get("apps", "a", Some(1)).unwrap().unwrap().value,
        br#"{"v":1}"#
    );
    assert_eq!(store.get("apps", "a", None).unwrap().unwrap().value, b"2");
    let report = store.verify_chain().unwrap();
    assert_eq!((report.to_rev, report.changes), (3, 3));
    let digest = store.digest("apps", None).unwrap();
    store.close();

    let store = SqliteStore::open(&path, StoreSettings::default(), None).unwrap();
    assert_eq!(store.head_rev(), 3);
    assert_eq!(store.digest("apps", None).unwrap(), digest);
    assert_eq!(store.verify_chain().unwrap(), report);
    let replay = store.commit(put("c3", "b", "[]")).unwrap().unwrap();
    assert!(replay.replayed, "command ids are remembered across a reopen");
}

#[test]
fn a_second_open_is_refused_while_the_first_holds_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let store = SqliteStore::open(&path, StoreSettings::default(), None).unwrap();
    let second = SqliteStore::open(&path, StoreSettings::default(), None);
    assert!(matches!(second, Err(StoreError::InUse { .. })));
    store.close();
    SqliteStore::open(&path, StoreSettings::default(), None)
        .unwrap()
        .close();
}

#[test]
fn failed_compares_write_nothing_and_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("s.db"), StoreSettings::default(), None).unwrap();
    committed(&store, put("c1", "a", "1"));
    let guarded = Cmd {
        id: "c2".into(),
        ops: vec![(OpKind::Put, "apps", "b".into(), "2".into())],
        compares: vec![("apps", "a", "mod_rev", 7), ("apps", "zz", "exists", 0)]
            .into_iter()
            .map(|(ns, k, kind, rev)| (ns, k.to_string(), kind, rev))
            .collect(),
    };
    let outcome = store
        .commit(prepare(&guarded, &Limits::default()).unwrap())
        .unwrap();
    let Err(CommandError::Conflict(failed)) = outcome else {
        panic!("expected a conflict: {outcome:?}")
    };
    assert_eq!(failed.len(), 2);
    assert_eq!((failed[0].key.as_str(), failed[0].actual_mod_rev), ("a", Some(1)));
    assert_eq!((failed[1].key.as_str(), failed[1].actual_mod_rev), ("zz", None));
    assert_eq!(store.head_rev(), 1);
    assert!(store.get("apps", "b", None).unwrap().is_none());
}

#[test]
fn concurrent_writers_share_group_commits_and_get_consecutive_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("s.db"), StoreSettings::default(), None).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                (0..50)
                    .map(|i| committed(&store, put(&format!("t{t}-{i}"), &format!("k{t}"), "1")))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut revs: Vec<i64> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    revs.sort_unstable();
    assert_eq!(revs, (1..=400).collect::<Vec<_>>());
    assert_eq!(store.verify_chain().unwrap().changes, 400);
}

/// A store listener: records each group commit's size (commands), and can hold
/// the committer inside the first one until the test releases it, so that
/// commands submitted meanwhile queue up for the next group commit.
struct WriteGate {
    sizes: Mutex<Vec<usize>>,
    hold: Mutex<Hold>,
    changed: Condvar,
}

struct Hold {
    /// The committer is inside its first group commit.
    entered: bool,
    /// The test let it go on.
    released: bool,
}

impl WriteGate {
    fn on(store: &SqliteStore, hold_first: bool) -> Arc<Self> {
        let gate = Arc::new(WriteGate {
            sizes: Mutex::new(Vec::new()),
            hold: Mutex::new(Hold {
                entered: false,
                released: !hold_first,
            }),
            changed: Condvar::new(),
        });
        let listening = gate.clone();
        store.add_listener(Arc::new(move |batch| {
            listening.sizes.lock().unwrap().push(batch.commands.len());
            let mut hold = listening.hold.lock().unwrap();
            hold.entered = true;
            listening.changed.notify_all();
            let (hold, timeout) = listening
                .changed
                .wait_timeout_while(hold, Duration::from_secs(60), |h| !h.released)
                .unwrap();
            assert!(
                hold.released && !timeout.timed_out(),
                "the test never released the committer"
            );
        }));
        gate
    }

    /// Waits until the committer is inside its first group commit.
    fn entered(&self) {
        let hold = self.hold.lock().unwrap();
        let (_hold, timeout) = self
            .changed
            .wait_timeout_while(hold, Duration::from_secs(60), |h| !h.entered)
            .unwrap();
        assert!(!timeout.timed_out(), "no group commit started");
    }

    fn release(&self) {
        self.hold.lock().unwrap().released = true;
        self.changed.notify_all();
    }

    fn sizes(&self) -> Vec<usize> {
        self.sizes.lock().unwrap().clone()
    }
}

/// A reply that sends the outcome to the returned receiver.
fn reply() -> (Reply, Receiver<Outcome>) {
    let (tx, rx) = sync_channel(1);
    (Box::new(move |outcome| tx.send(outcome).unwrap()), rx)
}

/// Submits each command alone, as concurrent writers would; their receivers in order.
fn submit_each(store: &SqliteStore, commands: impl IntoIterator<Item = Command>) -> Vec<Receiver<Outcome>> {
    commands
        .into_iter()
        .map(|command| {
            let (reply, rx) = reply();
            store.submit(vec![(command, reply)]);
            rx
        })
        .collect()
}

fn outcome(rx: &Receiver<Outcome>) -> Committed {
    rx.recv_timeout(Duration::from_secs(60))
        .expect("answered")
        .expect("committed")
}

/// Retention never runs by itself during a test.
fn no_maintenance() -> StoreSettings {
    StoreSettings {
        maintenance_interval_s: 1e6,
        ..StoreSettings::default()
    }
}

#[test]
fn commands_queued_during_a_group_commit_are_written_in_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    // A clock the test moves: one timestamp per transaction shows the grouping.
    let seconds = Arc::new(AtomicU64::new(1_700_000_000));
    let now = seconds.clone();
    let clock = Arc::new(move || now.load(Ordering::SeqCst) as f64);
    let store = SqliteStore::open(dir.path().join("s.db"), no_maintenance(), Some(clock)).unwrap();
    let gate = WriteGate::on(&store, true);
    let first = submit_each(&store, [put("first", "first", "0")]);
    gate.entered();
    seconds.fetch_add(1, Ordering::SeqCst);
    let queued = submit_each(
        &store,
        (0..50).map(|i| put(&format!("c{i}"), &format!("k{i}"), "1")),
    );
    gate.release();
    let results: Vec<_> = first.iter().chain(&queued).map(outcome).collect();
    assert_eq!(gate.sizes(), [1, 50]);
    assert_eq!(
        results.iter().map(|c| c.rev).collect::<Vec<_>>(),
        (1..=51).collect::<Vec<_>>()
    );
    let timestamps: BTreeSet<i64> = results.iter().map(|c| c.ts_ms).collect();
    assert_eq!(timestamps.len(), 2, "one timestamp per transaction");
    assert_eq!(store.verify_chain().unwrap().changes, 51);
}

#[test]
fn a_group_commit_takes_at_most_max_batch_commands() {
    let dir = tempfile::tempdir().unwrap();
    let settings = StoreSettings {
        max_batch: 16,
        ..no_maintenance()
    };
    let store = SqliteStore::open(dir.path().join("s.db"), settings, None).unwrap();
    let gate = WriteGate::on(&store, true);
    let first = submit_each(&store, [put("first", "first", "0")]);
    gate.entered();
    let queued = submit_each(
        &store,
        (0..50).map(|i| put(&format!("c{i}"), &format!("k{i}"), "1")),
    );
    gate.release();
    for rx in first.iter().chain(&queued) {
        outcome(rx);
    }
    assert_eq!(gate.sizes(), [1, 16, 16, 16, 2]);
    assert_eq!(store.head_rev(), 51);
}

#[test]
fn commands_submitted_together_are_one_group_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("s.db"), no_maintenance(), None).unwrap();
    let gate = WriteGate::on(&store, false);
    let (commands, receivers): (Vec<_>, Vec<_>) = ["a", "b", "c"]
        .into_iter()
        .map(|key| {
            let (reply, rx) = reply();
            ((put(key, key, "1"), reply), rx)
        })
        .unzip();
    store.submit(commands);
    for rx in &receivers {
        outcome(rx);
    }
    assert_eq!(gate.sizes(), [3]);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn leaves_are_the_value_hashes_of_the_keys_under_a_digest_position_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("s.db"), no_maintenance(), None).unwrap();
    let values: Vec<String> = (0..40).map(|i| i.to_string()).collect();
    let hashes: BTreeMap<String, Hash> = values
        .iter()
        .enumerate()
        .map(|(i, value)| (format!("key-{i}"), value_hash(value.as_bytes())))
        .collect();
    for (i, value) in values.iter().enumerate() {
        committed(&store, put(&format!("c{i}"), &format!("key-{i}"), value));
    }
    let leaves = |prefix: &str| -> BTreeMap<String, Hash> {
        store.leaves("apps", prefix).unwrap().into_iter().collect()
    };
    assert_eq!(leaves(""), hashes);
    let three = hex(&position("key-3"))[..3].to_owned();
    let deep = hex(&position("key-7"))[..18].to_owned();
    for prefix in ["0", "a", "F3", &three, &deep] {
        let expected: BTreeMap<String, Hash> = hashes
            .iter()
            .filter(|(key, _)| hex(&position(key)).starts_with(&prefix.to_ascii_lowercase()))
            .map(|(key, hash)| (key.clone(), *hash))
            .collect();
        assert_eq!(leaves(prefix), expected, "{prefix}");
    }
    assert_eq!(leaves(&deep).len(), 1, "18 nibbles single out key-7");
    assert!(store.leaves("nothing-here", "").unwrap().is_empty());
    assert!(matches!(store.leaves("apps", "xyz"), Err(StoreError::Invalid(_))));
}

#[test]
fn snapshot_chunks_are_full_and_ordered_across_namespaces_at_the_head_and_before() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("s.db"), StoreSettings::default(), None).unwrap();
    let sizes = [("a", 5), ("b", 0), ("c", 9), ("d", 1)];
    let mut expected = Vec::new();
    for (ns, count) in sizes {
        for i in 0..count {
            let key = format!("k{i:02}");
            let command = prepare(
                &Cmd {
                    id: format!("{ns}-{key}"),
                    ops: vec![(OpKind::Put, ns, key.clone(), "1".into())],
                    compares: vec![],
                },
                &Limits::default(),
            )
            .unwrap();
            committed(&store, command);
            expected.push((ns.to_owned(), key));
        }
    }
    let head = store.head_rev();
    let names = || Some(sizes.iter().map(|(ns, _)| ns.to_string()).collect::<Vec<_>>());
    // The head moves on: a snapshot at `head` reads the log, not the state.
    committed(&store, put("late", "zz", "1"));
    for rev in [None, Some(head)] {
        for chunk_size in 1..=8 {
            let mut snapshot = store.snapshot(names(), rev, chunk_size).unwrap();
            let mut chunks = Vec::new();
            loop {
                let chunk = snapshot.next_chunk().unwrap();
                if chunk.is_empty() {
                    break;
                }
                chunks.push(chunk);
            }
            let (last, full) = chunks.split_last().unwrap();
            assert!(full.iter().all(|c| c.len() == chunk_size), "{rev:?} {chunk_size}");
            assert!(!last.is_empty() && last.len() <= chunk_size);
            let read: Vec<(String, String)> = chunks.into_iter().flatten().map(|r| (r.ns, r.key)).collect();
            assert_eq!(read, expected, "{rev:?} {chunk_size}");
        }
    }
}

#[test]
fn snapshots_page_through_a_consistent_view_and_compaction_keeps_reads_at_its_revision() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("s.db"), StoreSettings::default(), None).unwrap();
    for i in 0..25 {
        committed(&store, put(&format!("c{i}"), &format!("k{i:02}"), "1"));
    }
    let mut snapshot = store.snapshot(None, Some(20), 7).unwrap();
    committed(&store, put("late", "zz", "1"));
    let mut keys = Vec::new();
    loop {
        let chunk = snapshot.next_chunk().unwrap();
        if chunk.is_empty() {
            break;
        }
        assert!(chunk.len() <= 7);
        keys.extend(chunk.into_iter().map(|r| r.key));
    }
    assert_eq!(keys, (0..20).map(|i| format!("k{i:02}")).collect::<Vec<_>>());
    assert_eq!(snapshot.digests.len(), 1);

    store.compact(20).unwrap();
    assert_eq!(store.compacted_rev(), 20);
    assert!(store.get("apps", "k03", Some(20)).unwrap().is_some());
    assert!(matches!(
        store.get("apps", "k03", Some(19)),
        Err(StoreError::Compacted { .. })
    ));
    assert!(matches!(
        store.changes(3, 10, None),
        Err(StoreError::Compacted { .. })
    ));
    let report = store.verify_chain().unwrap();
    assert_eq!((report.from_rev, report.to_rev), (20, 26));
}

#[test]
fn the_log_is_checkpointed_into_the_database_file_off_the_commit_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = SqliteStore::open(&path, StoreSettings::default(), None).unwrap();
    let value = format!("\"{}\"", "x".repeat(3000));
    // Each command writes a page or more: well past the checkpoint threshold.
    for i in 0..1500 {
        committed(&store, put(&format!("c{i}"), &format!("k{i:04}"), &value));
    }
    let file_size = || std::fs::metadata(&path).unwrap().len();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while file_size() < 4_000_000 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        file_size() >= 4_000_000,
        "the database file holds {} bytes: the log was not checkpointed",
        file_size()
    );
    store.close();
}
