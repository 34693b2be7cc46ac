//! The delta pipeline to and from each peer: what this node believes the
//! peer holds, the deltas on their way to it, the parts received from it
//! ahead of their turn, and when to pull the rest of a cut delta.
//!
//! Every rule here is an optimization of the base exchange, which sends a
//! whole vector and answers it with the entries past it; each can be
//! switched off ([`Optimisations`]) and the protocol stays correct.
//!
//! # Digests
//!
//! A node that believes a peer holds the same vector as itself (the peer
//! reported that hash) sends the hash alone, and a responder whose vector
//! matches answers with a hash: an idle exchange costs a few bytes. A
//! responder that is behind lists only where (`Behind`) instead of its
//! whole vector. [`Node::choose_digest`](super::Node) makes that choice.
//!
//! # Deltas on their way
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
//! (see [`Pipeline::pulls_to_open`]); their `Syn`s carry vectors, so each
//! settles exactly what landed.
//!
//! Lost messages leave a delta unsettled until one exchange timeout after
//! it was sent, when the peer has surely dropped it; so do a peer's vector
//! that shows it and a new incarnation of the peer.
//!
//! # Parts ahead of their turn
//!
//! On the receiving side, separate streams may deliver a delta before the
//! one it follows. The part left out is held, a few at most, and applied as
//! soon as the vector reaches its start, but never after the deadline of
//! the exchange that brought it: a late delta is dropped whichever way it
//! arrives (see `exchange`).

use std::collections::HashMap;

use lww_crdt::{Budget, NodeId, VersionVector};

use super::StoreReplica;
use crate::config::{Config, Optimisations};
use crate::message::StoreDelta;

/// Received parts held per peer at most: each is at most one message.
const MAX_HELD: usize = 4;

/// Unsettled deltas per peer at most: past that, a node sends the peer no
/// more entries until some settle, so it never gets ahead of what the peer
/// will hold back.
pub(super) const MAX_IN_FLIGHT: usize = MAX_HELD - 1;

/// The per-peer state of the delta pipeline (see the module docs).
#[derive(Debug)]
pub(super) struct Pipeline {
    optimisations: Optimisations,
    /// The vector hash each peer last reported.
    known_hashes: HashMap<NodeId, u64>,
    /// Per peer, the deltas sent to it that may still land.
    in_flight: HashMap<NodeId, Vec<InFlight>>,
    /// Parts of received deltas that overtook the delta they follow, held
    /// until it lands or their deadline passes.
    held: Vec<HeldPart>,
}

/// One delta sent and not yet settled.
#[derive(Clone, Debug)]
struct InFlight {
    /// Where it ends: the peer holds this once it lands.
    covered: VersionVector,
    /// After this, the peer drops it if it has not applied it yet.
    until_ms: u64,
    /// The message that settles it before the deadline.
    settled_by: SettledBy,
}

/// The message that settles a delta in flight before its deadline.
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
pub(super) struct HeldPart {
    /// The peer that sent it.
    pub(super) from: NodeId,
    /// The deadline of the exchange that brought it.
    pub(super) deadline_ms: u64,
    pub(super) delta: StoreDelta,
}

impl HeldPart {
    /// Whether `vector` reached where this part starts, so it can be applied.
    pub(super) fn is_ready(&self, vector: &VersionVector) -> bool {
        self.delta
            .since()
            .iter()
            .any(|(origin, since)| vector.get(origin) >= since)
    }
}

/// What a node knows, when a cut delta came, about the exchanges it has open
/// (see [`Pipeline::pulls_to_open`]).
#[derive(Clone, Copy, Debug)]
pub(super) struct OpenExchanges {
    /// How many it has open with the peer that sent the cut delta.
    pub(super) with_peer: usize,
    /// Whether it is pulling from another peer already.
    pub(super) pulling_elsewhere: bool,
}

impl Pipeline {
    pub(super) fn new(optimisations: Optimisations) -> Self {
        Self {
            optimisations,
            known_hashes: HashMap::new(),
            in_flight: HashMap::new(),
            held: Vec::new(),
        }
    }

    /// The optimisations in force.
    pub(super) fn optimisations(&self) -> Optimisations {
        self.optimisations
    }

    /// Notes the vector hash `peer` reported (or is known to hold).
    pub(super) fn saw_hash(&mut self, peer: NodeId, hash: u64) {
        self.known_hashes.insert(peer, hash);
    }

    /// Whether `peer` last reported the vector hash `hash`.
    pub(super) fn last_hash_is(&self, peer: NodeId, hash: u64) -> bool {
        self.known_hashes.get(&peer) == Some(&hash)
    }

    /// The delta for `peer`, whose vector was last seen as `seen`, cut at
    /// `budget`, starting past every delta still on its way to it.
    pub(super) fn delta_for(
        &self,
        replica: &StoreReplica,
        peer: NodeId,
        seen: &VersionVector,
        budget: Budget,
    ) -> StoreDelta {
        match self.in_flight.get(&peer).filter(|sent| !sent.is_empty()) {
            None => replica.delta_since(seen, budget),
            Some(sent) if sent.len() >= MAX_IN_FLIGHT => {
                // No entries, and not complete: there is more to come.
                let none = Budget {
                    max_entries: 0,
                    ..budget
                };
                replica.delta_since(seen, none)
            }
            Some(sent) => {
                let mut base = seen.clone();
                for delta in sent {
                    base.merge(&delta.covered);
                }
                replica.delta_since(&base, budget)
            }
        }
    }

