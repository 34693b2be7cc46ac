//! Links: the authenticated connections to peers, whichever side dialed,
//! and what travels on them besides exchange streams.
//!
//! A link is a connection whose far end is a proven node id: one this node
//! dialed (the peer's certificate names the id it dialed) or one it
//! accepted (the certificate proves the id the hello claims). Either may
//! carry anything either way: exchange streams opened by either side, and
//! datagrams. The newest link to a peer is the one used; an older one is
//! not closed (the peer may still be sending on it) and ends when it goes
//! idle. So two nodes usually share one connection, and a peer that
//! restarts is reached on the connection its new life opens.
//!
//! A frame that fits in one QUIC datagram, and whose exchange has no stream
//! open, goes as a datagram ([`QuicConfig::datagrams`]): an idle exchange is
//! then two packets and no stream at all. Gossip is built for loss, so an
//! unreliable datagram costs it nothing a lost stream would not.
//!
//! [`QuicConfig::datagrams`]: crate::QuicConfig::datagrams

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use gossip::lock;
use lww_crdt::NodeId;
use quinn::Connection;
use tracing::debug;

use super::{Shared, code};
use crate::stats::Counters;
use crate::wire;

/// An authenticated connection to a peer.
pub(super) struct Link {
    pub(super) conn: Connection,
    /// The address this node dialed, or `None` for a connection the peer
    /// opened.
    pub(super) dialed_to: Option<SocketAddr>,
}

impl Shared {
    /// The link to `peer` if it is still open. A link this node dialed to
    /// an address the peer no longer has is closed and forgotten.
    pub(super) fn live_link(&self, peer: NodeId) -> Option<Connection> {
        let address = self.peer_addr(peer);
        let mut links = lock(&self.links);
        let link = links.get(&peer)?;
        let moved = matches!((link.dialed_to, address), (Some(at), Some(now)) if at != now);
        if link.conn.close_reason().is_some() || moved {
            if moved {
                link.conn.close(code(wire::CONN_DONE), b"peer moved");
            }
            links.remove(&peer);
            return None;
        }
        Some(link.conn.clone())
    }

    /// Makes `conn` the link to `peer`, replacing any older one.
    pub(super) fn set_link(&self, peer: NodeId, conn: &Connection, dialed_to: Option<SocketAddr>) {
        lock(&self.links).insert(
            peer,
            Link {
                conn: conn.clone(),
                dialed_to,
            },
        );
    }

    /// Makes `conn`, which this node dialed at `addr`, the link to `peer`
    /// and serves it on a task of its own.
    pub(super) fn add_dialed_link(
        self: &Arc<Self>,
        peer: NodeId,
        conn: &Connection,
        addr: SocketAddr,
    ) {
        self.set_link(peer, conn, Some(addr));
        let shared = Arc::clone(self);
        self.tracker
            .spawn_on(shared.serve_link(peer, conn.clone()), &self.runtime);
    }

    /// Forgets `conn` as the link to `peer`, if it still is.
    pub(super) fn drop_link(&self, peer: NodeId, conn: &Connection) {
        let mut links = lock(&self.links);
        if links
            .get(&peer)
            .is_some_and(|link| link.conn.stable_id() == conn.stable_id())
        {
            links.remove(&peer);
        }
    }

    /// Closes and forgets every link whose peer's certificate the
    /// deny-list now holds (it was revoked while the link was open);
    /// returns how many.
    pub(crate) fn close_revoked_links(&self) -> usize {
        let mut links = lock(&self.links);
        let revoked: Vec<NodeId> = links
            .iter()
            .filter(|(_, link)| {
                let (_, chain) = crate::tls::handshake_facts(&link.conn);
                chain.is_some_and(|chain| self.revoked.revoked_in(&chain).is_some())
            })
            .map(|(&peer, _)| peer)
            .collect();
        for peer in &revoked {
            if let Some(link) = links.remove(peer) {
                tracing::warn!(node = %self.id, %peer, peer_addr = %link.conn.remote_address(),
                    "closed the link to a peer whose certificate was revoked");
                link.conn
                    .close(code(wire::CONN_REVOKED), b"certificate revoked");
            }
        }
        revoked.len()
    }

    /// Closes and forgets the link to `peer`.
    pub(super) fn close_link(&self, peer: NodeId) {
        if let Some(link) = lock(&self.links).remove(&peer) {
            link.conn.close(code(wire::CONN_DONE), b"peer removed");
        }
    }

    /// Sends `payload` to `peer` as one datagram if datagrams are on, a
    /// link is open and the payload fits; otherwise hands it back.
    pub(super) fn send_datagram(&self, peer: NodeId, payload: Vec<u8>) -> Result<(), Vec<u8>> {
        if !self.config.datagrams() {
            return Err(payload);
        }
        let Some(conn) = self.live_link(peer) else {
            return Err(payload);
        };
        if conn
            .max_datagram_size()
            .is_none_or(|max| payload.len() > max)
        {
            return Err(payload);
        }
        // A copy (of at most one packet), so that the frame can still go on
        // a stream if the datagram cannot be sent.
        match conn.send_datagram(Bytes::copy_from_slice(&payload)) {
            Ok(()) => {
                Counters::add(&self.counters.datagrams_sent, 1);
                Counters::add(&self.counters.frames_sent, 1);
                Counters::add(&self.counters.bytes_sent, payload.len() as u64);
                Ok(())
            }
            Err(err) => {
                debug!(node = %self.id, %peer, error = %err, "datagram not sent; using a stream");
                if matches!(err, quinn::SendDatagramError::ConnectionLost(_)) {
                    self.drop_link(peer, &conn);
                }
                Err(payload)
            }
        }
    }

    /// Serves one link: streams the peer opens and datagrams it sends,
    /// until the connection closes or the transport stops.
    pub(super) async fn serve_link(self: Arc<Self>, peer: NodeId, conn: Connection) {
        let streams = self.accept_streams(peer, &conn);
        let datagrams = self.read_datagrams(peer, &conn);
        tokio::select! {
            () = streams => {},
            () = datagrams => {},
            () = self.stop.cancelled() => {},
        }
        self.drop_link(peer, &conn);
    }

    /// Hands every datagram on `conn` to the node as a frame from `peer`.
    async fn read_datagrams(&self, peer: NodeId, conn: &Connection) {
        let max = self.config.max_incoming_frame_bytes();
        while let Ok(datagram) = conn.read_datagram().await {
            if datagram.is_empty() || datagram.len() > max {
                Counters::add(&self.counters.datagrams_rejected, 1);
                debug!(node = %self.id, %peer, len = datagram.len(), "empty or oversize datagram; dropped");
                continue;
            }
            Counters::add(&self.counters.datagrams_received, 1);
            Counters::add(&self.counters.frames_received, 1);
            Counters::add(&self.counters.bytes_received, datagram.len() as u64);
            let incoming = gossip::Incoming {
                from: peer,
                payload: Vec::from(datagram),
            };
            if self.inbox.send(incoming).await.is_err() {
                return;
            }
        }
    }
}
