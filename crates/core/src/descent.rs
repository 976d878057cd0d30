//! Digest descent: localizing the keys on which two holders of a namespace
//! differ, sans-I/O (`docs/wire.md` "Digest descent" is the normative text,
//! `docs/reconciliation.md` §2 the why, `conformance/descent` the vectors).
//!
//! The controller ([`Descent`]) asks about prefixes of the 16-ary digest trie;
//! the worker ([`describe`], [`name`]) describes each node: one with more than
//! [`LEAF_LIMIT`] keys by its 16 children (count and a 4-byte fingerprint
//! each), a smaller one by its leaves (4-byte truncated leaf values). The
//! controller compares with its own trie, asks again about the children that
//! differ, and collects the keys whose leaves differ: keys the worker has wrong
//! or lacks (named by the controller) and, when the worker has more unknown
//! leaves than the controller has wrong keys in a node, the keys it holds that
//! the controller lacks (named by the worker on request, a [`NameQuery`]).
//! Round trips grow with log16(namespace size / [`LEAF_LIMIT`]) + 1, bytes
//! with the number of differing keys.
//!
//! Both ends read their trie through [`Trie`], which the worker's replica,
//! the controller's store and the Python binding implement. Truncated values
//! can collide (2^-32 per comparison); the caller checks the full 32-byte
//! roots again after the repair.

use std::collections::{BTreeSet, HashSet};
use std::convert::Infallible;
use std::fmt;

use crate::digest::{Hash, MATERIALIZED_LEVELS, NamespaceDigest, Node, leaf_value, position};

/// A node with at most this many keys is described by its leaves (the
/// reference threshold: 256 leaves are 1 KiB, eight times a children answer).
pub const LEAF_LIMIT: u64 = 256;

/// The longest prefix: a whole 256-bit position, which is always answered with leaves.
pub const MAX_PREFIX: usize = 64;

/// Bytes of a truncated fingerprint or leaf.
const SHORT: usize = 4;
/// Bytes of one child in a children answer: u32be count and a truncated fingerprint.
const CHILD: usize = 4 + SHORT;
const NIBBLES: &str = "0123456789abcdef";

/// One holder's digest trie of one namespace, as a descent reads it.
///
/// Prefixes passed in are valid: at most [`MAX_PREFIX`] lowercase hex nibbles.
pub trait Trie {
    /// Why the trie could not be read.
    type Error;

    /// The node at `prefix`: its key count and leaf sum.
    fn node(&mut self, prefix: &str) -> Result<Node, Self::Error>;

    /// The (key, counted value hash) pairs whose position starts with `prefix`.
    fn leaves(&mut self, prefix: &str) -> Result<Vec<(String, Hash)>, Self::Error>;
}

/// The node at `prefix` of a namespace whose top levels are `digest` (None:
/// an empty namespace), when `prefix` is materialized; None when it is deeper
/// and must be summed from its leaves ([`Node::from_leaves`]).
pub fn materialized(digest: Option<&NamespaceDigest>, prefix: &str) -> Option<Node> {
    if prefix.len() > MATERIALIZED_LEVELS {
        return None;
    }
    Some(
        digest
            .and_then(|d| d.materialized_node(prefix))
            .unwrap_or_default(),
    )
}

/// The first 4 bytes of a node's fingerprint.
pub fn fp4(node: &Node) -> [u8; 4] {
    let fingerprint = node.fingerprint();
    [fingerprint[0], fingerprint[1], fingerprint[2], fingerprint[3]]
}

/// The first 4 bytes (the most significant 32 bits) of a key's leaf value.
pub fn leaf4(key: &str, value_hash: &Hash) -> [u8; 4] {
    let bytes = leaf_value(key, value_hash).to_be_bytes();
    [bytes[0], bytes[1], bytes[2], bytes[3]]
}

/// The description of one trie node (`NodeAnswer` on the wire).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeAnswer {
    /// The queried prefix.
    pub prefix: String,
    /// 16 × (u32be count, 4-byte fingerprint) of the children, unless `is_leaves`.
    pub children: Vec<u8>,
    /// The sorted 4-byte truncated leaves under the prefix, when `is_leaves`.
    pub leaves: Vec<u8>,
    /// Whether the node is described by its leaves.
    pub is_leaves: bool,
}

