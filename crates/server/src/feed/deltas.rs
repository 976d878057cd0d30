//! Deltas for the workers that ask for them (`Hello.deltas`): each update
//! sent as a JSON Patch from the key's previous value when that is smaller,
//! computed once per change and shared by every stream.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use statesync_core::delta;
use statesync_store::SqliteStore;

use crate::proto::{Change, Revision, change::Kind};

/// Most deltas remembered; the cache starts over when full (a delta is only
/// asked for while its revision is recent).
const CACHE_ENTRIES: usize = 50_000;

/// (revision, namespace, key) → the delta, or None when the full value goes.
type Cache = HashMap<(i64, String, String), Option<Vec<u8>>>;

/// The deltas computed so far.
#[derive(Default)]
pub struct Deltas {
    cache: Mutex<Cache>,
}

impl Deltas {
    /// The revision with each update sent as a patch where that is smaller;
    /// never for a change `skip(ns, key)` refuses (a held key, a namespace
    /// served in a declared schema version: the worker's base is not the
    /// stored value). Reads the store for bases: call it off the async threads.
    pub fn apply(
        &self,
        store: &SqliteStore,
        revision: &Arc<Revision>,
        skip: impl Fn(&str, &str) -> bool,
    ) -> Arc<Revision> {
        let mut out: Option<Revision> = None;
        for (index, change) in revision.changes.iter().enumerate() {
            if change.kind != Kind::Put as i32 || change.prev_mod_rev == 0 || skip(&change.ns, &change.key) {
                continue;
            }
            let Some(patch) = self.delta(store, revision.rev, change) else {
                continue;
            };
            let copy = out.get_or_insert_with(|| (**revision).clone());
            copy.changes[index].value = Vec::new();
            copy.changes[index].patch = patch;
        }
        out.map_or_else(|| revision.clone(), Arc::new)
    }

    fn delta(&self, store: &SqliteStore, rev: i64, change: &Change) -> Option<Vec<u8>> {
        let cache_key = (rev, change.ns.clone(), change.key.clone());
        if let Some(known) = self.lock().get(&cache_key) {
            return known.clone();
        }
        // A base that is gone (compacted) or unreadable: the full value it is.
        let base = store
            .get(&change.ns, &change.key, Some(change.prev_mod_rev))
            .ok()
            .flatten();
        let made = base.and_then(|base| delta::make(&base.value, &change.value).ok().flatten());
        let mut cache = self.lock();
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(cache_key, made.clone());
        made
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
