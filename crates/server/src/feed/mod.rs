//! The shared, bounded buffer of recent revisions that every sync stream reads.
//!
//! The store calls [`Feed::publish`] on its committer thread after each
//! durable group commit, before any writer of the batch is answered: the feed
//! turns the changes into wire messages once, and every stream reads them
//! through a cursor (a revision), sharing the messages. Memory is the
//! buffer's bound (revisions and bytes) whatever the number or speed of the
//! workers. A stream whose cursor falls out of the buffer (a slow worker) is
//! told to resync; one that starts before it (a reconnect) catches up from
//! the store's log first ([`catch_up`]).
//!
//! Only the newest revisions keep their messages in memory (`max_memory`):
//! a message takes about twice its encoded size, and workers at the head read
//! only the newest. A stream whose cursor is in the buffer but older than that
//! reads the store's log instead, as a reconnecting one does; which streams
//! resync does not change.

mod deltas;
mod messages;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::mem::size_of;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use prost::Message;
use statesync_core::command::CONTRACTS_NAMESPACE;
use statesync_core::digest::Hash;
use statesync_core::sequencer::BatchWrite;
use statesync_store::SqliteStore;
use tokio::sync::watch;

use crate::proto::{Change, Revision};

pub use deltas::Deltas;
pub use messages::{catch_up, revision_messages};

/// Called with the namespaces whose contract a published batch changed.
pub type ContractListener = Arc<dyn Fn(&BTreeSet<String>) + Send + Sync>;

/// How much the feed keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeedLimits {
    /// Most revisions kept.
    pub max_revisions: usize,
    /// Most encoded bytes kept (the newest revision is kept whatever its size).
    pub max_bytes: usize,
    /// Most bytes of messages held in memory, newest first (the newest
    /// revision's whatever its size); the older revisions in the buffer are
    /// read from the store's log.
    pub max_memory: usize,
}

impl Default for FeedLimits {
    fn default() -> Self {
        Self {
            max_revisions: 100_000,
            max_bytes: 64 * 1024 * 1024,
            max_memory: 8 * 1024 * 1024,
        }
    }
}

/// What a stream at a cursor reads from the feed.
#[derive(Clone, Debug, PartialEq)]
pub enum Read {
    /// The revisions that follow, from memory.
    Slice(Slice),
    /// The cursor is in the buffer, older than the messages held in memory:
    /// read what follows from the store's log ([`catch_up`]).
    Log,
    /// The cursor is older than the buffer.
    Behind,
}

/// Revisions after `prev_rev` through `rev` for one set of namespaces.
#[derive(Clone, Debug, PartialEq)]
pub struct Slice {
    /// The revision the slice follows.
    pub prev_rev: i64,
    /// The revision it leaves the reader at.
    pub rev: i64,
    /// The revisions that touch the reader's namespaces, only their changes.
    pub revisions: Vec<Arc<Revision>>,
    /// How many changes `revisions` hold.
    pub changes: u64,
}

struct Entry {
    rev: i64,
    ts_ms: i64,
    namespaces: BTreeSet<String>,
    /// None once it is older than the messages held in memory.
    message: Option<Arc<Revision>>,
    /// Encoded.
    size: usize,
    /// What `message` holds in memory.
    memory: usize,
}

struct Buffer {
    entries: VecDeque<Entry>,
    bytes: usize,
    memory: usize,
    head_rev: i64,
    /// The buffer holds every revision in (floor, head_rev].
    floor: i64,
    /// Messages are in memory for the revisions after this one (>= floor).
    memory_floor: i64,
    /// Each namespace's digest roots by revision, ascending, from the newest
    /// at or below the floor.
    roots: HashMap<String, VecDeque<(i64, Hash)>>,
}

/// The shared feed of one controller.
pub struct Feed {
    limits: FeedLimits,
    buffer: RwLock<Buffer>,
    head: watch::Sender<i64>,
    contract_listeners: Mutex<Vec<ContractListener>>,
}

