//! The push-pull exchange: opening one, answering each of its messages, and
//! the deadlines that bound how late a delta may be applied.
//!
//! Both sides remember an exchange until its deadline (the exchange
//! timeout): the initiator from its `Syn` (and from its `Ack` again if that
//! asks for a final `Ack`), the responder from its `SynAck`.
//! A delta-bearing message that arrives after that, or for an exchange the
//! receiver does not remember, is dropped unapplied. That bounds how old an
//! applied delta can be, which tombstone collection relies on (see
//! `collect`), and makes duplicated messages harmless.

use lww_crdt::{Hlc, NodeId, VersionVector};

use super::in_flight::{MAX_IN_FLIGHT, SettledBy};
use super::{CLOCK_SAMPLE_TICKS, Node, Outstanding, vector_hash};
use crate::codec::{digest_len_bound, members_len_bound, vector_len_bound};
use crate::config::MAX_PULL_DEPTH;
use crate::membership::Liveness;
use crate::message::{Ack, Digest, Message, Refusal, StoreDelta, Syn, SynAck, SynFlags};

impl Node {
    /// Opens an exchange with `peer`, at a tick or `pulled` by
    /// [`pull_rest`](Self::pull_rest); returns whether its `Syn` went.
    pub(super) fn open_exchange(&mut self, peer: NodeId, now_ms: u64, pulled: bool) -> bool {
        let exchange = self.next_exchange;
        self.next_exchange += 1;
        let own = self.vector_hash();
        // A hash tells the peer this node finished every earlier exchange
        // with it (see `in_flight`), so it goes only when none is open, and
        // never in a pull, which may open more at once.
        let alone = !pulled && !self.outstanding.values().any(|open| open.peer == peer);
        let digest = if alone && self.known_hashes.get(&peer) == Some(&own) {
            Digest::Hash(own)
        } else {
            Digest::Full(self.version_vector().clone())
        };
        let flags = SynFlags::default()
            .with(SynFlags::LEAVING, self.leaving)
            .with(
                SynFlags::WANTS_CLOCK,
                // A joining node asks at every tick until it can judge
                // its clock: it takes no writes before.
                (self.ticks % CLOCK_SAMPLE_TICKS == 0 || !self.clock_judged())
                    && self.checks.wants_clock(peer, now_ms),
            );
        let known = self
            .checks
            .peer_knows_our_limit(peer, self.incarnations.get(&peer).copied());
        let syn = Message::Syn(Syn {
            exchange,
            incarnation: self.config.incarnation,
            flags,
            digest,
            members_hash: self.members.hash(),
            max_message_bytes: (!known).then(|| self.message_limit()),
        });
        if !self.send(peer, &syn) {
            return false;
        }
        self.metrics.exchanges_started += 1;
        self.outstanding.insert(
            exchange,
            Outstanding {
                peer,
                deadline_ms: now_ms + self.config.exchange_timeout_ms,
                awaiting_final: false,
                pulled,
                syn_hash: own,
            },
        );
        true
    }

    /// Opens the next exchanges with `peer` now rather than at the next
    /// tick, after a delta from it that was cut to the message budget: a
    /// node that is far behind pulls the rest as fast as it applies it, not
    /// one message per tick. `pull_depth` exchanges at once, so that the peer
    /// prepares the next part while this node applies the last one; the peer
    /// starts each part past the ones still in flight.
    ///
    /// Each pulled `Syn` carries this node's whole vector, so a node pulls
    /// only while that vector takes at most a quarter of a message: with
    /// many writers and small messages, the vectors would cost more than
    /// the rounds they save.
    ///
    /// `round_trip_ms` is how long the exchange that brought the cut delta
    /// took. The pulled answers share the link, so on a slow one they would
    /// miss their deadline together: only as many are opened as answers of
    /// that duration fit in half the exchange timeout, at least one.
    fn pull_rest(&mut self, peer: NodeId, round_trip_ms: u64, now_ms: u64) {
        let syn_bytes = vector_len_bound(self.version_vector());
        if syn_bytes > self.config.max_message_bytes / 4 {
            return;
        }
        // Holding all the peer held when it last answered: nothing to pull.
        let own = self.vector_hash();
        if self.known_hashes.get(&peer) == Some(&own) {
            return;
        }
        // One peer at a time: each peer starts from this node's vector and
        // knows only of its own parts in flight, so all would send the same.
        if self
            .outstanding
            .values()
            .any(|open| open.pulled && open.peer != peer)
        {
            return;
        }
        let open = self
            .outstanding
            .values()
            .filter(|open| open.peer == peer)
            .count();
        let fit = (self.config.exchange_timeout_ms / 2 / round_trip_ms.max(1)).max(1);
        let depth = self
            .config
            .pull_depth
            .min(usize::try_from(fit).unwrap_or(usize::MAX));
        for _ in open..depth {
            if !self.open_exchange(peer, now_ms, true) {
                return;
            }
            self.metrics.exchanges_pulled += 1;
        }
    }

