//! The last-write-wins map: storage, stamped writes, reads and the state join.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, Hash};

use hashbrown::DefaultHashBuilder;
use hashbrown::HashTable;

use crate::{Entry, Hlc, NodeId, Stamp, VersionVector};

/// What one incoming entry did to the map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The key was not present; the entry was added.
    Inserted,
    /// The entry beat the one present and replaced it.
    Replaced,
    /// The entry was already present, or lost to the one present; nothing
    /// changed.
    Unchanged,
}

/// Counts of what a merge or delta application did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Entries for keys not present before.
    pub inserted: usize,
    /// Entries that superseded a present, older entry.
    pub replaced: usize,
    /// Entries already known, or older than what was present: no change.
    pub unchanged: usize,
}

impl ApplyReport {
    pub(crate) fn record(&mut self, applied: Applied) {
        match applied {
            Applied::Inserted => self.inserted += 1,
            Applied::Replaced => self.replaced += 1,
            Applied::Unchanged => self.unchanged += 1,
        }
    }

    /// Entries that changed the map.
    pub fn changed(&self) -> usize {
        self.inserted + self.replaced
    }
}

/// Where one key lives: its slot holds the key and its winning entry.
#[derive(Clone, Debug)]
pub(crate) struct Slot<K, V> {
    pub(crate) key: K,
    pub(crate) entry: Entry<V>,
}

/// Slot positions ordered by stamp, per origin: the index that lets a delta
/// cost what it carries rather than what the map holds.
pub(crate) type OriginIndex = BTreeMap<NodeId, BTreeSet<(Hlc, u32)>>;

/// A last-write-wins map from keys to values, with tombstones for deletes, a
/// version vector, and deltas that carry only what a peer lacks.
///
/// Every key holds the greatest [`Entry`] written to it. [`merge`](Self::merge)
/// is the state join: commutative, associative and idempotent for any two
/// maps. Writes are stamped by the caller; [`Replica`](crate::Replica) pairs a
/// map with a clock and stamps them for you.
///
/// Reads see live values only; tombstones stay until
/// [`purge_tombstones`](Self::purge_tombstones) drops those every member has
/// seen.
#[derive(Clone, Debug)]
pub struct LwwMap<K, V> {
    /// Keys and entries, densely packed; `table` and the indexes refer to
    /// positions here, which stay put except when a purge moves the last slot.
    pub(crate) slots: Vec<Slot<K, V>>,
    table: HashTable<u32>,
    hasher: DefaultHashBuilder,
    /// Every slot, by the stamp of its entry.
    pub(crate) by_origin: OriginIndex,
    /// Tombstone slots only, by stamp, so a purge visits only what it drops.
    pub(crate) tombstones: OriginIndex,
    pub(crate) version_vector: VersionVector,
}

impl<K, V> Default for LwwMap<K, V> {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            table: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            by_origin: BTreeMap::new(),
            tombstones: BTreeMap::new(),
            version_vector: VersionVector::new(),
        }
    }
}

impl<K, V> LwwMap<K, V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Live keys (tombstones not counted).
    pub fn len(&self) -> usize {
        self.slots.len() - self.tombstone_count()
    }

    /// Whether no key has a live value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Tombstones held.
    pub fn tombstone_count(&self) -> usize {
        self.tombstones.values().map(BTreeSet::len).sum()
    }

    /// Entries held, tombstones included.
    pub fn entry_count(&self) -> usize {
        self.slots.len()
    }

    /// How far this map accounts for each origin's writes.
    pub fn version_vector(&self) -> &VersionVector {
        &self.version_vector
    }

    /// Live keys and values, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.slots
            .iter()
            .filter_map(|slot| slot.entry.value.as_ref().map(|value| (&slot.key, value)))
    }

    /// Every key with its entry, tombstones included, in no particular order.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = (&K, &Entry<V>)> {
        self.slots.iter().map(|slot| (&slot.key, &slot.entry))
    }
}

