//! The message limits two peers must agree on: declared in `Syn`s, checked
//! by the responder, and refused with a `SynAck` that carries nothing else.

use lww_crdt::NodeId;

use super::Node;
use crate::membership::Liveness;
use crate::message::{Digest, Message, Refusal, StoreDelta, Syn, SynAck, SynFlags};

impl Node {
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
    pub(super) fn limit_refusal(&mut self, from: NodeId, syn: &Syn) -> Option<Refusal> {
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
    pub(super) fn refuse(&mut self, from: NodeId, syn: &Syn, refusal: Refusal, now_ms: u64) {
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

    /// Notes what a `SynAck` says of the two message limits; returns whether
    /// it refused the exchange.
    pub(super) fn was_refused(&mut self, from: NodeId, syn_ack: &SynAck) -> bool {
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
            Some(Refusal::Expired) => self.note_expired_by(from),
        }
        true
    }
}
