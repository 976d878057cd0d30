//! `conformance/descent/vectors.json` against the Rust worker: its answers to
//! digest queries (the "answers" and "names" lists, and the worker side of
//! every round of the "descents"), from a real replica on disk, asked through
//! the session as the controller asks them on the Sync stream.

use std::path::PathBuf;

use serde_json::Value as Json;
use statesync_core::canonical::canonical_bytes;
use statesync_core::value::parse;
use statesync_proto::{DigestAnswer, DigestQuery, NameQuery, SyncReply, sync_reply, sync_request};
use statesync_worker::{AcceptAll, Changes, Entry, Options, Replica, Session};

const NS: &str = "ns";

/// Runs one vector of a list: Err says what differed.
type Runner = fn(&Json) -> Result<(), String>;

fn text(v: &Json) -> &str {
    v.as_str().unwrap_or_else(|| panic!("{v} is not a string"))
}

fn list(v: &Json) -> &Vec<Json> {
    v.as_array().unwrap_or_else(|| panic!("{v} is not a list"))
}

/// A session over a replica in `dir` holding `items` (`{"key", "value"}`),
/// each value stored as its canonical bytes (the leaf hashes those).
fn session_with(dir: &tempfile::TempDir, items: &Json) -> Session {
    let mut replica = Replica::open(dir.path(), "w1").expect("a replica opens");
    let puts = list(items)
        .iter()
        .map(|item| {
            let value = parse(&serde_json::to_vec(&item["value"]).unwrap()).expect("an I-JSON value");
            let entry = Entry::new(canonical_bytes(&value), 1, 1, 1);
            (NS.to_owned(), text(&item["key"]).to_owned(), entry)
        })
        .collect();
    replica
        .apply(
            1,
            Changes {
                puts,
                ..Changes::default()
            },
        )
        .expect("the replica takes the items");
    let options = Options {
        worker_id: "w1".into(),
        namespaces: vec![NS.into()],
        heartbeat_s: 1.0,
        ..Options::default()
    };
    let mut session = Session::new(replica, options);
    session.hello();
    session
}

/// The session's answer to a query for `prefixes` and `names`
/// (`{"prefix", "leaves"}` with the leaves in hex).
fn ask(session: &mut Session, id: u64, prefixes: &Json, names: &[NameQuery]) -> Result<DigestAnswer, String> {
    let query = DigestQuery {
        id,
        ns: NS.into(),
        prefixes: list(prefixes).iter().map(|p| text(p).to_owned()).collect(),
        names: names.to_vec(),
    };
    let reply = SyncReply {
        msg: Some(sync_reply::Msg::Query(query)),
    };
    let step = session
        .receive(reply, &mut AcceptAll)
        .map_err(|e| e.to_string())?;
    if let Some(end) = step.end {
        return Err(format!("the stream ended: {}", end.reason));
    }
    match step.send.as_slice() {
        [request] => match &request.msg {
            Some(sync_request::Msg::Answer(answer)) if answer.id == id && answer.ns == NS => {
                Ok(answer.clone())
            }
            other => Err(format!("not the answer to query {id}: {other:?}")),
        },
        other => Err(format!("{} replies, expected one answer", other.len())),
    }
}

fn name_queries(names: &Json) -> Vec<NameQuery> {
    list(names)
        .iter()
        .map(|n| NameQuery {
            prefix: text(&n["prefix"]).to_owned(),
            leaves: hex::decode(text(&n["leaves"])).expect("hex leaves"),
        })
        .collect()
}

/// The expected nodes against the answer's, in query order.
fn compare_nodes(answer: &DigestAnswer, expected: &Json) -> Result<(), String> {
    let expected = list(expected);
    if answer.nodes.len() != expected.len() {
        return Err(format!(
            "{} nodes, expected {}",
            answer.nodes.len(),
            expected.len()
        ));
    }
    for (node, want) in answer.nodes.iter().zip(expected) {
        let got = (
            node.prefix.as_str(),
            node.is_leaves,
            hex::encode(&node.children),
            hex::encode(&node.leaves),
        );
        let wanted = (
            text(&want["prefix"]),
            want["is_leaves"].as_bool().expect("is_leaves"),
            text(&want["children"]).to_owned(),
            text(&want["leaves"]).to_owned(),
        );
        if got != wanted {
            return Err(format!("node {:?}: got {got:?}, expected {wanted:?}", wanted.0));
        }
    }
    Ok(())
}

fn compare_names(answer: &DigestAnswer, expected: &Json) -> Result<(), String> {
    let expected: Vec<&str> = list(expected).iter().map(text).collect();
    if answer.names != expected {
        return Err(format!("names {:?}, expected {expected:?}", answer.names));
    }
    Ok(())
}

fn run_answer(vector: &Json) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let mut session = session_with(&dir, &vector["items"]);
    let answer = ask(&mut session, 1, &vector["prefixes"], &[])?;
    compare_nodes(&answer, &vector["nodes"])?;
    compare_names(&answer, &Json::Array(Vec::new()))
}

fn run_names(vector: &Json) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let mut session = session_with(&dir, &vector["items"]);
    let query = NameQuery {
        prefix: text(&vector["prefix"]).to_owned(),
        leaves: hex::decode(text(&vector["leaves"])).expect("hex leaves"),
    };
    let answer = ask(&mut session, 1, &Json::Array(Vec::new()), &[query])?;
    compare_names(&answer, &vector["names"])?;
    compare_nodes(&answer, &Json::Array(Vec::new()))
}

/// The worker side of a whole descent: every round answered from `worker`.
fn run_descent(vector: &Json) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let mut session = session_with(&dir, &vector["worker"]);
    for (round, expected) in list(&vector["rounds"]).iter().enumerate() {
        let id = round as u64 + 1;
        let answer = ask(
            &mut session,
            id,
            &expected["prefixes"],
            &name_queries(&expected["names"]),
        )
        .map_err(|e| format!("round {round}: {e}"))?;
        compare_nodes(&answer, &expected["nodes"]).map_err(|e| format!("round {round}: {e}"))?;
        compare_names(&answer, &expected["named"]).map_err(|e| format!("round {round}: {e}"))?;
    }
    Ok(())
}

#[test]
fn descent_vectors() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../conformance/descent/vectors.json");
    let content = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file: Json = serde_json::from_str(&content).expect("the vector file is JSON");
    assert_eq!(file["format_version"], 1, "unknown format_version");
    assert_eq!(
        file["leaf_limit"], 256,
        "the vectors assume the reference threshold the worker uses"
    );
    let runs: [(&str, Runner); 3] = [
        ("answers", run_answer),
        ("names", run_names),
        ("descents", run_descent),
    ];
    let (mut total, mut failures) = (0, Vec::new());
    for (field, run) in runs {
        let vectors = list(&file[field]);
        assert!(!vectors.is_empty(), "no {field} vectors");
        total += vectors.len();
        for vector in vectors {
            if let Err(why) = run(vector) {
                failures.push(format!("{field} {:?}: {why}", text(&vector["name"])));
            }
        }
    }
    println!("descent vectors: {}/{total} passed", total - failures.len());
    assert!(failures.is_empty(), "failed vectors:\n{}", failures.join("\n"));
}