    /// Answers a `Syn`: with a hash if equal, else with what the initiator
    /// lacks and how far behind this node is where the initiator is ahead;
    /// if the `Syn` held only a hash that does not match, with the whole
    /// vector and a request for the initiator's.
    pub(super) fn on_syn(&mut self, from: NodeId, syn: Syn, now_ms: u64) {
        if self.answered.contains_key(&(from, syn.exchange)) {
            // A duplicate of a `Syn` already answered: a second answer would
            // follow the exchange's end, and its delta, never taken, would
            // stay in flight until its deadline.
            return;
        }
        if let Some(refusal) = self.limit_refusal(from, &syn) {
            self.refuse(from, &syn, refusal, now_ms);
            return;
        }
        let time_ms = syn.flags.contains(SynFlags::WANTS_CLOCK).then_some(now_ms);
        // The peer has finished any earlier exchange it opened with us; a
        // delta it holds back until an earlier one lands stays in flight,
        // which its vector tells.
        match &syn.digest {
            Digest::Full(vector) => self.settle_seen(from, vector),
            _ => self.settle(
                from,
                |s| matches!(s, SettledBy::PeerExchange(e) if e != syn.exchange),
            ),
        }
        let own = self.vector_hash();
        let members = (syn.members_hash != self.members.hash()).then(|| self.member_list());
        let (digest, delta, wants_vector) = match syn.digest {
            Digest::Hash(hash) | Digest::Behind { hash, .. } if hash == own => {
                self.known_hashes.insert(from, hash);
                self.peer_matches_us(from);
                (Digest::Hash(own), StoreDelta::default(), false)
            }
            Digest::Hash(hash) | Digest::Behind { hash, .. } => {
                self.known_hashes.insert(from, hash);
                (
                    Digest::Full(self.version_vector().clone()),
                    StoreDelta::default(),
                    true,
                )
            }
            Digest::Full(peer) => {
                let hash = vector_hash(&peer);
                self.known_hashes.insert(from, hash);
                if hash == own {
                    self.peer_matches_us(from);
                    (Digest::Hash(own), StoreDelta::default(), false)
                } else {
                    self.learn_peer_vector(from, &peer);
                    self.settle_seen(from, &peer);
                    let digest = Digest::Behind {
                        hash: own,
                        lagging: lagging(self.version_vector(), &peer),
                    };
                    let reserve =
                        digest_len_bound(&digest) + members.as_ref().map_or(0, members_len_bound);
                    let delta = self.delta_for(from, &peer, self.delta_budget(reserve));
                    (digest, delta, false)
                }
            }
        };
        let equal = matches!(digest, Digest::Hash(_));
        self.metrics.entries_sent += delta.len() as u64;
        let sent = (!delta.is_empty()).then(|| delta.covered().clone());
        let syn_ack = Message::SynAck(SynAck {
            exchange: syn.exchange,
            incarnation: self.config.incarnation,
            delta,
            digest,
            wants_vector,
            members,
            members_hash: self.members.hash(),
            time_ms,
            refusal: None,
        });
        if self.send(from, &syn_ack) && !equal {
            let deadline = now_ms + self.config.exchange_timeout_ms;
            self.answered.insert((from, syn.exchange), deadline);
            let settled_by = SettledBy::PeerExchange(syn.exchange);
            self.remember_sent(from, sent, settled_by, now_ms);
        } else {
            // Equal vectors: the initiator's answer, if any, needs none.
            self.end_exchange(from, syn.exchange, false);
        }
    }

