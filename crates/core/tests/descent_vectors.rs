//! `conformance/descent/vectors.json` against the Rust core: the worker's
//! answers and names, and whole descents from both sides.

use std::convert::Infallible;
use std::path::PathBuf;

use serde_json::Value as Json;
use statesync_core::canonical::canonical_bytes;
use statesync_core::descent::{self, Descent, LEAF_LIMIT, NameQuery, NodeAnswer, Trie};
use statesync_core::digest::{Hash, NamespaceDigest, Node, value_hash};
use statesync_core::value::parse;

fn vectors() -> Json {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../conformance/descent/vectors.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file: Json = serde_json::from_str(&text).expect("vector file is JSON");
    assert_eq!(file["format_version"], 1, "unknown format_version");
    assert_eq!(
        file["leaf_limit"], LEAF_LIMIT,
        "the vectors assume another leaf limit"
    );
    file
}

fn list<'a>(v: &'a Json, field: &str) -> &'a [Json] {
    v[field].as_array().unwrap_or_else(|| panic!("no list {field}"))
}

fn text(v: &Json) -> &str {
    v.as_str().expect("a string")
}

fn hex_of(v: &Json) -> Vec<u8> {
    hex::decode(text(v)).expect("hex")
}

fn strings(v: &Json) -> Vec<String> {
    v.as_array()
        .expect("a list")
        .iter()
        .map(|s| text(s).to_owned())
        .collect()
}

/// A namespace from vector items: a digest and its leaves, read as a holder would.
struct Holder {
    digest: NamespaceDigest,
    pairs: Vec<(String, Hash)>,
}

impl Holder {
    fn of(items: &Json) -> Holder {
        let pairs: Vec<(String, Hash)> = items
            .as_array()
            .expect("items")
            .iter()
            .map(|item| {
                let json = serde_json::to_vec(&item["value"]).unwrap();
                let value = parse(&json).expect("a vector value is I-JSON");
                (
                    text(&item["key"]).to_owned(),
                    value_hash(&canonical_bytes(&value)),
                )
            })
            .collect();
        let digest = NamespaceDigest::from_items(pairs.iter().map(|(k, h)| (k.as_str(), h)), |_, _| {});
        Holder { digest, pairs }
    }
}

impl Trie for Holder {
    type Error = Infallible;

    fn node(&mut self, prefix: &str) -> Result<Node, Infallible> {
        if let Some(node) = descent::materialized(Some(&self.digest), prefix) {
            return Ok(node);
        }
        let pairs = self.leaves(prefix)?;
        Ok(Node::from_leaves(pairs.iter().map(|(k, h)| (k.as_str(), h))))
    }

    fn leaves(&mut self, prefix: &str) -> Result<Vec<(String, Hash)>, Infallible> {
        Ok(self
            .pairs
            .iter()
            .filter(|(key, _)| hex::encode(statesync_core::digest::position(key)).starts_with(prefix))
            .cloned()
            .collect())
    }
}

fn node_of(v: &Json) -> NodeAnswer {
    NodeAnswer {
        prefix: text(&v["prefix"]).to_owned(),
        children: hex_of(&v["children"]),
        leaves: hex_of(&v["leaves"]),
        is_leaves: v["is_leaves"].as_bool().expect("is_leaves"),
    }
}

fn name_query_of(v: &Json) -> NameQuery {
    NameQuery {
        prefix: text(&v["prefix"]).to_owned(),
        leaves: hex_of(&v["leaves"]),
    }
}

/// Runs one vector; Err says what differed.
type Outcome = Result<(), String>;

/// A vector list's field, its label in failures, and how each vector is run.
type Run = (&'static str, &'static str, fn(&Json) -> Outcome);

fn check<T: PartialEq + std::fmt::Debug>(what: &str, got: T, expected: T) -> Outcome {
    if got == expected {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}, expected {expected:?}"))
    }
}

fn answer_case(case: &Json) -> Outcome {
    let mut holder = Holder::of(&case["items"]);
    let prefixes = strings(&case["prefixes"]);
    let got = descent::describe(&mut holder, &prefixes).map_err(|e| e.to_string())?;
    let expected: Vec<NodeAnswer> = list(case, "nodes").iter().map(node_of).collect();
    for (node, vector) in expected.iter().zip(list(case, "nodes")) {
        let count = holder.node(&node.prefix).unwrap().count;
        check(
            &format!("count at {:?}", node.prefix),
            count,
            vector["count"].as_u64().unwrap(),
        )?;
    }
    check("nodes", got, expected)
}

fn names_case(case: &Json) -> Outcome {
    let mut holder = Holder::of(&case["items"]);
    let got = descent::name(&mut holder, &[name_query_of(case)]).map_err(|e| e.to_string())?;
    check("names", got, strings(&case["names"]))
}

/// The worker's side: each round's answers and names from `worker`.
fn descent_worker_case(case: &Json) -> Outcome {
    let mut worker = Holder::of(&case["worker"]);
    for (i, round) in list(case, "rounds").iter().enumerate() {
        let nodes =
            descent::describe(&mut worker, &strings(&round["prefixes"])).map_err(|e| e.to_string())?;
        let expected: Vec<NodeAnswer> = list(round, "nodes").iter().map(node_of).collect();
        check(&format!("round {i} nodes"), nodes, expected)?;
        let queries: Vec<NameQuery> = list(round, "names").iter().map(name_query_of).collect();
        let named = descent::name(&mut worker, &queries).map_err(|e| e.to_string())?;
        check(&format!("round {i} named"), named, strings(&round["named"]))?;
    }
    Ok(())
}

/// The controller's side: each round's query, fed the vector's answers.
fn descent_controller_case(case: &Json) -> Outcome {
    let mut controller = Holder::of(&case["controller"]);
    let mut state = Descent::new();
    for (i, round) in list(case, "rounds").iter().enumerate() {
        check(&format!("round {i}: done early"), state.is_done(), false)?;
        let query = state.query().map_err(|e| e.to_string())?;
        check(
            &format!("round {i} prefixes"),
            query.prefixes,
            strings(&round["prefixes"]),
        )?;
        let names: Vec<NameQuery> = list(round, "names").iter().map(name_query_of).collect();
        check(&format!("round {i} names"), query.names, names)?;
        let nodes: Vec<NodeAnswer> = list(round, "nodes").iter().map(node_of).collect();
        state
            .receive(&nodes, &strings(&round["named"]), &mut controller)
            .map_err(|e| e.to_string())?;
    }
    check("done after the rounds", state.is_done(), true)?;
    let found: Vec<String> = state.differing().iter().cloned().collect();
    check("differing", found, strings(&case["differing"]))?;
    let worker = Holder::of(&case["worker"]);
    check(
        "roots equal iff nothing differs",
        controller.digest.root() == worker.digest.root(),
        state.differing().is_empty(),
    )
}

#[test]
fn descent_vectors() {
    let file = vectors();
    let runs: [Run; 4] = [
        ("answers", "answers", answer_case),
        ("names", "names", names_case),
        ("descents", "descents (worker)", descent_worker_case),
        ("descents", "descents (controller)", descent_controller_case),
    ];
    let mut passed = 0;
    let mut failures = Vec::new();
    for (field, label, run) in runs {
        let cases = list(&file, field);
        assert!(!cases.is_empty(), "no {field} vectors");
        for case in cases {
            match run(case) {
                Ok(()) => passed += 1,
                Err(why) => failures.push(format!("{label} {:?}: {why}", text(&case["name"]))),
            }
        }
    }
    let total = passed + failures.len();
    println!("descent vectors: {passed}/{total} passed");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
