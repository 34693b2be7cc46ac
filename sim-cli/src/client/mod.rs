//! The client: connect to a node with the client certificate, send
//! [`Request`]s, read [`Response`]s. `sim-cli put|get|delete|status|members`
//! and `converged` are built on it, and so can tests and tools be.
//!
//! - [`Target`]: where a node is and the name its certificate must carry.
//! - [`Credentials`]: the client certificate and the cluster CA.
//! - [`Client`]: one connection, one stream per request; [`Client::call`]
//!   sends any request, [`Client::put`], [`Client::get`],
//!   [`Client::delete`], [`Client::list`] and [`Client::status`] unwrap
//!   the answer, and [`Client::watch`] follows changes ([`Watch`]).
//! - [`ClientError`] (`error.rs`): why a request did not go through.
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
//! use sim::client::{Client, Credentials, Target, WatchEvent};
//!
//! let target = Target::resolve("127.0.0.1:7000", None, None)?;
//! let credentials = Credentials::load(Path::new("certs"))?;
//! let client = Client::connect(target, &credentials, Duration::from_secs(5))?;
//! let stamp = client.put("colour", "blue")?;
//! let entry = client.get("colour")?.expect("just written");
//! assert_eq!((entry.value.as_deref(), entry.stamp), (Some("blue"), stamp));
//! let status = client.status()?;
//! println!("node {} holds {} keys", status.id, status.keys);
//!
//! // Every key under "col", a page of up to 100 at a time.
//! let mut after = None;
//! loop {
//!     let page = client.list("col", after.as_deref(), 100)?;
//!     for (key, value) in &page.keys {
//!         println!("{key} = {value}");
//!     }
//!     match page.next_after {
//!         Some(last) => after = Some(last),
//!         None => break,
//!     }
//! }
//!
//! // The next change under "col", from this node or from gossip.
//! let mut watch = client.watch("col")?;
//! client.put("colour", "green")?;
//! match watch.next(Duration::from_secs(5))? {
//!     Some(WatchEvent::Changed(changed)) => {
//!         assert_eq!(changed.entry.value.as_deref(), Some("green"));
//!     }
//!     other => println!("{other:?}"),
//! }
//! drop(watch);
//! client.close();
//! # Ok::<(), sim::client::ClientError>(())
//! ```

mod error;
pub mod proto;

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

use lww_crdt::{Entry, NodeId, Stamp};
use transport_quic::certs::{CaCert, CertDir, Identity, node_name};
use transport_quic::{QuicClient, QuicConfig};

pub use error::ClientError;
pub use proto::{Changed, ProtoError, Request, Response, Status};

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

/// A client identity and the cluster CA, as `sim-cli certs` wrote them.
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
        Self::load_as(dir, None)
    }

    /// Loads client `name`'s certificate and key (`client-NAME.pem` and
    /// `.key`; with `None`, `client.pem` and `client.key`) and `ca.pem`
    /// from `dir`.
    ///
    /// # Errors
    /// As [`Credentials::load`]; a name no client can have is refused
    /// before any file is read.
    pub fn load_as(dir: &Path, name: Option<&str>) -> Result<Credentials, ClientError> {
        let dir = CertDir::new(dir);
        let name = name.unwrap_or(transport_quic::certs::FIRST_CLIENT);
        let identity =
            dir.load_named_client(name)
                .map_err(|source| ClientError::ClientCertificate {
                    dir: dir.root().to_path_buf(),
                    name: name.to_owned(),
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
        self.decode(&bytes)
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

    /// One page of the live keys under `prefix` after `after`, in key
    /// order, with their values: at most `limit` keys (1 to
    /// [`MAX_LIST`](proto::MAX_LIST)), fewer if their values would not fit
    /// one frame. Pass the page's `next_after` as `after` for the next
    /// page; it is `None` on the last.
    ///
    /// # Errors
    /// As [`call`](Self::call); [`ClientError::Refused`] with
    /// [`ProtoError::BadLimit`] for a limit out of range.
    pub fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Listing, ClientError> {
        let request = Request::List {
            prefix: prefix.to_owned(),
            after: after.map(str::to_owned),
            limit,
        };
        match self.ask(&request)? {
            Response::Listing { keys, next_after } => Ok(Listing { keys, next_after }),
            other => Err(ClientError::Unexpected(Box::new(other))),
        }
    }

    /// Follows the changes the node makes to keys under `prefix` from now
    /// on: its own clients' writes and what gossip brings. Returns once
    /// the watch is in place.
    ///
    /// # Errors
    /// As [`call`](Self::call); [`ClientError::Refused`] with
    /// [`ProtoError::TooManyWatches`] when the node follows as many
    /// watches as it will.
    pub fn watch(&self, prefix: &str) -> Result<Watch<'_>, ClientError> {
        let request = Request::Watch {
            prefix: prefix.to_owned(),
        };
        let (first, frames) = self
            .client
            .subscribe(&proto::encode(&request))
            .map_err(|err| explain(&self.target, err))?;
        match self.decode(&first)? {
            Response::Watching => Ok(Watch {
                frames,
                pending: std::collections::VecDeque::new(),
                addr: self.target.addr,
                target: &self.target,
            }),
            Response::Error(err) => Err(ClientError::Refused(err)),
            other => Err(ClientError::Unexpected(Box::new(other))),
        }
    }

    fn decode(&self, bytes: &[u8]) -> Result<Response, ClientError> {
        proto::decode(bytes).map_err(|source| ClientError::UnreadableResponse {
            addr: self.target.addr,
            source,
        })
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

/// One page of a listing ([`Client::list`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listing {
    /// Live keys with their values, in key order.
    pub keys: Vec<(String, String)>,
    /// Pass as `after` for the next page; `None` on the last.
    pub next_after: Option<String>,
}

/// What a [`Watch`] reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchEvent {
    /// A key under the prefix changed on the node.
    Changed(Changed),
    /// The watch read too slowly and the node dropped this many batches of
    /// changes for it: list the keys again to catch up.
    Missed {
        /// Batches dropped.
        batches: u64,
    },
}

/// The changes a node makes under a prefix ([`Client::watch`]), as they
/// come. Dropping it ends the watch on the node.
pub struct Watch<'a> {
    frames: transport_quic::Subscription<'a>,
    pending: std::collections::VecDeque<WatchEvent>,
    addr: SocketAddr,
    target: &'a Target,
}

impl std::fmt::Debug for Watch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("target", self.target)
            .finish_non_exhaustive()
    }
}

impl Watch<'_> {
    /// Waits up to `wait` for the next event: `Ok(None)` once the node
    /// ended the watch (it is shutting down).
    ///
    /// # Errors
    /// [`ClientError::NoAnswer`] if nothing came in time, a transport
    /// failure, or a frame that cannot be read; after any error the watch
    /// is over.
    pub fn next(&mut self, wait: Duration) -> Result<Option<WatchEvent>, ClientError> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(Some(event));
            }
            let Some(frame) = self
                .frames
                .next(wait)
                .map_err(|err| explain(self.target, err))?
            else {
                return Ok(None);
            };
            let response =
                proto::decode(&frame).map_err(|source| ClientError::UnreadableResponse {
                    addr: self.addr,
                    source,
                })?;
            match response {
                Response::Changes { changes } => self
                    .pending
                    .extend(changes.into_iter().map(WatchEvent::Changed)),
                Response::Missed { batches } => {
                    self.pending.push_back(WatchEvent::Missed { batches })
                }
                other => return Err(ClientError::Unexpected(Box::new(other))),
            }
        }
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