impl Feed {
    /// An empty feed whose history starts after `head_rev`.
    pub fn new(head_rev: i64, limits: FeedLimits) -> Self {
        Self {
            limits,
            buffer: RwLock::new(Buffer {
                entries: VecDeque::new(),
                bytes: 0,
                memory: 0,
                head_rev,
                floor: head_rev,
                memory_floor: head_rev,
                roots: HashMap::new(),
            }),
            head: watch::Sender::new(head_rev),
            contract_listeners: Mutex::new(Vec::new()),
        }
    }

    /// A feed filled by `store`'s commits from now on.
    pub fn attach(store: &SqliteStore, limits: FeedLimits) -> Arc<Self> {
        let feed = Arc::new(Self::new(store.head_rev(), limits));
        // Holding the buffer while the listener is added and the head read
        // again: a batch committed before is below the floor (read from the
        // log), one committed after waits for the floor and lands above it.
        {
            let mut buffer = feed.write();
            let publisher = feed.clone();
            store.add_listener(Arc::new(move |batch: &BatchWrite| publisher.publish(batch)));
            let head = store.head_rev();
            buffer.head_rev = head;
            buffer.floor = head;
            buffer.memory_floor = head;
            feed.head.send_replace(head);
        }
        feed
    }

    fn read_buffer(&self) -> std::sync::RwLockReadGuard<'_, Buffer> {
        self.buffer.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Buffer> {
        self.buffer.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Calls `listener` (on the committer thread) with the namespaces whose
    /// contract each later batch changes.
    pub fn on_contracts(&self, listener: ContractListener) {
        self.contract_listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(listener);
    }

    /// Store listener: the batch's revisions as messages, built once.
    pub fn publish(&self, batch: &BatchWrite) {
        let mut contracts = BTreeSet::new();
        let entries: Vec<Entry> = revision_messages(&batch.changes)
            .into_iter()
            .map(|message| {
                let namespaces: BTreeSet<String> = message.changes.iter().map(|c| c.ns.clone()).collect();
                if namespaces.contains(CONTRACTS_NAMESPACE) {
                    contracts.extend(
                        message
                            .changes
                            .iter()
                            .filter(|c| c.ns == CONTRACTS_NAMESPACE)
                            .map(|c| c.key.clone()),
                    );
                }
                Entry {
                    rev: message.rev,
                    ts_ms: message.ts_ms,
                    namespaces,
                    size: message.encoded_len(),
                    memory: memory_of(&message),
                    message: Some(Arc::new(message)),
                }
            })
            .collect();
        let head = {
            let mut buffer = self.write();
            for root in &batch.roots {
                if root.rev > buffer.floor {
                    let revs = buffer.roots.entry(root.ns.clone()).or_default();
                    revs.push_back((root.rev, root.root));
                }
            }
            for entry in entries {
                if entry.rev > buffer.floor {
                    buffer.bytes += entry.size;
                    buffer.memory += entry.memory;
                    buffer.entries.push_back(entry);
                }
            }
            buffer.head_rev = buffer.head_rev.max(batch.head_rev);
            self.evict(&mut buffer);
            buffer.head_rev
        };
        if !contracts.is_empty() {
            let listeners = self
                .contract_listeners
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            for listener in listeners {
                listener(&contracts);
            }
        }
        self.head.send_replace(head);
    }

    fn evict(&self, buffer: &mut Buffer) {
        let mut evicted = None;
        while buffer.entries.len() > self.limits.max_revisions
            || (buffer.bytes > self.limits.max_bytes && buffer.entries.len() > 1)
        {
            let Some(entry) = buffer.entries.pop_front() else {
                break;
            };
            buffer.bytes -= entry.size;
            if entry.message.is_some() {
                buffer.memory -= entry.memory;
            }
            evicted = Some(entry.rev);
        }
        if let Some(floor) = evicted {
            buffer.floor = floor;
            buffer.memory_floor = buffer.memory_floor.max(floor);
            for revs in buffer.roots.values_mut() {
                // Keep the newest root at or below the floor: it is the digest until the next.
                while revs.len() > 1 && revs[1].0 <= floor {
                    revs.pop_front();
                }
            }
        }
        let mut index = buffer
            .entries
            .partition_point(|entry| entry.rev <= buffer.memory_floor);
        while buffer.memory > self.limits.max_memory && index + 1 < buffer.entries.len() {
            let entry = &mut buffer.entries[index];
            entry.message = None;
            let (rev, memory) = (entry.rev, entry.memory);
            buffer.memory -= memory;
            buffer.memory_floor = rev;
            index += 1;
        }
    }

    /// The last published revision.
    pub fn head_rev(&self) -> i64 {
        self.read_buffer().head_rev
    }

    /// The feed holds every revision after this one.
    pub fn floor(&self) -> i64 {
        self.read_buffer().floor
    }

    /// How many revisions the feed holds.
    pub fn size_revisions(&self) -> usize {
        self.read_buffer().entries.len()
    }

    /// How many encoded bytes the feed holds.
    pub fn size_bytes(&self) -> usize {
        self.read_buffer().bytes
    }

    /// Changes when revisions are published (its value is the head).
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.head.subscribe()
    }

