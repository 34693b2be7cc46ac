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
//! - in a `SynAck`, by the peer's `Ack` for that exchange, or a `Syn` of
//!   another exchange from it (a node opens one exchange at a time with each
//!   peer, so it has finished the earlier one);
//! - in the initiator's `Ack`, by the responder's final `Ack`, which it
//!   always sends for an `Ack` that carried entries;
//! - in the responder's final `Ack`, by the initiator's next `Syn`.
//!
//! Lost messages leave a delta unsettled until one exchange timeout after
//! it was sent, when the peer has surely dropped it; so do a peer's vector
//! that shows it and a new incarnation of the peer.

use lww_crdt::{Budget, NodeId, VersionVector};

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
}