    /// Whether `message` shows that its sender's message limit differs from
    /// this node's: a `Syn` declaring another, or a `SynAck` refusing this
    /// node's.
    pub(super) fn limits_differ(&self, message: &Message) -> bool {
        match message {
            Message::Syn(syn) => syn
                .max_message_bytes
                .is_some_and(|theirs| theirs != self.message_limit()),
            Message::SynAck(syn_ack) => {
                matches!(syn_ack.refusal, Some(Refusal::MaxMessageBytes(_)))
            }
            Message::Ack(_) => false,
        }
    }

    /// Notes that `peer`'s message limit differs from this node's, unless
    /// the peer has left: a leaver goes on gossiping while it drains, and
    /// what it declares then is nothing to report, again, about a member
    /// that has gone.
    fn note_limits_differ(&mut self, peer: NodeId, ours: u32, theirs: u32) {
        if self.members.liveness(peer) != Liveness::Left {
            self.checks
                .limits_differ(peer, ours, theirs, &mut self.events);
        }
    }

    /// Why `syn` is refused, if its sender's message limit differs from
    /// this node's, or this node has not checked it in the sender's
    /// current life and the `Syn` leaves it out.
    fn limit_refusal(&mut self, from: NodeId, syn: &Syn) -> Option<Refusal> {
        let ours = self.message_limit();
        match syn.max_message_bytes {
            Some(theirs) if theirs != ours => {
                self.note_limits_differ(from, ours, theirs);
                Some(Refusal::MaxMessageBytes(ours))
            }
            Some(_) => {
                self.checks.their_limit_matches(from, syn.incarnation);
                None
            }
            None if self.checks.knows_their_limit(from, syn.incarnation) => None,
            None => Some(Refusal::LimitUnknown),
        }
    }

    /// Answers a `Syn` with `refusal` and nothing else: entries sent under
    /// one message limit may not fit another.
    fn refuse(&mut self, from: NodeId, syn: &Syn, refusal: Refusal, now_ms: u64) {
        let syn_ack = Message::SynAck(SynAck {
            exchange: syn.exchange,
            incarnation: self.config.incarnation,
            delta: StoreDelta::default(),
            digest: Digest::Hash(self.vector_hash()),
            wants_vector: false,
            members: None,
            members_hash: self.members.hash(),
            time_ms: syn.flags.contains(SynFlags::WANTS_CLOCK).then_some(now_ms),
            refusal: Some(refusal),
        });
        self.send(from, &syn_ack);
        self.end_exchange(from, syn.exchange, false);
    }

    /// Takes the answer to an exchange this node opened, and closes it with
    /// what the responder lacks.
    pub(super) fn on_syn_ack(&mut self, from: NodeId, syn_ack: SynAck, now_ms: u64) {
        let open = match self.outstanding.get(&syn_ack.exchange) {
            Some(open)
                if open.peer == from && !open.awaiting_final && now_ms <= open.deadline_ms =>
            {
                *open
            }
            _ => {
                self.metrics.messages_late += 1;
                return;
            }
        };
        self.outstanding.remove(&syn_ack.exchange);
        self.metrics.exchanges_completed += 1;
        let exchange = syn_ack.exchange;
        let opened_ms = open.deadline_ms - self.config.exchange_timeout_ms;
        if let Some(peer_ms) = syn_ack.time_ms {
            let peers = self.members.peer_count();
            self.checks
                .measure(from, opened_ms, peer_ms, now_ms, peers, &mut self.events);
        }
        if self.was_refused(from, &syn_ack) {
            self.end_exchange(from, exchange, true);
            return;
        }
        let cut = was_cut(&syn_ack.delta);
        self.close_exchange(from, syn_ack, open, now_ms);
        // The `Ack`, if one went, was this node's last word in it.
        self.end_exchange(from, exchange, true);
        if cut {
            self.pull_rest(from, now_ms.saturating_sub(opened_ms), now_ms);
        }
    }

    /// Notes what a `SynAck` says of the two message limits; returns whether
    /// it refused the exchange.
    fn was_refused(&mut self, from: NodeId, syn_ack: &SynAck) -> bool {
        match syn_ack.refusal {
            // The responder took this node's limit, sent now or before.
            None => {
                self.checks.our_limit_taken(from, syn_ack.incarnation);
                return false;
            }
            Some(Refusal::MaxMessageBytes(theirs)) => {
                let ours = self.message_limit();
                self.note_limits_differ(from, ours, theirs);
            }
            Some(Refusal::LimitUnknown) => self.checks.limit_unknown_to(from),
        }
        true
    }

