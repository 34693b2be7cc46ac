//! Tombstone collection and eviction.
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
//! A member down for longer than the eviction time stops holding collection
//! back. If it returns, its first `Syn` is answered with an eviction notice:
//! it drops its state and rejoins empty under a new incarnation, so values
//! whose deletes were collected meanwhile cannot come back through it. Writes
//! only it held are lost then; that is the price of not waiting for it
//! forever.

use lww_crdt::{HybridClock, NodeId, Replica, VersionVector};

use super::{Event, GC_SNAPSHOTS, Node, writer_origin};
use crate::membership::Liveness;
use crate::message::Message;

impl Node {
    /// Takes a snapshot and purges below the newest snapshot that every
    /// member has dominated for a whole GC period.
    pub(super) fn collect_garbage(&mut self) {
        let period = self.ticks / u64::from(self.config.gc_every_ticks);
        let vector = self.version_vector().clone();
        self.snapshots.push_back((period, vector));
        while self.snapshots.len() > GC_SNAPSHOTS {
            self.snapshots.pop_front();
        }
        let stable_now = self.stable_period();
        let purge_at = match (self.stable_before, stable_now) {
            (Some(before), Some(now)) => Some(before.min(now)),
            _ => None,
        };
        self.stable_before = stable_now;
        let Some(purge_at) = purge_at else {
            return;
        };
        let Some((_, stable)) = self.snapshots.iter().rev().find(|(p, _)| *p <= purge_at) else {
            return;
        };
        let stable = stable.clone();
        let purged = self.replica.purge_tombstones(&stable);
        self.metrics.tombstones_purged += purged as u64;
    }

    /// The oldest snapshot period every non-evicted member has reached, or
    /// `None` while some member has reached none.
    fn stable_period(&self) -> Option<u64> {
        let mut stable = u64::MAX;
        for id in self.members.ids() {
            if self.members.liveness(id) == Liveness::Evicted {
                continue;
            }
            stable = stable.min(*self.reached.get(&id)?);
        }
        Some(stable)
    }

    /// Records that `peer` holds at least `vector`: notes the newest snapshot
    /// it dominates.
    pub(super) fn learn_peer_vector(&mut self, peer: NodeId, vector: &VersionVector) {
        let newest = self
            .snapshots
            .iter()
            .rev()
            .find(|(_, snapshot)| snapshot.dominated_by(vector))
            .map(|(period, _)| *period);
        if let Some(period) = newest {
            let reached = self.reached.entry(peer).or_insert(period);
            *reached = (*reached).max(period);
        }
    }

    /// Records that `peer` holds exactly this node's vector, which dominates
    /// every snapshot.
    pub(super) fn peer_matches_us(&mut self, peer: NodeId) {
        if let Some(&(period, _)) = self.snapshots.back() {
            let reached = self.reached.entry(peer).or_insert(period);
            *reached = (*reached).max(period);
        }
    }

    /// Evicts peers down for longer than the eviction time.
    pub(super) fn evict_overdue(&mut self, now_ms: u64) {
        for peer in self.members.overdue(now_ms, self.config.eviction_ms) {
            let incarnation = self.incarnations.get(&peer).copied().unwrap_or(0);
            self.members.evict(peer);
            self.evicted.insert(peer, incarnation);
            self.reached.remove(&peer);
            self.in_flight.remove(&peer);
            self.metrics.members_evicted += 1;
            self.events.push_back(Event::PeerEvicted(peer));
        }
    }

    /// Handles the sender's incarnation: notes it, and refuses a message
    /// from an evicted incarnation (answering a `Syn` with an eviction
    /// notice). A newer incarnation of an evicted peer is welcome again: it
    /// starts empty. Returns whether the message was refused.
    pub(super) fn refuse_evicted(&mut self, from: NodeId, message: &Message) -> bool {
        let incarnation = message.incarnation();
        let known = self.incarnations.entry(from).or_insert(incarnation);
        if incarnation > *known {
            // A new life: what the old one had reached says nothing now.
            *known = incarnation;
            self.reached.remove(&from);
            self.in_flight.remove(&from);
            self.deferred.retain(|held| held.from != from);
            // The new life numbers its exchanges from zero again: a `Syn`
            // of it is not a duplicate of one the old life sent.
            self.answered.retain(|&(initiator, _), _| initiator != from);
        }
        match self.evicted.get(&from) {
            Some(&evicted) if incarnation <= evicted => {
                self.metrics.messages_rejected += 1;
                if let Message::Syn(syn) = message {
                    self.send_empty_syn_ack(from, syn.exchange, 0, true);
                }
                true
            }
            Some(_) => {
                self.evicted.remove(&from);
                false
            }
            None => false,
        }
    }

    /// Notes the time: starts this incarnation's clock, and enters or leaves
    /// the returning state.
    pub(super) fn note_time(&mut self, now_ms: u64) {
        self.started_ms.get_or_insert(now_ms);
        let eviction = self.config.eviction_ms;
        match self.returning_since {
            Some(since) if now_ms.saturating_sub(since) >= eviction => {
                self.returning_since = None;
            }
            Some(_) => {}
            None => {
                let silent = self
                    .last_heard_ms
                    .is_some_and(|heard| now_ms.saturating_sub(heard) > eviction);
                if silent && !self.version_vector().is_empty() {
                    self.returning_since = Some(now_ms);
                    self.events.push_back(Event::Returning);
                }
            }
        }
    }

    /// Whether this node can vouch that a returning peer it has not evicted
    /// was not evicted by it: it has run this incarnation for at least the
    /// eviction time and is not returning itself.
    pub(super) fn can_vouch(&self, now_ms: u64) -> bool {
        self.returning_since.is_none()
            && self
                .started_ms
                .is_some_and(|started| now_ms.saturating_sub(started) >= self.config.eviction_ms)
    }

    /// Drops all state and rejoins empty under the next incarnation, keeping
    /// the clock so no stamp goes backwards.
    pub(super) fn rejoin(&mut self) {
        let incarnation = self.config.incarnation.saturating_add(1);
        self.config.incarnation = incarnation;
        let mut clock =
            HybridClock::with_max_offset(self.time.clone(), self.config.max_clock_offset_ms);
        clock.advance_to(self.replica.clock().last());
        self.replica = Replica::new(writer_origin(self.config.id, incarnation), clock);
        self.end_open_exchanges();
        self.outstanding.clear();
        self.answered.clear();
        self.in_flight.clear();
        self.deferred.clear();
        self.known_hashes.clear();
        self.snapshots.clear();
        self.reached.clear();
        self.stable_before = None;
        self.vector_hash = None;
        self.started_ms = None;
        self.returning_since = None;
        self.metrics.rejoins += 1;
        self.events.push_back(Event::Rejoined { incarnation });
    }
}
