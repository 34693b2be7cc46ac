//! The last-write-wins map: storage, stamped writes, reads and the state join.

use std::borrow::{Borrow, Cow};
use std::collections::BTreeSet;
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
    /// Entries of a delta left out because it started beyond this map's
    /// frontier for some origin: the delta overtook, or followed a lost,
    /// earlier one. A later delta brings them again.
    pub unreached: usize,
    /// Entries left out because they lost to a tombstone this map purged:
    /// for keys it no longer holds, at or below its
    /// [purge frontier](LwwMap::purged_frontier).
    pub purged: usize,
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

/// Slot positions ordered by origin, then timestamp: the index that lets a
/// delta cost what it carries rather than what the map holds. One set for
/// all origins, so an origin costs nothing beyond its entries and its rank.
pub(crate) type OriginIndex = BTreeSet<IndexKey>;

/// One element of an [`OriginIndex`]: a slot's origin (by its [`Ranks`]
/// number), timestamp and position, packed into 128 bits in that order, so
/// that the derived order is by origin, then timestamp, then position, and
/// each origin's entries form one range in stamp order.
///
/// 16 bytes, compared as two `u64`s: a `(NodeId, Hlc, u32)` tuple would take
/// 24 and compare as three.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct IndexKey {
    /// The rank in the high 32 bits, the timestamp's high half in the low.
    high: u64,
    /// The timestamp's low half in the high 32 bits, the position in the low.
    low: u64,
}

impl IndexKey {
    pub(crate) const fn new(rank: u32, hlc: Hlc, position: u32) -> Self {
        let hlc = hlc.as_u64();
        Self {
            high: ((rank as u64) << 32) | (hlc >> 32),
            low: (hlc << 32) | position as u64,
        }
    }

    /// The first key of origin `rank` at or above `hlc`.
    pub(crate) const fn first(rank: u32, hlc: Hlc) -> Self {
        Self::new(rank, hlc, 0)
    }

    /// The last key of origin `rank` at or below `hlc`.
    pub(crate) const fn last(rank: u32, hlc: Hlc) -> Self {
        Self::new(rank, hlc, u32::MAX)
    }

    pub(crate) const fn rank(&self) -> u32 {
        (self.high >> 32) as u32
    }

    pub(crate) const fn hlc(&self) -> Hlc {
        Hlc::from_u64((self.high << 32) | (self.low >> 32))
    }

    pub(crate) const fn position(&self) -> u32 {
        self.low as u32
    }
}

/// One key's place in the hash table: its slot's position and 32 bits of its
/// hash. The hash is kept so that growing the table never reads a key again:
/// a rehash that re-hashed keys would visit every slot and every key's heap
/// bytes in random order, which cost more than all the inserts together.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    position: u32,
    hash: u32,
}

/// The 64-bit hash the table probes with, spread from a bucket's 32 bits so
/// that both the low bits (which pick the group) and the top seven (which
/// filter within it) depend on all of them.
fn probe_hash(hash: u32) -> u64 {
    u64::from(hash).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Dense numbers for the origins the indexes have mentioned, in order of
/// first mention, so that an index element packs into 16 bytes. A rank is
/// never dropped or reused: there is one for every origin this map has held
/// an entry of, about as many as its version vector holds.
#[derive(Clone, Debug, Default)]
pub(crate) struct Ranks {
    /// Rank to origin.
    origins: Vec<NodeId>,
    /// Ranks, keyed by the hash of their origin.
    ranks: HashTable<u32>,
    /// The origin last given or looked up by
    /// [`get_or_insert`](Self::get_or_insert), with its rank: a map written
    /// by one origin at a time finds it without hashing.
    recent: Option<(NodeId, u32)>,
}

impl Ranks {
    /// The rank of `origin`, if it has one.
    pub(crate) fn get(&self, origin: NodeId, hasher: &DefaultHashBuilder) -> Option<u32> {
        match self.recent {
            Some((recent, rank)) if recent == origin => return Some(rank),
            _ => {}
        }
        let hash = hasher.hash_one(origin);
        self.ranks
            .find(hash, |&rank| self.origins[rank as usize] == origin)
            .copied()
    }

    /// The rank of `origin`, given one if it has none yet.
    fn get_or_insert(&mut self, origin: NodeId, hasher: &DefaultHashBuilder) -> u32 {
        let rank = match self.get(origin, hasher) {
            Some(rank) => rank,
            None => {
                let rank = u32::try_from(self.origins.len()).expect("at most u32::MAX origins");
                self.origins.push(origin);
                let origins = &self.origins;
                let hash = hasher.hash_one(origin);
                self.ranks
                    .insert_unique(hash, rank, |&r| hasher.hash_one(origins[r as usize]));
                rank
            }
        };
        self.recent = Some((origin, rank));
        rank
    }

    /// The origin of `rank`.
    fn origin(&self, rank: u32) -> NodeId {
        self.origins[rank as usize]
    }
}

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
    table: HashTable<Bucket>,
    hasher: DefaultHashBuilder,
    /// Every slot, by origin and stamp.
    pub(crate) by_origin: OriginIndex,
    /// The numbers the indexes know origins by.
    ranks: Ranks,
    /// Tombstone slots only, by origin and stamp, so a purge visits only what
    /// it drops.
    pub(crate) tombstones: OriginIndex,
    pub(crate) version_vector: VersionVector,
    /// The join of every frontier tombstones were purged at: an entry at or
    /// below it for a key this map does not hold lost to a purged tombstone.
    pub(crate) purged: VersionVector,
    /// What [`weight`](Self::weight) sums, if the owner asked for it.
    weigher: Option<Weigher<K, V>>,
    weight: u64,
}

