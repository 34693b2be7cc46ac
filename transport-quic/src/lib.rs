//! A gossip [`Transport`](gossip::Transport) over QUIC, with mutual TLS
//! against a cluster CA.
//!
//! [`QuicTransport`] carries a node's gossip frames to its peers with
//! [quinn] (rustls on the *ring* provider only), so that
//! `gossip::spawn(node, quic_transport, clock)` runs a real node exactly as
//! it runs over `transport_mem::MemTransport`. It also serves the client
//! channel: clients holding the client certificate send request frames the
//! application answers, with one frame or a stream of them, and
//! [`QuicClient`] is that client.
//!
//! What it gives:
//!
//! - **Authentication both ways.** Every certificate comes from one cluster
//!   CA ([`certs`]). A node dials a peer as `node-<id>.gossip-kv`, so the
//!   peer's certificate must name that id; the dialing node presents its own
//!   certificate and names its id in a hello, which the server checks
//!   against the certificate. [`Incoming::from`](gossip::Incoming) is
//!   always that authenticated id. No certificate, another CA's, or a hello
//!   claiming someone else's id: refused, logged with the peer's address,
//!   counted in [`QuicStats`].
//! - **Small frames as datagrams, the rest on a stream per exchange.** A
//!   frame that fits in one QUIC datagram, and whose exchange has no stream
//!   open, goes as a datagram ([`QuicConfig::datagrams`]): an idle exchange
//!   (a `Syn` and a `SynAck` that match) is then two packets, with no
//!   stream to open, finish and acknowledge. Gossip is built for loss, so a
//!   lost datagram costs what a lost stream would. A larger frame opens a
//!   bidirectional stream for its exchange, and the exchange's later frames
//!   follow on it, both ways. Each side finishes its half when its node
//!   ends the exchange
//!   ([`Transport::end_exchange`](gossip::Transport::end_exchange)), and the
//!   stream closes once both have; one that goes quiet for
//!   [`QuicConfig::exchange_idle`] first is finished anyway. Frames are
//!   length-prefixed with a hard cap; a bad frame resets its stream only.
//! - **One link per peer, whichever side dialed.** A connection, once
//!   authenticated, carries streams and datagrams both ways, so two nodes
//!   usually share one: half the handshakes of a connection each way. The
//!   newest link to a peer is the one used, so a peer that restarted is
//!   reached on the connection its new life opened, and a peer whose
//!   address is not known yet (it joined through someone else) on the one
//!   it dialed. Dials are one at a time per peer, with connect and read
//!   timeouts and a backoff after a failure.
//! - **Bounded work.** At most [`QuicConfig::max_concurrent_exchanges`]
//!   peer streams and [`QuicConfig::max_concurrent_requests`] client
//!   requests are served at once; beyond that streams are refused with
//!   [`wire::STREAM_BUSY`], not queued. A served exchange counts until this
//!   node has ended it.
//! - **Graceful shutdown.** Stop accepting, flush and finish open streams,
//!   wait for the peer's acknowledgement, close, all within a bound.
//!
//! What it is not: it does not interpret gossip messages (except to tell
//! which side sent an `Ack` when both could have), it does not discover
//! peers (addresses come from the daemon, see [`QuicHandle::sync_members`]),
//! and it does not define the client requests' encoding (that is the
//! application's).
//!
//! # Example
//!
//! Two nodes on loopback, one frame from node 1 to node 2:
//!
//! ```
//! use std::time::Duration;
//! use gossip::{MessageKind, Transmit, Transport};
//! use lww_crdt::NodeId;
//! use transport_quic::QuicTransport;
//! use transport_quic::certs::ClusterCa;
//!
//! let ca = ClusterCa::generate()?;
//! let (one, two) = (NodeId::new(1), NodeId::new(2));
//! let mut a = QuicTransport::builder(ca.issue_node(one, &[])?, ca.cert().clone()).build()?;
//! let mut b = QuicTransport::builder(ca.issue_node(two, &[])?, ca.cert().clone()).build()?;
//! a.add_peer(two, b.local_addr());
//!
//! a.send(Transmit {
//!     to: two,
//!     kind: MessageKind::Syn,
//!     exchange: 0,
//!     from_initiator: true,
//!     payload: b"hi".to_vec(),
//! })?;
//! let got = b.recv_timeout(Duration::from_secs(10))?.expect("a frame");
//! assert_eq!((got.from, got.payload.as_slice()), (one, &b"hi"[..]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layout
//!
//! - `certs`: the cluster CA, node and client identities, the PEM directory
//!   layout ([`certs::CertDir`]).
//! - `tls`: rustls configurations (ring, TLS 1.3, CA-pinned, ALPN, the
//!   deny-list checked in the handshake) and the checks tying a certificate
//!   to a node id or a client.
//! - `revoked`: [`DenyList`], the serials of revoked certificates.
//! - `wire`: the hello, stream headers, frames and error codes, and the
//!   reading and writing of length-prefixed frames on a stream, the same
//!   for the node and the client.
//! - `config`: [`QuicConfig`], limits and timeouts, and the quinn
//!   transport parameters they make.
//! - `net`: the async core: accept loop, dialing, stream tasks, client
//!   request serving, shutdown; `net::link`, the links to peers and the
//!   datagrams on them.
//! - `drive`: [`QuicTransport::drive`], a gossip node driven by a task on
//!   the transport's runtime.
//! - `transport`: [`QuicTransport`], the blocking `gossip::Transport`, its
//!   builder and [`QuicHandle`].
//! - `client`: [`QuicClient`], [`Subscription`] and the node side of client
//!   requests.
//! - `stats`: [`QuicStats`] counters.

#![forbid(unsafe_code)]

pub mod certs;
mod client;
mod config;
mod dns;
mod drive;
mod net;
pub mod revoked;
mod stats;
pub mod tls;
mod transport;
pub mod wire;

pub use certs::{ClientIdentity, ClientRole};
pub use client::{
    ClientError, ClientRequest, QuicClient, RecvRequestError, RequestReceiver, RespondError,
    Responder, ResponseStream, Subscription,
};
pub use config::{DEFAULT_MAX_FRAME_BYTES, QuicConfig, QuicConfigBuilder, QuicConfigError};
pub use drive::DrivenNode;
pub use net::DiscoverError;
pub use revoked::{DenyList, DenyListError, Serial};
pub use stats::QuicStats;
pub use tls::{CLIENT_ALPN, PEER_ALPN};
pub use transport::{
    AddressError, QuicHandle, QuicTransport, QuicTransportBuilder, SetupError, resolve_member,
};