    /// Applies the answer to an exchange this node opened and sends the
    /// closing `Ack`: bare if the responder lacks nothing, so that it knows
    /// the exchange is over.
    fn close_exchange(&mut self, from: NodeId, syn_ack: SynAck, open: Outstanding, now_ms: u64) {
        let received_all = syn_ack.delta.is_complete();
        // Whether this node's vector is still the one its `Syn` carried, and
        // then moves only by what the responder sent: not by parts held from
        // other peers that the answer lets in.
        let held_from_others =
            |node: &Node| node.deferred.iter().filter(|d| d.from != from).count();
        let others_before = held_from_others(self);
        let unmoved = self.vector_hash() == open.syn_hash;
        let held = self.apply(from, syn_ack.delta, open.deadline_ms, now_ms);
        let unmoved = unmoved && held_from_others(self) == others_before;
        self.learn_members(from, syn_ack.members);
        // A `Behind` view is a floor on the responder's vector only if this
        // node's vector did not move since its `Syn` (see below).
        let mut view_is_floor = true;
        let peer = match syn_ack.digest {
            Digest::Hash(hash) => {
                self.known_hashes.insert(from, hash);
                if hash == self.vector_hash() {
                    self.peer_matches_us(from);
                }
                None
            }
            Digest::Full(peer) => {
                self.known_hashes.insert(from, vector_hash(&peer));
                Some(peer)
            }
            Digest::Behind { hash, lagging } => {
                self.known_hashes.insert(from, hash);
                // Everywhere the responder did not list, it is at least as
                // far as this node was when its `Syn` went: take this node's
                // frontier there. If something else moved that frontier
                // since, the view overstates the responder. That is harmless
                // for choosing a delta (its `since` keeps the responder from
                // taking what does not follow on), but tombstone collection
                // must not learn from it: it would count the responder as
                // holding deletes it lacks.
                view_is_floor = unmoved;
                let view: VersionVector = self
                    .version_vector()
                    .iter()
                    .map(|(origin, hlc)| {
                        let theirs = lagging
                            .binary_search_by_key(&origin, |&(o, _)| o)
                            .map_or(hlc, |i| lagging[i].1);
                        (origin, theirs)
                    })
                    .collect();
                Some(view)
            }
        };
        if let Some(peer) = &peer {
            if view_is_floor {
                self.learn_peer_vector(from, peer);
            }
            self.settle_seen(from, peer);
        }
        let members = (syn_ack.members_hash != self.members.hash()).then(|| self.member_list());
        // The vector goes if asked for, or to tell the responder that part of
        // its delta was held back, which keeps that part in flight there.
        let vector = (syn_ack.wants_vector || held).then(|| self.version_vector().clone());
        let delta = match &peer {
            Some(peer) => {
                let reserve = vector.as_ref().map_or(0, vector_len_bound)
                    + members.as_ref().map_or(0, members_len_bound);
                self.delta_for(from, peer, self.delta_budget(reserve))
            }
            None => StoreDelta::default(),
        };
        // A final `Ack` carries what this node lacks if it sends its vector,
        // and is at least a receipt if it sends entries: that receipt is what
        // settles them (see `in_flight`).
        let wants_delta = vector.is_some();
        let awaiting_final = wants_delta || !delta.is_empty();
        if received_all && delta.is_complete() && !wants_delta && peer.is_some() {
            // Each side now has all the other had: once the Ack lands, both
            // hold the same vector, so the next Syn to this peer can be a
            // hash. (If the Ack is lost, that hash mismatches and the peer
            // asks for the vector.)
            let own = self.vector_hash();
            self.known_hashes.insert(from, own);
        }
        // After a `SynAck` that was more than a matching hash the responder
        // waits for this `Ack`: it goes even empty, as the receipt that ends
        // the exchange on both sides.
        if peer.is_none() && members.is_none() {
            return;
        }
        self.metrics.entries_sent += delta.len() as u64;
        let sent = (!delta.is_empty()).then(|| delta.covered().clone());
        let ack = Message::Ack(Ack {
            exchange: syn_ack.exchange,
            incarnation: self.config.incarnation,
            from_initiator: true,
            delta,
            vector,
            members,
        });
        if self.send(from, &ack) && awaiting_final {
            // The final `Ack` is two more hops away, and its delta is built
            // only once this `Ack` lands: waiting for it from now on keeps
            // every applied delta younger than the exchange timeout (see
            // `collect`), and lets it arrive on a link where four hops take
            // longer than the timeout. Counted from the `Syn`, every final
            // `Ack` on such a link came late, and the entries only it
            // carried never arrived.
            self.outstanding.insert(
                syn_ack.exchange,
                Outstanding {
                    awaiting_final: true,
                    deadline_ms: now_ms + self.config.exchange_timeout_ms,
                    ..open
                },
            );
            let settled_by = SettledBy::FinalAck(syn_ack.exchange);
            self.remember_sent(from, sent, settled_by, now_ms);
        }
    }