impl<K, V> LwwMap<K, V>
where
    K: Hash + Eq + Clone,
    V: Ord + Clone,
{
    /// The live value of `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get_entry(key).and_then(|entry| entry.value.as_ref())
    }

    /// The entry of `key`, tombstone included, with its stamp.
    pub fn get_entry<Q>(&self, key: &Q) -> Option<&Entry<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.find(key)
            .map(|index| &self.slots[index as usize].entry)
    }

    /// Whether `key` has a live value.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get(key).is_some()
    }

    /// Records a write of `value` to `key` by `stamp.origin`.
    ///
    /// Also raises the version vector for that origin to the stamp, which
    /// claims the origin's earlier writes are accounted for: call it in stamp
    /// order for each origin, as its own writer does.
    pub fn put(&mut self, key: K, value: V, stamp: Stamp) -> Applied {
        self.insert(key, Entry::value(stamp, value))
    }

    /// Records a delete of `key` by `stamp.origin`, as a tombstone that wins
    /// over every older write. See [`put`](Self::put) for the vector.
    pub fn delete(&mut self, key: K, stamp: Stamp) -> Applied {
        self.insert(key, Entry::tombstone(stamp))
    }

    /// Records a write or delete; see [`put`](Self::put).
    pub fn insert(&mut self, key: K, entry: Entry<V>) -> Applied {
        self.version_vector
            .advance(entry.stamp.origin, entry.stamp.hlc);
        self.upsert(key, entry)
    }

    /// The state join: afterwards this map holds, for every key, the greater
    /// of the two entries, and the pointwise maximum of the two vectors.
    pub fn merge(&mut self, other: &LwwMap<K, V>) -> ApplyReport {
        let mut report = ApplyReport::default();
        for slot in &other.slots {
            report.record(self.upsert(slot.key.clone(), slot.entry.clone()));
        }
        self.version_vector.merge(&other.version_vector);
        report
    }

    /// Drops the tombstones whose stamps `stable` covers; returns how many.
    ///
    /// `stable` must be a frontier every member has reached (the meet of
    /// their version vectors): a tombstone dropped before that could let an
    /// older value come back from a member that never saw the delete. Reads
    /// and the version vector are unchanged.
    pub fn purge_tombstones(&mut self, stable: &VersionVector) -> usize {
        let mut doomed: Vec<u32> = Vec::new();
        for (origin, frontier) in stable.iter() {
            if let Some(set) = self.tombstones.get(&origin) {
                doomed.extend(set.range(..=(frontier, u32::MAX)).map(|&(_, index)| index));
            }
        }
        // Highest position first: removing one moves the last slot into its
        // place, and every position still to remove is lower than both.
        doomed.sort_unstable_by(|a, b| b.cmp(a));
        for &index in &doomed {
            self.remove_slot(index);
        }
        doomed.len()
    }

    /// Inserts or replaces `key`'s entry if `entry` is greater, keeping the
    /// indexes in step. The version vector is the caller's business.
    pub(crate) fn upsert(&mut self, key: K, entry: Entry<V>) -> Applied {
        match self.find(&key) {
            Some(index) => {
                let slot = &mut self.slots[index as usize];
                if entry <= slot.entry {
                    return Applied::Unchanged;
                }
                let old = std::mem::replace(&mut slot.entry, entry);
                let new_stamp = slot.entry.stamp;
                let new_is_tombstone = slot.entry.is_tombstone();
                unindex(&mut self.by_origin, old.stamp, index);
                if old.is_tombstone() {
                    unindex(&mut self.tombstones, old.stamp, index);
                }
                index_at(&mut self.by_origin, new_stamp, index);
                if new_is_tombstone {
                    index_at(&mut self.tombstones, new_stamp, index);
                }
                Applied::Replaced
            }
            None => {
                let index = u32::try_from(self.slots.len())
                    .expect("an LwwMap holds at most u32::MAX entries");
                let hash = self.hasher.hash_one(&key);
                let Self {
                    table,
                    slots,
                    hasher,
                    ..
                } = self;
                table.insert_unique(hash, index, |&i| hasher.hash_one(&slots[i as usize].key));
                index_at(&mut self.by_origin, entry.stamp, index);
                if entry.is_tombstone() {
                    index_at(&mut self.tombstones, entry.stamp, index);
                }
                self.slots.push(Slot { key, entry });
                Applied::Inserted
            }
        }
    }

    fn find<Q>(&self, key: &Q) -> Option<u32>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        self.table
            .find(hash, |&i| self.slots[i as usize].key.borrow() == key)
            .copied()
    }

    /// Removes the slot at `index`, moving the last slot into its place.
    fn remove_slot(&mut self, index: u32) {
        let hash = self.hasher.hash_one(&self.slots[index as usize].key);
        if let Ok(found) = self.table.find_entry(hash, |&i| i == index) {
            found.remove();
        }
        let removed = self.slots.swap_remove(index as usize);
        unindex(&mut self.by_origin, removed.entry.stamp, index);
        if removed.entry.is_tombstone() {
            unindex(&mut self.tombstones, removed.entry.stamp, index);
        }
        let last = self.slots.len() as u32;
        if index == last {
            return;
        }
        // The former last slot now lives at `index`: repoint everything that
        // referred to it.
        let moved = &self.slots[index as usize];
        let hash = self.hasher.hash_one(&moved.key);
        if let Some(position) = self.table.find_mut(hash, |&i| i == last) {
            *position = index;
        }
        let stamp = moved.entry.stamp;
        let is_tombstone = moved.entry.is_tombstone();
        unindex(&mut self.by_origin, stamp, last);
        index_at(&mut self.by_origin, stamp, index);
        if is_tombstone {
            unindex(&mut self.tombstones, stamp, last);
            index_at(&mut self.tombstones, stamp, index);
        }
    }
}

