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

use super::pipeline::{MAX_IN_FLIGHT, OpenExchanges, SettledBy};
use super::{CLOCK_SAMPLE_TICKS, Node, Outstanding, vector_hash};
use crate::codec::{digest_len_bound, members_len_bound, vector_len_bound};
use crate::config::MAX_PULL_DEPTH;
use crate::message::{Ack, Digest, MemberList, Message, StoreDelta, Syn, SynAck, SynFlags};

impl Node {
    /// Opens an exchange with `peer`, at a tick or `pulled` by
    /// [`pull_rest`](Self::pull_rest); returns whether its `Syn` went.
    pub(super) fn open_exchange(&mut self, peer: NodeId, now_ms: u64, pulled: bool) -> bool {
        let exchange = self.exchanges.next_id;
        self.exchanges.next_id += 1;
        let own = self.vector_hash();
        // A hash tells the peer this node finished every earlier exchange
        // with it (see `pipeline`), so it goes only when none is open, and
        // never in a pull, which may open more at once.
        let alone = !pulled && !self.exchanges.opened.values().any(|open| open.peer == peer);
        let (digest, _) = self.choose_digest(peer, PeerSaid::Nothing { alone });
        let flags = SynFlags::default()
            .with(SynFlags::LEAVING, self.lives.leaving)
            .with(
                SynFlags::WANTS_CLOCK,
                // A joining node asks at every tick until it can judge
                // its clock: it takes no writes before.
                (self.ticks % CLOCK_SAMPLE_TICKS == 0 || !self.clock_judged())
                    && self.checks.wants_clock(peer, now_ms),
            );
        let known = self
            .checks
            .peer_knows_our_limit(peer, self.lives.incarnations.get(&peer).copied());
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
        self.exchanges.opened.insert(
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
    /// tick, after a delta from it that was cut to the message budget, as
    /// many as [`Pipeline::pulls_to_open`](super::pipeline::Pipeline::pulls_to_open)
    /// says. `round_trip_ms` is how long the exchange that brought the cut
    /// delta took.
    pub(super) fn pull_rest(&mut self, peer: NodeId, round_trip_ms: u64, now_ms: u64) {
        let open = OpenExchanges {
            with_peer: self
                .exchanges
                .opened
                .values()
                .filter(|open| open.peer == peer)
                .count(),
            pulling_elsewhere: self
                .exchanges
                .opened
                .values()
                .any(|open| open.pulled && open.peer != peer),
        };
        let own = self.vector_hash();
        let vector_bytes = vector_len_bound(self.version_vector());
        let pulls =
            self.pipeline
                .pulls_to_open(&self.config, peer, own, vector_bytes, open, round_trip_ms);
        for _ in 0..pulls {
            if !self.open_exchange(peer, now_ms, true) {
                return;
            }
            self.metrics.exchanges_pulled += 1;
        }
    }

    /// What this node tells `peer` of its own vector, given what the peer
    /// said of its own; and whether it asks for the peer's whole vector.
    ///
    /// - Opening an exchange: the hash if the peer last reported the same
    ///   and no other exchange with it is open, the whole vector otherwise.
    /// - Answering a hash: the hash if it matches, else the whole vector and
    ///   a request for the peer's.
    /// - Answering a vector: the hash if it matches, else where this node
    ///   is behind (`Behind`).
    ///
    /// With an optimisation off ([`Optimisations`](crate::Optimisations)),
    /// the whole vector goes instead of the hash or of `Behind`.
    fn choose_digest(&mut self, peer: NodeId, said: PeerSaid<'_>) -> (Digest, bool) {
        let own = self.vector_hash();
        let optimisations = self.pipeline.optimisations();
        let hashes = optimisations.hash_digest;
        match said {
            PeerSaid::Nothing { alone }
                if alone && hashes && self.pipeline.last_hash_is(peer, own) =>
            {
                (Digest::Hash(own), false)
            }
            PeerSaid::Hash(hash) | PeerSaid::Vector(_, hash) if hashes && hash == own => {
                (Digest::Hash(own), false)
            }
            PeerSaid::Hash(hash) => (Digest::Full(self.version_vector().clone()), hash != own),
            PeerSaid::Vector(vector, hash) if optimisations.behind_digest && hash != own => {
                let lagging = lagging(self.version_vector(), vector);
                (Digest::Behind { hash: own, lagging }, false)
            }
            PeerSaid::Nothing { .. } | PeerSaid::Vector(..) => {
                (Digest::Full(self.version_vector().clone()), false)
            }
        }
    }

    /// Answers a `Syn`: with a hash if equal, else with what the initiator
    /// lacks and how far behind this node is where the initiator is ahead;
    /// if the `Syn` held only a hash that does not match, with the whole
    /// vector and a request for the initiator's.
    pub(super) fn on_syn(&mut self, from: NodeId, syn: Syn, now_ms: u64) {
        if self.exchanges.answered.contains_key(&(from, syn.exchange)) {
            // A duplicate of a `Syn` already answered: a second answer would
            // follow the exchange's end, and its delta, never taken, would
            // stay in flight until its deadline.
            return;
        }
        if let Some(refusal) = self.limit_refusal(from, &syn) {
            self.refuse(from, &syn, refusal, now_ms);
            return;
        }
        let said = self.learn_syn_view(from, &syn);
        let members = self.members_unlike(syn.members_hash);
        let (digest, wants_vector) = self.choose_digest(from, said);
        let delta = match said {
            PeerSaid::Vector(peer, hash) if hash != self.vector_hash() => {
                let reserve =
                    digest_len_bound(&digest) + members.as_ref().map_or(0, members_len_bound);
                self.pipeline
                    .delta_for(&self.replica, from, peer, self.delta_budget(reserve))
            }
            _ => StoreDelta::default(),
        };
        let equal = matches!(digest, Digest::Hash(_));
        let sent = self.outgoing(&delta);
        let syn_ack = Message::SynAck(SynAck {
            exchange: syn.exchange,
            incarnation: self.config.incarnation,
            delta,
            digest,
            wants_vector,
            members,
            members_hash: self.members.hash(),
            time_ms: syn.flags.contains(SynFlags::WANTS_CLOCK).then_some(now_ms),
            refusal: None,
        });
        if self.send(from, &syn_ack) && !equal {
            let deadline = now_ms + self.config.exchange_timeout_ms;
            self.exchanges
                .answered
                .insert((from, syn.exchange), deadline);
            self.note_sent(from, sent, SettledBy::PeerExchange(syn.exchange), now_ms);
        } else {
            // Equal vectors: the initiator's answer, if any, needs none.
            self.end_exchange(from, syn.exchange, false);
        }
    }

    /// Learns what a `Syn` tells of its sender's vector, and settles the
    /// deltas it shows landed; returns what it said.
    fn learn_syn_view<'a>(&mut self, from: NodeId, syn: &'a Syn) -> PeerSaid<'a> {
        // The peer has finished any earlier exchange it opened with us; a
        // delta it holds back until an earlier one lands stays in flight,
        // which its vector tells.
        let (said, hash) = match &syn.digest {
            Digest::Full(vector) => {
                self.pipeline.saw_vector(from, vector);
                let hash = vector_hash(vector);
                (PeerSaid::Vector(vector, hash), hash)
            }
            Digest::Hash(hash) | Digest::Behind { hash, .. } => {
                self.pipeline.settle(
                    from,
                    |s| matches!(s, SettledBy::PeerExchange(e) if e != syn.exchange),
                );
                (PeerSaid::Hash(*hash), *hash)
            }
        };
        self.pipeline.saw_hash(from, hash);
        if hash == self.vector_hash() {
            self.peer_matches_us(from);
        } else {
            self.news = true;
            if let PeerSaid::Vector(vector, _) = said {
                self.learn_peer_vector(from, vector);
            }
        }
        said
    }

