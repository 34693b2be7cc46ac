//! The last messages of an exchange: the initiator's `Ack`, and the
//! responder's final `Ack` when the initiator's asks for one.

use lww_crdt::{NodeId, VersionVector};

use super::Node;
use super::exchange::was_cut;
use super::pipeline::SettledBy;
use super::vector_hash;
use crate::message::{Ack, Message, StoreDelta};

/// What taking an `Ack` did.
struct AckTaken {
    /// It closed an exchange this node answered and had not ended yet.
    closes_answered: bool,
    /// It was applied, and its delta was cut to the sender's message budget:
    /// how long after its exchange began (or this node's answer in it went).
    applied_cut: Option<u64>,
}

impl Node {
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
        self.settle_by_ack(from, &ack);
        // Members are learned from any `Ack`, current or not: after a
        // `SynAck` with a matching hash the exchange is already over here,
        // and the initiator's list (its own address among it) came only
        // this way.
        self.learn_members(from, ack.members.take());
        let (closes_answered, deadline) = self.ack_deadline(from, &ack);
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
        if ack.from_initiator && (ack.vector.is_some() || carried_entries) {
            self.send_final_ack(from, ack.exchange, ack.vector, held, now_ms);
        }
        taken
    }

    /// Settles the deltas sent to `from` that its `Ack` accounts for.
    /// Whether or not the `Ack` is still current, the peer sent it after
    /// taking, holding back or dropping the delta this node sent it in that
    /// exchange; a final one with a vector says it held some back.
    fn settle_by_ack(&mut self, from: NodeId, ack: &Ack) {
        match (&ack.vector, ack.from_initiator) {
            (Some(vector), _) => self.pipeline.saw_vector(from, vector),
            // A bare `Ack` only closes the exchange. What the initiator sent
            // before it, its `SynAck` view above all, may still be on the
            // way and predate the delta, so the delta stays in flight until
            // the initiator's next `Syn` or a vector that shows it.
            (None, true) if ack.delta.is_empty() && ack.members.is_none() => {}
            (None, true) => self
                .pipeline
                .settle(from, |s| s == SettledBy::PeerExchange(ack.exchange)),
            (None, false) => self
                .pipeline
                .settle(from, |s| s == SettledBy::FinalAck(ack.exchange)),
        }
    }

    /// Closes the exchange an `Ack` from `from` belongs to, if this node
    /// still waits for it: returns whether it was one this node answered,
    /// and its deadline.
    fn ack_deadline(&mut self, from: NodeId, ack: &Ack) -> (bool, Option<u64>) {
        if ack.from_initiator {
            let answered = self.exchanges.answered.remove(&(from, ack.exchange));
            return (answered.is_some(), answered);
        }
        match self.exchanges.opened.get(&ack.exchange) {
            Some(open) if open.peer == from && open.awaiting_final => {
                let deadline = open.deadline_ms;
                self.exchanges.opened.remove(&ack.exchange);
                (false, Some(deadline))
            }
            _ => (false, None),
        }
    }

    /// Answers the initiator's `Ack` in `exchange` with the final `Ack`:
    /// what the initiator lacks past its `vector`, if it sent one, or just
    /// a receipt for the entries it sent. A receipt for entries held back
    /// (`held`) says so with this node's vector, so the initiator still
    /// counts them in flight.
    fn send_final_ack(
        &mut self,
        from: NodeId,
        exchange: u64,
        vector: Option<VersionVector>,
        held: bool,
        now_ms: u64,
    ) {
        let delta = match vector {
            Some(peer) => {
                self.pipeline.saw_hash(from, vector_hash(&peer));
                self.learn_peer_vector(from, &peer);
                self.pipeline.saw_vector(from, &peer);
                self.pipeline
                    .delta_for(&self.replica, from, &peer, self.delta_budget(0))
            }
            None => StoreDelta::default(),
        };
        let vector = held.then(|| self.version_vector().clone());
        let sent = self.outgoing(&delta);
        let reply = Message::Ack(Ack {
            exchange,
            incarnation: self.config.incarnation,
            from_initiator: false,
            delta,
            vector,
            members: None,
        });
        if self.send(from, &reply) {
            // The initiator's next `Syn` tells whether it landed: a vector
            // shows it, and a hash goes only once this exchange is over.
            self.note_sent(from, sent, SettledBy::PeerExchange(exchange), now_ms);
        }
    }
}