    /// How many bytes of messages the feed holds in memory.
    pub fn size_memory(&self) -> usize {
        self.read_buffer().memory
    }

    /// What follows `after` for `namespaces`. Stops at about `max_changes`
    /// (whole revisions).
    pub fn read(&self, after: i64, namespaces: &BTreeSet<String>, max_changes: u64) -> Read {
        let buffer = self.read_buffer();
        if after < buffer.floor {
            return Read::Behind;
        }
        if after < buffer.memory_floor {
            return Read::Log;
        }
        let start = buffer.entries.partition_point(|entry| entry.rev <= after);
        let mut revisions = Vec::new();
        let mut changes = 0u64;
        let mut rev = after;
        let mut stopped = false;
        for entry in buffer.entries.range(start..) {
            if changes >= max_changes {
                stopped = true;
                break;
            }
            let message = entry.message.as_ref().expect("in memory after the memory floor");
            rev = entry.rev;
            if entry.namespaces.is_subset(namespaces) {
                changes += message.changes.len() as u64;
                revisions.push(message.clone());
            } else if !entry.namespaces.is_disjoint(namespaces) {
                let mut kept = Revision {
                    changes: Vec::new(),
                    ..(**message).clone()
                };
                kept.changes = message
                    .changes
                    .iter()
                    .filter(|c| namespaces.contains(&c.ns))
                    .cloned()
                    .collect();
                changes += kept.changes.len() as u64;
                revisions.push(Arc::new(kept));
            }
        }
        if !stopped {
            rev = rev.max(buffer.head_rev);
        }
        Read::Slice(Slice {
            prev_rev: after,
            rev,
            revisions,
            changes,
        })
    }

    /// The namespace's digest root at `rev`, if the feed knows it (None: ask the store).
    pub fn root_at(&self, namespace: &str, rev: i64) -> Option<Hash> {
        let buffer = self.read_buffer();
        let revs = buffer.roots.get(namespace)?;
        let index = revs.partition_point(|&(at, _)| at <= rev);
        index.checked_sub(1).map(|i| revs[i].1)
    }

    /// When the first revision after `after` was committed (ms since the epoch).
    pub fn commit_time_ms(&self, after: i64) -> Option<i64> {
        let buffer = self.read_buffer();
        let index = buffer.entries.partition_point(|entry| entry.rev <= after);
        buffer.entries.get(index).map(|entry| entry.ts_ms)
    }
}

/// About what a message takes in memory: its allocations, not their allocator overhead.
fn memory_of(message: &Revision) -> usize {
    let changes: usize = message
        .changes
        .iter()
        .map(|c| {
            c.ns.capacity()
                + c.key.capacity()
                + c.value.capacity()
                + c.patch.capacity()
                + c.value_hash.capacity()
                + c.source_hash.capacity()
        })
        .sum();
    size_of::<Revision>()
        + message.command_id.capacity()
        + message.trace.capacity()
        + message.changes.capacity() * size_of::<Change>()
        + changes
}

#[cfg(test)]
mod tests;
