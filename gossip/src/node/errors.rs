//! Why a node refused a message or a write.

use lww_crdt::{ClockError, NodeId};

use crate::codec::DecodeError;

/// Why a received message was refused. The node's state is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// The bytes are not a valid message.
    #[error("undecodable message from {from}: {source}")]
    Decode {
        /// The claimed sender.
        from: NodeId,
        /// What was wrong.
        source: DecodeError,
    },
    /// The message carries a timestamp too far ahead of local time.
    #[error("message from {from} refused: {source}")]
    Clock {
        /// The sender.
        from: NodeId,
        /// The offending timestamp.
        source: ClockError,
    },
    /// A message claiming to come from this node itself.
    #[error("message claims to come from this node ({0})")]
    FromSelf(NodeId),
    /// The sender expired in this incarnation (see
    /// [`Liveness::Expired`](crate::Liveness::Expired)): it may hold values
    /// whose deletes were collected. A `Syn` is answered with a refusal
    /// that tells it so; nothing else changes.
    #[error("message from {from}, expired in incarnation {incarnation}, refused")]
    Expired {
        /// The sender.
        from: NodeId,
        /// The incarnation the message carried.
        incarnation: u32,
    },
}

/// What a node's quotas count ([`WriteError::StoreFull`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quota {
    /// Live keys ([`ConfigBuilder::max_keys`](crate::ConfigBuilder::max_keys)).
    Keys,
    /// Bytes of keys and values ([`ConfigBuilder::max_data_bytes`](
    /// crate::ConfigBuilder::max_data_bytes)).
    DataBytes,
}

impl std::fmt::Display for Quota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Quota::Keys => "keys",
            Quota::DataBytes => "bytes of data",
        })
    }
}

/// Why a client write was refused. Nothing was written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// The entry could not fit a message alongside a digest.
    #[error("key and value take up to {len} bytes; at most {max} fit a gossip message")]
    TooLarge {
        /// The entry's encoded bound.
        len: usize,
        /// The largest accepted.
        max: usize,
    },
    /// The node joins through seeds ([`ConfigBuilder::join_before_writing`](
    /// crate::ConfigBuilder::join_before_writing)) and no member has answered
    /// it yet (the rest of the cluster may not know it exists), or it has
    /// not yet measured its clock against enough peers to judge it.
    #[error(
        "this node has not joined the cluster yet: no member has been heard from, or its clock \
         is not yet measured against theirs"
    )]
    NotJoined,
    /// The node holds as much as its quota allows: the write would add a
    /// key past [`Config::max_keys`](crate::Config::max_keys) or bytes past
    /// [`Config::max_data_bytes`](crate::Config::max_data_bytes). Deletes
    /// still go through.
    #[error("this node is full: it holds {held} {quota}, its quota is {max}")]
    StoreFull {
        /// What is full.
        quota: Quota,
        /// How much the node holds.
        held: u64,
        /// The quota.
        max: u64,
    },
    /// The node is shutting down ([`Node::start_draining`](crate::Node::start_draining)): a write taken
    /// now might not reach any peer before it stops.
    #[error("this node is shutting down and takes no more writes")]
    Draining,
    /// A peer refused this node as expired: it was not heard from for
    /// longer than the retention window, and the cluster collected deletes
    /// it may not have seen ([`Event::SelfExpired`](crate::Event::SelfExpired)).
    #[error(
        "this node expired: peer {by} did not hear from it for longer than its retention \
         window; stop it, move its data directory away and start it empty to rejoin"
    )]
    Expired {
        /// The peer that said so.
        by: NodeId,
    },
    /// This node's clock is beyond the maximum offset from most of the peers
    /// it measured ([`Node::clock_status`](crate::Node::clock_status)): its stamps would be refused by
    /// its peers, or lose to writes made long before.
    #[error(
        "this node's clock is more than {max_offset_ms} ms off from {peers_beyond} of the \
         {peers_measured} peers it measured (median offset {median_offset_ms} ms); writes \
         are refused until it is back in range"
    )]
    ClockOutOfRange {
        /// Peers measured beyond the maximum offset.
        peers_beyond: usize,
        /// Peers measured.
        peers_measured: usize,
        /// The median offset (peer minus this node, ms).
        median_offset_ms: i64,
        /// The maximum offset.
        max_offset_ms: u64,
    },
    /// The write is in this node's map, but its durable copy could not be
    /// written ([`Persist`](crate::Persist)): it was not acknowledged as
    /// durable, and the node stops.
    #[error(transparent)]
    Storage(#[from] crate::PersistError),
    /// The node's clock holds the largest timestamp and cannot stamp a
    /// write after it (its state holds a stamp near the end of time): no
    /// write is taken rather than one reusing a stamp.
    #[error(
        "this node's clock has reached the largest timestamp ({last}); no write can be stamped after it"
    )]
    ClockExhausted {
        /// The clock's last timestamp.
        last: lww_crdt::Hlc,
    },
}

impl From<lww_crdt::ClockError> for WriteError {
    fn from(err: lww_crdt::ClockError) -> Self {
        match err {
            lww_crdt::ClockError::Exhausted { last } => WriteError::ClockExhausted { last },
            // A write observes no remote stamp; should it be refused for
            // one, the clock is as good as used up.
            lww_crdt::ClockError::TooFarAhead { remote, .. } => {
                WriteError::ClockExhausted { last: remote }
            }
        }
    }
}