/// How much one key and its entry weigh, for [`LwwMap::weigh_with`]: bytes
/// held, say.
pub type Weigher<K, V> = fn(&K, &Entry<V>) -> u64;

impl<K, V> Default for LwwMap<K, V> {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            table: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            by_origin: BTreeSet::new(),
            ranks: Ranks::default(),
            tombstones: BTreeSet::new(),
            version_vector: VersionVector::new(),
            purged: VersionVector::new(),
            weigher: None,
            weight: 0,
        }
    }
}

impl<K, V> LwwMap<K, V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps the sum of `weigher` over every entry (tombstones included),
    /// from now on, as entries come and go: what a quota on the bytes a map
    /// holds needs, at the cost of one call per change. Weighs the entries
    /// held now once.
    pub fn weigh_with(&mut self, weigher: Weigher<K, V>) {
        self.weight = self
            .slots
            .iter()
            .map(|slot| weigher(&slot.key, &slot.entry))
            .sum();
        self.weigher = Some(weigher);
    }

    /// The sum kept since [`weigh_with`](Self::weigh_with); `None` if it was
    /// never called.
    pub fn weight(&self) -> Option<u64> {
        self.weigher.map(|_| self.weight)
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
        self.tombstones.len()
    }

    /// Entries held, tombstones included.
    pub fn entry_count(&self) -> usize {
        self.slots.len()
    }

    /// How far this map accounts for each origin's writes.
    pub fn version_vector(&self) -> &VersionVector {
        &self.version_vector
    }

    /// The join of every frontier tombstones were purged at here: entries
    /// at or below it for keys this map does not hold are refused by
    /// [`merge`](Self::merge) and [`apply`](Self::apply), since they lost
    /// to a purged tombstone.
    pub fn purged_frontier(&self) -> &VersionVector {
        &self.purged
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
    ///
    /// An entry stamped [`Hlc::ZERO`] is not taken ([`Applied::Unchanged`]):
    /// zero is what a version vector holds for an origin it has seen nothing
    /// of, so no delta could ever carry it. Stamps from a
    /// [`HybridClock`](crate::HybridClock) are never zero.
    pub fn insert(&mut self, key: K, entry: Entry<V>) -> Applied {
        if entry.stamp.hlc == Hlc::ZERO {
            return Applied::Unchanged;
        }
        self.version_vector
            .advance(entry.stamp.origin, entry.stamp.hlc);
        self.upsert(key, entry)
    }

    /// The state join: afterwards this map holds, for every key, the greater
    /// of the two entries, and the pointwise maximum of the two vectors.
    ///
    /// Once this map has purged tombstones, an entry of `other` at or below
    /// the [purge frontier](Self::purged_frontier) for a key this map does
    /// not hold is left out (counted in [`ApplyReport::purged`]): it lost to
    /// a purged tombstone, as in a snapshot taken before the purge. The
    /// join's laws hold between maps that never purged, and between any
    /// maps whose purges kept to the rule of
    /// [`purge_tombstones`](Self::purge_tombstones).
    pub fn merge(&mut self, other: &LwwMap<K, V>) -> ApplyReport {
        let mut report = ApplyReport::default();
        for slot in &other.slots {
            if self.is_purged(&slot.key, slot.entry.stamp) {
                report.purged += 1;
                continue;
            }
            // Borrowed: the key and entry are cloned only if they go in.
            report.record(self.upsert_cow(Cow::Borrowed(&slot.key), Cow::Borrowed(&slot.entry)));
        }
        self.version_vector.merge(&other.version_vector);
        self.purged.merge(&other.purged);
        report
    }

    /// Whether an entry stamped `stamp` for `key` lost to a tombstone this
    /// map purged: the key is gone and the purge frontier covers the stamp.
    pub(crate) fn is_purged(&self, key: &K, stamp: Stamp) -> bool {
        !self.purged.is_empty() && self.purged.covers(stamp) && self.find(key).is_none()
    }

    /// Drops the tombstones whose stamps `stable` covers; returns how many.
    /// Reads and the version vector are unchanged, and `stable` joins the
    /// [purge frontier](Self::purged_frontier).
    ///
    /// # What the caller guarantees
    ///
    /// A tombstone beats every older write to its key, from any origin.
    /// Once it is gone, nothing here says those writes are dead, so none of
    /// them may reach this map again:
    ///
    /// - `stable` is a frontier every member has reached (the meet of their
    ///   version vectors), so every member holds the delete; and
    /// - no write the tombstone beats is still on its way to any member: in
    ///   a delta in flight, or made by a writer that has not seen the
    ///   delete yet. The meet does not know this. An origin whose frontier
    ///   in the meet lies below the tombstone's time may still deliver such
    ///   a write: a delta from origin `o` carrying `k = v`, delayed while a
    ///   concurrent, later delete of `k` from another origin reached every
    ///   member and was purged, brings `v` back for good.
    ///
    /// [`purge_settled_tombstones`](Self::purge_settled_tombstones) needs
    /// only the first, at the cost of waiting for every writer to move
    /// past a tombstone. Entries at or below the purge frontier for keys
    /// this map no longer holds are refused by [`merge`](Self::merge) (a
    /// snapshot from before the purge) and [`apply`](Self::apply).
    pub fn purge_tombstones(&mut self, stable: &VersionVector) -> usize {
        self.purge(stable, None)
    }

    /// Drops the tombstones no write can beat any more, given `stable`, the
    /// meet of the version vectors of every member, and `writers`, every id
    /// that writes (has written or will write) to any member: those older
    /// than the oldest frontier of any writer in `stable`, and covered by
    /// it. Each writer has been seen by every member past the tombstone's
    /// time, so every write it made before it (writes of one origin come in
    /// stamp order) has reached every member, and every write it makes
    /// from now on is later. Returns how many it dropped.
    ///
    /// Safe alongside deltas delayed, duplicated or reordered, and merges of
    /// old snapshots, without any timing. A writer that stops writing holds
    /// collection back for good; leave it out of `writers` only once every
    /// member has seen its last write.
    pub fn purge_settled_tombstones(
        &mut self,
        stable: &VersionVector,
        writers: impl IntoIterator<Item = NodeId>,
    ) -> usize {
        let settled = writers
            .into_iter()
            .map(|writer| stable.get(writer))
            .min()
            .unwrap_or(Hlc::ZERO);
        let cut: VersionVector = stable
            .iter()
            .map(|(origin, frontier)| (origin, frontier.min(settled)))
            .collect();
        self.purge(&cut, None)
    }

    /// As [`purge_tombstones`](Self::purge_tombstones), and appends the keys
    /// of the dropped tombstones to `purged`: for a caller that keeps a
    /// durable copy of the map and must drop them there too.
    pub fn purge_tombstones_into(&mut self, stable: &VersionVector, purged: &mut Vec<K>) -> usize {
        self.purge(stable, Some(purged))
    }

    fn purge(&mut self, stable: &VersionVector, mut purged: Option<&mut Vec<K>>) -> usize {
        // No tombstone here lies beyond this map's own vector.
        let frontier = VersionVector::meet([stable, &self.version_vector]);
        self.purged.merge(&frontier);
        // Whichever is shorter: scan every tombstone, or range over each
        // origin of `stable`. Either way a tombstone goes if `stable` holds
        // its origin at or above its stamp.
        let mut doomed: Vec<u32> = if self.tombstones.len() <= stable.len() {
            self.tombstones
                .iter()
                .filter(|key| {
                    let frontier = stable.get(self.ranks.origin(key.rank()));
                    frontier > Hlc::ZERO && key.hlc() <= frontier
                })
                .map(IndexKey::position)
                .collect()
        } else {
            stable
                .iter()
                .filter_map(|(origin, frontier)| {
                    let rank = self.ranks.get(origin, &self.hasher)?;
                    Some(IndexKey::first(rank, Hlc::ZERO)..=IndexKey::last(rank, frontier))
                })
                .flat_map(|range| self.tombstones.range(range).map(IndexKey::position))
                .collect()
        };
        // Highest position first: removing one moves the last slot into its
        // place, and every position still to remove is lower than both.
        doomed.sort_unstable_by(|a, b| b.cmp(a));
        for &index in &doomed {
            if let Some(purged) = purged.as_mut() {
                purged.push(self.slots[index as usize].key.clone());
            }
            self.remove_slot(index);
        }
        doomed.len()
    }

    /// Inserts or replaces `key`'s entry if `entry` is greater, keeping the
    /// indexes in step. The version vector is the caller's business.
    pub(crate) fn upsert(&mut self, key: K, entry: Entry<V>) -> Applied {
        self.upsert_cow(Cow::Owned(key), Cow::Owned(entry))
    }

    /// [`upsert`](Self::upsert) for a key and entry that may be borrowed:
    /// they are cloned only if they go in (the key only if it is new). The
    /// key is hashed once.
    fn upsert_cow(&mut self, key: Cow<'_, K>, entry: Cow<'_, Entry<V>>) -> Applied {
        let hash = self.key_hash(&*key);
        match self.find_hashed(&*key, hash) {
            Some(index) => {
                let slot = &mut self.slots[index as usize];
                if *entry <= slot.entry {
                    return Applied::Unchanged;
                }
                let old = std::mem::replace(&mut slot.entry, entry.into_owned());
                if let Some(weigh) = self.weigher {
                    self.weight =
                        self.weight - weigh(&slot.key, &old) + weigh(&slot.key, &slot.entry);
                }
                let new_stamp = slot.entry.stamp;
                let new_is_tombstone = slot.entry.is_tombstone();
                self.unindex(old.stamp, old.is_tombstone(), index);
                self.index(new_stamp, new_is_tombstone, index);
                Applied::Replaced
            }
            None => {
                let position = u32::try_from(self.slots.len())
                    .expect("an LwwMap holds at most u32::MAX entries");
                self.table
                    .insert_unique(probe_hash(hash), Bucket { position, hash }, |bucket| {
                        probe_hash(bucket.hash)
                    });
                self.index(entry.stamp, entry.is_tombstone(), position);
                if let Some(weigh) = self.weigher {
                    self.weight += weigh(&key, &entry);
                }
                self.slots.push(Slot {
                    key: key.into_owned(),
                    entry: entry.into_owned(),
                });
                Applied::Inserted
            }
        }
    }

    /// The 32 bits of `key`'s hash that its [`Bucket`] keeps.
    fn key_hash<Q: Hash + ?Sized>(&self, key: &Q) -> u32 {
        let hash = self.hasher.hash_one(key);
        (hash ^ (hash >> 32)) as u32
    }

    fn find<Q>(&self, key: &Q) -> Option<u32>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.find_hashed(key, self.key_hash(key))
    }

    fn find_hashed<Q>(&self, key: &Q, hash: u32) -> Option<u32>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.table
            .find(probe_hash(hash), |bucket| {
                bucket.hash == hash && self.slots[bucket.position as usize].key.borrow() == key
            })
            .map(|bucket| bucket.position)
    }

    /// Removes the slot at `index`, moving the last slot into its place.
    fn remove_slot(&mut self, index: u32) {
        let hash = self.key_hash(&self.slots[index as usize].key);
        if let Ok(found) = self
            .table
            .find_entry(probe_hash(hash), |bucket| bucket.position == index)
        {
            found.remove();
        }
        let removed = self.slots.swap_remove(index as usize);
        if let Some(weigh) = self.weigher {
            self.weight -= weigh(&removed.key, &removed.entry);
        }
        self.unindex(removed.entry.stamp, removed.entry.is_tombstone(), index);
        let last = self.slots.len() as u32;
        if index == last {
            return;
        }
        // The former last slot now lives at `index`: repoint everything that
        // referred to it.
        let moved = &self.slots[index as usize];
        let hash = self.key_hash(&moved.key);
        if let Some(bucket) = self
            .table
            .find_mut(probe_hash(hash), |bucket| bucket.position == last)
        {
            bucket.position = index;
        }
        let stamp = moved.entry.stamp;
        let is_tombstone = moved.entry.is_tombstone();
        self.unindex(stamp, is_tombstone, last);
        self.index(stamp, is_tombstone, index);
    }
}

