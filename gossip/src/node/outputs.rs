//! What a node hands its caller: frames to send, ends of exchanges, events.

use lww_crdt::{ApplyReport, NodeId};

use super::ClockStatus;
use super::MessageLimits;
use crate::message::{Member, MessageKind};

/// An encoded message for the transport to carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// The destination member.
    pub to: NodeId,
    /// Its kind: a transport that keeps one stream per exchange opens a
    /// stream for a `Syn` and reuses it for the rest.
    pub kind: MessageKind,
    /// The exchange it belongs to, chosen by the exchange's initiator: with
    /// the two members' ids and [`from_initiator`](Self::from_initiator) it
    /// names the exchange, since both members number their own exchanges.
    pub exchange: u64,
    /// Whether this node opened the exchange (a `Syn` or the initiator's
    /// `Ack`) or answers it.
    pub from_initiator: bool,
    /// The encoded frame.
    pub payload: Vec<u8>,
}

/// Word that this node sends nothing more in one exchange: a transport that
/// carries each exchange on a stream of its own closes its side of that
/// stream now instead of waiting for it to go quiet. A transport without such
/// streams ignores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExchangeEnd {
    /// The other member of the exchange.
    pub peer: NodeId,
    /// The exchange, numbered by its initiator as in [`Transmit::exchange`].
    pub exchange: u64,
    /// Whether this node opened the exchange, as in
    /// [`Transmit::from_initiator`].
    pub from_initiator: bool,
}

/// Ends held for a caller that does not drain them: an end only lets a
/// stream close early, so the oldest go first.
pub(super) const MAX_PENDING_ENDS: usize = 256;

/// Something the caller may want to know about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A peer answered after being suspect or down.
    PeerUp(NodeId),
    /// A peer missed enough exchanges to be suspected.
    PeerSuspect(NodeId),
    /// A peer missed enough exchanges to be considered down.
    PeerDown(NodeId),
    /// A member was learned through gossip.
    MemberJoined(Member),
    /// A peer said it was leaving: it is no longer contacted or waited for,
    /// until it speaks in a newer incarnation.
    PeerLeft(NodeId),
    /// A peer was not heard from for longer than the retention window, in
    /// the incarnation given, and expired: tombstone collection goes on
    /// without it, and its messages in that incarnation are refused. Raised
    /// by the node that found it silent, and by those that learn it from a
    /// member list (`silent_ms` is then `None`).
    PeerExpired {
        /// The peer.
        peer: NodeId,
        /// Its incarnation.
        incarnation: u32,
        /// How long this node had not heard from it.
        silent_ms: Option<u64>,
    },
    /// A peer refused this node as expired (see [`WriteError::Expired`](
    /// crate::WriteError::Expired)): raised once; writes are refused from
    /// now on. An operator must start it empty, in a new incarnation.
    SelfExpired {
        /// The peer that refused it.
        by: NodeId,
    },
    /// A peer's clock was measured more than half the maximum offset from
    /// this node's (`skewed`), or back within a quarter of it after that.
    ClockOffset {
        /// The peer.
        peer: NodeId,
        /// Its clock minus this node's (ms).
        offset_ms: i64,
        /// Whether it is now beyond half the maximum offset.
        skewed: bool,
    },
    /// This node's clock went beyond the maximum offset from most measured
    /// peers (client writes are refused from now on), or came back in range.
    OwnClock(ClockStatus),
    /// A message from `from` was refused whole: it carried a stamp more than
    /// the maximum offset ahead of this node's clock
    /// ([`MessageError::Clock`](crate::MessageError::Clock)). Raised for every such message; a caller
    /// that logs it should limit the rate.
    ClockRefused {
        /// The sender.
        from: NodeId,
        /// How far ahead of this node's physical clock its stamp was (ms).
        ahead_ms: u64,
    },
    /// A peer's settings differ from this node's where they must agree: the
    /// two refuse to exchange (reported once per peer and value).
    SettingsDiffer {
        /// The peer.
        peer: NodeId,
        /// The two message limits.
        max_message_bytes: MessageLimits,
    },
    /// A delta from `from` changed the map.
    Updated {
        /// The sender.
        from: NodeId,
        /// What it changed.
        report: ApplyReport,
    },
}