    /// Takes an `Ack`: the initiator's, for an exchange this node answered,
    /// or the responder's final one, for an exchange this node opened.
    pub(super) fn on_ack(&mut self, from: NodeId, ack: Ack, now_ms: u64) {
        let exchange = ack.exchange;
        let taken = self.take_ack(from, ack, now_ms);
        if taken.closes_answered {
            // The initiator sends nothing after its `Ack`, so neither does
            // this node after its answer to it.
            self.end_exchange(from, exchange, false);
        }
        if let Some(round_trip_ms) = taken.applied_cut {
            self.pull_rest(from, round_trip_ms, now_ms);
        }
    }

    /// Takes an `Ack`, answering it if it is the initiator's.
    fn take_ack(&mut self, from: NodeId, mut ack: Ack, now_ms: u64) -> AckTaken {
        // Whether or not it is still current, the peer sent it after taking,
        // holding back or dropping the delta this node sent it in that
        // exchange; a final one with a vector says it held some back.
        match (&ack.vector, ack.from_initiator) {
            (Some(vector), _) => self.settle_seen(from, vector),
            // A bare `Ack` only closes the exchange. What the initiator sent
            // before it, its `SynAck` view above all, may still be on the
            // way and predate the delta, so the delta stays in flight until
            // the initiator's next `Syn` or a vector that shows it.
            (None, true) if ack.delta.is_empty() && ack.members.is_none() => {}
            (None, true) => self.settle(from, |s| s == SettledBy::PeerExchange(ack.exchange)),
            (None, false) => self.settle(from, |s| s == SettledBy::FinalAck(ack.exchange)),
        }
        // Members are learned from any `Ack`, current or not: after a
        // `SynAck` with a matching hash the exchange is already over here,
        // and the initiator's list (its own address among it) came only
        // this way.
        self.learn_members(from, ack.members.take());
        let answered = ack
            .from_initiator
            .then(|| self.answered.remove(&(from, ack.exchange)))
            .flatten();
        let closes_answered = answered.is_some();
        let deadline = if ack.from_initiator {
            answered
        } else {
            match self.outstanding.get(&ack.exchange) {
                Some(open) if open.peer == from && open.awaiting_final => {
                    let deadline = open.deadline_ms;
                    self.outstanding.remove(&ack.exchange);
                    Some(deadline)
                }
                _ => None,
            }
        };
        let mut taken = AckTaken {
            closes_answered,
            applied_cut: None,
        };
        let Some(deadline) = deadline.filter(|&deadline| now_ms <= deadline) else {
            self.metrics.messages_late += 1;
            return taken;
        };
        let carried_entries = !ack.delta.is_empty();
        // This node's last message in the exchange (its `SynAck`, or its
        // `Ack` asking for this one) went one timeout before the deadline.
        let began_ms = deadline.saturating_sub(self.config.exchange_timeout_ms);
        taken.applied_cut = was_cut(&ack.delta).then(|| now_ms.saturating_sub(began_ms));
        let held = self.apply(from, ack.delta, deadline, now_ms);
        if !ack.from_initiator {
            return taken;
        }
        let delta = match ack.vector {
            Some(peer) => {
                self.known_hashes.insert(from, vector_hash(&peer));
                self.learn_peer_vector(from, &peer);
                self.settle_seen(from, &peer);
                self.delta_for(from, &peer, self.delta_budget(0))
            }
            // Just a receipt for the entries.
            None if carried_entries => StoreDelta::default(),
            None => return taken,
        };
        // A receipt for entries held back says so with this node's vector,
        // so the initiator still counts them in flight.
        let vector = held.then(|| self.version_vector().clone());
        self.metrics.entries_sent += delta.len() as u64;
        let sent = (!delta.is_empty()).then(|| delta.covered().clone());
        let reply = Message::Ack(Ack {
            exchange: ack.exchange,
            incarnation: self.config.incarnation,
            from_initiator: false,
            delta,
            vector,
            members: None,
        });
        if self.send(from, &reply) {
            // The initiator's next `Syn` tells whether it landed: a vector
            // shows it, and a hash goes only once this exchange is over.
            let settled_by = SettledBy::PeerExchange(ack.exchange);
            self.remember_sent(from, sent, settled_by, now_ms);
        }
        taken
    }

