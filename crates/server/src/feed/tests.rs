//! The feed on a real store: what streams read, eviction, roots, catch-up and deltas.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use statesync_core::command::{self, CONTRACTS_NAMESPACE, prepare};
use statesync_core::engine::{KeyRecord, PlannedChange, ReadKey};
use statesync_core::error::CommandError;
use statesync_core::log::ChangeOp;
use statesync_core::sequencer::Gate;
use statesync_store::{SqliteStore, StoreError, StoreSettings};

use super::*;
use crate::command::{CommandIds, WireCommand};
use crate::proto::{CommandRequest, ContractOp, DeleteOp, Op, PutOp, op};

struct Fixture {
    _dir: tempfile::TempDir,
    store: SqliteStore,
    ids: CommandIds,
}

fn open() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("s.db"), StoreSettings::default(), None).unwrap();
    Fixture {
        _dir: dir,
        store,
        ids: CommandIds::new(),
    }
}

fn put(ns: &str, key: &str, value: &str) -> Op {
    Op {
        op: Some(op::Op::Put(PutOp {
            ns: ns.into(),
            key: key.into(),
            value: value.as_bytes().to_vec(),
            ..Default::default()
        })),
    }
}

fn delete(ns: &str, key: &str) -> Op {
    Op {
        op: Some(op::Op::Delete(DeleteOp {
            ns: ns.into(),
            key: key.into(),
        })),
    }
}

