//! The worker's answer to a digest descent query (docs/wire.md, "Digest
//! descent"): the core's [`describe`] and [`name`] over the replica's
//! authoritative view, at its applied revision.

use statesync_core::descent::{self, DescentError, NameQuery, Trie, describe, name};
use statesync_core::digest::{Hash, Node};
use statesync_proto::{DigestAnswer, DigestQuery, NodeAnswer};

use crate::{Replica, ReplicaError};

/// One namespace of the replica, read as a digest trie.
struct ReplicaTrie<'a> {
    replica: &'a mut Replica,
    ns: &'a str,
}

impl Trie for ReplicaTrie<'_> {
    type Error = ReplicaError;

    fn node(&mut self, prefix: &str) -> Result<Node, ReplicaError> {
        if let Some(node) = descent::materialized(self.replica.digest(self.ns), prefix) {
            return Ok(node);
        }
        let leaves = self.leaves(prefix)?;
        Ok(Node::from_leaves(leaves.iter().map(|(k, h)| (k.as_str(), h))))
    }

    fn leaves(&mut self, prefix: &str) -> Result<Vec<(String, Hash)>, ReplicaError> {
        self.replica.leaves(self.ns, prefix)
    }
}

/// Describes the nodes and names the leaves `query` asks about.
pub fn answer(
    replica: &mut Replica,
    query: &DigestQuery,
) -> Result<DigestAnswer, DescentError<ReplicaError>> {
    let rev = replica.applied_rev();
    let mut trie = ReplicaTrie {
        replica,
        ns: &query.ns,
    };
    let nodes = describe(&mut trie, &query.prefixes)?;
    let names: Vec<NameQuery> = query
        .names
        .iter()
        .map(|q| NameQuery {
            prefix: q.prefix.clone(),
            leaves: q.leaves.clone(),
        })
        .collect();
    let names = name(&mut trie, &names)?;
    Ok(DigestAnswer {
        id: query.id,
        ns: query.ns.clone(),
        rev,
        nodes: nodes
            .into_iter()
            .map(|n| NodeAnswer {
                prefix: n.prefix,
                children: n.children,
                leaves: n.leaves,
                is_leaves: n.is_leaves,
            })
            .collect(),
        names,
    })
}