fn index_at(index: &mut OriginIndex, stamp: Stamp, position: u32) {
    index
        .entry(stamp.origin)
        .or_default()
        .insert((stamp.hlc, position));
}

fn unindex(index: &mut OriginIndex, stamp: Stamp, position: u32) {
    if let Some(set) = index.get_mut(&stamp.origin) {
        set.remove(&(stamp.hlc, position));
        if set.is_empty() {
            index.remove(&stamp.origin);
        }
    }
}

impl<K, V> PartialEq for LwwMap<K, V>
where
    K: Hash + Eq + Clone,
    V: Ord + Clone,
{
    /// Equal when both hold the same entries (tombstones included) and the
    /// same version vector, whatever order they were written in.
    fn eq(&self, other: &Self) -> bool {
        self.slots.len() == other.slots.len()
            && self.version_vector == other.version_vector
            && self
                .slots
                .iter()
                .all(|slot| other.get_entry(&slot.key) == Some(&slot.entry))
    }
}

impl<K, V> Eq for LwwMap<K, V>
where
    K: Hash + Eq + Clone,
    V: Ord + Clone,
{
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(hlc: u64, origin: u64) -> Stamp {
        Stamp::new(Hlc::from_u64(hlc), NodeId::new(origin))
    }

    fn map(writes: &[(&str, Option<&str>, u64, u64)]) -> LwwMap<String, String> {
        let mut map = LwwMap::new();
        for &(key, value, hlc, origin) in writes {
            let entry = Entry {
                stamp: stamp(hlc, origin),
                value: value.map(str::to_owned),
            };
            map.insert(key.to_owned(), entry);
        }
        map
    }

    #[test]
    fn later_write_wins_and_delete_hides() {
        let mut m = map(&[("a", Some("1"), 1, 1), ("a", Some("2"), 2, 2)]);
        assert_eq!(m.get("a").map(String::as_str), Some("2"));
        assert_eq!(
            m.put("a".into(), "0".into(), stamp(1, 3)),
            Applied::Unchanged
        );
        assert_eq!(m.delete("a".into(), stamp(3, 1)), Applied::Replaced);
        assert_eq!(m.get("a"), None);
        assert_eq!((m.len(), m.tombstone_count(), m.entry_count()), (0, 1, 1));
    }

    #[test]
    fn purge_drops_only_covered_tombstones_and_keeps_indexes_right() {
        let mut m = map(&[
            ("a", None, 1, 1),
            ("b", Some("x"), 2, 1),
            ("c", None, 3, 2),
            ("d", None, 9, 1),
            ("e", Some("y"), 4, 2),
        ]);
        let stable: VersionVector = [
            (NodeId::new(1), Hlc::from_u64(5)),
            (NodeId::new(2), Hlc::from_u64(5)),
        ]
        .into_iter()
        .collect();
        assert_eq!(m.purge_tombstones(&stable), 2);
        assert_eq!(m.get_entry("a"), None);
        assert_eq!(m.get_entry("c"), None);
        assert!(m.get_entry("d").is_some_and(Entry::is_tombstone));
        assert_eq!(m.get("b").map(String::as_str), Some("x"));
        assert_eq!(m.get("e").map(String::as_str), Some("y"));
        assert_eq!((m.len(), m.tombstone_count()), (2, 1));
        // Every index entry points at a slot holding that stamp.
        for (origin, set) in &m.by_origin {
            for &(hlc, index) in set {
                assert_eq!(
                    m.slots[index as usize].entry.stamp,
                    Stamp::new(hlc, *origin)
                );
            }
        }
        assert_eq!(m.by_origin.values().map(BTreeSet::len).sum::<usize>(), 3);
    }

    #[test]
    fn equality_ignores_write_order() {
        let a = map(&[("a", Some("1"), 1, 1), ("b", None, 2, 1)]);
        let b = map(&[("b", None, 2, 1), ("a", Some("1"), 1, 1)]);
        assert_eq!(a, b);
        assert_ne!(a, map(&[("a", Some("1"), 1, 1)]));
    }
}
