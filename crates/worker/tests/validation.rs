//! A session with a local schema: what each way a value arrives (a batch's
//! full value, a delta's result, a snapshot entry, a repair entry) does when
//! the value fails, and the schema versions its hello declares.

use std::collections::{BTreeMap, BTreeSet};

use statesync_core::digest::sha256;
use statesync_core::validate::Schema;
use statesync_core::value::parse;
use statesync_proto::{
    Ack, Change, ChangeBatch, Entry as PbEntry, Nack, Repair, Resync, Revision, SchemaVersions,
    SnapshotChunk, SyncReply, SyncRequest, sync_reply, sync_request,
};
use statesync_worker::{AcceptAll, ChangeEvent, Options, Reject, Replica, Session};

const SCHEMA: &str =
    r#"{"type":"object","properties":{"qty":{"type":"integer","minimum":1}},"required":["sku"]}"#;

fn session(deltas: bool) -> Session {
    let options = Options {
        worker_id: "w1".into(),
        namespaces: vec!["orders".into(), "notes".into()],
        deltas,
        heartbeat_s: 1.0,
        versions: BTreeMap::from([("orders".into(), vec![2, 1, 2])]),
        ..Options::default()
    };
    let mut session = Session::new(Replica::in_memory("w1"), options);
    let schema = Schema::compile(&parse(SCHEMA.as_bytes()).unwrap()).unwrap();
    session.set_schema("orders", schema);
    session
}

fn reply(msg: sync_reply::Msg) -> SyncReply {
    SyncReply { msg: Some(msg) }
}

fn put(ns: &str, key: &str, value: &str) -> Change {
    Change {
        ns: ns.into(),
        key: key.into(),
        value: value.as_bytes().to_vec(),
        value_hash: sha256(value.as_bytes()).to_vec(),
        create_rev: 1,
        version: 1,
        ..Change::default()
    }
}

fn batch(prev_rev: i64, rev: i64, changes: Vec<Change>) -> SyncReply {
    reply(sync_reply::Msg::Batch(ChangeBatch {
        prev_rev,
        rev,
        revisions: vec![Revision {
            rev,
            changes,
            ..Revision::default()
        }],
    }))
}

fn nacks(send: &[SyncRequest]) -> Vec<&Nack> {
    send.iter()
        .filter_map(|r| match &r.msg {
            Some(sync_request::Msg::Nack(n)) => Some(n),
            _ => None,
        })
        .collect()
}

fn last_ack(send: &[SyncRequest]) -> &Ack {
    match send.last().and_then(|r| r.msg.as_ref()) {
        Some(sync_request::Msg::Ack(ack)) => ack,
        other => panic!("the last reply is not an ACK: {other:?}"),
    }
}

fn value(session: &Session, ns: &str, key: &str) -> Option<&'static str> {
    // Leaked: a test's handful of short values, compared as &str.
    let entry = session.replica().get(ns, key)?.clone();
    Some(String::from_utf8(entry.value).unwrap().leak())
}

