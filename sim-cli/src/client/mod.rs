//! The client: connect to a node with the client certificate, send
//! [`Request`]s, read [`Response`]s. `sim-cli put|get|delete|status|members`
//! and `converged` are built on it, and so can tests and tools be.
//!
//! - [`Target`]: where a node is and the name its certificate must carry.
//! - [`Credentials`]: the client certificate and the cluster CA.
//! - [`Client`]: one connection, one stream per request; [`Client::call`]
//!   sends any request, [`Client::put`], [`Client::get`],
//!   [`Client::delete`] and [`Client::status`] unwrap the answer.
//! - [`proto`]: the requests, responses and their encoding.
//!
//! # Example
//!
//! Against a node started with `sim-cli node --listen 127.0.0.1:7000` and
//! certificates made by `sim-cli certs --out certs --name 127.0.0.1`:
//!
//! ```no_run
//! use std::path::Path;
//! use std::time::Duration;
//!
//! use sim::client::{Client, Credentials, Target};
//!
//! let target = Target::resolve("127.0.0.1:7000", None, None)?;
//! let credentials = Credentials::load(Path::new("certs"))?;
//! let client = Client::connect(target, &credentials, Duration::from_secs(5))?;
//! let stamp = client.put("colour", "blue")?;
//! let entry = client.get("colour")?.expect("just written");
//! assert_eq!((entry.value.as_deref(), entry.stamp), (Some("blue"), stamp));
//! let status = client.status()?;
//! println!("node {} holds {} keys", status.id, status.keys);
//! client.close();
//! # Ok::<(), sim::client::ClientError>(())
//! ```

pub mod proto;

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use lww_crdt::{Entry, NodeId, Stamp};
use transport_quic::certs::{CaCert, CertDir, CertError, Identity, node_name};
use transport_quic::{QuicClient, QuicConfig, QuicConfigError};

pub use proto::{ProtoError, Request, Response, Status};

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
        "cannot load the client certificate from {} (client.pem, client.key, ca.pem)",
        dir.display()
    )]
    ClientCertificate {
        /// The certificate directory.
        dir: PathBuf,
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

/// Where a node is and what name its certificate must carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The node's UDP address.
    pub addr: SocketAddr,
    /// The name checked against its certificate.
    pub server_name: String,
}

impl Target {
    /// Resolves `node` (`host:port`) and picks the server name:
    /// `server_name` if given, else `node-<id>.gossip-kv` for `node_id`,
    /// else the host part of `node` (an IP address or DNS name the node's
    /// certificate must carry).
    ///
    /// # Errors
    /// [`ClientError::Resolve`] or [`ClientError::NoAddress`] for an
    /// address that is not `host:port` or does not resolve.
    pub fn resolve(
        node: &str,
        node_id: Option<u64>,
        server_name: Option<&str>,
    ) -> Result<Target, ClientError> {
        let addr = resolve(node)?;
        let server_name = match (server_name, node_id) {
            (Some(name), _) => name.to_owned(),
            (None, Some(id)) => node_name(NodeId::new(id)),
            (None, None) => host_part(node).map_or_else(|| addr.ip().to_string(), str::to_owned),
        };
        Ok(Target { addr, server_name })
    }
}

fn resolve(node: &str) -> Result<SocketAddr, ClientError> {
    if let Ok(addr) = node.parse() {
        return Ok(addr);
    }
    node.to_socket_addrs()
        .map_err(|source| ClientError::Resolve {
            node: node.to_owned(),
            source,
        })?
        .next()
        .ok_or_else(|| ClientError::NoAddress {
            node: node.to_owned(),
        })
}

/// The host of `host:port` when it is a DNS name (IP literals, bracketed or
/// not, return `None`: the resolved IP is used).
fn host_part(node: &str) -> Option<&str> {
    let (host, _) = node.rsplit_once(':')?;
    if host.starts_with('[') || host.parse::<IpAddr>().is_ok() {
        return None;
    }
    Some(host)
}

/// The client identity and the cluster CA, as `sim-cli certs` wrote them.
pub struct Credentials {
    identity: Identity,
    ca: CaCert,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").finish_non_exhaustive()
    }
}

impl Credentials {
    /// Loads `client.pem`, `client.key` and `ca.pem` from `dir`.
    ///
    /// # Errors
    /// [`ClientError::ClientCertificate`] or
    /// [`ClientError::CaCertificate`]: missing or unusable files, with
    /// their paths.
    pub fn load(dir: &Path) -> Result<Credentials, ClientError> {
        let dir = CertDir::new(dir);
        let identity = dir
            .load_client()
            .map_err(|source| ClientError::ClientCertificate {
                dir: dir.root().to_path_buf(),
                source,
            })?;
        let ca = dir.load_ca_cert().map_err(ClientError::CaCertificate)?;
        Ok(Credentials { identity, ca })
    }
}