impl NodeAnswer {
    /// What the answer costs on the wire, for the descent's accounting.
    pub fn size(&self) -> u64 {
        (self.prefix.len() + self.children.len() + self.leaves.len() + 1) as u64
    }
}

/// A request to name the keys under `prefix` whose truncated leaf is one of `leaves`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameQuery {
    /// The node the leaves are under.
    pub prefix: String,
    /// Packed 4-byte truncated leaves.
    pub leaves: Vec<u8>,
}

/// One round trip the controller sends: nodes to describe, leaves to name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    /// Prefixes to describe, in order.
    pub prefixes: Vec<String>,
    /// Leaves to name.
    pub names: Vec<NameQuery>,
}

/// Why a descent step was refused. A refused step changes nothing.
#[derive(Debug, PartialEq, Eq)]
pub enum DescentError<E = Infallible> {
    /// A prefix is not at most 64 lowercase hex nibbles.
    InvalidPrefix(String),
    /// A name query's leaves are not whole 4-byte values.
    MalformedNameQuery {
        /// The query's prefix.
        prefix: String,
        /// The length of its leaves.
        len: usize,
    },
    /// An answer does not fit the query it answers.
    MalformedAnswer(String),
    /// A step out of order: a query while an answer is awaited, an answer
    /// while none is, or a query after the descent is done.
    OutOfOrder(&'static str),
    /// The trie could not be read.
    Trie(E),
}

impl<E: fmt::Display> fmt::Display for DescentError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DescentError::InvalidPrefix(prefix) => {
                write!(
                    f,
                    "prefix {prefix:?} is not at most {MAX_PREFIX} lowercase hex nibbles"
                )
            }
            DescentError::MalformedNameQuery { prefix, len } => write!(
                f,
                "name query at prefix {prefix:?}: {len} bytes of leaves is not a multiple of {SHORT}"
            ),
            DescentError::MalformedAnswer(why) => write!(f, "malformed digest answer: {why}"),
            DescentError::OutOfOrder(why) => write!(f, "descent step out of order: {why}"),
            DescentError::Trie(e) => write!(f, "reading the digest trie: {e}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for DescentError<E> {}

fn check_prefix<E>(prefix: &str) -> Result<(), DescentError<E>> {
    let hex = prefix
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if prefix.len() > MAX_PREFIX || !hex {
        return Err(DescentError::InvalidPrefix(prefix.to_owned()));
    }
    Ok(())
}

fn position_starts_with(key: &str, prefix: &str) -> bool {
    let hex: String = position(key)[..prefix.len().div_ceil(2)]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    hex.starts_with(prefix)
}

// -- the worker's side ------------------------------------------------------

/// Describes the node at each of `prefixes`, in order (the worker's answer to
/// `DigestQuery.prefixes`): by its leaves when it holds at most [`LEAF_LIMIT`]
/// keys or the prefix is 64 nibbles long, else by its 16 children.
pub fn describe<T: Trie>(
    trie: &mut T,
    prefixes: &[String],
) -> Result<Vec<NodeAnswer>, DescentError<T::Error>> {
    for prefix in prefixes {
        check_prefix(prefix)?;
    }
    prefixes
        .iter()
        .map(|prefix| describe_one(trie, prefix).map_err(DescentError::Trie))
        .collect()
}

fn describe_one<T: Trie>(trie: &mut T, prefix: &str) -> Result<NodeAnswer, T::Error> {
    let count = trie.node(prefix)?.count;
    if count <= LEAF_LIMIT || prefix.len() == MAX_PREFIX {
        let mut leaves: Vec<[u8; SHORT]> = trie.leaves(prefix)?.iter().map(|(k, h)| leaf4(k, h)).collect();
        leaves.sort_unstable();
        return Ok(NodeAnswer {
            prefix: prefix.to_owned(),
            leaves: leaves.concat(),
            is_leaves: true,
            ..NodeAnswer::default()
        });
    }
    let mut children = Vec::with_capacity(16 * CHILD);
    for nibble in NIBBLES.chars() {
        let child = trie.node(&format!("{prefix}{nibble}"))?;
        // Counts fit in a u32 on the wire; a larger one still differs where it matters.
        let count = u32::try_from(child.count).unwrap_or(u32::MAX);
        children.extend_from_slice(&count.to_be_bytes());
        children.extend_from_slice(&fp4(&child));
    }
    Ok(NodeAnswer {
        prefix: prefix.to_owned(),
        children,
        ..NodeAnswer::default()
    })
}

/// The keys named by `queries` (the worker's answer to `DigestQuery.names`):
/// per query in order, every key under its prefix whose truncated leaf is one
/// of its leaves, sorted by code point; a leaf nobody holds names nothing.
pub fn name<T: Trie>(trie: &mut T, queries: &[NameQuery]) -> Result<Vec<String>, DescentError<T::Error>> {
    for query in queries {
        check_prefix(&query.prefix)?;
        if query.leaves.len() % SHORT != 0 {
            return Err(DescentError::MalformedNameQuery {
                prefix: query.prefix.clone(),
                len: query.leaves.len(),
            });
        }
    }
    let mut names = Vec::new();
    for query in queries {
        let wanted: HashSet<&[u8]> = query.leaves.chunks_exact(SHORT).collect();
        let mut found: Vec<String> = trie
            .leaves(&query.prefix)
            .map_err(DescentError::Trie)?
            .into_iter()
            .filter(|(key, hash)| wanted.contains(leaf4(key, hash).as_slice()))
            .map(|(key, _)| key)
            .collect();
        found.sort_unstable();
        names.extend(found);
    }
    Ok(names)
}

// -- the controller's side --------------------------------------------------

/// Where a [`Descent`] is.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// The next query may be sent (or, with nothing to ask, the descent is done).
    Ready,
    /// A query is out; its answer is awaited.
    Awaiting(Query),
}

/// The controller's side of one namespace's descent against one worker.
///
/// [`query`](Self::query) gives the next round trip; feed its answer to
/// [`receive`](Self::receive); when [`is_done`](Self::is_done),
/// [`differing`](Self::differing) holds every key whose value differs.
#[derive(Clone, Debug)]
pub struct Descent {
    phase: Phase,
    pending: Vec<String>,
    unknown: Vec<NameQuery>,
    differing: BTreeSet<String>,
    round_trips: u32,
    bytes_exchanged: u64,
}

impl Default for Descent {
    fn default() -> Self {
        Self::new()
    }
}

impl Descent {
    /// A descent that starts at the root.
    pub fn new() -> Self {
        Descent {
            phase: Phase::Ready,
            pending: vec![String::new()],
            unknown: Vec::new(),
            differing: BTreeSet::new(),
            round_trips: 0,
            bytes_exchanged: 0,
        }
    }

