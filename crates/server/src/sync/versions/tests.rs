use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use statesync_core::digest::sha256;
use statesync_store::StoreError;

use super::{Contract, Declared, Targets, Versions};
use crate::proto::{Change, Entry, Revision, change::Kind};

/// v1 since revision 5, v2 since 10 (renames /a to /b), v3 since 20 (identity).
const ORDERS: &str = r#"{"namespace": "orders", "mode": "BACKWARD", "owner": {},
  "versions": [
    {"version": 1, "schema": true, "translation": null, "since_rev": 5},
    {"version": 2, "schema": true, "since_rev": 10, "translation":
      {"format": "statesync.translation/1", "from": 1, "to": 2,
       "up": [{"op": "rename", "from": "/a", "to": "/b"}]}},
    {"version": 3, "schema": true, "translation": null, "since_rev": 20}
  ]}"#;

/// Contract records by namespace, counting the reads.
struct Records {
    records: Vec<(&'static str, String)>,
    reads: AtomicUsize,
}

impl Records {
    fn new(records: &[(&'static str, &str)]) -> Self {
        Self {
            records: records.iter().map(|(ns, r)| (*ns, (*r).to_owned())).collect(),
            reads: AtomicUsize::new(0),
        }
    }

    fn loader(&self) -> impl Fn(&str) -> Result<Option<Vec<u8>>, StoreError> + '_ {
        |ns| {
            self.reads.fetch_add(1, Ordering::Relaxed);
            let found = self.records.iter().find(|(known, _)| *known == ns);
            Ok(found.map(|(_, record)| record.clone().into_bytes()))
        }
    }

    fn reads(&self) -> usize {
        self.reads.load(Ordering::Relaxed)
    }
}

fn targets(pairs: &[(&str, i32)]) -> Targets {
    pairs.iter().map(|(ns, v)| ((*ns).to_owned(), *v)).collect()
}

fn put(ns: &str, key: &str, value: &str) -> Change {
    Change {
        ns: ns.to_owned(),
        key: key.to_owned(),
        kind: Kind::Put as i32,
        value: value.as_bytes().to_vec(),
        value_hash: sha256(value.as_bytes()).to_vec(),
        ..Change::default()
    }
}

#[test]
fn a_value_is_in_the_version_registered_last_before_it_was_written() {
    let contract = Contract::parse("orders", ORDERS.as_bytes()).unwrap();
    assert_eq!(contract.current(), 3);
    let versions: Vec<i64> = [1, 5, 6, 10, 11, 20, 21]
        .map(|rev| contract.version_of(rev))
        .to_vec();
    assert_eq!(versions, [1, 1, 1, 1, 2, 2, 3]);
}

#[test]
fn the_target_is_the_newest_declared_version_that_is_registered() {
    let records = Records::new(&[("orders", ORDERS), ("flags", r#"{"versions": []}"#)]);
    let versions = Versions::default();
    let declared: Declared = [
        ("orders".to_owned(), vec![1, 2, 7]),
        ("flags".to_owned(), vec![1]),
        ("free".to_owned(), vec![1]),
    ]
    .into_iter()
    .collect();
    let found = versions.targets(&declared, &records.loader()).unwrap().unwrap();
    // No contract, or one without schemas yet: served as stored, no target.
    assert_eq!(found, targets(&[("orders", 2)]));

    let declared: Declared = [("orders".to_owned(), vec![4, 0])].into_iter().collect();
    let refusal = versions
        .targets(&declared, &records.loader())
        .unwrap()
        .unwrap_err();
    assert_eq!(
        refusal.to_string(),
        "no translation path in namespace 'orders' from schema v3 to any of [4, 0]: the registered versions are 1..3"
    );
    assert_eq!((refusal.from_version, refusal.supported), (3, vec![4, 0]));
}

#[test]
fn a_put_is_served_translated_with_the_stored_values_hash() {
    let records = Records::new(&[("orders", ORDERS)]);
    let versions = Versions::default();
    let stored = r#"{"b":1}"#;
    let revision = Arc::new(Revision {
        rev: 15,
        changes: vec![
            put("orders", "o1", stored),
            Change {
                ns: "orders".to_owned(),
                key: "o2".to_owned(),
                kind: Kind::Delete as i32,
                ..Change::default()
            },
            put("free", "f", r#"{"b":1}"#),
        ],
        ..Revision::default()
    });
    let served = versions
        .revision(&revision, &targets(&[("orders", 1)]), &records.loader())
        .unwrap();
    let change = &served.changes[0];
    assert_eq!(change.value, br#"{"a":1}"#);
    assert_eq!(change.value_hash, sha256(br#"{"a":1}"#).to_vec());
    assert_eq!(change.source_hash, sha256(stored.as_bytes()).to_vec());
    assert_eq!(change.schema_version, 1);
    assert_eq!(
        served.changes[1], revision.changes[1],
        "a delete is not translated"
    );
    assert_eq!(
        served.changes[2], revision.changes[2],
        "a namespace without target is as stored"
    );

    // In its own version: marked, not translated, no source hash.
    let same = versions
        .revision(&revision, &targets(&[("orders", 2)]), &records.loader())
        .unwrap();
    assert_eq!(same.changes[0].value, stored.as_bytes());
    assert_eq!(
        (same.changes[0].schema_version, same.changes[0].source_hash.len()),
        (2, 0)
    );
}

#[test]
fn workers_on_the_same_targets_share_one_translation_until_a_contract_changes() {
    let records = Records::new(&[("orders", ORDERS)]);
    let versions = Versions::default();
    let revision = Arc::new(Revision {
        rev: 15,
        changes: vec![put("orders", "o1", r#"{"b":1}"#)],
        ..Revision::default()
    });
    let to_v1 = targets(&[("orders", 1)]);
    let first = versions.revision(&revision, &to_v1, &records.loader()).unwrap();
    // Targets of namespaces the revision does not touch do not matter.
    let wider = targets(&[("orders", 1), ("other", 4)]);
    let second = versions.revision(&revision, &wider, &records.loader()).unwrap();
    assert!(Arc::ptr_eq(&first, &second));
    assert_eq!(records.reads(), 1, "the contract is read once");

    let generation = versions.generation();
    versions.changed(&BTreeSet::from(["orders".to_owned()]));
    assert_eq!(versions.generation(), generation + 1);
    let third = versions.revision(&revision, &to_v1, &records.loader()).unwrap();
    assert!(!Arc::ptr_eq(&first, &third));
    assert_eq!(*first, *third);
    assert_eq!(records.reads(), 2, "read again after the change");
}

#[test]
fn an_entry_that_cannot_be_translated_is_served_as_stored() {
    let failing = ORDERS.replace(
        r#""up": [{"op": "rename", "from": "/a", "to": "/b"}]"#,
        r#""up": [{"op": "move", "from": "/c", "to": "/a/b/c"}]"#,
    );
    let records = Records::new(&[("orders", &failing)]);
    let versions = Versions::default();
    let entry = |value: &str| Entry {
        ns: "orders".to_owned(),
        key: "o1".to_owned(),
        value: value.as_bytes().to_vec(),
        mod_rev: 6,
        ..Entry::default()
    };
    let up = targets(&[("orders", 2)]);
    let moved = versions
        .entry(entry(r#"{"c":1}"#), &up, &records.loader())
        .unwrap();
    assert_eq!(moved.value, br#"{"a":{"b":{"c":1}}}"#);
    assert_eq!(
        (moved.schema_version, moved.source_hash),
        (2, sha256(br#"{"c":1}"#).to_vec())
    );

    let refused = r#"{"a":{"b":"s"},"c":1}"#;
    let kept = versions.entry(entry(refused), &up, &records.loader()).unwrap();
    assert_eq!(kept.value, refused.as_bytes());
    assert_eq!((kept.schema_version, kept.source_hash.len()), (1, 0));
}

#[test]
fn a_contract_record_that_is_not_one_is_refused_with_where() {
    let refused = |record: &str| Contract::parse("orders", record.as_bytes()).unwrap_err();
    assert_eq!(
        refused(r#"{"versions": 3}"#),
        r#"the contract record of namespace "orders" has no 'versions' array"#
    );
    assert!(refused(r#"{"versions": [{"version": 2, "since_rev": 1}]}"#).contains("versions/0 out of order"));
    assert!(refused(r#"{"versions": [{"version": 1}]}"#).contains("no since_rev in versions/0"));
    let bad_translation = r#"{"versions": [{"version": 1, "since_rev": 1},
        {"version": 2, "since_rev": 2, "translation": {"format": "x"}}]}"#;
    assert!(refused(bad_translation).contains("bad translation in versions/1"));
    // Such a namespace is served as stored.
    let records = Records::new(&[("orders", r#"{"versions": 3}"#)]);
    let contract = Versions::default().contract("orders", &records.loader()).unwrap();
    assert!(contract.is_none());
}