impl Fixture {
    fn commit(&self, ops: Vec<Op>) -> i64 {
        let mut request = CommandRequest {
            ops,
            ..Default::default()
        };
        self.ids.assign(&mut request);
        let command = prepare(&WireCommand(&request), &self.store.settings().limits).unwrap();
        self.store.commit(command).unwrap().unwrap().rev
    }
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn in_memory(read: Read) -> Slice {
    match read {
        Read::Slice(slice) => slice,
        other => panic!("expected a slice from memory, got {other:?}"),
    }
}

fn revs(slice: &Slice) -> Vec<i64> {
    slice.revisions.iter().map(|r| r.rev).collect()
}

#[test]
fn streams_read_their_namespaces_from_the_shared_buffer() {
    let f = open();
    f.commit(vec![put("early", "k", "1")]);
    let feed = Feed::attach(&f.store, FeedLimits::default());
    assert_eq!((feed.floor(), feed.head_rev()), (1, 1));
    let r2 = f.commit(vec![put("routes", "a", "1"), put("flags", "b", "true")]);
    let r3 = f.commit(vec![put("flags", "c", "false")]);
    let r4 = f.commit(vec![delete("routes", "a")]);
    assert_eq!(feed.head_rev(), r4);

    let routes = in_memory(feed.read(1, &names(&["routes"]), 100));
    assert_eq!(
        (routes.prev_rev, routes.rev, revs(&routes)),
        (1, r4, vec![r2, r4])
    );
    assert_eq!(routes.changes, 2);
    assert_eq!(
        routes.revisions[0].changes.len(),
        1,
        "only the reader's namespaces"
    );
    let put_change = &routes.revisions[0].changes[0];
    assert_eq!(put_change.value, b"1");
    assert_eq!(
        put_change.value_hash,
        statesync_core::digest::value_hash(b"1").to_vec()
    );
    assert!(
        routes.revisions[1].changes[0].value_hash.is_empty(),
        "a delete has no hash"
    );

    let both = in_memory(feed.read(1, &names(&["routes", "flags"]), 100));
    assert_eq!(revs(&both), vec![r2, r3, r4]);
    assert!(
        Arc::ptr_eq(
            &both.revisions[0],
            &in_memory(feed.read(1, &names(&["flags", "routes"]), 1)).revisions[0]
        ),
        "a revision wholly in the reader's namespaces is shared, not copied"
    );
    let limited = in_memory(feed.read(1, &names(&["routes", "flags"]), 2));
    assert_eq!(
        (limited.rev, limited.changes),
        (r2, 2),
        "stops after whole revisions"
    );
    let none = in_memory(feed.read(r4, &names(&["routes"]), 100));
    assert_eq!((none.rev, none.changes), (r4, 0));
    assert_eq!(
        feed.read(0, &names(&["routes"]), 100),
        Read::Behind,
        "older than the buffer"
    );
    assert_eq!(feed.commit_time_ms(1), Some(routes.revisions[0].ts_ms));
}

#[test]
fn the_buffer_is_bounded_and_keeps_the_root_at_its_floor() {
    let f = open();
    let feed = Feed::attach(
        &f.store,
        FeedLimits {
            max_revisions: 3,
            ..FeedLimits::default()
        },
    );
    let mut roots = Vec::new();
    for i in 0..6 {
        let rev = f.commit(vec![put("routes", &format!("k{i}"), "1")]);
        roots.push((rev, f.store.digest("routes", Some(rev)).unwrap()));
    }
    assert_eq!((feed.size_revisions(), feed.floor(), feed.head_rev()), (3, 3, 6));
    assert_eq!(feed.read(2, &names(&["routes"]), 100), Read::Behind);
    assert_eq!(
        revs(&in_memory(feed.read(3, &names(&["routes"]), 100))),
        vec![4, 5, 6]
    );
    assert_eq!(
        feed.root_at("routes", 3),
        Some(roots[2].1),
        "the root at the floor stays"
    );
    assert_eq!(feed.root_at("routes", 5), Some(roots[4].1));
    assert_eq!(feed.root_at("routes", 2), None, "before the floor: ask the store");
    assert_eq!(feed.root_at("flags", 5), None);
}

#[test]
fn byte_bounds_keep_at_least_the_newest_revision() {
    let f = open();
    let feed = Feed::attach(
        &f.store,
        FeedLimits {
            max_bytes: 10,
            ..FeedLimits::default()
        },
    );
    f.commit(vec![put("routes", "a", "\"a long enough value\"")]);
    let rev = f.commit(vec![put("routes", "b", "\"another long value\"")]);
    assert_eq!((feed.size_revisions(), feed.floor()), (1, rev - 1));
    assert!(feed.size_bytes() > 10);
}

#[test]
fn only_the_newest_messages_stay_in_memory_the_rest_is_read_from_the_log() {
    let f = open();
    let feed = Feed::attach(
        &f.store,
        FeedLimits {
            max_revisions: 3,
            max_memory: 1,
            ..FeedLimits::default()
        },
    );
    let r1 = f.commit(vec![put("routes", "a", "1")]);
    let r2 = f.commit(vec![put("routes", "b", "1")]);
    let routes = names(&["routes"]);
    assert_eq!((feed.size_revisions(), feed.floor()), (2, r1 - 1));
    assert_eq!(
        feed.read(r1 - 1, &routes, 100),
        Read::Log,
        "in the buffer, not in memory"
    );
    assert_eq!(
        revs(&in_memory(feed.read(r1, &routes, 100))),
        vec![r2],
        "the newest whatever its size"
    );
    assert!(feed.commit_time_ms(r1 - 1).is_some(), "known out of memory too");
    let newest = feed.size_memory();
    assert!(newest > 1);
    let r3 = f.commit(vec![put("routes", "c", "1")]);
    let r4 = f.commit(vec![put("routes", "d", "1")]);
    assert_eq!((feed.size_revisions(), feed.floor()), (3, r1));
    assert_eq!(feed.read(r1 - 1, &routes, 100), Read::Behind);
    assert_eq!(feed.read(r2, &routes, 100), Read::Log);
    assert_eq!(revs(&in_memory(feed.read(r3, &routes, 100))), vec![r4]);
    assert_eq!(feed.size_memory(), newest, "one message of the same shape");
    let served = catch_up(&f.store, r1, 100, &routes).unwrap();
    assert_eq!(revs(&served), vec![r2, r3, r4], "what the log serves instead");
}

/// Stores each contract request as the governed namespace's contract record,
/// as the control plane's gate does after checking it.
struct RecordContracts;

impl Gate for RecordContracts {
    fn rebase(&mut self, _read: &mut ReadKey<'_>, record: &KeyRecord) -> Result<Vec<u8>, CommandError> {
        Ok(record.value.clone())
    }