    /// Whether every differing key has been found: nothing is left to ask.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Ready && self.pending.is_empty() && self.unknown.is_empty()
    }

    /// Whether a query is out and its answer awaited.
    pub fn is_awaiting(&self) -> bool {
        matches!(self.phase, Phase::Awaiting(_))
    }

    /// The keys found to differ so far, sorted by code point.
    pub fn differing(&self) -> &BTreeSet<String> {
        &self.differing
    }

    /// Queries sent so far.
    pub fn round_trips(&self) -> u32 {
        self.round_trips
    }

    /// Bytes of the queries and answers so far (prefixes, packed values, keys).
    pub fn bytes_exchanged(&self) -> u64 {
        self.bytes_exchanged
    }

    /// The next round trip: prefixes to describe and leaves to name.
    pub fn query(&mut self) -> Result<Query, DescentError> {
        match self.phase {
            Phase::Awaiting(_) => return Err(DescentError::OutOfOrder("a query while an answer is awaited")),
            Phase::Ready if self.is_done() => {
                return Err(DescentError::OutOfOrder("a query after the descent is done"));
            }
            Phase::Ready => {}
        }
        let query = Query {
            prefixes: std::mem::take(&mut self.pending),
            names: std::mem::take(&mut self.unknown),
        };
        self.round_trips += 1;
        self.bytes_exchanged += query.prefixes.iter().map(|p| p.len() as u64 + 1).sum::<u64>();
        self.bytes_exchanged += query
            .names
            .iter()
            .map(|n| (n.prefix.len() + n.leaves.len()) as u64)
            .sum::<u64>();
        self.phase = Phase::Awaiting(query.clone());
        Ok(query)
    }

