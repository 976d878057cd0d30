//! Per-namespace Merkle-style digests, maintained incrementally.
//!
//! The construction (`docs/digest.md` is the normative text,
//! `conformance/digest` holds vectors):
//!
//! - `value_hash = SHA-256(canonical value bytes)`
//! - `position(key) = SHA-256(UTF-8 key)`: a key's place in a 16-ary trie, one
//!   nibble per level, high nibble first
//! - `leaf(key) = SHA-256("statesync.leaf.v1" 0x00 ‖ u32be(len(key)) ‖ key ‖
//!   value_hash)`, read as a 256-bit big-endian integer
//! - `node(prefix) = (count, sum)`: the number of keys whose position starts
//!   with the nibble string `prefix`, and the sum of their leaves mod 2^256
//! - `fingerprint(node) = SHA-256("statesync.node.v1" 0x00 ‖ u64be(count) ‖
//!   u256be(sum))`; the namespace digest is the root's fingerprint
//!
//! Sums commute, so a change updates one entry per materialized level, and two
//! holders' roots agree iff (with overwhelming probability) their sets of
//! (key, value) agree, whatever order they were built in. Prefixes deeper than
//! the materialized levels are summed from leaves on demand.

use std::borrow::Borrow;
use std::collections::HashMap;

use sha2::{Digest, Sha256};

/// A SHA-256 output.
pub type Hash = [u8; 32];

/// Levels below the root kept in memory (16^4 = 65,536 buckets at the bottom).
pub const MATERIALIZED_LEVELS: usize = 4;

const LEAF_TAG: &[u8] = b"statesync.leaf.v1\x00";
const NODE_TAG: &[u8] = b"statesync.node.v1\x00";

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> Hash {
    Sha256::digest(data).into()
}

/// The hash of a canonical value.
pub fn value_hash(canonical: &[u8]) -> Hash {
    sha256(canonical)
}

/// A key's position in the trie.
pub fn position(key: &str) -> Hash {
    sha256(key.as_bytes())
}

/// The first 16 bits (4 nibbles) of the key's position: its deepest materialized node.
pub fn bucket_of(key: &str) -> u16 {
    let p = position(key);
    u16::from_be_bytes([p[0], p[1]])
}

/// An unsigned 256-bit integer with wrapping (mod 2^256) addition and subtraction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct U256([u64; 4]); // little-endian limbs

impl U256 {
    /// Zero.
    pub const ZERO: U256 = U256([0; 4]);

    /// Reads 32 big-endian bytes.
    pub fn from_be_bytes(bytes: &Hash) -> U256 {
        let mut limbs = [0u64; 4];
        for (i, limb) in limbs.iter_mut().enumerate() {
            let start = 32 - 8 * (i + 1);
            *limb = u64::from_be_bytes(bytes[start..start + 8].try_into().expect("8 bytes"));
        }
        U256(limbs)
    }

    /// Writes 32 big-endian bytes.
    pub fn to_be_bytes(self) -> Hash {
        let mut out = [0u8; 32];
        for (i, limb) in self.0.iter().enumerate() {
            let start = 32 - 8 * (i + 1);
            out[start..start + 8].copy_from_slice(&limb.to_be_bytes());
        }
        out
    }

    /// `self + other` mod 2^256.
    pub fn wrapping_add(self, other: U256) -> U256 {
        let mut out = [0u64; 4];
        let mut carry = false;
        for (i, slot) in out.iter_mut().enumerate() {
            let (s, c1) = self.0[i].overflowing_add(other.0[i]);
            let (s, c2) = s.overflowing_add(carry as u64);
            *slot = s;
            carry = c1 || c2;
        }
        U256(out)
    }

    /// `self - other` mod 2^256.
    pub fn wrapping_sub(self, other: U256) -> U256 {
        let mut out = [0u64; 4];
        let mut borrow = false;
        for (i, slot) in out.iter_mut().enumerate() {
            let (d, b1) = self.0[i].overflowing_sub(other.0[i]);
            let (d, b2) = d.overflowing_sub(borrow as u64);
            *slot = d;
            borrow = b1 || b2;
        }
        U256(out)
    }
}

/// A key's leaf: what it adds to every node on its path.
pub fn leaf_value(key: &str, value_hash: &Hash) -> U256 {
    let raw = key.as_bytes();
    let mut h = Sha256::new();
    h.update(LEAF_TAG);
    h.update((raw.len() as u32).to_be_bytes());
    h.update(raw);
    h.update(value_hash);
    U256::from_be_bytes(&h.finalize().into())
}

/// A trie node: how many keys lie under it and the sum of their leaves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Node {
    /// Keys under the node.
    pub count: u64,
    /// The sum of their leaves, mod 2^256.
    pub sum: U256,
}

