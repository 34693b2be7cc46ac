//! The `Transport` trait: how encoded frames move between members.

use std::time::Duration;

use lww_crdt::NodeId;

use crate::node::{ExchangeEnd, Transmit};

/// A frame delivered by a transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incoming {
    /// The member it came from, as the transport established it (an
    /// authenticating transport vouches for it).
    pub from: NodeId,
    /// The encoded frame.
    pub payload: Vec<u8>,
}

/// Why a transport could not send or receive.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The destination is not a member the transport can reach. Nothing was
    /// sent.
    #[error("no route to node {0}")]
    UnknownPeer(NodeId),
    /// The frame is larger than the transport carries. Nothing was sent.
    #[error("frame of {len} bytes exceeds the transport's {max}-byte limit")]
    FrameTooLarge {
        /// The frame's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The frame is empty, and this transport carries no empty frames (on
    /// a QUIC stream an empty frame is malformed). Nothing was sent.
    #[error("empty frames are not carried")]
    EmptyFrame,
    /// The transport was shut down; it will deliver nothing more.
    #[error("transport closed")]
    Closed,
    /// An I/O failure; the frame may not have been sent.
    #[error("transport I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Moves encoded gossip frames between members, best effort: frames may be
/// lost, duplicated or reordered, and the protocol copes.
///
/// The gossip driver owns one transport per node and calls it from one
/// thread.
pub trait Transport: Send + 'static {
    /// Sends one frame to `frame.to`. Its kind and exchange id let a
    /// transport carry each exchange on a stream of its own; a transport
    /// that does not may ignore them.
    ///
    /// # Errors
    /// [`TransportError`] if the frame could not be handed to the network.
    fn send(&mut self, frame: Transmit) -> Result<(), TransportError>;

    /// Waits up to `timeout` for the next frame; `Ok(None)` if none came.
    ///
    /// # Errors
    /// [`TransportError::Closed`] once the transport is shut down.
    fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Incoming>, TransportError>;

    /// This node sends nothing more in one exchange; every frame it sent in
    /// it was passed to [`send`](Self::send) before. A transport that keeps
    /// a stream per exchange closes its side of it now, rather than holding
    /// it open until it goes quiet. The default does nothing.
    fn end_exchange(&mut self, end: ExchangeEnd) {
        let _ = end;
    }
}