    /// Takes in the answer to the query out: the worker's `nodes` (one per
    /// queried prefix, in order) and the keys it `named`, compared with our
    /// trie. A malformed answer is refused and changes nothing.
    pub fn receive<T: Trie>(
        &mut self,
        nodes: &[NodeAnswer],
        named: &[String],
        ours: &mut T,
    ) -> Result<(), DescentError<T::Error>> {
        let Phase::Awaiting(query) = &self.phase else {
            return Err(DescentError::OutOfOrder("an answer while none is awaited"));
        };
        check_answer(query, nodes, named)?;
        let mut pending = Vec::new();
        let mut unknown = Vec::new();
        let mut differing = Vec::new();
        for node in nodes {
            if node.is_leaves {
                let mine = ours.leaves(&node.prefix).map_err(DescentError::Trie)?;
                let (wrong, extra) = compare_leaves(node, &mine);
                // As many unknown leaves as wrong keys: most likely the same keys with
                // other values, which sending ours repairs. More: the worker holds keys
                // we lack, which it is asked to name.
                if extra.len() > wrong.len() {
                    unknown.push(NameQuery {
                        prefix: node.prefix.clone(),
                        leaves: extra.concat(),
                    });
                }
                differing.extend(wrong);
                continue;
            }
            for (nibble, theirs) in NIBBLES.chars().zip(node.children.chunks_exact(CHILD)) {
                let child = format!("{}{nibble}", node.prefix);
                let mine = ours.node(&child).map_err(DescentError::Trie)?;
                let count = u32::try_from(mine.count).unwrap_or(u32::MAX);
                if theirs[..4] != count.to_be_bytes() || theirs[4..] != fp4(&mine) {
                    pending.push(child);
                }
            }
        }
        self.bytes_exchanged += nodes.iter().map(NodeAnswer::size).sum::<u64>();
        self.bytes_exchanged += named.iter().map(|k| k.len() as u64 + 2).sum::<u64>();
        self.pending = pending;
        self.unknown = unknown;
        self.differing.extend(differing);
        self.differing.extend(named.iter().cloned());
        self.phase = Phase::Ready;
        Ok(())
    }
}

/// Our keys whose truncated leaf the worker lacks, and the worker's truncated
/// leaves we do not hold (sorted, without duplicates).
fn compare_leaves(node: &NodeAnswer, mine: &[(String, Hash)]) -> (Vec<String>, Vec<[u8; SHORT]>) {
    let theirs: BTreeSet<[u8; SHORT]> = node
        .leaves
        .chunks_exact(SHORT)
        .map(|c| [c[0], c[1], c[2], c[3]])
        .collect();
    let ours: Vec<([u8; SHORT], &str)> = mine.iter().map(|(k, h)| (leaf4(k, h), k.as_str())).collect();
    let our_leaves: HashSet<[u8; SHORT]> = ours.iter().map(|(leaf, _)| *leaf).collect();
    let wrong = ours
        .iter()
        .filter(|(leaf, _)| !theirs.contains(leaf))
        .map(|(_, key)| (*key).to_owned())
        .collect();
    let extra = theirs
        .into_iter()
        .filter(|leaf| !our_leaves.contains(leaf))
        .collect();
    (wrong, extra)
}

