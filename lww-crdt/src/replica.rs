//! A replica: a map, the id it writes under and the clock that stamps its
//! writes.

use std::borrow::Borrow;
use std::hash::Hash;

use crate::{
    ApplyReport, Budget, ClockError, Delta, EncodedLen, Entry, HybridClock, LwwMap, NodeId,
    PhysicalClock, Stamp, SystemClock, VersionVector,
};

/// One node's copy of the map, writing under its own id with its own hybrid
/// clock.
///
/// Writes get stamps that are strictly increasing and later than every stamp
/// this replica has seen, so a write always wins over what its writer could
/// read. Remote state passes the clock's offset check before anything of it
/// is applied: a delta ([`apply`](Self::apply)), a peer's state
/// ([`merge`](Self::merge)) or a map to start from
/// ([`with_map`](Self::with_map)). Only [`resume`](Self::resume), for a
/// state this replica saved itself, skips it.
///
/// A replica is not `Clone`: a copy would write under the same id with the
/// same stamps as the original, and replicas holding different values under
/// one stamp never converge. Copy its [`map`](Self::map) instead, and start
/// a replica with an id of its own from it.
///
/// ```compile_fail
/// fn copyable<T: Clone>() {}
/// copyable::<lww_crdt::Replica>();
/// ```
#[derive(Debug)]
pub struct Replica<K = String, V = String, C = SystemClock> {
    id: NodeId,
    clock: HybridClock<C>,
    map: LwwMap<K, V>,
}

