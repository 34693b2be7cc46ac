//! Tombstone collection.
//!
//! A tombstone may be dropped once no member can still hold, or be sent, a
//! value it deleted. The node takes a snapshot of its own vector every GC
//! period and notes, per peer, the newest snapshot that peer's vector is
//! known to dominate. Once every member has reached snapshot `s`, every
//! member accounts for every write `s` covers, so `s` lies below the meet of
//! all vectors; memory stays one number per peer and a few snapshots.
//!
//! That is not yet enough: a delta built before a member learned of a
//! delete can still be in flight. Deltas are applied only within their
//! exchange's deadline (see `exchange`), so the node purges below `s` only
//! after `s` has been stable for a whole GC period, which the configuration
//! requires to exceed the exchange timeout.
//!
//! Every member holds collection back, however long it has been down or
//! cut off (unless a retention window is set, past which it expires; see
//! `ConfigBuilder::retention_ms`): a member that missed a delete keeps the value it deleted until it
//! hears of the delete, and if the tombstone were gone by then, nothing could
//! tell that value from a live one. So a partition or an outage of any length
//! heals by ordinary anti-entropy, with nothing dropped and nothing brought
//! back; the price is that tombstones written meanwhile stay until the
//! member returns. (Collecting past a member that stays away, and making it
//! drop its state when it returns, is what splits a cluster for good when
//! both sides of a partition do it to each other; see docs/design.md.)

use std::collections::{HashMap, VecDeque};

use lww_crdt::{NodeId, VersionVector};

use super::Node;
use crate::membership::Liveness;

/// Snapshots of its own vector a node keeps for tombstone collection.
const GC_SNAPSHOTS: usize = 4;

/// What a node keeps for tombstone collection.
#[derive(Debug, Default)]
pub(super) struct Collection {
    /// Snapshots of this node's own vector, one per GC period, oldest
    /// first, with the period they were taken in.
    snapshots: VecDeque<(u64, VersionVector)>,
    /// Per peer, the newest snapshot period its vector is known to dominate.
    reached: HashMap<NodeId, u64>,
    /// The snapshot period found stable at the previous collection: only a
    /// snapshot stable for a whole GC period is purged below.
    stable_before: Option<u64>,
}

impl Node {
    /// Takes a snapshot and purges below the newest snapshot that every
    /// member has dominated for a whole GC period.
    pub(super) fn collect_garbage(&mut self) {
        let period = self.ticks / u64::from(self.config.gc_every_ticks);
        let vector = self.version_vector().clone();
        self.collection.snapshots.push_back((period, vector));
        while self.collection.snapshots.len() > GC_SNAPSHOTS {
            self.collection.snapshots.pop_front();
        }
        let stable_now = self.stable_period();
        let purge_at = match (self.collection.stable_before, stable_now) {
            (Some(before), Some(now)) => Some(before.min(now)),
            _ => None,
        };
        self.collection.stable_before = stable_now;
        let Some(purge_at) = purge_at else {
            return;
        };
        let Some((_, stable)) = self
            .collection
            .snapshots
            .iter()
            .rev()
            .find(|(p, _)| *p <= purge_at)
        else {
            return;
        };
        let stable = stable.clone();
        let purged = if self.changes.is_some() {
            let mut keys = Vec::new();
            let purged = self.replica.purge_tombstones_into(&stable, &mut keys);
            self.note_collected(keys);
            purged
        } else {
            self.replica.purge_tombstones(&stable)
        };
        self.metrics.tombstones_purged += purged as u64;
    }

    /// The oldest snapshot period every member has reached, or `None` while
    /// some member has reached none or there is none. Down members count
    /// like any other: one that returns must find every delete it missed.
    /// Members that left do not: they are gone, and come back only in a new
    /// incarnation that starts over.
    fn stable_period(&self) -> Option<u64> {
        // A node that knows no other member cannot tell who else holds what
        // it deletes: a seed restarted empty, say, before anyone called.
        self.members.ids().next()?;
        let mut stable = u64::MAX;
        for id in self.members.ids() {
            if matches!(
                self.members.liveness(id),
                Liveness::Left | Liveness::Expired
            ) {
                continue;
            }
            stable = stable.min(*self.collection.reached.get(&id)?);
        }
        Some(stable)
    }

    /// Records that `peer` holds at least `vector`: notes the newest snapshot
    /// it dominates.
    pub(super) fn learn_peer_vector(&mut self, peer: NodeId, vector: &VersionVector) {
        self.note_acknowledged(vector);
        let newest = self
            .collection
            .snapshots
            .iter()
            .rev()
            .find(|(_, snapshot)| snapshot.dominated_by(vector))
            .map(|(period, _)| *period);
        if let Some(period) = newest {
            let reached = self.collection.reached.entry(peer).or_insert(period);
            *reached = (*reached).max(period);
        }
    }

    /// Records that `peer` holds exactly this node's vector, which dominates
    /// every snapshot.
    pub(super) fn peer_matches_us(&mut self, peer: NodeId) {
        self.note_all_acknowledged();
        if let Some(&(period, _)) = self.collection.snapshots.back() {
            let reached = self.collection.reached.entry(peer).or_insert(period);
            *reached = (*reached).max(period);
        }
    }

    /// Notes the sender's incarnation. A newer one is a new life of the
    /// member, which starts over: what the old life had reached, the deltas
    /// in flight to it and the parts held from it say nothing now.
    pub(super) fn note_incarnation(&mut self, from: NodeId, incarnation: u32) {
        let known = self.lives.incarnations.entry(from).or_insert(incarnation);
        if incarnation > *known {
            *known = incarnation;
            self.collection.reached.remove(&from);
            self.pipeline.forget_peer(from);
            // The new life numbers its exchanges from zero again: a `Syn`
            // of it is not a duplicate of one the old life sent.
            self.exchanges
                .answered
                .retain(|&(initiator, _), _| initiator != from);
        }
    }
}
