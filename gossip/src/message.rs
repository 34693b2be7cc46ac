//! The messages of a push-pull exchange.

use lww_crdt::{Delta, Hlc, NodeId, VersionVector};
use serde::{Deserialize, Serialize};

/// The delta type the store exchanges: string keys, string values.
pub type StoreDelta = Delta<String, String>;

/// A member of the cluster: its id and the address it is reached at, which
/// only the transport interprets.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Member {
    /// The member id.
    pub id: NodeId,
    /// Where the transport reaches it (empty for in-memory transports).
    pub address: String,
}

/// A member that left the cluster, and the incarnation it left in: it is
/// not contacted again, nor waited for by tombstone collection, until it
/// speaks in a newer incarnation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Departure {
    /// The member that left.
    pub id: NodeId,
    /// The incarnation it left in.
    pub incarnation: u32,
    /// It did not leave: it expired, not heard from for longer than the
    /// retention window (see [`Liveness::Expired`](crate::Liveness::Expired)).
    pub expired: bool,
}

/// A node's member list as exchanges carry it: every member it knows,
/// itself included, and which of them left. A member that joins later
/// learns of a departure from the list, not only the members that heard
/// the leaver say so.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberList {
    /// Every member, in id order.
    pub members: Vec<Member>,
    /// The members that left, in id order.
    pub left: Vec<Departure>,
}

/// What a node knows, in as few bytes as will do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Digest {
    /// A hash of the version vector: sent when the sender believes the
    /// receiver holds the same vector, so equal nodes spend a few bytes.
    Hash(u64),
    /// The whole version vector: what a peer needs to compute a delta.
    Full(VersionVector),
    /// An answer to a whole vector: the sender's frontier on just the
    /// origins where the receiver is ahead (zero where the sender has
    /// nothing), and the hash of its whole vector. On every other origin the
    /// sender is at least as far as the receiver, so this is all the
    /// receiver needs to compute what the sender lacks, in bytes that grow
    /// with the difference rather than with the cluster.
    Behind {
        /// Hash of the sender's whole vector.
        hash: u64,
        /// `(origin, sender's frontier)` where the receiver is ahead.
        lagging: Vec<(NodeId, Hlc)>,
    },
}

/// One message of an exchange. An exchange is `Syn`, `SynAck`, then `Ack`;
/// when both sides are already equal it ends after `SynAck`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Opens an exchange with the initiator's digest.
    Syn(Syn),
    /// The responder's answer: what the initiator lacks, and its own digest.
    SynAck(SynAck),
    /// What the responder lacks; if it carries a digest, the responder
    /// answers with one more `Ack`.
    Ack(Ack),
}

/// Opens an exchange.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Syn {
    /// Chosen by the initiator; echoed by every reply.
    pub exchange: u64,
    /// The initiator's incarnation.
    pub incarnation: u32,
    /// Whether the initiator is leaving, and whether it asks for the
    /// responder's clock.
    pub flags: SynFlags,
    /// The initiator's digest.
    pub digest: Digest,
    /// A hash of the initiator's member list.
    pub members_hash: u64,
    /// The largest message the initiator sends and takes. Members whose
    /// limits differ would send each other entries the other refuses, so
    /// the responder answers a different limit with a [`Refusal`]. Sent
    /// until the two members have found their limits equal in their current
    /// lives; after that, `None`. A power of two travels as its exponent
    /// (one byte for the default 1 MiB), any other limit as itself: limits
    /// are at least 512, so the two never meet.
    #[serde(with = "limit_code")]
    pub max_message_bytes: Option<u32>,
}

/// The wire form of [`Syn::max_message_bytes`].
mod limit_code {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Codes below this are exponents of two.
    const EXPONENTS: u32 = 32;