impl<K, V, C> Replica<K, V, C>
where
    K: Hash + Eq + Clone,
    V: Ord + Clone,
    C: PhysicalClock,
{
    /// An empty replica writing as `id`.
    pub fn new(id: NodeId, clock: HybridClock<C>) -> Self {
        Self::resume(id, clock, LwwMap::new())
    }

    /// A replica starting from `map`, from anywhere (a peer's snapshot, a
    /// decoded file): its stamps pass the clock's offset check, as a peer's
    /// state does in [`merge`](Self::merge), and the clock moves past every
    /// one of them, so a write wins over every value the map can read.
    ///
    /// `id` must be this replica's alone, and must not have written before
    /// except into `map` (see [`resume`](Self::resume)).
    ///
    /// # Errors
    /// [`ClockError::TooFarAhead`] if a stamp in the map lies further ahead
    /// of local time than the clock allows; nothing is built then.
    pub fn with_map(
        id: NodeId,
        mut clock: HybridClock<C>,
        map: LwwMap<K, V>,
    ) -> Result<Self, ClockError> {
        if let Some(newest) = newest_stamp(&map) {
            clock.observe(newest)?;
        }
        Ok(Self { id, clock, map })
    }

    /// A replica resuming from `map`, a state this id saved itself: the
    /// clock moves past every stamp the map holds, its own and its peers',
    /// without the offset check (they passed it when they arrived, and
    /// local time may have gone backwards since), so no stamp is reused.
    ///
    /// A map from anywhere else goes through [`with_map`](Self::with_map):
    /// a stamp near the end of time here leaves a clock that refuses every
    /// write with [`ClockError::Exhausted`].
    pub fn resume(id: NodeId, mut clock: HybridClock<C>, map: LwwMap<K, V>) -> Self {
        if let Some(newest) = newest_stamp(&map) {
            clock.advance_to(newest);
        }
        Self { id, clock, map }
    }

    /// The id this replica writes under.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The replica's clock.
    pub fn clock(&self) -> &HybridClock<C> {
        &self.clock
    }

    /// The replica's map.
    pub fn map(&self) -> &LwwMap<K, V> {
        &self.map
    }

    /// Keeps the map's [`weight`](LwwMap::weight) by `weigher` from now on
    /// (see [`LwwMap::weigh_with`]).
    pub fn weigh_with(&mut self, weigher: crate::Weigher<K, V>) {
        self.map.weigh_with(weigher);
    }

    /// Writes `value` to `key` with a fresh stamp, which it returns.
    ///
    /// # Errors
    /// [`ClockError::Exhausted`] if the clock cannot issue a stamp greater
    /// than every one before; nothing is written then.
    pub fn put(&mut self, key: impl Into<K>, value: impl Into<V>) -> Result<Stamp, ClockError> {
        let stamp = self.next_stamp()?;
        self.map.put(key.into(), value.into(), stamp);
        Ok(stamp)
    }

    /// Deletes `key` with a fresh stamp, which it returns. The tombstone is
    /// written even if the key is absent here, so that it wins over a
    /// concurrent write elsewhere.
    ///
    /// # Errors
    /// As [`put`](Self::put).
    pub fn delete(&mut self, key: impl Into<K>) -> Result<Stamp, ClockError> {
        let stamp = self.next_stamp()?;
        self.map.delete(key.into(), stamp);
        Ok(stamp)
    }

    /// The live value of `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(key)
    }

    /// The entry of `key`, tombstone included.
    pub fn get_entry<Q>(&self, key: &Q) -> Option<&Entry<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get_entry(key)
    }

    /// How far this replica accounts for each origin's writes.
    pub fn version_vector(&self) -> &VersionVector {
        self.map.version_vector()
    }

    /// Applies a peer's delta; see [`LwwMap::apply`].
    ///
    /// # Errors
    /// [`ClockError::TooFarAhead`] if any timestamp in the delta is further
    /// ahead of local time than the clock allows; nothing is applied then.
    pub fn apply(&mut self, delta: Delta<K, V>) -> Result<ApplyReport, ClockError> {
        self.clock.observe(delta.max_hlc())?;
        Ok(self.map.apply(delta))
    }

    /// Applies a peer's delta, handing back the part it could not take yet;
    /// see [`LwwMap::apply_or_defer`].
    ///
    /// # Errors
    /// As for [`apply`](Self::apply); nothing is applied then.
    pub fn apply_or_defer(
        &mut self,
        delta: Delta<K, V>,
    ) -> Result<(ApplyReport, Option<Delta<K, V>>), ClockError> {
        self.clock.observe(delta.max_hlc())?;
        Ok(self.map.apply_or_defer(delta))
    }

    /// Merges a peer's whole state; see [`LwwMap::merge`].
    ///
    /// # Errors
    /// [`ClockError::TooFarAhead`] as for [`apply`](Self::apply); nothing is
    /// merged then.
    pub fn merge(&mut self, other: &LwwMap<K, V>) -> Result<ApplyReport, ClockError> {
        if let Some(newest) = newest_stamp(other) {
            self.clock.observe(newest)?;
        }
        Ok(self.map.merge(other))
    }

    /// Drops tombstones every member has seen; see
    /// [`LwwMap::purge_tombstones`] for what the caller guarantees.
    pub fn purge_tombstones(&mut self, stable: &VersionVector) -> usize {
        self.map.purge_tombstones(stable)
    }

    /// Drops the tombstones no write can beat any more; see
    /// [`LwwMap::purge_settled_tombstones`], the purge that needs no timing.
    pub fn purge_settled_tombstones(
        &mut self,
        stable: &VersionVector,
        writers: impl IntoIterator<Item = NodeId>,
    ) -> usize {
        self.map.purge_settled_tombstones(stable, writers)
    }

    /// Drops tombstones every member has seen and appends their keys to
    /// `purged`; see [`LwwMap::purge_tombstones_into`].
    pub fn purge_tombstones_into(&mut self, stable: &VersionVector, purged: &mut Vec<K>) -> usize {
        self.map.purge_tombstones_into(stable, purged)
    }

    fn next_stamp(&mut self) -> Result<Stamp, ClockError> {
        Ok(Stamp::new(self.clock.now()?, self.id))
    }
}

/// The greatest timestamp `map` mentions, in an entry or in its vector.
fn newest_stamp<K, V>(map: &LwwMap<K, V>) -> Option<crate::Hlc> {
    map.entries()
        .map(|(_, entry)| entry.stamp.hlc)
        .chain(map.version_vector().iter().map(|(_, hlc)| hlc))
        .max()
}

impl<K, V, C> Replica<K, V, C>
where
    K: Hash + Eq + Clone + EncodedLen,
    V: Ord + Clone + EncodedLen,
    C: PhysicalClock,
{
    /// What a peer with vector `peer` lacks, cut at `budget`; see
    /// [`LwwMap::delta_since`].
    pub fn delta_since(&self, peer: &VersionVector, budget: Budget) -> Delta<K, V> {
        self.map.delta_since(peer, budget)
    }
}