#[test]
fn the_hello_declares_sorted_versions_with_the_replica_version() {
    let mut s = session(false);
    let Some(sync_request::Msg::Hello(hello)) = s.hello().msg else {
        panic!("not a hello")
    };
    assert_eq!(
        hello.versions,
        [SchemaVersions {
            ns: "orders".into(),
            versions: vec![1, 2],
            replica_version: -1,
        }]
    );
    let mut served = put("orders", "o1", r#"{"sku":"A"}"#);
    served.schema_version = 1;
    s.receive(batch(0, 1, vec![served]), &mut AcceptAll).unwrap();
    let Some(sync_request::Msg::Hello(hello)) = s.hello().msg else {
        panic!("not a hello")
    };
    assert_eq!(
        hello.versions[0].replica_version, 1,
        "the replica holds v1 values"
    );
}

#[test]
fn a_put_that_fails_is_nacked_with_the_first_violation_and_held_until_a_good_put() {
    let mut s = session(false);
    s.hello();
    s.receive(
        batch(0, 1, vec![put("orders", "o1", r#"{"sku":"A","qty":2}"#)]),
        &mut AcceptAll,
    )
    .unwrap();
    let step = s
        .receive(
            batch(
                1,
                2,
                vec![
                    put("orders", "o1", r#"{"qty":0}"#),
                    put("notes", "n1", r#"{"qty":0}"#),
                ],
            ),
            &mut AcceptAll,
        )
        .unwrap();
    let refused = nacks(&step.send);
    assert_eq!(refused.len(), 1, "only the namespace with a schema validates");
    assert_eq!(
        (refused[0].rev, refused[0].ns.as_str(), refused[0].key.as_str()),
        (2, "orders", "o1")
    );
    let reason = &refused[0].reason;
    assert!(
        reason.starts_with("orders/o1 does not conform to the local schema: (root) fails required: "),
        "{reason}"
    );
    assert!(reason.ends_with("(and 1 more)"), "{reason}");
    assert_eq!(
        value(&s, "orders", "o1"),
        Some(r#"{"sku":"A","qty":2}"#),
        "the last good value is kept"
    );
    assert_eq!(value(&s, "notes", "n1"), Some(r#"{"qty":0}"#));
    let ack = last_ack(&step.send);
    assert_eq!((ack.rev, ack.held.len()), (2, 1));
    assert_eq!(ack.held[0].held_hash, sha256(br#"{"sku":"A","qty":2}"#).to_vec());

    let step = s
        .receive(
            batch(2, 3, vec![put("orders", "o1", r#"{"sku":"B","qty":5}"#)]),
            &mut AcceptAll,
        )
        .unwrap();
    assert!(nacks(&step.send).is_empty());
    assert!(
        last_ack(&step.send).held.is_empty(),
        "a good put releases the hold"
    );
    assert_eq!(value(&s, "orders", "o1"), Some(r#"{"sku":"B","qty":5}"#));
}

#[test]
fn a_delta_result_is_validated_and_the_handler_is_not_asked_about_a_refused_value() {
    let mut s = session(true);
    s.hello();
    s.receive(
        batch(0, 1, vec![put("orders", "o1", r#"{"qty":2,"sku":"A"}"#)]),
        &mut AcceptAll,
    )
    .unwrap();
    let result = br#"{"qty":0,"sku":"A"}"#;
    let delta = Change {
        ns: "orders".into(),
        key: "o1".into(),
        patch: br#"[{"op":"replace","path":"/qty","value":0}]"#.to_vec(),
        value_hash: sha256(result).to_vec(),
        prev_mod_rev: 1,
        create_rev: 1,
        version: 2,
        ..Change::default()
    };
    let mut asked = Vec::new();
    let mut handler = |change: &ChangeEvent<'_>| -> Result<(), Reject> {
        asked.push(change.key.to_owned());
        Ok(())
    };
    let step = s.receive(batch(1, 2, vec![delta]), &mut handler).unwrap();
    assert_eq!(step.end, None, "a refused delta result is not drift");
    let refused = nacks(&step.send);
    assert_eq!(refused.len(), 1);
    assert!(
        refused[0].reason.contains("/qty fails minimum"),
        "{}",
        refused[0].reason
    );
    assert!(asked.is_empty(), "the handler only sees values that conform");
    assert_eq!(value(&s, "orders", "o1"), Some(r#"{"qty":2,"sku":"A"}"#));
}

#[test]
fn a_snapshot_entry_that_fails_is_held_at_the_snapshot_revision_and_a_repair_is_applied_as_sent() {
    let mut s = session(false);
    s.hello();
    s.receive(
        batch(0, 1, vec![put("orders", "o1", r#"{"sku":"A"}"#)]),
        &mut AcceptAll,
    )
    .unwrap();
    let entry = |key: &str, value: &str| PbEntry {
        ns: "orders".into(),
        key: key.into(),
        value: value.as_bytes().to_vec(),
        create_rev: 1,
        mod_rev: 4,
        version: 2,
        ..PbEntry::default()
    };
    s.receive(
        reply(sync_reply::Msg::Resync(Resync {
            rev: 5,
            ..Resync::default()
        })),
        &mut AcceptAll,
    )
    .unwrap();
    let step = s
        .receive(
            reply(sync_reply::Msg::Chunk(SnapshotChunk {
                rev: 5,
                entries: vec![entry("o1", r#"{"qty":1}"#), entry("o2", r#"{"sku":"B"}"#)],
                last: true,
                ..SnapshotChunk::default()
            })),
            &mut AcceptAll,
        )
        .unwrap();
    let refused = nacks(&step.send);
    assert_eq!(refused.len(), 1);
    assert_eq!((refused[0].rev, refused[0].key.as_str()), (5, "o1"));
    assert_eq!(
        value(&s, "orders", "o1"),
        Some(r#"{"sku":"A"}"#),
        "the last good value is kept"
    );
    assert_eq!(value(&s, "orders", "o2"), Some(r#"{"sku":"B"}"#));
    assert_eq!(last_ack(&step.send).held[0].rev, 5);

    let step = s
        .receive(
            reply(sync_reply::Msg::Repair(Repair {
                id: 9,
                rev: 5,
                entries: vec![entry("o1", r#"{"qty":-1}"#)],
                ..Repair::default()
            })),
            &mut AcceptAll,
        )
        .unwrap();
    assert!(nacks(&step.send).is_empty(), "a repair is not validated");
    assert_eq!(value(&s, "orders", "o1"), Some(r#"{"qty":-1}"#));
    assert!(
        last_ack(&step.send).held.is_empty(),
        "the repair released the hold"
    );
}

/// The registered schemas of `orders`: v1 any object, v2 at most 10 of an item.
fn registered() -> BTreeMap<i32, Schema> {
    let compile = |text: &str| Schema::compile(&parse(text.as_bytes()).unwrap()).unwrap();
    BTreeMap::from([
        (1, compile(r#"{"type":"object"}"#)),
        (
            2,
            compile(r#"{"type":"object","properties":{"qty":{"maximum":10}}}"#),
        ),
    ])
}

/// A session declaring v1 and v2 of `orders`, with no local schema.
fn declaring_session() -> Session {
    let options = Options {
        worker_id: "w1".into(),
        namespaces: vec!["notes".into(), "orders".into()],
        deltas: false,
        heartbeat_s: 1.0,
        versions: BTreeMap::from([("orders".into(), vec![1, 2])]),
        ..Options::default()
    };
    Session::new(Replica::in_memory("w1"), options)
}

fn served(ns: &str, key: &str, value: &str, schema_version: i32) -> Change {
    Change {
        schema_version,
        ..put(ns, key, value)
    }
}

#[test]
fn a_reply_in_a_declared_version_without_a_registered_schema_names_its_namespace_stale() {
    let mut s = declaring_session();
    let reply_in = |ns: &str, version: i32| batch(0, 1, vec![served(ns, "k", "{}", version)]);
    assert_eq!(
        s.stale_contracts(&reply_in("orders", 2)),
        BTreeSet::from(["orders".to_owned()]),
        "never read"
    );
    s.set_registered_schemas("orders", BTreeMap::new()); // no contract yet
    assert!(!s.stale_contracts(&reply_in("orders", 2)).is_empty());
    let mut v1_only = registered();
    v1_only.remove(&2);
    s.set_registered_schemas("orders", v1_only);
    assert!(s.stale_contracts(&reply_in("orders", 1)).is_empty());
    assert_eq!(
        s.stale_contracts(&reply_in("orders", 2)),
        BTreeSet::from(["orders".to_owned()]),
        "v2 registered since the read"
    );
    assert!(
        s.stale_contracts(&reply_in("orders", 0)).is_empty(),
        "served as stored"
    );
    assert!(
        s.stale_contracts(&reply_in("orders", 3)).is_empty(),
        "not declared: reading again cannot help"
    );
    assert!(
        s.stale_contracts(&reply_in("notes", 1)).is_empty(),
        "no declared versions"
    );
    let chunk = reply(sync_reply::Msg::Chunk(SnapshotChunk {
        entries: vec![PbEntry {
            ns: "orders".into(),
            schema_version: 2,
            ..PbEntry::default()
        }],
        ..SnapshotChunk::default()
    }));
    assert_eq!(s.stale_contracts(&chunk), BTreeSet::from(["orders".to_owned()]));
}

#[test]
fn a_value_is_validated_against_the_registered_schema_of_the_version_it_is_served_in() {
    let mut s = declaring_session();
    s.set_registered_schemas("orders", registered());
    s.hello();
    let step = s
        .receive(
            batch(0, 1, vec![served("orders", "o1", r#"{"qty":50}"#, 1)]),
            &mut AcceptAll,
        )
        .unwrap();
    assert!(nacks(&step.send).is_empty(), "v1 has no maximum");

    let step = s
        .receive(
            batch(1, 2, vec![served("orders", "o1", r#"{"qty":60}"#, 2)]),
            &mut AcceptAll,
        )
        .unwrap();
    let [refused] = nacks(&step.send)[..] else {
        panic!("one NACK expected: {:?}", step.send)
    };
    assert_eq!(
        (refused.rev, refused.ns.as_str(), refused.key.as_str()),
        (2, "orders", "o1")
    );
    assert!(
        refused
            .reason
            .starts_with("orders/o1 does not conform to schema v2: /qty fails maximum: "),
        "{}",
        refused.reason
    );
    assert_eq!(
        value(&s, "orders", "o1"),
        Some(r#"{"qty":50}"#),
        "the last good value is kept"
    );
    assert_eq!(last_ack(&step.send).held[0].key, "o1");

    // Served as stored (version 0): the newest registered schema held applies.
    let step = s
        .receive(
            batch(2, 3, vec![served("orders", "o2", r#"{"qty":11}"#, 0)]),
            &mut AcceptAll,
        )
        .unwrap();
    assert!(nacks(&step.send)[0].reason.contains("schema v2"));

    // A declared version the contract does not hold: refused, named.
    let mut v1_only = registered();
    v1_only.remove(&2);
    s.set_registered_schemas("orders", v1_only);
    let step = s
        .receive(
            batch(3, 4, vec![served("orders", "o3", r#"{"qty":1}"#, 2)]),
            &mut AcceptAll,
        )
        .unwrap();
    assert_eq!(
        nacks(&step.send)[0].reason,
        "orders/o3 is served in schema v2, which this worker has no registered schema for"
    );

    // A good v2 value releases the hold; the other namespace is never checked.
    s.set_registered_schemas("orders", registered());
    let step = s
        .receive(
            batch(
                4,
                5,
                vec![
                    served("orders", "o1", r#"{"qty":7}"#, 2),
                    served("notes", "n", r#"{"qty":99}"#, 2),
                ],
            ),
            &mut AcceptAll,
        )
        .unwrap();
    assert!(nacks(&step.send).is_empty());
    let held: Vec<&str> = last_ack(&step.send).held.iter().map(|h| h.key.as_str()).collect();
    assert_eq!(held, ["o2", "o3"]);
    assert_eq!(value(&s, "orders", "o1"), Some(r#"{"qty":7}"#));
}

#[test]
fn a_snapshot_entry_is_checked_against_its_registered_version_after_the_local_schema() {
    let mut s = declaring_session();
    s.set_registered_schemas("orders", registered());
    let local = r#"{"type":"object","required":["sku"]}"#;
    s.set_schema(
        "orders",
        Schema::compile(&parse(local.as_bytes()).unwrap()).unwrap(),
    );
    s.hello();
    s.receive(
        reply(sync_reply::Msg::Resync(Resync {
            rev: 3,
            ..Resync::default()
        })),
        &mut AcceptAll,
    )
    .unwrap();
    let entry = |key: &str, value: &str| PbEntry {
        ns: "orders".into(),
        key: key.into(),
        value: value.as_bytes().to_vec(),
        create_rev: 1,
        mod_rev: 2,
        version: 1,
        schema_version: 2,
        ..PbEntry::default()
    };
    let step = s
        .receive(
            reply(sync_reply::Msg::Chunk(SnapshotChunk {
                rev: 3,
                entries: vec![
                    entry("bad-both", r#"{"qty":11}"#),
                    entry("bad-v2", r#"{"qty":11,"sku":"A"}"#),
                    entry("good", r#"{"qty":10,"sku":"B"}"#),
                ],
                last: true,
                ..SnapshotChunk::default()
            })),
            &mut AcceptAll,
        )
        .unwrap();
    let reasons: Vec<(&str, &str)> = nacks(&step.send)
        .iter()
        .map(|n| (n.key.as_str(), n.reason.as_str()))
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert_eq!(reasons[0].0, "bad-both");
    assert!(
        reasons[0]
            .1
            .starts_with("orders/bad-both does not conform to the local schema: (root) fails required"),
        "the local schema is checked first: {}",
        reasons[0].1
    );
    assert_eq!(reasons[1].0, "bad-v2");
    assert!(
        reasons[1]
            .1
            .starts_with("orders/bad-v2 does not conform to schema v2: /qty fails maximum"),
        "{}",
        reasons[1].1
    );
    assert_eq!(value(&s, "orders", "bad-v2"), None, "nothing good to keep");
    assert_eq!(value(&s, "orders", "good"), Some(r#"{"qty":10,"sku":"B"}"#));
}
