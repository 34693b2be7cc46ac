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
/// is applied.
#[derive(Clone, Debug)]
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
        Self::with_map(id, clock, LwwMap::new())
    }

    /// A replica resuming from `map`, a state this id saved earlier: the clock
    /// moves past every stamp the map holds, its own and its peers', so no
    /// stamp is reused and a write wins over every value the map can read.
    ///
    /// The map's entries all lie within its version vector, so the vector's
    /// newest frontier bounds them. The clock advances without the offset
    /// check: these stamps passed it when they arrived.
    pub fn with_map(id: NodeId, mut clock: HybridClock<C>, map: LwwMap<K, V>) -> Self {
        if let Some(newest) = map.version_vector().iter().map(|(_, hlc)| hlc).max() {
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

    /// Gives up the map.
    pub fn into_map(self) -> LwwMap<K, V> {
        self.map
    }

    /// Writes `value` to `key` with a fresh stamp, which it returns.
    pub fn put(&mut self, key: impl Into<K>, value: impl Into<V>) -> Stamp {
        let stamp = self.next_stamp();
        self.map.put(key.into(), value.into(), stamp);
        stamp
    }

    /// Deletes `key` with a fresh stamp, which it returns. The tombstone is
    /// written even if the key is absent here, so that it wins over a
    /// concurrent write elsewhere.
    pub fn delete(&mut self, key: impl Into<K>) -> Stamp {
        let stamp = self.next_stamp();
        self.map.delete(key.into(), stamp);
        stamp
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
        let newest = other
            .entries()
            .map(|(_, entry)| entry.stamp.hlc)
            .chain(other.version_vector().iter().map(|(_, hlc)| hlc))
            .max();
        if let Some(newest) = newest {
            self.clock.observe(newest)?;
        }
        Ok(self.map.merge(other))
    }

    /// Drops tombstones every member has seen; see
    /// [`LwwMap::purge_tombstones`].
    pub fn purge_tombstones(&mut self, stable: &VersionVector) -> usize {
        self.map.purge_tombstones(stable)
    }

    /// Drops tombstones every member has seen and appends their keys to
    /// `purged`; see [`LwwMap::purge_tombstones_into`].
    pub fn purge_tombstones_into(&mut self, stable: &VersionVector, purged: &mut Vec<K>) -> usize {
        self.map.purge_tombstones_into(stable, purged)
    }

    fn next_stamp(&mut self) -> Stamp {
        Stamp::new(self.clock.now(), self.id)
    }
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