    /// Takes the answer to an exchange this node opened, and closes it with
    /// what the responder lacks.
    pub(super) fn on_syn_ack(&mut self, from: NodeId, syn_ack: SynAck, now_ms: u64) {
        let open = match self.exchanges.opened.get(&syn_ack.exchange) {
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
        self.exchanges.opened.remove(&syn_ack.exchange);
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

    /// Applies the answer to an exchange this node opened and sends the
    /// closing `Ack`: bare if the responder lacks nothing, so that it knows
    /// the exchange is over.
    fn close_exchange(&mut self, from: NodeId, syn_ack: SynAck, open: Outstanding, now_ms: u64) {
        let received_all = syn_ack.delta.is_complete();
        // Whether this node's vector is still the one its `Syn` carried, and
        // then moves only by what the responder sent: not by parts held from
        // other peers that the answer lets in.
        let others_before = self.pipeline.held_from_others(from);
        let unmoved = self.vector_hash() == open.syn_hash;
        let held = self.apply(from, syn_ack.delta, open.deadline_ms, now_ms);
        let unmoved = unmoved && self.pipeline.held_from_others(from) == others_before;
        self.learn_members(from, syn_ack.members);
        let peer = self.learn_answer_view(from, syn_ack.digest, unmoved);
        let members = self.members_unlike(syn_ack.members_hash);
        // After a `SynAck` that was more than a matching hash the responder
        // waits for this `Ack`: it goes even empty, as the receipt that ends
        // the exchange on both sides.
        if peer.is_none() && members.is_none() {
            return;
        }
        let closing = Closing {
            exchange: syn_ack.exchange,
            peer,
            members,
            // The vector goes if asked for, or to tell the responder that
            // part of its delta was held back, which keeps that part in
            // flight there.
            with_vector: syn_ack.wants_vector || held,
            received_all,
        };
        self.send_closing_ack(from, closing, open, now_ms);
    }

    /// Learns the responder's vector from the digest in its `SynAck`;
    /// returns it, unless the digest was a hash. `unmoved`: whether this
    /// node's vector moved since its `Syn` only by what the responder sent.
    fn learn_answer_view(
        &mut self,
        from: NodeId,
        digest: Digest,
        unmoved: bool,
    ) -> Option<VersionVector> {
        // A `Behind` view is a floor on the responder's vector only if this
        // node's vector did not move since its `Syn` (see below).
        let mut view_is_floor = true;
        if !matches!(digest, Digest::Hash(_)) {
            self.news = true;
        }
        let peer = match digest {
            Digest::Hash(hash) => {
                self.pipeline.saw_hash(from, hash);
                if hash == self.vector_hash() {
                    self.peer_matches_us(from);
                } else {
                    self.news = true;
                }
                return None;
            }
            Digest::Full(peer) => {
                self.pipeline.saw_hash(from, vector_hash(&peer));
                peer
            }
            Digest::Behind { hash, lagging } => {
                self.pipeline.saw_hash(from, hash);
                // Everywhere the responder did not list, it is at least as
                // far as this node was when its `Syn` went: take this node's
                // frontier there. If something else moved that frontier
                // since, the view overstates the responder. That is harmless
                // for choosing a delta (its `since` keeps the responder from
                // taking what does not follow on), but tombstone collection
                // must not learn from it: it would count the responder as
                // holding deletes it lacks.
                view_is_floor = unmoved;
                self.version_vector()
                    .iter()
                    .map(|(origin, hlc)| {
                        let theirs = lagging
                            .binary_search_by_key(&origin, |&(o, _)| o)
                            .map_or(hlc, |i| lagging[i].1);
                        (origin, theirs)
                    })
                    .collect()
            }
        };
        if view_is_floor {
            self.learn_peer_vector(from, &peer);
        }
        self.pipeline.saw_vector(from, &peer);
        Some(peer)
    }

    /// Sends the initiator's `Ack`, and waits for the final `Ack` if it
    /// asks for one.
    fn send_closing_ack(&mut self, from: NodeId, closing: Closing, open: Outstanding, now_ms: u64) {
        let vector = closing.with_vector.then(|| self.version_vector().clone());
        let delta = match &closing.peer {
            Some(peer) => {
                let reserve = vector.as_ref().map_or(0, vector_len_bound)
                    + closing.members.as_ref().map_or(0, members_len_bound);
                self.pipeline
                    .delta_for(&self.replica, from, peer, self.delta_budget(reserve))
            }
            None => StoreDelta::default(),
        };
        // A final `Ack` carries what this node lacks if it sends its vector,
        // and is at least a receipt if it sends entries: that receipt is what
        // settles them (see `pipeline`).
        let awaiting_final = closing.with_vector || !delta.is_empty();
        if closing.received_all
            && delta.is_complete()
            && !closing.with_vector
            && closing.peer.is_some()
        {
            // Each side now has all the other had: once the Ack lands, both
            // hold the same vector, so the next Syn to this peer can be a
            // hash. (If the Ack is lost, that hash mismatches and the peer
            // asks for the vector.)
            let own = self.vector_hash();
            self.pipeline.saw_hash(from, own);
        }
        let sent = self.outgoing(&delta);
        let ack = Message::Ack(Ack {
            exchange: closing.exchange,
            incarnation: self.config.incarnation,
            from_initiator: true,
            delta,
            vector,
            members: closing.members,
        });
        if self.send(from, &ack) && awaiting_final {
            // The final `Ack` is two more hops away, and its delta is built
            // only once this `Ack` lands: waiting for it from now on keeps
            // every applied delta younger than the exchange timeout (see
            // `collect`), and lets it arrive on a link where four hops take
            // longer than the timeout. Counted from the `Syn`, every final
            // `Ack` on such a link came late, and the entries only it
            // carried never arrived.
            self.exchanges.opened.insert(
                closing.exchange,
                Outstanding {
                    awaiting_final: true,
                    deadline_ms: now_ms + self.config.exchange_timeout_ms,
                    ..open
                },
            );
            self.note_sent(from, sent, SettledBy::FinalAck(closing.exchange), now_ms);
        }
    }

    /// This node's member list if it is unlike the one hashed to
    /// `their_hash`, which is news.
    fn members_unlike(&mut self, their_hash: u64) -> Option<MemberList> {
        let unlike = their_hash != self.members.hash();
        self.news |= unlike;
        unlike.then(|| self.member_list())
    }

    /// Counts the entries of `delta`, about to be sent, and returns where it
    /// ends if it carries any: what [`note_sent`](Self::note_sent) keeps.
    pub(super) fn outgoing(&mut self, delta: &StoreDelta) -> Option<VersionVector> {
        self.metrics.entries_sent += delta.len() as u64;
        (!delta.is_empty()).then(|| delta.covered().clone())
    }

    /// Keeps a delta just sent to `peer` in flight until `settled_by` or
    /// the exchange timeout.
    pub(super) fn note_sent(
        &mut self,
        peer: NodeId,
        covered: Option<VersionVector>,
        settled_by: SettledBy,
        now_ms: u64,
    ) {
        let until_ms = now_ms + self.config.exchange_timeout_ms;
        self.pipeline.sent(peer, covered, settled_by, until_ms);
    }

    /// Ends every exchange still open on this side, before they are all
    /// dropped.
    pub(super) fn end_open_exchanges(&mut self) {
        let mut open: Vec<(NodeId, u64, bool)> = self
            .exchanges
            .opened
            .iter()
            .filter(|(_, open)| !open.awaiting_final)
            .map(|(&exchange, open)| (open.peer, exchange, true))
            .collect();
        open.extend(
            self.exchanges
                .answered
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
            .exchanges
            .opened
            .iter()
            .filter(|(_, open)| open.deadline_ms < now_ms)
            .map(|(&exchange, open)| (exchange, *open))
            .collect();
        expired.sort_unstable_by_key(|&(exchange, _)| exchange);
        for (exchange, open) in expired {
            self.exchanges.opened.remove(&exchange);
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
            .exchanges
            .answered
            .iter()
            .filter(|(_, deadline)| **deadline < now_ms)
            .map(|(&key, _)| key)
            .collect();
        unanswered.sort_unstable();
        for (initiator, exchange) in unanswered {
            self.exchanges.answered.remove(&(initiator, exchange));
            self.end_exchange(initiator, exchange, false);
        }
        self.pipeline.expire_in_flight(now_ms);
        self.expire_held(now_ms);
    }
}

// A pulling node never keeps more exchanges open with a peer than the peer
// keeps deltas in flight to it: the extra ones would come back empty.
const _: () = assert!(MAX_PULL_DEPTH <= MAX_IN_FLIGHT);

/// What a peer said of its vector, for [`Node::choose_digest`].
#[derive(Clone, Copy, Debug)]
enum PeerSaid<'a> {
    /// Nothing yet: this node opens the exchange, `alone` if no other
    /// exchange with the peer is open and it is not a pull.
    Nothing { alone: bool },
    /// Its vector's hash.
    Hash(u64),
    /// Its whole vector, and the vector's hash.
    Vector(&'a VersionVector, u64),
}

/// What the initiator's `Ack` will say.
struct Closing {
    exchange: u64,
    /// The responder's vector, as its `SynAck` showed it: the `Ack` carries
    /// what lies past it. `None` if the `SynAck` carried a matching hash.
    peer: Option<VersionVector>,
    /// This node's member list, if the responder's differs.
    members: Option<MemberList>,
    /// Whether this node's vector goes too.
    with_vector: bool,
    /// Whether the `SynAck`'s delta was complete.
    received_all: bool,
}

/// Whether `delta` carries entries and was cut short of all the sender had
/// to send: more is waiting.
pub(super) fn was_cut(delta: &StoreDelta) -> bool {
    !delta.is_empty() && !delta.is_complete()
}

/// `(origin, ours)` for every origin where `peer` is ahead of `ours`, in
/// origin order, with zero where this node has nothing.
fn lagging(ours: &VersionVector, peer: &VersionVector) -> Vec<(NodeId, Hlc)> {
    peer.ahead_of(ours)
        .map(|(origin, mine, _)| (origin, mine))
        .collect()
}
