//! The client commands' side of the protocol: connect to a node with the
//! client certificate, send one [`Request`], read its [`Response`].

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use anyhow::Context as _;
use lww_crdt::NodeId;
use transport_quic::certs::{CaCert, CertDir, Identity, node_name};
use transport_quic::{ClientError, QuicClient, QuicConfig};

use crate::cli::ClientArgs;
use crate::proto::{self, Request, Response};

/// Where a node is and what name its certificate must carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    /// The node's UDP address.
    pub(crate) addr: SocketAddr,
    /// The name checked against its certificate.
    pub(crate) server_name: String,
}

/// Resolves `--node ADDR` and picks the server name: `--server-name` if
/// given, else `node-<id>.gossip-kv` for `--node-id`, else the host part of
/// `ADDR` (an IP address or DNS name the node's certificate must carry).
///
/// # Errors
/// An address that is not `host:port` or does not resolve.
pub(crate) fn target(
    node: &str,
    node_id: Option<u64>,
    server_name: Option<&str>,
) -> anyhow::Result<Target> {
    let addr = resolve(node)?;
    let server_name = match (server_name, node_id) {
        (Some(name), _) => name.to_owned(),
        (None, Some(id)) => node_name(NodeId::new(id)),
        (None, None) => host_part(node).map_or_else(|| addr.ip().to_string(), str::to_owned),
    };
    Ok(Target { addr, server_name })
}

fn resolve(node: &str) -> anyhow::Result<SocketAddr> {
    if let Ok(addr) = node.parse() {
        return Ok(addr);
    }
    node.to_socket_addrs()
        .with_context(|| format!("--node {node:?} is not HOST:PORT or does not resolve"))?
        .next()
        .with_context(|| format!("--node {node:?} resolves to no address"))
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

/// The client identity and CA from `--certs`.
pub(crate) struct Credentials {
    identity: Identity,
    ca: CaCert,
}

impl Credentials {
    /// Loads `client.pem`, `client.key` and `ca.pem` from `dir`.
    ///
    /// # Errors
    /// Missing or unusable files, with their paths.
    pub(crate) fn load(dir: &std::path::Path) -> anyhow::Result<Credentials> {
        let dir = CertDir::new(dir);
        let identity = dir.load_client().with_context(|| {
            format!(
                "cannot load the client certificate from {} (client.pem, client.key, ca.pem)",
                dir.root().display()
            )
        })?;
        let ca = dir.load_ca_cert()?;
        Ok(Credentials { identity, ca })
    }
}

/// A connected client.
pub(crate) struct Connection {
    client: QuicClient,
    target: Target,
}

impl Connection {
    /// Connects to `target` within `timeout`.
    ///
    /// # Errors
    /// The node unreachable, or the TLS handshake refused either way.
    pub(crate) fn open(
        target: Target,
        credentials: &Credentials,
        timeout: Duration,
    ) -> anyhow::Result<Connection> {
        let config = QuicConfig::builder()
            .connect_timeout(timeout)
            .request_timeout(timeout)
            .build()
            .context("client configuration")?;
        let client = QuicClient::connect(
            target.addr,
            &target.server_name,
            &credentials.identity,
            &credentials.ca,
            config,
        )
        .map_err(|err| explain(&target, &err))?;
        Ok(Connection { client, target })
    }

    /// Sends `request` and decodes the response.
    ///
    /// # Errors
    /// Transport failures, or a response that cannot be decoded.
    pub(crate) fn call(&self, request: &Request) -> anyhow::Result<Response> {
        let bytes = self
            .client
            .request(&proto::encode(request))
            .map_err(|err| explain(&self.target, &err))?;
        proto::decode(&bytes).with_context(|| {
            format!(
                "the node at {} sent a response this client cannot read",
                self.target.addr
            )
        })
    }

    /// Closes the connection politely.
    pub(crate) fn close(self) {
        self.client.close();
    }
}

/// One request to the node named by `args`, on a connection of its own.
///
/// # Errors
/// As [`Connection::open`] and [`Connection::call`].
pub(crate) fn call(args: &ClientArgs, request: &Request) -> anyhow::Result<Response> {
    let target = target(&args.node, args.node_id, args.server_name.as_deref())?;
    let credentials = Credentials::load(&args.certs)?;
    let connection = Connection::open(target, &credentials, args.timeout())?;
    let response = connection.call(request);
    connection.close();
    response
}

/// A one-line explanation of a client failure, with what to check.
fn explain(target: &Target, err: &ClientError) -> anyhow::Error {
    let at = format!("{} (as {})", target.addr, target.server_name);
    match err {
        ClientError::Timeout => anyhow::anyhow!(
            "no answer from {at}: is a node listening there, and is UDP open between here and it?"
        ),
        ClientError::Connection(quinn::ConnectionError::TransportError(e)) => anyhow::anyhow!(
            "TLS handshake with {at} failed: {e}; check that --certs holds this cluster's ca.pem \
             and client.pem, and that the node's certificate names {}",
            target.server_name
        ),
        ClientError::Connection(quinn::ConnectionError::ConnectionClosed(close)) => {
            anyhow::anyhow!(
                "the node at {at} refused the connection ({close}); check that --certs holds this \
                 cluster's client certificate and CA"
            )
        }
        ClientError::Connection(quinn::ConnectionError::ApplicationClosed(close)) => {
            anyhow::anyhow!("the node at {at} closed the connection ({close})")
        }
        ClientError::Connect(e) => anyhow::anyhow!("cannot connect to {at}: {e}"),
        other => anyhow::anyhow!("request to {at} failed: {other}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn server_names_follow_the_flags() {
        let t = target("127.0.0.1:7000", None, None).unwrap();
        assert_eq!(t.server_name, "127.0.0.1");
        let t = target("127.0.0.1:7000", Some(4), None).unwrap();
        assert_eq!(t.server_name, "node-4.gossip-kv");
        let t = target("127.0.0.1:7000", Some(4), Some("db.example")).unwrap();
        assert_eq!(t.server_name, "db.example");
        let t = target("[::1]:7000", None, None).unwrap();
        assert_eq!(t.server_name, "::1");
        let t = target("localhost:7000", None, None).unwrap();
        assert_eq!(t.server_name, "localhost");
        assert!(target("no-port", None, None).is_err());
    }
}
