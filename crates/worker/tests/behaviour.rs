//! Runs every vector of conformance/behaviour/vectors.json against the worker
//! session: the replies, the reconnects and the replica after each step.

use std::path::PathBuf;

use serde_json::Value as Json;
use statesync_proto::{SyncReply, SyncRequest};
use statesync_worker::{ChangeEvent, Changes, Entry, HeldKey, Op, Options, Reject, Replica, Session};

fn vectors() -> Json {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../conformance/behaviour/vectors.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file: Json = serde_json::from_str(&text).expect("the vector file is JSON");
    assert_eq!(file["format_version"], 1, "unknown format_version");
    file
}

fn int(v: &Json) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("{v} is not an integer"))
}

fn text(v: &Json) -> &str {
    v.as_str().unwrap_or_else(|| panic!("{v} is not a string"))
}

fn request(v: &Json) -> SyncRequest {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("SyncRequest {v}: {e}"))
}

/// A replica in memory holding `state` (the vectors' replica format).
fn seeded(state: &Json) -> Replica {
    let mut replica = Replica::in_memory("w1");
    let mut changes = Changes::default();
    for e in state["entries"].as_array().unwrap() {
        let entry = Entry::new(
            text(&e["value"]).as_bytes().to_vec(),
            int(&e["create_rev"]),
            int(&e["mod_rev"]),
            int(&e["version"]),
        );
        changes
            .puts
            .push((text(&e["ns"]).into(), text(&e["key"]).into(), entry));
    }
    changes.rejected = held_of(state);
    replica.apply(int(&state["applied_rev"]), changes).unwrap();
    replica
}

fn held_of(state: &Json) -> Vec<HeldKey> {
    let held = state["held"].as_array().unwrap().iter().map(|h| HeldKey {
        namespace: text(&h["ns"]).into(),
        key: text(&h["key"]).into(),
        rev: int(&h["rev"]),
        reason: text(&h["reason"]).into(),
        refused: match text(&h["refused"]) {
            "" => None,
            hash => Some(hex::decode(hash).unwrap().try_into().unwrap()),
        },
    });
    held.collect()
}

/// The replica as the vectors spell it.
fn state_of(replica: &Replica, namespaces: &[String]) -> Json {
    let entries: Vec<Json> = namespaces
        .iter()
        .flat_map(|ns| {
            replica.range(ns, "").map(move |(key, e)| {
                serde_json::json!({
                    "ns": ns, "key": key, "value": String::from_utf8(e.value.clone()).unwrap(),
                    "create_rev": e.create_rev, "mod_rev": e.mod_rev, "version": e.version,
                })
            })
        })
        .collect();
    let held: Vec<Json> = replica
        .held()
        .map(|h| {
            serde_json::json!({
                "ns": h.namespace, "key": h.key, "rev": h.rev, "reason": h.reason,
                "refused": h.refused.map(hex::encode).unwrap_or_default(),
            })
        })
        .collect();
    serde_json::json!({"applied_rev": replica.applied_rev(), "entries": entries, "held": held})
}

/// The vector's handler: refuse the listed puts (by value) and deletes.
fn handler(rules: &Json) -> impl FnMut(&ChangeEvent<'_>) -> Result<(), Reject> + Send + 'static {
    let rules = rules.as_array().unwrap().clone();
    move |change: &ChangeEvent<'_>| {
        for rule in &rules {
            let op = if change.op == Op::Put { "put" } else { "delete" };
            let same_value = rule
                .get("value")
                .is_none_or(|v| change.value_text() == v.as_str());
            if text(&rule["ns"]) == change.ns
                && text(&rule["key"]) == change.key
                && text(&rule["op"]) == op
                && same_value
            {
                return Err(Reject::new(text(&rule["reason"])));
            }
        }
        Ok(())
    }
}

/// Runs one vector; panics at the first difference.
fn run(vector: &Json) {
    let name = text(&vector["name"]);
    let options = &vector["options"];
    let namespaces: Vec<String> = options["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| text(n).to_owned())
        .collect();
    let mut session = Session::new(
        seeded(&vector["initial"]),
        Options {
            worker_id: text(&options["worker_id"]).into(),
            namespaces: namespaces.clone(),
            deltas: options["deltas"].as_bool().unwrap(),
            heartbeat_s: options["heartbeat_s"].as_f64().unwrap(),
            ..Options::default()
        },
    );
    let mut handler = handler(&options["reject"]);
    assert_eq!(session.hello(), request(&vector["hello"]), "{name}: hello");
    for (i, step) in vector["steps"].as_array().unwrap().iter().enumerate() {
        let reply: SyncReply = serde_json::from_value(step["receive"].clone()).unwrap();
        let out = session.receive(reply, &mut handler).unwrap();
        let expected: Vec<SyncRequest> = step["send"].as_array().unwrap().iter().map(request).collect();
        assert_eq!(out.send, expected, "{name} step {i}: replies");
        match step.get("reconnect") {
            Some(hello) => {
                assert!(out.end.is_some(), "{name} step {i}: the stream must end");
                assert_eq!(
                    session.hello(),
                    request(hello),
                    "{name} step {i}: reconnect hello"
                );
            }
            None => assert_eq!(out.end, None, "{name} step {i}: the stream goes on"),
        }
        assert_eq!(
            state_of(&session.replica(), &namespaces),
            step["replica"],
            "{name} step {i}: replica"
        );
    }
}

#[test]
fn every_behaviour_vector_passes() {
    let file = vectors();
    let list = file["vectors"].as_array().unwrap();
    assert!(list.len() >= 10, "the behaviour vectors are missing");
    // Every vector runs (a failure does not hide the next ones), then the count.
    let failed: Vec<&str> = list
        .iter()
        .filter(|vector| std::panic::catch_unwind(|| run(vector)).is_err())
        .map(|vector| text(&vector["name"]))
        .collect();
    println!(
        "behaviour vectors: {}/{} passed",
        list.len() - failed.len(),
        list.len()
    );
    assert!(failed.is_empty(), "behaviour vectors failed: {failed:?}");
}
