//! Deltas on their way: what this node sent each peer that may still land.
//!
//! Both ends of a pair run exchanges at once, and a node may open the next
//! one before the peer's vector shows the last delta. A delta computed from
//! that vector alone repeats what is already on the wire: in a catch-up,
//! every entry crossed the network about three times. So each delta sent is
//! remembered until it is settled, and the next delta for that peer starts
//! where the unsettled ones end.
//!
//! That is only an optimization: a delta records the frontier it started
//! from ([`Delta::since`](lww_crdt::Delta::since)), and a receiver that has
//! not reached it leaves that part out. If an earlier delta is lost, the
//! later one is wasted, never wrongly applied, and the range is sent again
//! once the lost one is settled.
//!
//! A delta is settled when it has either landed or can no longer land, which
//! the peer's next message in the same exchange, or its next exchange, tells:
//! - in a `SynAck`, by the peer's `Ack` for that exchange if it carries
//!   anything, or a `Syn` of another exchange from it that carries its
//!   vector (which shows what landed) or just a hash (which a node sends
//!   only when no other exchange with that peer is open, so it has finished
//!   the earlier one);
//! - in the initiator's `Ack`, by the responder's final `Ack`, which it
//!   always sends for an `Ack` that carried entries;
//! - in the responder's final `Ack`, by the initiator's next `Syn`, the same
//!   way.
//!
//! A node pulling a cut delta keeps several exchanges open with its peer
//! (see `pull_rest` in `exchange`); their `Syn`s carry vectors, so each
//! settles exactly what landed.
//!
//! Lost messages leave a delta unsettled until one exchange timeout after
//! it was sent, when the peer has surely dropped it; so do a peer's vector
//! that shows it and a new incarnation of the peer.
//!
//! On the receiving side, separate streams may deliver a delta before the
//! one it follows. The part left out is held, a few at most, and applied as
//! soon as the vector reaches its start, but never after the deadline of
//! the exchange that brought it: a late delta is dropped whichever way it
//! arrives (see `exchange`).

use lww_crdt::{Budget, NodeId, VersionVector};

/// Received parts held per peer at most: each is at most one message.
const MAX_DEFERRED: usize = 4;

/// Unsettled deltas per peer at most: past that, a node sends the peer no
/// more entries until some settle, so it never gets ahead of what the peer
/// will hold back.
pub(super) const MAX_IN_FLIGHT: usize = MAX_DEFERRED - 1;

use super::Node;
use crate::message::StoreDelta;

/// One delta sent and not yet settled.
#[derive(Clone, Debug)]
pub(super) struct InFlight {
    /// Where it ends: the peer holds this once it lands.
    covered: VersionVector,
    /// After this, the peer drops it if it has not applied it yet.
    until_ms: u64,
    /// The message that settles it before the deadline.
    settled_by: SettledBy,
}

/// The message that settles an [`InFlight`] delta before its deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SettledBy {
    /// Sent in an exchange the peer opened, in this node's `SynAck` or final
    /// `Ack`: the peer's `Ack` for it, or a `Syn` for another exchange.
    PeerExchange(u64),
    /// Sent in this node's `Ack` in an exchange it opened: the peer's final
    /// `Ack`.
    FinalAck(u64),
}

/// The part of a received delta that started beyond this node's frontier.
#[derive(Debug)]
pub(super) struct Deferred {
    /// The peer that sent it.
    pub(super) from: NodeId,
    /// The deadline of the exchange that brought it.
    deadline_ms: u64,
    delta: StoreDelta,
}

impl Node {
    /// The delta for `peer`, whose vector was last seen as `seen`, cut at
    /// `budget`, starting past every delta still on its way to it.
    pub(super) fn delta_for(
        &self,
        peer: NodeId,
        seen: &VersionVector,
        budget: Budget,
    ) -> StoreDelta {
        match self.in_flight.get(&peer).filter(|sent| !sent.is_empty()) {
            None => self.replica.delta_since(seen, budget),
            Some(sent) if sent.len() >= MAX_IN_FLIGHT => {
                // No entries, and not complete: there is more to come.
                let none = Budget {
                    max_entries: 0,
                    ..budget
                };
                self.replica.delta_since(seen, none)
            }
            Some(sent) => {
                let mut base = seen.clone();
                for delta in sent {
                    base.merge(&delta.covered);
                }
                self.replica.delta_since(&base, budget)
            }
        }
    }

    /// Remembers a delta just sent to `peer`, by its `covered` frontier,
    /// until it is settled. `None` for one without entries, which costs
    /// nothing to send again.
    pub(super) fn remember_sent(
        &mut self,
        peer: NodeId,
        covered: Option<VersionVector>,
        settled_by: SettledBy,
        now_ms: u64,
    ) {
        if let Some(covered) = covered {
            self.in_flight.entry(peer).or_default().push(InFlight {
                covered,
                until_ms: now_ms + self.config.exchange_timeout_ms,
                settled_by,
            });
        }
    }

    /// Forgets the deltas to `peer` that `settles` accounts for.
    pub(super) fn settle(&mut self, peer: NodeId, settles: impl Fn(SettledBy) -> bool) {
        if let Some(sent) = self.in_flight.get_mut(&peer) {
            sent.retain(|delta| !settles(delta.settled_by));
        }
    }

    /// Forgets the deltas to `peer` that its vector `seen` shows landed.
    pub(super) fn settle_seen(&mut self, peer: NodeId, seen: &VersionVector) {
        if let Some(sent) = self.in_flight.get_mut(&peer) {
            sent.retain(|delta| !delta.covered.dominated_by(seen));
        }
    }

    /// Forgets every delta past its deadline, and peers with none left.
    pub(super) fn expire_in_flight(&mut self, now_ms: u64) {
        self.in_flight.retain(|_, sent| {
            sent.retain(|delta| delta.until_ms >= now_ms);
            !sent.is_empty()
        });
    }

    /// Holds `delta`, a part left out, until `deadline_ms`; the oldest held
    /// part makes room if there is none.
    pub(super) fn defer(&mut self, from: NodeId, delta: StoreDelta, deadline_ms: u64) {
        let held = self
            .deferred
            .iter()
            .filter(|held| held.from == from)
            .count();
        if held == MAX_DEFERRED {
            if let Some(oldest) = self.deferred.iter().position(|held| held.from == from) {
                let dropped = self.deferred.remove(oldest);
                self.metrics.entries_redundant += dropped.delta.len() as u64;
            }
        }
        self.deferred.push(Deferred {
            from,
            deadline_ms,
            delta,
        });
    }

    /// Applies the held parts that can now be taken, for as long as one
    /// lets in another.
    pub(super) fn apply_deferred(&mut self, now_ms: u64) {
        self.expire_deferred(now_ms);
        let mut progress = true;
        while progress && !self.deferred.is_empty() {
            progress = false;
            for held in std::mem::take(&mut self.deferred) {
                let reached = held
                    .delta
                    .since()
                    .iter()
                    .any(|(origin, since)| self.version_vector().get(origin) >= since);
                if reached {
                    let applied = self.apply_part(held.from, held.delta, held.deadline_ms);
                    progress |= applied.advanced;
                } else {
                    self.deferred.push(held);
                }
            }
        }
    }

    /// Drops held parts past their deadline.
    pub(super) fn expire_deferred(&mut self, now_ms: u64) {
        let metrics = &mut self.metrics;
        self.deferred.retain(|held| {
            let live = held.deadline_ms >= now_ms;
            if !live {
                metrics.entries_redundant += held.delta.len() as u64;
            }
            live
        });
    }
}