    /// Ends every exchange still open on this side, before they are all
    /// dropped.
    pub(super) fn end_open_exchanges(&mut self) {
        let mut open: Vec<(NodeId, u64, bool)> = self
            .outstanding
            .iter()
            .filter(|(_, open)| !open.awaiting_final)
            .map(|(&exchange, open)| (open.peer, exchange, true))
            .collect();
        open.extend(
            self.answered
                .keys()
                .map(|&(peer, exchange)| (peer, exchange, false)),
        );
        open.sort_unstable();
        for (peer, exchange, from_initiator) in open {
            self.end_exchange(peer, exchange, from_initiator);
        }
    }

    /// Expires exchanges past their deadline; an unanswered one counts
    /// against its peer.
    pub(super) fn expire(&mut self, now_ms: u64) {
        let mut expired: Vec<(u64, Outstanding)> = self
            .outstanding
            .iter()
            .filter(|(_, open)| open.deadline_ms < now_ms)
            .map(|(&exchange, open)| (exchange, *open))
            .collect();
        expired.sort_unstable_by_key(|&(exchange, _)| exchange);
        for (exchange, open) in expired {
            self.outstanding.remove(&exchange);
            if open.awaiting_final {
                continue;
            }
            self.end_exchange(open.peer, exchange, true);
            self.metrics.exchanges_timed_out += 1;
            if open.pulled {
                // Pulled exchanges run several at once: a peer lost in the
                // middle of a pull fails its next tick's exchange, once.
                continue;
            }
            match self.members.failed(open.peer) {
                Some(super::Transition::Suspect) => {
                    self.events.push_back(super::Event::PeerSuspect(open.peer));
                }
                Some(super::Transition::Down) => {
                    self.events.push_back(super::Event::PeerDown(open.peer));
                }
                _ => {}
            }
        }
        let mut unanswered: Vec<(NodeId, u64)> = self
            .answered
            .iter()
            .filter(|(_, deadline)| **deadline < now_ms)
            .map(|(&key, _)| key)
            .collect();
        unanswered.sort_unstable();
        for (initiator, exchange) in unanswered {
            self.answered.remove(&(initiator, exchange));
            self.end_exchange(initiator, exchange, false);
        }
        self.expire_in_flight(now_ms);
        self.expire_deferred(now_ms);
    }
}

// A pulling node never keeps more exchanges open with a peer than the peer
// keeps deltas in flight to it: the extra ones would come back empty.
const _: () = assert!(MAX_PULL_DEPTH <= MAX_IN_FLIGHT);

/// What taking an `Ack` did.
struct AckTaken {
    /// It closed an exchange this node answered and had not ended yet.
    closes_answered: bool,
    /// It was applied, and its delta was cut to the sender's message budget:
    /// how long after its exchange began (or this node's answer in it went).
    applied_cut: Option<u64>,
}

/// Whether `delta` carries entries and was cut short of all the sender had
/// to send: more is waiting.
fn was_cut(delta: &StoreDelta) -> bool {
    !delta.is_empty() && !delta.is_complete()
}

/// `(origin, ours)` for every origin where `peer` is ahead of `ours`, in
/// origin order, with zero where this node has nothing.
fn lagging(ours: &VersionVector, peer: &VersionVector) -> Vec<(NodeId, Hlc)> {
    peer.ahead_of(ours)
        .map(|(origin, mine, _)| (origin, mine))
        .collect()
}
