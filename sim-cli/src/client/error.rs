//! [`ClientError`]: why a client could not reach a node, or the node did
//! not do what it was asked.

use std::net::SocketAddr;
use std::path::PathBuf;

use transport_quic::QuicConfigError;
use transport_quic::certs::CertError;

use crate::client::proto::{self, ProtoError, Response};

/// Why a client could not reach a node, or the node did not do what it was
/// asked. The messages name the `sim-cli` flags to check.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The node's address is not `host:port`, or does not resolve. Nothing
    /// was sent.
    #[error("--node {node:?} is not HOST:PORT or does not resolve")]
    Resolve {
        /// The address as given.
        node: String,
        /// Why it did not resolve.
        #[source]
        source: std::io::Error,
    },
    /// The node's name resolves to no address. Nothing was sent.
    #[error("--node {node:?} resolves to no address")]
    NoAddress {
        /// The address as given.
        node: String,
    },
    /// The client certificate or key is missing or unusable. Nothing was
    /// sent.
    #[error(
        "cannot load the client certificate of client {name:?} from {} ({}, ca.pem)",
        dir.display(),
        client_files(name)
    )]
    ClientCertificate {
        /// The certificate directory.
        dir: PathBuf,
        /// The client's name (`client` for `client.pem`).
        name: String,
        /// What was wrong.
        #[source]
        source: CertError,
    },
    /// The cluster CA certificate is missing or unusable. Nothing was sent.
    #[error(transparent)]
    CaCertificate(CertError),
    /// The timeout makes no valid client configuration. Nothing was sent.
    #[error("client configuration")]
    Config(#[source] QuicConfigError),
    /// The node did not answer in time. A request may have been received.
    #[error(
        "no answer from {addr} (as {server_name}): is a node listening there, and is UDP open \
         between here and it?"
    )]
    NoAnswer {
        /// The node's address.
        addr: SocketAddr,
        /// The name its certificate was checked against.
        server_name: String,
    },
    /// The TLS handshake failed. Nothing was sent.
    #[error(
        "TLS handshake with {addr} (as {server_name}) failed: {error}; check that --certs \
         holds this cluster's ca.pem and client.pem, and that the node's certificate names \
         {server_name}"
    )]
    Handshake {
        /// The node's address.
        addr: SocketAddr,
        /// The name its certificate was checked against.
        server_name: String,
        /// What QUIC reported.
        error: quinn::ConnectionError,
    },
    /// The node refused the connection, as it does a client certificate of
    /// another cluster. Nothing was taken.
    #[error(
        "the node at {addr} (as {server_name}) refused the connection ({close}); check that \
         --certs holds this cluster's client certificate and CA"
    )]
    ConnectionRefused {
        /// The node's address.
        addr: SocketAddr,
        /// The name its certificate was checked against.
        server_name: String,
        /// How it closed the connection.
        close: quinn::ConnectionClose,
    },
    /// The node closed the connection. A request may have been received.
    #[error("the node at {addr} (as {server_name}) closed the connection ({close})")]
    Closed {
        /// The node's address.
        addr: SocketAddr,
        /// The name its certificate was checked against.
        server_name: String,
        /// How it closed the connection.
        close: quinn::ApplicationClose,
    },
    /// The connection could not be started. Nothing was sent.
    #[error("cannot connect to {addr} (as {server_name}): {error}")]
    Connect {
        /// The node's address.
        addr: SocketAddr,
        /// The name its certificate was checked against.
        server_name: String,
        /// What QUIC reported.
        error: quinn::ConnectError,
    },
    /// Any other transport failure. A request may have been received.
    #[error("request to {addr} (as {server_name}) failed: {error}")]
    Transport {
        /// The node's address.
        addr: SocketAddr,
        /// The name its certificate was checked against.
        server_name: String,
        /// What the transport reported.
        error: transport_quic::ClientError,
    },
    /// The response could not be decoded. The request was received.
    #[error("the node at {addr} sent a response this client cannot read")]
    UnreadableResponse {
        /// The node's address.
        addr: SocketAddr,
        /// Why it could not be decoded.
        #[source]
        source: proto::DecodeError,
    },
    /// The node answered with an error; nothing changed on it.
    #[error("the node refused the request: {0}")]
    Refused(ProtoError),
    /// The node answered with a response of another kind than the request
    /// calls for. The request may have been carried out.
    #[error("the node sent an unexpected answer: {0:?}")]
    Unexpected(Box<Response>),
}

/// The files client `name` is read from, as `sim-cli certs` names them.
fn client_files(name: &str) -> String {
    if name == transport_quic::certs::FIRST_CLIENT {
        "client.pem, client.key".to_owned()
    } else {
        format!("client-{name}.pem, client-{name}.key")
    }
}
