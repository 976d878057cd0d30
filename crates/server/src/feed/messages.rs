//! The log's changes as wire messages, and a catch-up read of the store's log
//! for a stream older than the feed.

use std::collections::BTreeSet;
use std::sync::Arc;

use statesync_core::digest::value_hash;
use statesync_core::log::{Change, ChangeOp};
use statesync_store::{SqliteStore, StoreError};

use crate::feed::Slice;
use crate::proto;

/// One change as a worker receives it (a full value; deltas are chosen per stream).
fn change_message(change: &Change) -> proto::Change {
    match (&change.op, &change.value) {
        (ChangeOp::Put, Some(value)) => proto::Change {
            ns: change.ns.clone(),
            key: change.key.clone(),
            kind: proto::change::Kind::Put as i32,
            value: value.clone(),
            value_hash: value_hash(value).to_vec(),
            prev_mod_rev: change.prev_mod_rev,
            create_rev: change.create_rev,
            version: change.version,
            ..proto::Change::default()
        },
        _ => proto::Change {
            ns: change.ns.clone(),
            key: change.key.clone(),
            kind: proto::change::Kind::Delete as i32,
            prev_mod_rev: change.prev_mod_rev,
            ..proto::Change::default()
        },
    }
}

/// Changes in log order, grouped into one message per revision.
pub fn revision_messages(changes: &[Change]) -> Vec<proto::Revision> {
    let mut out: Vec<proto::Revision> = Vec::new();
    for change in changes {
        let starts_revision = out.last().is_none_or(|last| last.rev != change.rev);
        if starts_revision {
            out.push(proto::Revision {
                rev: change.rev,
                command_id: change.command_id.clone(),
                ts_ms: change.ts_ms,
                trace: change.trace.clone().unwrap_or_default(),
                changes: Vec::new(),
            });
        }
        if let Some(revision) = out.last_mut() {
            revision.changes.push(change_message(change));
        }
    }
    out
}

/// What follows `after` in the store's log for `namespaces`: at least `room`
/// changes unless fewer remain, whole revisions only. Blocks on SQLite: call
/// it off the async threads. A compacted `after` is an error (the stream
/// must resync).
pub fn catch_up(
    store: &SqliteStore,
    after: i64,
    room: u64,
    namespaces: &BTreeSet<String>,
) -> Result<Slice, StoreError> {
    let head = store.head_rev();
    if namespaces.is_empty() {
        return Ok(Slice {
            prev_rev: after,
            rev: head.max(after),
            revisions: Vec::new(),
            changes: 0,
        });
    }
    let limit = usize::try_from(room.max(1)).unwrap_or(usize::MAX);
    let names: Vec<String> = namespaces.iter().cloned().collect();
    let mut changes = store.changes(after, limit, Some(&names))?;
    // Revisions committed after `head` was read may be incomplete in this read.
    changes.retain(|change| change.rev <= head);
    let full = changes.len() >= limit;
    let revisions = revision_messages(&changes);
    let rev = match revisions.last() {
        Some(last) if full => last.rev,
        _ => head,
    };
    Ok(Slice {
        prev_rev: after,
        rev: rev.max(after),
        changes: changes.len() as u64,
        revisions: revisions.into_iter().map(Arc::new).collect(),
    })
}
