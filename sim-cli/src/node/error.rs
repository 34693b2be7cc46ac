//! [`NodeError`]: why a node could not start. Once started, a node only
//! logs what goes wrong.

use std::net::SocketAddr;
use std::path::PathBuf;

use lww_crdt::NodeId;
use transport_quic::certs::CertError;
use transport_quic::{AddressError, QuicConfigError, SetupError};

/// Why [`run`](crate::node::run) could not start a node. In every case the
/// node serves no client, and whatever had been set up is torn down before
/// `run` returns; only [`NodeError::Thread`] comes after the node began
/// gossiping. The messages name the `sim-cli node` flags to check.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// `--http` names an address other than loopback, which is served
    /// over TLS, and the node's certificate cannot serve it.
    #[error(
        "--http {addr}: off loopback the API is HTTPS, and the node's certificate cannot serve it"
    )]
    HttpTls {
        /// The address given.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: transport_quic::tls::TlsError,
    },
    /// The HTTP API's address could not be bound.
    #[error("--http {addr}: cannot listen (TCP)")]
    HttpListen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The data directory cannot be used.
    #[error("--data-dir")]
    Store(#[from] crate::node::store::StoreError),
    /// The data directory's member last heard from a majority of its
    /// cluster longer ago than the retention window: the others have
    /// likely expired it and collected deletes it never saw.
    #[error(
        "{}: this member last heard from a majority of its cluster {} s ago, longer than the \
         retention window (--retention-ms {window_ms}); the other members have likely expired it \
         and collected deletes it never saw, which its values would undo. Move the directory \
         away and start the node with an empty --data-dir: it then fetches the cluster's state \
         from its peers",
        dir.display(),
        silent_ms / 1_000
    )]
    OutOfTouch {
        /// The data directory.
        dir: PathBuf,
        /// How long ago, in ms.
        silent_ms: u64,
        /// The retention window, in ms.
        window_ms: u64,
    },
    /// `--incarnation` is not above one this member's data directory says
    /// it lived.
    #[error(
        "--incarnation {given}: the data directory says this member already lived incarnation \
         {last}; give a greater one, or leave --incarnation out"
    )]
    IncarnationReused {
        /// The incarnation given.
        given: u32,
        /// The last one recorded.
        last: u32,
    },
    /// The node's certificate or key is missing or unusable.
    #[error(
        "cannot load node {id}'s certificate from {} (node-{id}.pem, node-{id}.key, ca.pem)",
        dir.display()
    )]
    NodeCertificate {
        /// The node.
        id: NodeId,
        /// The certificate directory.
        dir: PathBuf,
        /// What was wrong.
        #[source]
        source: CertError,
    },
    /// The cluster CA certificate is missing or unusable.
    #[error("cannot load {}", path.display())]
    CaCertificate {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        #[source]
        source: CertError,
    },
    /// The revocation list (`--revoked`) cannot be read, or a line of it
    /// is malformed (the error names the line).
    #[error("--revoked {}: the revocation list cannot be used", path.display())]
    Revoked {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: transport_quic::DenyListError,
    },
    /// No incarnation was given and the wall clock cannot make one.
    #[error("the wall clock ({secs} s since 1970) is outside 2020..2156; pass --incarnation")]
    WallClock {
        /// What the clock read, in seconds since 1970.
        secs: u64,
    },
    /// The I/O runtime could not start.
    #[error("cannot start the I/O runtime")]
    Runtime(#[source] std::io::Error),
    /// The timeouts make no valid transport configuration.
    #[error("transport configuration")]
    TransportConfig(#[source] QuicConfigError),
    /// The transport could not be set up on the address.
    #[error("cannot listen on {listen} (UDP)")]
    Listen {
        /// The address.
        listen: SocketAddr,
        /// Why.
        #[source]
        source: SetupError,
    },
    /// A peer given by address alone does not resolve.
    #[error("--peer {address}: cannot resolve the address")]
    PeerResolve {
        /// The address as given.
        address: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A peer given by address alone resolves to no address.
    #[error("--peer {address}: the name has no address")]
    PeerNoAddress {
        /// The address as given.
        address: String,
    },
    /// A peer names this node's own id.
    #[error("--peer {id}={address} names this node itself")]
    PeerIsSelf {
        /// The id.
        id: NodeId,
        /// The address as given.
        address: String,
    },
    /// A peer's address cannot be used.
    #[error("--peer {id}={address}")]
    PeerAddress {
        /// The peer.
        id: NodeId,
        /// The address as given.
        address: String,
        /// Why.
        #[source]
        source: AddressError,
    },
    /// The settings make no valid gossip configuration.
    #[error("gossip configuration")]
    GossipConfig(#[source] gossip::ConfigError),
    /// The transport was built without its client channel.
    #[error("the transport does not serve clients")]
    NoClientChannel,
    /// A helper thread could not be started.
    #[error("cannot start the {name} thread")]
    Thread {
        /// The thread's name.
        name: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}