impl<K, V> LwwMap<K, V> {
    /// The rank the indexes know `origin` by, if they have mentioned it.
    pub(crate) fn rank(&self, origin: NodeId) -> Option<u32> {
        self.ranks.get(origin, &self.hasher)
    }

    /// Indexes the slot at `position`, holding an entry stamped `stamp`.
    fn index(&mut self, stamp: Stamp, is_tombstone: bool, position: u32) {
        let rank = self.ranks.get_or_insert(stamp.origin, &self.hasher);
        let key = IndexKey::new(rank, stamp.hlc, position);
        self.by_origin.insert(key);
        if is_tombstone {
            self.tombstones.insert(key);
        }
    }

    /// Undoes [`index`](Self::index).
    fn unindex(&mut self, stamp: Stamp, is_tombstone: bool, position: u32) {
        if let Some(rank) = self.ranks.get(stamp.origin, &self.hasher) {
            let key = IndexKey::new(rank, stamp.hlc, position);
            self.by_origin.remove(&key);
            if is_tombstone {
                self.tombstones.remove(&key);
            }
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

    #[expect(clippy::ptr_arg, reason = "a Weigher of String keys takes &String")]
    fn bytes(key: &String, entry: &Entry<String>) -> u64 {
        (key.len() + entry.value.as_ref().map_or(0, String::len)) as u64
    }

    fn recount(map: &LwwMap<String, String>) -> u64 {
        map.entries().map(|(key, entry)| bytes(key, entry)).sum()
    }

    #[test]
    fn the_weight_follows_every_change() {
        let mut m = map(&[("a", Some("12345"), 1, 1), ("bb", None, 1, 2)]);
        assert_eq!(m.weight(), None);
        m.weigh_with(bytes);
        assert_eq!(m.weight(), Some(1 + 5 + 2));
        m.put("a".into(), "1".into(), stamp(2, 1));
        m.put("ccc".into(), "1234".into(), stamp(2, 2));
        m.put("ccc".into(), "older".into(), stamp(1, 2));
        assert_eq!(m.weight(), Some(recount(&m)));
        m.delete("ccc".into(), stamp(3, 2));
        m.merge(&map(&[
            ("d", Some("xy"), 5, 3),
            ("a", Some("long value"), 6, 3),
        ]));
        assert_eq!(m.weight(), Some(recount(&m)));
        let stable = m.version_vector().clone();
        assert_eq!(m.purge_tombstones(&stable), 2);
        assert_eq!(m.weight(), Some(recount(&m)));
        assert_eq!(m.weight(), Some(1 + 10 + 1 + 2));
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
        for key in &m.by_origin {
            let stamp = Stamp::new(key.hlc(), m.ranks.origin(key.rank()));
            assert_eq!(m.slots[key.position() as usize].entry.stamp, stamp);
        }
        assert_eq!(m.by_origin.len(), 3);
        for key in &m.tombstones {
            assert!(m.slots[key.position() as usize].entry.is_tombstone());
        }
    }

    proptest::proptest! {
        #[test]
        fn index_keys_round_trip_and_order_as_their_parts(
            a in (proptest::num::u32::ANY, proptest::num::u64::ANY, proptest::num::u32::ANY),
            b in (proptest::num::u32::ANY, proptest::num::u64::ANY, proptest::num::u32::ANY),
        ) {
            let key = |(rank, hlc, position): (u32, u64, u32)| {
                IndexKey::new(rank, Hlc::from_u64(hlc), position)
            };
            let (ka, kb) = (key(a), key(b));
            proptest::prop_assert_eq!((ka.rank(), ka.hlc().as_u64(), ka.position()), a);
            proptest::prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
        }
    }

    #[test]
    fn ranks_are_dense_and_stable() {
        let hasher = DefaultHashBuilder::default();
        let mut ranks = Ranks::default();
        for round in 0..2 {
            for origin in (0..100u64).map(|o| o * 7919) {
                let rank = ranks.get_or_insert(NodeId::new(origin), &hasher);
                assert_eq!(rank as u64, origin / 7919, "round {round}");
                assert_eq!(ranks.origin(rank), NodeId::new(origin));
                assert_eq!(ranks.get(NodeId::new(origin), &hasher), Some(rank));
            }
        }
        assert_eq!(ranks.get(NodeId::new(1), &hasher), None);
    }

    #[test]
    fn equality_ignores_write_order() {
        let a = map(&[("a", Some("1"), 1, 1), ("b", None, 2, 1)]);
        let b = map(&[("b", None, 2, 1), ("a", Some("1"), 1, 1)]);
        assert_eq!(a, b);
        assert_ne!(a, map(&[("a", Some("1"), 1, 1)]));
    }
}
