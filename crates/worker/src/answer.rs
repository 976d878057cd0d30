//! The worker's answer to a digest descent query (docs/wire.md, "Digest
//! descent"): trie nodes as children or leaves, and the keys behind leaves.

use std::collections::HashSet;

use statesync_core::digest::{Hash, MATERIALIZED_LEVELS, Node, leaf_value};
use statesync_proto::{DigestAnswer, DigestQuery, NodeAnswer};

use crate::{Replica, ReplicaError};

/// The most keys a node is described with as a leaf list (the reference
/// threshold: 256 leaves are 1 KiB).
pub const LEAF_LIMIT: u64 = 256;

const NIBBLES: &str = "0123456789abcdef";

/// Describes the nodes and names the leaves `query` asks about, over the
/// replica's authoritative view, at its applied revision.
pub fn answer(replica: &mut Replica, query: &DigestQuery) -> Result<DigestAnswer, ReplicaError> {
    let ns = query.ns.as_str();
    let mut nodes = Vec::with_capacity(query.prefixes.len());
    for prefix in &query.prefixes {
        nodes.push(describe(replica, ns, prefix)?);
    }
    let mut names = Vec::new();
    for name in &query.names {
        let wanted: HashSet<&[u8]> = name.leaves.chunks_exact(4).collect();
        let mut found: Vec<String> = replica
            .leaves(ns, &name.prefix)?
            .into_iter()
            .filter(|(key, hash)| wanted.contains(leaf4(key, hash).as_slice()))
            .map(|(key, _)| key)
            .collect();
        found.sort();
        names.extend(found);
    }
    Ok(DigestAnswer {
        id: query.id,
        ns: query.ns.clone(),
        rev: replica.applied_rev(),
        nodes,
        names,
    })
}

fn describe(replica: &mut Replica, ns: &str, prefix: &str) -> Result<NodeAnswer, ReplicaError> {
    let count = match node(replica, ns, prefix)? {
        Some(node) => node.count,
        None => replica.leaves(ns, prefix)?.len() as u64,
    };
    if count <= LEAF_LIMIT || prefix.len() == 64 {
        let mut leaves: Vec<[u8; 4]> = replica
            .leaves(ns, prefix)?
            .iter()
            .map(|(key, hash)| leaf4(key, hash))
            .collect();
        leaves.sort_unstable();
        return Ok(NodeAnswer {
            prefix: prefix.to_owned(),
            leaves: leaves.concat(),
            is_leaves: true,
            ..NodeAnswer::default()
        });
    }
    let mut children = Vec::with_capacity(16 * 8);
    for nibble in NIBBLES.chars() {
        let child = format!("{prefix}{nibble}");
        let node = match node(replica, ns, &child)? {
            Some(node) => node,
            None => {
                let leaves = replica.leaves(ns, &child)?;
                Node::from_leaves(leaves.iter().map(|(k, h)| (k.as_str(), h)))
            }
        };
        let count = u32::try_from(node.count).unwrap_or(u32::MAX);
        children.extend_from_slice(&count.to_be_bytes());
        children.extend_from_slice(&node.fingerprint()[..4]);
    }
    Ok(NodeAnswer {
        prefix: prefix.to_owned(),
        children,
        ..NodeAnswer::default()
    })
}

/// The node at a materialized prefix, None deeper (summed from the leaves).
fn node(replica: &mut Replica, ns: &str, prefix: &str) -> Result<Option<Node>, ReplicaError> {
    if prefix.len() > MATERIALIZED_LEVELS {
        return Ok(None);
    }
    if !prefix
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(ReplicaError::InvalidPrefix(prefix.to_owned()));
    }
    Ok(Some(
        replica
            .digest(ns)
            .and_then(|d| d.materialized_node(prefix))
            .unwrap_or_default(),
    ))
}

/// The first 4 bytes of a key's leaf value.
fn leaf4(key: &str, hash: &Hash) -> [u8; 4] {
    let bytes = leaf_value(key, hash).to_be_bytes();
    [bytes[0], bytes[1], bytes[2], bytes[3]]
}