impl Node {
    /// The node's fingerprint; the root's is the namespace digest.
    pub fn fingerprint(&self) -> Hash {
        fingerprint(self.count, self.sum)
    }

    /// The node of a set of (key, value hash) pairs.
    pub fn from_leaves<'a>(leaves: impl IntoIterator<Item = (&'a str, &'a Hash)>) -> Node {
        leaves
            .into_iter()
            .fold(Node::default(), |node, (key, vhash)| Node {
                count: node.count + 1,
                sum: node.sum.wrapping_add(leaf_value(key, vhash)),
            })
    }
}

/// The fingerprint of a node with `count` keys whose leaves sum to `sum`.
pub fn fingerprint(count: u64, sum: U256) -> Hash {
    let mut h = Sha256::new();
    h.update(NODE_TAG);
    h.update(count.to_be_bytes());
    h.update(sum.to_be_bytes());
    h.finalize().into()
}

/// Parses a prefix of lowercase or uppercase hex nibbles.
pub fn parse_prefix(prefix: &str) -> Option<u64> {
    if prefix.len() > 16 {
        return None;
    }
    if prefix.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(prefix, 16).ok()
}

/// One level's nodes by prefix (as an integer). A map holds the occupied
/// ones while few are; past half the level, an array of every node takes
/// less (at the bottom, 2.6 MB where the map takes 6.4).
#[derive(Clone, Debug)]
enum Level {
    Sparse(HashMap<u32, Node>),
    Dense(Vec<Node>),
}

impl Default for Level {
    fn default() -> Self {
        Level::Sparse(HashMap::new())
    }
}

impl Level {
    fn get(&self, idx: u32) -> Node {
        match self {
            Level::Sparse(nodes) => nodes.get(&idx).copied().unwrap_or_default(),
            Level::Dense(nodes) => nodes[idx as usize],
        }
    }

    /// Changes the node at `idx` of a level of `width` prefixes.
    fn update(&mut self, idx: u32, width: usize, change: impl FnOnce(&mut Node)) {
        match self {
            Level::Dense(nodes) => change(&mut nodes[idx as usize]),
            Level::Sparse(nodes) => {
                let node = nodes.entry(idx).or_default();
                change(node);
                if node.count == 0 {
                    nodes.remove(&idx);
                } else if nodes.len() * 2 > width {
                    let mut dense = vec![Node::default(); width];
                    for (&at, &node) in nodes.iter() {
                        dense[at as usize] = node;
                    }
                    *self = Level::Dense(dense);
                }
            }
        }
    }

    /// The occupied nodes.
    fn occupied(&self) -> impl Iterator<Item = (u32, Node)> + '_ {
        let (sparse, dense) = match self {
            Level::Sparse(nodes) => (Some(nodes.iter().map(|(&idx, &node)| (idx, node))), None),
            Level::Dense(nodes) => (None, Some((0u32..).zip(nodes.iter().copied()))),
        };
        let dense = dense.into_iter().flatten().filter(|(_, node)| node.count > 0);
        sparse.into_iter().flatten().chain(dense)
    }
}

/// The number of prefixes at `level`.
fn width(level: usize) -> usize {
    1 << (4 * level)
}

/// The root and the top [`MATERIALIZED_LEVELS`] levels of one namespace's trie.
///
/// Holds no keys: the caller passes the old and new value hash of each key it
/// changes; nodes deeper than the materialized levels are summed by the caller
/// from its leaves ([`Node::from_leaves`]).
#[derive(Clone, Debug, Default)]
pub struct NamespaceDigest {
    // levels[l] holds the nodes of the l-nibble prefixes.
    levels: [Level; MATERIALIZED_LEVELS + 1],
}

impl NamespaceDigest {
    /// An empty digest.
    pub fn new() -> Self {
        Self::default()
    }

    /// The digest of (key, value hash) pairs; `on_bucket` sees each key's bucket.
    pub fn from_items<K: Borrow<str>, H: Borrow<Hash>>(
        items: impl IntoIterator<Item = (K, H)>,
        mut on_bucket: impl FnMut(&str, u16),
    ) -> Self {
        let mut digest = Self::new();
        let shift = 16 - 4 * MATERIALIZED_LEVELS;
        for (key, vhash) in items {
            let key = key.borrow();
            let bucket = bucket_of(key);
            on_bucket(key, bucket);
            let leaf = leaf_value(key, vhash.borrow());
            digest.levels[MATERIALIZED_LEVELS].update(
                u32::from(bucket) >> shift,
                width(MATERIALIZED_LEVELS),
                |node| {
                    node.count += 1;
                    node.sum = node.sum.wrapping_add(leaf);
                },
            );
        }
        // Upper levels are sums of the level below: one pass per level.
        for level in (0..MATERIALIZED_LEVELS).rev() {
            let (upper, lower) = digest.levels.split_at_mut(level + 1);
            for (idx, child) in lower[0].occupied() {
                upper[level].update(idx >> 4, width(level), |parent| {
                    parent.count += child.count;
                    parent.sum = parent.sum.wrapping_add(child.sum);
                });
            }
        }
        digest
    }