    #[allow(clippy::ref_option)]
    pub(super) fn serialize<S: Serializer>(
        limit: &Option<u32>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        limit
            .map(|limit| {
                if limit.is_power_of_two() {
                    limit.trailing_zeros()
                } else {
                    limit
                }
            })
            .serialize(serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<u32>, D::Error> {
        Ok(Option::<u32>::deserialize(deserializer)?
            .map(|code| if code < EXPONENTS { 1 << code } else { code }))
    }
}

/// The flags of a [`Syn`], one byte on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SynFlags(u8);

impl SynFlags {
    /// The initiator is leaving the cluster (it stops once this exchange is
    /// done): the responder marks it Left, and neither gossips to it nor
    /// waits for it any more, until it speaks in a newer incarnation.
    pub const LEAVING: SynFlags = SynFlags(1);
    /// The initiator asks for the responder's clock
    /// ([`SynAck::time_ms`]), to estimate the offset between the two.
    pub const WANTS_CLOCK: SynFlags = SynFlags(2);

    /// Whether every flag of `other` is set.
    pub fn contains(self, other: SynFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// These flags with those of `other` set or cleared.
    #[must_use]
    pub fn with(self, other: SynFlags, on: bool) -> SynFlags {
        if on {
            SynFlags(self.0 | other.0)
        } else {
            SynFlags(self.0 & !other.0)
        }
    }
}

/// Why a responder would not exchange with the initiator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// The settings that must agree across a cluster do not: the
    /// responder's own `max_message_bytes` differs from the one the `Syn`
    /// carried.
    MaxMessageBytes(u32),
    /// The `Syn` left out the initiator's `max_message_bytes`, and the
    /// responder has not found it equal to its own in the initiator's
    /// current life (it restarted since, say): the initiator sends it again.
    LimitUnknown,
    /// The initiator expired, in the incarnation its `Syn` carried: it was
    /// not heard from for longer than the responder's retention window.
    Expired,
}

/// Answers a [`Syn`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SynAck {
    /// The exchange it answers.
    pub exchange: u64,
    /// The responder's incarnation.
    pub incarnation: u32,
    /// What the initiator lacks (empty if the responder could not tell).
    pub delta: StoreDelta,
    /// The responder's digest.
    pub digest: Digest,
    /// Set when the `Syn` carried only a hash that did not match: the
    /// responder could not compute a delta and asks for the full vector.
    pub wants_vector: bool,
    /// The responder's member list, when the member hashes differed.
    pub members: Option<MemberList>,
    /// A hash of the responder's member list.
    pub members_hash: u64,
    /// The responder's physical clock (ms) when it answered, if the `Syn`
    /// asked for it: with the times the `Syn` went and this arrived, the
    /// initiator estimates the offset between the two clocks.
    pub time_ms: Option<u64>,
    /// Set when the responder refused the exchange; the delta is then empty
    /// and the exchange over.
    pub refusal: Option<Refusal>,
}

/// Closes an exchange, or asks for one more delta.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The exchange it belongs to.
    pub exchange: u64,
    /// The sender's incarnation.
    pub incarnation: u32,
    /// Whether the sender opened the exchange (the initiator's `Ack`) or
    /// answers one (the responder's final `Ack`).
    pub from_initiator: bool,
    /// What the receiver lacks.
    pub delta: StoreDelta,
    /// The sender's vector, when the receiver asked for it (the receiver
    /// answers with an `Ack` carrying what the sender lacks), or unasked,
    /// when the initiator held part of the `SynAck`'s delta back.
    pub vector: Option<VersionVector>,
    /// The sender's member list, when the receiver lacks some of it.
    pub members: Option<MemberList>,
}

impl Message {
    /// The exchange the message belongs to.
    pub fn exchange(&self) -> u64 {
        match self {
            Message::Syn(syn) => syn.exchange,
            Message::SynAck(syn_ack) => syn_ack.exchange,
            Message::Ack(ack) => ack.exchange,
        }
    }

    /// Whether the sender opened the exchange: a `Syn`, or the initiator's
    /// `Ack`.
    #[allow(
        clippy::wrong_self_convention,
        reason = "sent from the initiator, as `Transmit::from_initiator`: no conversion"
    )]
    pub fn from_initiator(&self) -> bool {
        match self {
            Message::Syn(_) => true,
            Message::SynAck(_) => false,
            Message::Ack(ack) => ack.from_initiator,
        }
    }

    /// The sender's incarnation.
    pub fn incarnation(&self) -> u32 {
        match self {
            Message::Syn(syn) => syn.incarnation,
            Message::SynAck(syn_ack) => syn_ack.incarnation,
            Message::Ack(ack) => ack.incarnation,
        }
    }

    /// The message's kind, for metrics and logs.
    pub fn kind(&self) -> MessageKind {
        match self {
            Message::Syn(_) => MessageKind::Syn,
            Message::SynAck(_) => MessageKind::SynAck,
            Message::Ack(_) => MessageKind::Ack,
        }
    }
}

/// The kinds of message of an exchange, for metrics, logs and transports
/// (see the crate documentation, "The exchange").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MessageKind {
    /// A `Syn`: opens an exchange.
    Syn,
    /// A `SynAck`: the responder's answer.
    SynAck,
    /// An `Ack`: closes an exchange, or asks for one more.
    Ack,
}

impl MessageKind {
    /// Every kind, in exchange order.
    pub const ALL: [MessageKind; 3] = [MessageKind::Syn, MessageKind::SynAck, MessageKind::Ack];

    /// Position in [`MessageKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}