    /// Remembers a delta just sent to `peer`, by its `covered` frontier,
    /// until it is settled or `until_ms`. `None` for one without entries,
    /// which costs nothing to send again.
    pub(super) fn sent(
        &mut self,
        peer: NodeId,
        covered: Option<VersionVector>,
        settled_by: SettledBy,
        until_ms: u64,
    ) {
        if !self.optimisations.track_in_flight {
            return;
        }
        if let Some(covered) = covered {
            self.in_flight.entry(peer).or_default().push(InFlight {
                covered,
                until_ms,
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
    pub(super) fn saw_vector(&mut self, peer: NodeId, seen: &VersionVector) {
        if let Some(sent) = self.in_flight.get_mut(&peer) {
            sent.retain(|delta| !delta.covered.dominated_by(seen));
        }
    }

    /// Holds `part`, left out of a delta from `from` that may be applied
    /// until `deadline_ms`; the oldest part held from `from` makes room if
    /// there is none. Returns whether it was held and how many entries were
    /// dropped unapplied.
    pub(super) fn hold(
        &mut self,
        from: NodeId,
        part: StoreDelta,
        deadline_ms: u64,
    ) -> (bool, usize) {
        if !self.optimisations.hold_early_parts {
            return (false, part.len());
        }
        let mut dropped = 0;
        let held = self.held.iter().filter(|held| held.from == from).count();
        if held == MAX_HELD
            && let Some(oldest) = self.held.iter().position(|held| held.from == from)
        {
            dropped = self.held.remove(oldest).delta.len();
        }
        self.held.push(HeldPart {
            from,
            deadline_ms,
            delta: part,
        });
        (true, dropped)
    }

    /// Takes every held part out, for the caller to apply those that are
    /// ready and [`keep`](Self::keep) the rest.
    pub(super) fn take_held(&mut self) -> Vec<HeldPart> {
        std::mem::take(&mut self.held)
    }

    /// Holds a part taken out by [`take_held`](Self::take_held) again.
    pub(super) fn keep(&mut self, part: HeldPart) {
        self.held.push(part);
    }

    /// Whether any part is held.
    pub(super) fn holds_any(&self) -> bool {
        !self.held.is_empty()
    }

    /// How many parts are held from peers other than `peer`.
    pub(super) fn held_from_others(&self, peer: NodeId) -> usize {
        self.held.iter().filter(|held| held.from != peer).count()
    }

    /// Drops held parts past their deadline; returns how many entries they
    /// carried.
    pub(super) fn expire_held(&mut self, now_ms: u64) -> usize {
        let mut dropped = 0;
        self.held.retain(|held| {
            let live = held.deadline_ms >= now_ms;
            if !live {
                dropped += held.delta.len();
            }
            live
        });
        dropped
    }

    /// Forgets every delta in flight past its deadline, and peers with none
    /// left.
    pub(super) fn expire_in_flight(&mut self, now_ms: u64) {
        self.in_flight.retain(|_, sent| {
            sent.retain(|delta| delta.until_ms >= now_ms);
            !sent.is_empty()
        });
    }

    /// Forgets what was in flight to and held from `peer`: it began a new
    /// life, which holds nothing the old one was sent.
    pub(super) fn forget_peer(&mut self, peer: NodeId) {
        self.in_flight.remove(&peer);
        self.held.retain(|held| held.from != peer);
    }

    /// Forgets every delta in flight and every part held, keeping what
    /// peers' hashes were: for a node whose exchanges were all dropped.
    pub(super) fn forget_exchanges(&mut self) {
        self.in_flight.clear();
        self.held.clear();
    }

    /// How many exchanges to open now with `peer`, whose last delta was cut
    /// to the message budget, so that this node pulls the rest as fast as it
    /// applies it rather than one message per tick: `pull_depth` exchanges
    /// at once, so that the peer prepares the next part while this node
    /// applies the last one (the peer starts each part past the ones still
    /// in flight).
    ///
    /// None if the peer already reported this node's vector (`own_hash`),
    /// or if this node pulls from another peer: each peer starts from this
    /// node's vector and knows only of its own parts in flight, so all would
    /// send the same. None either while this node's vector (`vector_bytes`)
    /// takes more than a quarter of a message: each pulled `Syn` carries it,
    /// and with many writers and small messages the vectors would cost more
    /// than the rounds they save.
    ///
    /// `round_trip_ms` is how long the exchange that brought the cut delta
    /// took. The pulled answers share the link, so on a slow one they would
    /// miss their deadline together: only as many are opened as answers of
    /// that duration fit in half the exchange timeout, at least one.
    pub(super) fn pulls_to_open(
        &self,
        config: &Config,
        peer: NodeId,
        own_hash: u64,
        vector_bytes: usize,
        open: OpenExchanges,
        round_trip_ms: u64,
    ) -> usize {
        if vector_bytes > config.max_message_bytes / 4
            || self.last_hash_is(peer, own_hash)
            || open.pulling_elsewhere
        {
            return 0;
        }
        let fit = (config.exchange_timeout_ms / 2 / round_trip_ms.max(1)).max(1);
        let depth = config
            .pull_depth
            .min(usize::try_from(fit).unwrap_or(usize::MAX));
        depth.saturating_sub(open.with_peer)
    }
}