    /// Accounts for `key` changing from value hash `old` to `new` (None: absent).
    pub fn update(&mut self, key: &str, old: Option<&Hash>, new: Option<&Hash>) {
        self.update_in_bucket(key, bucket_of(key), old, new);
    }

    /// [`update`](Self::update) when the caller knows `bucket_of(key)` already.
    pub fn update_in_bucket(&mut self, key: &str, bucket: u16, old: Option<&Hash>, new: Option<&Hash>) {
        if old == new {
            return;
        }
        let removed = old.map(|h| leaf_value(key, h));
        let added = new.map(|h| leaf_value(key, h));
        for (level, nodes) in self.levels.iter_mut().enumerate() {
            let idx = u32::from(bucket) >> (16 - 4 * level);
            nodes.update(idx, width(level), |node| {
                if let Some(leaf) = removed {
                    node.count -= 1;
                    node.sum = node.sum.wrapping_sub(leaf);
                }
                if let Some(leaf) = added {
                    node.count += 1;
                    node.sum = node.sum.wrapping_add(leaf);
                }
            });
        }
    }

    /// The number of keys.
    pub fn count(&self) -> u64 {
        self.root_node().count
    }

    /// The root node.
    pub fn root_node(&self) -> Node {
        self.levels[0].get(0)
    }

    /// The namespace digest: the root's fingerprint.
    pub fn root(&self) -> Hash {
        self.root_node().fingerprint()
    }

    /// The node at a materialized prefix (at most [`MATERIALIZED_LEVELS`]
    /// nibbles); None for a deeper or non-hex prefix.
    pub fn materialized_node(&self, prefix: &str) -> Option<Node> {
        if prefix.len() > MATERIALIZED_LEVELS {
            return None;
        }
        let idx = parse_prefix(prefix)? as u32;
        Some(self.levels[prefix.len()].get(idx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u256_wraps() {
        let max = U256::from_be_bytes(&[0xff; 32]);
        let one = U256::from_be_bytes(&{
            let mut b = [0u8; 32];
            b[31] = 1;
            b
        });
        assert_eq!(max.wrapping_add(one), U256::ZERO);
        assert_eq!(U256::ZERO.wrapping_sub(one), max);
        assert_eq!(max.to_be_bytes(), [0xff; 32]);
    }

    #[test]
    fn incremental_equals_built() {
        let hashes: Vec<(String, Hash)> = (0..500)
            .map(|i| (format!("key-{i}"), sha256(format!("v{i}").as_bytes())))
            .collect();
        let built = NamespaceDigest::from_items(hashes.iter().map(|(k, h)| (k.as_str(), h)), |_, _| {});
        let mut incremental = NamespaceDigest::new();
        for (k, h) in hashes.iter().rev() {
            incremental.update(k, None, Some(&sha256(b"old")));
            incremental.update(k, Some(&sha256(b"old")), Some(h));
        }
        assert_eq!(built.root(), incremental.root());
        assert_eq!(built.count(), 500);
        for prefix in ["", "a", "3f", "0c1", "ffff"] {
            assert_eq!(
                built.materialized_node(prefix),
                incremental.materialized_node(prefix)
            );
        }
        for (k, h) in &hashes {
            incremental.update(k, Some(h), None);
        }
        assert_eq!(incremental.root(), fingerprint(0, U256::ZERO));
        assert!(incremental.levels.iter().all(|l| l.occupied().next().is_none()));
    }

    #[test]
    fn a_level_turns_dense_past_half_full_and_reads_the_same() {
        let hashes: Vec<(String, Hash)> = (0..3000)
            .map(|i| (format!("key-{i}"), sha256(format!("v{i}").as_bytes())))
            .collect();
        let mut digest = NamespaceDigest::new();
        for (k, h) in &hashes {
            digest.update(k, None, Some(h));
        }
        assert!(
            matches!(digest.levels[3], Level::Dense(_)),
            "3000 keys fill 4096 prefixes past half"
        );
        assert!(matches!(digest.levels[4], Level::Sparse(_)));
        let built = NamespaceDigest::from_items(hashes.iter().map(|(k, h)| (k.as_str(), h)), |_, _| {});
        assert_eq!(built.root(), digest.root());
        for prefix in ["", "7", "3f", "0c1", "ffff"] {
            assert_eq!(built.materialized_node(prefix), digest.materialized_node(prefix));
        }
        for (k, h) in &hashes {
            digest.update(k, Some(h), None);
        }
        assert_eq!(
            (digest.count(), digest.root()),
            (0, NamespaceDigest::new().root())
        );
    }
}