    fn admit(
        &mut self,
        command: &command::Command,
        mut planned: Vec<PlannedChange>,
        _read: &mut ReadKey<'_>,
        rev: i64,
        _now_ms: i64,
    ) -> Result<Vec<PlannedChange>, CommandError> {
        for op in &command.ops {
            if let command::Op::Contract { governed, request } = op {
                planned.push(PlannedChange {
                    ns: CONTRACTS_NAMESPACE.to_owned(),
                    key: governed.clone(),
                    op: ChangeOp::Put,
                    before: None,
                    record: Some(KeyRecord {
                        ns: CONTRACTS_NAMESPACE.to_owned(),
                        key: governed.clone(),
                        value: request.clone(),
                        create_rev: rev,
                        mod_rev: rev,
                        version: 1,
                    }),
                });
            }
        }
        Ok(planned)
    }
}

fn contract(ns: &str) -> Op {
    Op {
        op: Some(op::Op::Contract(ContractOp {
            ns: ns.into(),
            request: br#"{"action":"register"}"#.to_vec(),
        })),
    }
}

#[test]
fn contract_changes_and_new_heads_are_announced() {
    let f = open();
    f.store.set_gate(Box::new(RecordContracts));
    let feed = Feed::attach(&f.store, FeedLimits::default());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    feed.on_contracts(Arc::new(move |namespaces: &BTreeSet<String>| {
        sink.lock().unwrap().push(namespaces.clone());
    }));
    let mut heads = feed.subscribe();
    let rev = f.commit(vec![put("routes", "a", "1")]);
    assert!(heads.has_changed().unwrap());
    assert_eq!(*heads.borrow_and_update(), rev);
    assert!(seen.lock().unwrap().is_empty(), "no contract changed");
    f.commit(vec![contract("routes")]);
    f.commit(vec![contract("flags")]);
    assert_eq!(*seen.lock().unwrap(), vec![names(&["routes"]), names(&["flags"])]);
}

#[test]
fn catch_up_reads_the_log_before_the_buffer() {
    let f = open();
    let r1 = f.commit(vec![put("routes", "a", "1"), put("flags", "x", "1")]);
    let r2 = f.commit(vec![put("flags", "y", "1")]);
    let r3 = f.commit(vec![put("routes", "b", "1"), put("routes", "c", "1")]);
    let all = catch_up(&f.store, 0, 100, &names(&["routes"])).unwrap();
    assert_eq!((all.rev, revs(&all), all.changes), (r3, vec![r1, r3], 3));
    assert_eq!(all.revisions[0].changes.len(), 1);
    let first = catch_up(&f.store, 0, 1, &names(&["routes"])).unwrap();
    assert_eq!(
        (first.rev, revs(&first)),
        (r1, vec![r1]),
        "a full read stops at its last revision"
    );
    let flags = catch_up(&f.store, r1, 100, &names(&["flags", "routes"])).unwrap();
    assert_eq!((revs(&flags), flags.changes), (vec![r2, r3], 3));
    let nothing = catch_up(&f.store, r2, 10, &BTreeSet::new()).unwrap();
    assert_eq!((nothing.rev, nothing.changes), (r3, 0));
    f.store.compact(r2).unwrap();
    assert!(matches!(
        catch_up(&f.store, r1, 10, &names(&["routes"])),
        Err(StoreError::Compacted { .. })
    ));
}

#[test]
fn deltas_replace_updates_that_shrink_and_skip_what_they_must() {
    let f = open();
    let feed = Feed::attach(&f.store, FeedLimits::default());
    let big = format!("{{\"name\":\"{}\",\"port\":1}}", "x".repeat(200));
    f.commit(vec![put("routes", "a", &big), put("routes", "held", &big)]);
    let updated = big.replace("\"port\":1", "\"port\":2");
    let rev = f.commit(vec![
        put("routes", "a", &updated),
        put("routes", "held", &updated),
        put("routes", "new", "1"),
    ]);
    let slice = in_memory(feed.read(rev - 1, &names(&["routes"]), 100));
    let deltas = Deltas::default();
    let sent = deltas.apply(&f.store, &slice.revisions[0], |_, key| key == "held");
    let a = &sent.changes[0];
    assert!(a.value.is_empty() && !a.patch.is_empty(), "{a:?}");
    let rebuilt = statesync_core::delta::apply(big.as_bytes(), &a.patch, &a.value_hash).unwrap();
    assert_eq!(rebuilt, updated.as_bytes());
    assert_eq!(
        sent.changes[1].value,
        updated.as_bytes(),
        "a skipped key goes whole"
    );
    assert_eq!(sent.changes[2].value, b"1", "a create goes whole");
    assert_eq!(
        slice.revisions[0].changes[0].value,
        updated.as_bytes(),
        "the shared message is untouched"
    );
    let again = deltas.apply(&f.store, &slice.revisions[0], |_, _| true);
    assert!(
        Arc::ptr_eq(&again, &slice.revisions[0]),
        "nothing to change: no copy"
    );
}
