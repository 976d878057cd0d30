//! One namespace in memory: its entries, its held keys, its digest and the
//! descent index, kept consistent by two primitives ([`Namespace::store`] and
//! [`Namespace::hold`]) that each return what they replaced, so a caller can
//! undo them in reverse order.

use std::collections::{BTreeMap, HashMap};

use statesync_core::digest::{Hash, NamespaceDigest, bucket_of, position};

use super::Entry;

/// A held key's record: the refused change, and the hash the digest counts it
/// with (the controller's value; None when the refused change was a delete).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Held {
    pub rev: i64,
    pub reason: String,
    pub refused: Option<Hash>,
}

/// Keys by the first 16 bits of their position, for `leaves`.
type Index = HashMap<u16, Vec<String>>;

#[derive(Debug, Default)]
pub(crate) struct Namespace {
    pub entries: BTreeMap<String, Entry>,
    pub held: BTreeMap<String, Held>,
    pub digest: NamespaceDigest,
    /// The keys the digest counts, by bucket; built on the first descent (most
    /// workers are never asked one) and maintained from then on.
    index: Option<Index>,
}

impl Namespace {
    /// A namespace from stored parts; `digest` when the caller already built it
    /// over the same view (the authoritative one, see [`Namespace::counted`]).
    pub fn build(
        entries: BTreeMap<String, Entry>,
        held: BTreeMap<String, Held>,
        digest: Option<NamespaceDigest>,
    ) -> Namespace {
        let mut space = Namespace {
            entries,
            held,
            digest: NamespaceDigest::new(),
            index: None,
        };
        space.digest = match digest {
            Some(digest) => digest,
            None => NamespaceDigest::from_items(space.counted_leaves(), |_, _| {}),
        };
        space
    }

    /// The hash the digest counts for `key`: a held key counts with the
    /// controller's value (which the worker refused), so a worker that is right
    /// except for the NACKs it reported agrees with the controller.
    pub fn counted(&self, key: &str) -> Option<Hash> {
        match self.held.get(key) {
            Some(held) => held.refused,
            None => self.entries.get(key).map(|e| *e.leaf()),
        }
    }

    fn counted_leaves(&self) -> impl Iterator<Item = (&str, &Hash)> {
        let stored = self
            .entries
            .iter()
            .filter_map(|(key, entry)| match self.held.get(key) {
                Some(held) => held.refused.as_ref().map(|h| (key.as_str(), h)),
                None => Some((key.as_str(), entry.leaf())),
            });
        let held_only = self
            .held
            .iter()
            .filter(|(key, _)| !self.entries.contains_key(*key))
            .filter_map(|(key, held)| held.refused.as_ref().map(|h| (key.as_str(), h)));
        stored.chain(held_only)
    }

    /// Sets (Some) or removes (None) `key`'s entry; returns the previous one.
    pub fn store(&mut self, key: &str, entry: Option<Entry>) -> Option<Entry> {
        let old = self.counted(key);
        let previous = match entry {
            Some(entry) => self.entries.insert(key.to_owned(), entry),
            None => self.entries.remove(key),
        };
        self.recount(key, old);
        previous
    }

    /// Holds (Some) or releases (None) `key`; returns the previous record.
    pub fn hold(&mut self, key: &str, held: Option<Held>) -> Option<Held> {
        let old = self.counted(key);
        let previous = match held {
            Some(held) => self.held.insert(key.to_owned(), held),
            None => self.held.remove(key),
        };
        self.recount(key, old);
        previous
    }

    /// `key` was counted with `old`: bring the digest and the index up to date.
    fn recount(&mut self, key: &str, old: Option<Hash>) {
        let new = self.counted(key);
        if old == new {
            return;
        }
        let bucket = bucket_of(key); // hashed once, for the digest and the index
        self.digest
            .update_in_bucket(key, bucket, old.as_ref(), new.as_ref());
        if let Some(index) = &mut self.index {
            match (old, new) {
                (None, Some(_)) => index.entry(bucket).or_default().push(key.to_owned()),
                (Some(_), None) => {
                    if let Some(keys) = index.get_mut(&bucket)
                        && let Some(at) = keys.iter().position(|k| k == key)
                    {
                        keys.swap_remove(at);
                    }
                }
                _ => {}
            }
        }
    }

    /// The (key, counted hash) pairs whose position starts with `nibbles`.
    pub fn leaves(&mut self, nibbles: &[u8]) -> Vec<(String, Hash)> {
        if self.index.is_none() {
            let mut index = Index::new();
            for (key, _) in self.counted_leaves() {
                index.entry(bucket_of(key)).or_default().push(key.to_owned());
            }
            self.index = Some(index);
        }
        let index = self.index.as_ref().expect("built above");
        // The buckets under the prefix: one for 4 nibbles and more, 16^(4-n) for fewer.
        let fixed = nibbles
            .iter()
            .take(4)
            .fold(0u32, |acc, n| acc << 4 | u32::from(*n));
        let free = 4 - nibbles.len().min(4);
        let first = fixed << (4 * free);
        let last = first + (1 << (4 * free)) - 1;
        let mut found = Vec::new();
        for bucket in first..=last {
            let Some(keys) = u16::try_from(bucket).ok().and_then(|b| index.get(&b)) else {
                continue;
            };
            for key in keys {
                if nibbles.len() <= 4 || starts_with(&position(key), nibbles) {
                    let hash = self.counted(key).expect("the index holds counted keys");
                    found.push((key.clone(), hash));
                }
            }
        }
        found
    }
}

fn starts_with(hash: &Hash, nibbles: &[u8]) -> bool {
    nibbles.iter().enumerate().all(|(i, n)| {
        let byte = hash[i / 2];
        let nibble = if i % 2 == 0 { byte >> 4 } else { byte & 0x0f };
        nibble == *n
    })
}

/// Parses a hex prefix of at most 64 nibbles (either case) into nibble values.
pub(crate) fn nibbles(prefix: &str) -> Option<Vec<u8>> {
    if prefix.len() > 64 {
        return None;
    }
    prefix.chars().map(|c| c.to_digit(16).map(|d| d as u8)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(value: &str) -> Entry {
        Entry::new(value.as_bytes().to_vec(), 1, 1, 1)
    }

    #[test]
    fn store_and_hold_undo_exactly() {
        let mut space = Namespace::default();
        space.leaves(&[]); // maintain the index from the start
        let empty = space.digest.root();
        let previous = space.store("a", Some(entry("1")));
        assert_eq!(previous, None);
        let one = space.digest.root();
        let refused = Held {
            rev: 2,
            reason: "no".into(),
            refused: None,
        };
        assert_eq!(space.hold("a", Some(refused.clone())), None);
        assert_eq!(space.digest.count(), 0, "a held delete is not counted");
        assert!(space.leaves(&[]).is_empty());
        assert_eq!(space.hold("a", None), Some(refused));
        assert_eq!(space.digest.root(), one);
        assert_eq!(space.leaves(&[]).len(), 1);
        space.store("a", previous);
        assert_eq!(space.digest.root(), empty);
        assert!(space.leaves(&[]).is_empty());
    }

    #[test]
    fn nibbles_parse_hex_only() {
        assert_eq!(nibbles("0aF"), Some(vec![0, 10, 15]));
        assert_eq!(nibbles(""), Some(vec![]));
        assert_eq!(nibbles("xz"), None);
        assert_eq!(nibbles(&"0".repeat(65)), None);
    }
}