/// Refuses an answer that does not fit `query`: one node per queried prefix in
/// order, well-formed byte fields, names only under the prefixes asked about.
fn check_answer<E>(query: &Query, nodes: &[NodeAnswer], named: &[String]) -> Result<(), DescentError<E>> {
    let malformed = |why: String| Err(DescentError::MalformedAnswer(why));
    if nodes.len() != query.prefixes.len() {
        return malformed(format!(
            "{} node(s) for {} queried prefix(es)",
            nodes.len(),
            query.prefixes.len()
        ));
    }
    for (node, prefix) in nodes.iter().zip(&query.prefixes) {
        if node.prefix != *prefix {
            return malformed(format!("node {:?} where {prefix:?} was asked", node.prefix));
        }
        if node.is_leaves && (node.leaves.len() % SHORT != 0 || !node.children.is_empty()) {
            return malformed(format!(
                "node {prefix:?}: leaves of {} bytes, children of {}",
                node.leaves.len(),
                node.children.len()
            ));
        }
        if !node.is_leaves && (node.children.len() != 16 * CHILD || !node.leaves.is_empty()) {
            return malformed(format!(
                "node {prefix:?}: children of {} bytes (not {}), leaves of {}",
                node.children.len(),
                16 * CHILD,
                node.leaves.len()
            ));
        }
        if !node.is_leaves && prefix.len() == MAX_PREFIX {
            return malformed(format!(
                "node {prefix:?} is {MAX_PREFIX} nibbles long but not leaves"
            ));
        }
    }
    for key in named {
        if !query.names.iter().any(|q| position_starts_with(key, &q.prefix)) {
            return malformed(format!(
                "key {key:?} is not under a prefix whose leaves were asked to be named"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::digest::sha256;

    /// A trie over a plain list of (key, value hash, position in hex) entries.
    struct Pairs(Vec<(String, Hash, String)>);

    impl Pairs {
        fn of(pairs: impl IntoIterator<Item = (String, Hash)>) -> Pairs {
            Pairs(
                pairs
                    .into_iter()
                    .map(|(k, h)| {
                        let hex = position(&k).iter().map(|b| format!("{b:02x}")).collect();
                        (k, h, hex)
                    })
                    .collect(),
            )
        }
    }

    impl Trie for Pairs {
        type Error = Infallible;

        fn node(&mut self, prefix: &str) -> Result<Node, Infallible> {
            let pairs = self.leaves(prefix)?;
            Ok(Node::from_leaves(pairs.iter().map(|(k, h)| (k.as_str(), h))))
        }

        fn leaves(&mut self, prefix: &str) -> Result<Vec<(String, Hash)>, Infallible> {
            Ok(self
                .0
                .iter()
                .filter(|(_, _, hex)| hex.starts_with(prefix))
                .map(|(k, h, _)| (k.clone(), *h))
                .collect())
        }
    }

    fn pairs(n: usize, changed: &[usize]) -> Pairs {
        Pairs::of((0..n).map(|i| {
            let value = if changed.contains(&i) { "changed" } else { "v" };
            (format!("key-{i}"), sha256(format!("{value}{i}").as_bytes()))
        }))
    }

    fn run(ours: &mut Pairs, theirs: &mut Pairs) -> Descent {
        let mut descent = Descent::new();
        while !descent.is_done() {
            let query = descent.query().unwrap();
            let nodes = describe(theirs, &query.prefixes).unwrap();
            let named = name(theirs, &query.names).unwrap();
            descent.receive(&nodes, &named, ours).unwrap();
        }
        descent
    }

    #[test]
    fn finds_changed_missing_and_extra_keys() {
        let mut ours = pairs(2000, &[7, 1500]);
        let mut theirs = pairs(2000, &[]);
        theirs.0.retain(|(k, _, _)| k != "key-99");
        theirs
            .0
            .extend(Pairs::of([("only-theirs".into(), sha256(b"x"))]).0);
        let descent = run(&mut ours, &mut theirs);
        let found: Vec<&str> = descent.differing().iter().map(String::as_str).collect();
        assert_eq!(found, ["key-1500", "key-7", "key-99", "only-theirs"]);
        assert!(descent.round_trips() >= 2);
    }

    #[test]
    fn identical_tries_take_one_round() {
        let descent = run(&mut pairs(1000, &[]), &mut pairs(1000, &[]));
        assert!(descent.differing().is_empty());
        assert_eq!(descent.round_trips(), 1);
    }

    #[test]
    fn steps_out_of_order_are_refused_and_change_nothing() {
        let mut ours = pairs(10, &[]);
        let mut descent = Descent::new();
        assert_eq!(
            descent.receive(&[], &[], &mut ours),
            Err(DescentError::OutOfOrder("an answer while none is awaited"))
        );
        let query = descent.query().unwrap();
        assert_eq!(query.prefixes, [""]);
        assert!(matches!(descent.query(), Err(DescentError::OutOfOrder(_))));
        let wrong_prefix = NodeAnswer {
            prefix: "a".into(),
            is_leaves: true,
            ..NodeAnswer::default()
        };
        assert!(matches!(
            descent.receive(&[wrong_prefix], &[], &mut ours),
            Err(DescentError::MalformedAnswer(_))
        ));
        let short_children = NodeAnswer {
            prefix: String::new(),
            children: vec![0; 127],
            ..NodeAnswer::default()
        };
        assert!(descent.receive(&[short_children], &[], &mut ours).is_err());
        let unasked_name = describe(&mut ours, &query.prefixes).unwrap();
        assert!(matches!(
            descent.receive(&unasked_name, &["key-1".into()], &mut ours),
            Err(DescentError::MalformedAnswer(_))
        ));
        assert!(descent.is_awaiting() && descent.differing().is_empty());
        descent.receive(&unasked_name, &[], &mut ours).unwrap();
        assert!(descent.is_done());
        assert!(matches!(descent.query(), Err(DescentError::OutOfOrder(_))));
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(48))]

        /// Whatever the two holders hold, a descent finds only keys that differ,
        /// every key the controller holds with another value (or the worker
        /// lacks), and repairing what it finds converges within a few rounds
        /// (a key only the worker holds, beside one it lacks, may take a second).
        #[test]
        fn finds_the_differing_keys_and_repairs_converge(
            base in proptest::collection::btree_map(0u16..3000, 0u8..3, 0..700),
            edits in proptest::collection::btree_map(0u16..3000, proptest::option::of(0u8..3), 0..30),
        ) {
            let ours = base.clone();
            let mut theirs = base;
            for (key, value) in &edits {
                match value {
                    Some(v) => theirs.insert(*key, *v),
                    None => theirs.remove(key),
                };
            }
            let holder = |m: &BTreeMap<u16, u8>| Pairs::of(m.iter().map(|(k, v)| (format!("k{k}"), sha256(&[*v]))));
            let differing = |theirs: &BTreeMap<u16, u8>| -> BTreeSet<u16> {
                ours.keys().chain(theirs.keys()).filter(|k| ours.get(k) != theirs.get(k)).copied().collect()
            };
            for _ in 0..3 {
                let expected = differing(&theirs);
                let found: BTreeSet<u16> = run(&mut holder(&ours), &mut holder(&theirs))
                    .differing()
                    .iter()
                    .map(|k| k[1..].parse().unwrap())
                    .collect();
                proptest::prop_assert!(found.is_subset(&expected));
                let ours_wrong: BTreeSet<u16> = expected.iter().filter(|k| ours.contains_key(k)).copied().collect();
                proptest::prop_assert!(ours_wrong.is_subset(&found));
                for key in found {
                    match ours.get(&key) {
                        Some(v) => theirs.insert(key, *v),
                        None => theirs.remove(&key),
                    };
                }
            }
            proptest::prop_assert_eq!(&theirs, &ours);
        }
    }

    #[test]
    fn bad_queries_are_refused() {
        let mut trie = pairs(3, &[]);
        for prefix in ["A", "g", &"0".repeat(65)] {
            assert_eq!(
                describe(&mut trie, &[prefix.to_owned()]),
                Err(DescentError::InvalidPrefix(prefix.to_owned()))
            );
        }
        let query = NameQuery {
            prefix: String::new(),
            leaves: vec![1, 2, 3],
        };
        assert_eq!(
            name(&mut trie, &[query]),
            Err(DescentError::MalformedNameQuery {
                prefix: String::new(),
                len: 3
            })
        );
    }
}