/// A connection to one node. Each request travels on a stream of its own;
/// the connection is reopened if it was lost. Blocking: not for use inside
/// an async runtime.
pub struct Client {
    client: QuicClient,
    target: Target,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to `target`, giving up after `timeout`; each request then
    /// waits up to `timeout` for its answer.
    ///
    /// # Errors
    /// [`ClientError`]: the node unreachable, or the TLS handshake refused
    /// either way.
    pub fn connect(
        target: Target,
        credentials: &Credentials,
        timeout: Duration,
    ) -> Result<Client, ClientError> {
        let config = QuicConfig::builder()
            .connect_timeout(timeout)
            .request_timeout(timeout)
            .build()
            .map_err(ClientError::Config)?;
        let client = QuicClient::connect(
            target.addr,
            &target.server_name,
            &credentials.identity,
            &credentials.ca,
            config,
        )
        .map_err(|err| explain(&target, err))?;
        Ok(Client { client, target })
    }

    /// The node this client talks to.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Sends `request` and decodes the response, whatever it is (an error
    /// response included).
    ///
    /// # Errors
    /// [`ClientError`]: transport failures, or a response that cannot be
    /// decoded.
    pub fn call(&self, request: &Request) -> Result<Response, ClientError> {
        let bytes = self
            .client
            .request(&proto::encode(request))
            .map_err(|err| explain(&self.target, err))?;
        proto::decode(&bytes).map_err(|source| ClientError::UnreadableResponse {
            addr: self.target.addr,
            source,
        })
    }

    /// Writes `value` to `key`; returns the write's stamp.
    ///
    /// # Errors
    /// As [`call`](Self::call), and [`ClientError::Refused`] if the node
    /// did not take the write (too large, not joined yet, shutting down).
    pub fn put(&self, key: &str, value: &str) -> Result<Stamp, ClientError> {
        let request = Request::Put {
            key: key.to_owned(),
            value: value.to_owned(),
        };
        match self.ask(&request)? {
            Response::Written { stamp } => Ok(stamp),
            other => Err(ClientError::Unexpected(Box::new(other))),
        }
    }

    /// Deletes `key` (writes a tombstone); returns the delete's stamp.
    ///
    /// # Errors
    /// As [`put`](Self::put).
    pub fn delete(&self, key: &str) -> Result<Stamp, ClientError> {
        let request = Request::Delete {
            key: key.to_owned(),
        };
        match self.ask(&request)? {
            Response::Written { stamp } => Ok(stamp),
            other => Err(ClientError::Unexpected(Box::new(other))),
        }
    }

    /// The node's entry for `key`: `None` if it never saw the key (or
    /// collected its tombstone), a tombstone if it was deleted.
    ///
    /// # Errors
    /// As [`call`](Self::call).
    pub fn get(&self, key: &str) -> Result<Option<Entry<String>>, ClientError> {
        let request = Request::Get {
            key: key.to_owned(),
        };
        match self.ask(&request)? {
            Response::Entry { entry } => Ok(entry),
            other => Err(ClientError::Unexpected(Box::new(other))),
        }
    }

    /// The node's state: members, keys, version vector, counters.
    ///
    /// # Errors
    /// As [`call`](Self::call).
    pub fn status(&self) -> Result<Status, ClientError> {
        match self.ask(&Request::Status)? {
            Response::Status(status) => Ok(*status),
            other => Err(ClientError::Unexpected(Box::new(other))),
        }
    }

    /// [`call`](Self::call), with an error response as
    /// [`ClientError::Refused`].
    fn ask(&self, request: &Request) -> Result<Response, ClientError> {
        match self.call(request)? {
            Response::Error(err) => Err(ClientError::Refused(err)),
            response => Ok(response),
        }
    }

    /// Closes the connection politely.
    pub fn close(self) {
        self.client.close();
    }
}

/// A client failure, with what to check.
fn explain(target: &Target, err: transport_quic::ClientError) -> ClientError {
    let (addr, server_name) = (target.addr, target.server_name.clone());
    match err {
        transport_quic::ClientError::Timeout => ClientError::NoAnswer { addr, server_name },
        transport_quic::ClientError::Connection(
            error @ quinn::ConnectionError::TransportError(_),
        ) => ClientError::Handshake {
            addr,
            server_name,
            error,
        },
        transport_quic::ClientError::Connection(quinn::ConnectionError::ConnectionClosed(
            close,
        )) => ClientError::ConnectionRefused {
            addr,
            server_name,
            close,
        },
        transport_quic::ClientError::Connection(quinn::ConnectionError::ApplicationClosed(
            close,
        )) => ClientError::Closed {
            addr,
            server_name,
            close,
        },
        transport_quic::ClientError::Connect(error) => ClientError::Connect {
            addr,
            server_name,
            error,
        },
        error => ClientError::Transport {
            addr,
            server_name,
            error,
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn server_names_follow_the_flags() {
        let t = Target::resolve("127.0.0.1:7000", None, None).unwrap();
        assert_eq!(t.server_name, "127.0.0.1");
        let t = Target::resolve("127.0.0.1:7000", Some(4), None).unwrap();
        assert_eq!(t.server_name, "node-4.gossip-kv");
        let t = Target::resolve("127.0.0.1:7000", Some(4), Some("db.example")).unwrap();
        assert_eq!(t.server_name, "db.example");
        let t = Target::resolve("[::1]:7000", None, None).unwrap();
        assert_eq!(t.server_name, "::1");
        let t = Target::resolve("localhost:7000", None, None).unwrap();
        assert_eq!(t.server_name, "localhost");
        assert!(Target::resolve("no-port", None, None).is_err());
    }
}
