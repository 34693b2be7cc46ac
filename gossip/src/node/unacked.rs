//! The client writes of this node that no peer is known to hold yet, for
//! [`Node::oldest_unacknowledged_write`]: how long a write would be lost
//! if this node died now.
//!
//! A peer is known to hold this node's writes up to the frontier its
//! vector shows for this node's origin, learned in exchanges. The pending
//! stamps are kept in a short queue, oldest first; past its capacity, new
//! stamps are not queued, and once the queue drains the oldest pending
//! write is found by scanning the map.

use std::collections::VecDeque;

use lww_crdt::{Hlc, VersionVector};

use super::Node;

/// Pending write stamps kept before falling back to a scan of the map.
const QUEUE_CAPACITY: usize = 1_024;

#[derive(Debug, Default)]
pub(super) struct Unacknowledged {
    /// Stamps of this node's writes past `acknowledged`, oldest first.
    pending: VecDeque<Hlc>,
    /// Writes were left out of `pending` because it was full.
    overflowed: bool,
    /// The newest of this node's writes some peer is known to hold.
    acknowledged: Hlc,
}

impl Unacknowledged {
    /// Notes a client write stamped `hlc`.
    pub(super) fn wrote(&mut self, hlc: Hlc) {
        if self.pending.len() < QUEUE_CAPACITY {
            self.pending.push_back(hlc);
        } else {
            self.overflowed = true;
        }
    }

    /// Notes that a peer holds this node's writes up to `hlc`.
    pub(super) fn acknowledged(&mut self, hlc: Hlc) {
        if hlc <= self.acknowledged {
            return;
        }
        self.acknowledged = hlc;
        while self.pending.front().is_some_and(|&front| front <= hlc) {
            self.pending.pop_front();
        }
    }
}

impl Node {
    /// The stamp of the oldest client write on this node that no peer is
    /// known to hold: the write that would be lost first if this node died
    /// now with no durable copy. `None` when every write of this life is
    /// held by some peer (or there were none). Its
    /// [`physical_ms`](Hlc::physical_ms) is when it was written, in this
    /// node's clock.
    ///
    /// A write overwritten since on this node counts through the write that
    /// replaced it.
    pub fn oldest_unacknowledged_write(&self) -> Option<Hlc> {
        let unacked = &self.unacknowledged;
        if let Some(&oldest) = unacked.pending.front() {
            return Some(oldest);
        }
        if !unacked.overflowed {
            return None;
        }
        let origin = self.origin();
        self.replica
            .map()
            .entries()
            .map(|(_, entry)| entry.stamp)
            .filter(|stamp| stamp.origin == origin && stamp.hlc > unacked.acknowledged)
            .map(|stamp| stamp.hlc)
            .min()
    }

    /// Notes that a peer's vector is at least `vector`.
    pub(super) fn note_acknowledged(&mut self, vector: &VersionVector) {
        let hlc = vector.get(self.origin());
        self.unacknowledged.acknowledged(hlc);
    }

    /// Notes that a peer holds exactly this node's vector.
    pub(super) fn note_all_acknowledged(&mut self) {
        let hlc = self.replica.version_vector().get(self.origin());
        self.unacknowledged.acknowledged(hlc);
    }
}
