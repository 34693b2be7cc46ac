//! [`QuicTransport`]: the blocking [`Transport`] the gossip driver uses,
//! its builder, and [`QuicHandle`] for whoever else needs to reach it.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use gossip::{ExchangeEnd, Incoming, Member, Transmit, Transport, TransportError};
use lww_crdt::NodeId;
use tokio::sync::mpsc;

use crate::certs::{CaCert, Identity};
use crate::client::RequestReceiver;
use crate::config::{QuicConfig, transport_config};
use crate::net::{DiscoverError, Shared, SharedParts};
use crate::revoked::DenyList;
use crate::stats::QuicStats;
use crate::tls::{self, TlsError};

/// Why a transport could not be built. Nothing is listening.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The TLS configuration could not be built (a client identity, a key
    /// that does not match its certificate, ...).
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The tokio runtime could not be started.
    #[error("starting the runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The UDP socket could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The failure.
        source: std::io::Error,
    },
}

/// Why a member's address could not be used. The peer table is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum AddressError {
    /// The member has no address.
    #[error("member {0} has no address")]
    Empty(NodeId),
    /// The address is neither `ip:port` nor a `host:port` that resolves.
    #[error("member {id}: cannot resolve {address:?}: {source}")]
    Resolve {
        /// The member.
        id: NodeId,
        /// The address as given.
        address: String,
        /// The failure.
        source: std::io::Error,
    },
}

/// Parses a member's address: `ip:port`, or `host:port` resolved now (which
/// may block on DNS); the first address wins.
///
/// # Errors
/// [`AddressError`].
pub fn resolve_member(member: &Member) -> Result<SocketAddr, AddressError> {
    resolve_member_with(member, crate::dns::system)
}

/// [`resolve_member`] with a host-name `lookup` of the caller's.
fn resolve_member_with(
    member: &Member,
    lookup: impl FnOnce(&str) -> std::io::Result<SocketAddr>,
) -> Result<SocketAddr, AddressError> {
    let address = member.address.trim();
    if address.is_empty() {
        return Err(AddressError::Empty(member.id));
    }
    if let Ok(addr) = address.parse() {
        return Ok(addr);
    }
    lookup(address).map_err(|source| AddressError::Resolve {
        id: member.id,
        address: address.to_owned(),
        source,
    })
}

/// Builds a [`QuicTransport`]; see [`QuicTransport::builder`].
#[derive(Debug)]
pub struct QuicTransportBuilder {
    identity: Identity,
    ca: CaCert,
    bind: SocketAddr,
    peers: HashMap<NodeId, SocketAddr>,
    config: QuicConfig,
    runtime: Option<tokio::runtime::Handle>,
    serve_clients: bool,
    revoked: Option<DenyList>,
}

impl QuicTransportBuilder {
    /// The UDP address to listen on (default `127.0.0.1:0`: loopback, any
    /// free port).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// Adds a peer's address.
    pub fn peer(mut self, id: NodeId, addr: SocketAddr) -> Self {
        self.peers.insert(id, addr);
        self
    }

    /// Adds peers' addresses.
    pub fn peers(mut self, peers: impl IntoIterator<Item = (NodeId, SocketAddr)>) -> Self {
        self.peers.extend(peers);
        self
    }

    /// Limits and timeouts (default [`QuicConfig::default`]).
    pub fn config(mut self, config: QuicConfig) -> Self {
        self.config = config;
        self
    }

    /// Runs on an existing multi-threaded tokio runtime instead of creating
    /// one with [`QuicConfig::worker_threads`] workers.
    pub fn runtime(mut self, handle: tokio::runtime::Handle) -> Self {
        self.runtime = Some(handle);
        self
    }

    /// Also serves clients on [`CLIENT_ALPN`](crate::CLIENT_ALPN): their
    /// requests arrive on [`QuicTransport::requests`]. Off by default, and
    /// then the client protocol is not even offered.
    pub fn serve_clients(mut self, serve: bool) -> Self {
        self.serve_clients = serve;
        self
    }

    /// Refuses, during the TLS handshake, every certificate whose serial
    /// `revoked` holds: clients' and peers' connecting to this node, and a
    /// peer's when this node dials it (default: none). With a list, TLS
    /// sessions are not resumed (a resumed session skips the certificate
    /// checks): every handshake is a full one. The list is
    /// shared: [`DenyList::replace`] on any clone takes effect for the
    /// handshakes that follow, without a restart, and closes the open
    /// connections of clients, and the current link of peers, whose
    /// certificate it now holds. Handshake refusals are counted
    /// by [`DenyList::refused`], and, on the accepting side, in
    /// [`QuicStats::handshakes_refused`] too.
    pub fn revoked(mut self, revoked: DenyList) -> Self {
        self.revoked = Some(revoked);
        self
    }

    /// Binds the endpoint and starts accepting.
    ///
    /// # Errors
    /// [`SetupError`]; nothing is listening.
    pub fn build(self) -> Result<QuicTransport, SetupError> {
        let id = self.identity.node_id().ok_or(TlsError::Role {
            got: self.identity.role(),
            wanted: "a node identity",
        })?;
        let config = self.config;
        let served = u32::try_from(
            config
                .max_concurrent_exchanges()
                .max(config.max_concurrent_requests()),
        )
        .unwrap_or(u32::MAX / 2);
        // Per-connection stream credit a little above the global limit, so
        // that excess streams reach the limit and are refused explicitly
        // rather than waiting for credit.
        let revoked = self.revoked.clone().unwrap_or_default();
        let mut server = tls::quinn_server(match &self.revoked {
            Some(revoked) => tls::server_config_with_revoked(
                &self.identity,
                &self.ca,
                self.serve_clients,
                revoked,
            )?,
            None => tls::server_config(&self.identity, &self.ca, self.serve_clients)?,
        })?;
        server.transport_config(Arc::new(transport_config(
            &config,
            served.saturating_add(16),
            1,
        )));
        let mut peer_client = tls::quinn_client(match &self.revoked {
            Some(revoked) => {
                tls::peer_client_config_with_revoked(&self.identity, &self.ca, revoked)?
            }
            None => tls::peer_client_config(&self.identity, &self.ca)?,
        })?;
        // A link carries exchange streams both ways, whichever side dialed.
        peer_client.transport_config(Arc::new(transport_config(
            &config,
            served.saturating_add(16),
            0,
        )));

        let (runtime, handle) = match self.runtime {
            Some(handle) => (None, handle),
            None => {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(config.worker_threads())
                    .thread_name(format!("gossip-quic-{id}"))
                    .enable_all()
                    .build()
                    .map_err(SetupError::Runtime)?;
                let handle = runtime.handle().clone();
                (Some(runtime), handle)
            }
        };
        let endpoint = {
            let _guard = handle.enter();
            let bind_error = |source| SetupError::Bind {
                addr: self.bind,
                source,
            };
            let socket = std::net::UdpSocket::bind(self.bind).map_err(bind_error)?;
            quinn::Endpoint::new(
                tls::endpoint_config(&self.identity),
                Some(server),
                socket,
                Arc::new(quinn::TokioRuntime),
            )
            .map_err(bind_error)?
        };
        let (inbox_tx, inbox) = mpsc::channel(config.inbox_capacity());
        let (requests_tx, requests) = if self.serve_clients {
            let (tx, rx) = crossbeam_channel::bounded(config.max_concurrent_requests());
            (Some(tx), Some(RequestReceiver::new(rx)))
        } else {
            (None, None)
        };
        let shared = {
            let _guard = handle.enter();
            Shared::start(SharedParts {
                id,
                config,
                endpoint,
                runtime: handle,
                peer_client,
                peers: self.peers,
                inbox: inbox_tx,
                requests: requests_tx,
                revoked,
            })
            .map_err(|source| SetupError::Bind {
                addr: self.bind,
                source,
            })?
        };
        // A certificate revoked while its connection is open: the link is
        // closed (client connections watch the list themselves), and the
        // redial is refused at the handshake.
        let watcher = Arc::clone(&shared);
        shared.runtime.spawn(async move {
            loop {
                // Waiting from before the sweep: a replace during it is
                // not missed.
                let replaced = watcher.revoked.replaced();
                watcher.close_revoked_links();
                tokio::select! {
                    () = replaced => {}
                    () = watcher.stopped() => break,
                }
            }
        });
        Ok(QuicTransport {
            shared,
            inbox,
            requests,
            runtime,
        })
    }
}

/// A gossip [`Transport`] over QUIC: one node's endpoint, with mutual TLS,
/// one link per peer, small frames as datagrams and a stream per exchange
/// for the rest.
///
/// Blocking: `send` never waits (it sends a datagram or queues the frame on
/// its exchange's stream task), `recv_timeout` waits on the inbox. Both
/// must be called from outside any async runtime, as the gossip driver
/// does; [`drive`](QuicTransport::drive) runs a node on the transport's own
/// runtime instead. Dropping the transport shuts it down gracefully
/// (bounded by [`QuicConfig::shutdown_timeout`]).
///
/// Methods, in the order a daemon uses them:
///
/// 1. [`QuicTransport::builder`] ... [`build`](QuicTransportBuilder::build).
/// 2. [`local_addr`](QuicTransport::local_addr),
///    [`add_peer`](QuicTransport::add_peer) /
///    [`add_member`](QuicTransport::add_member) as addresses become known.
/// 3. [`handle`](QuicTransport::handle) and
///    [`requests`](QuicTransport::requests) before the transport moves into
///    `gossip::spawn` or [`drive`](QuicTransport::drive).
/// 4. `send` / `recv_timeout`, by the driver.
/// 5. [`shutdown`](QuicTransport::shutdown), by dropping or through the
///    handle.
pub struct QuicTransport {
    pub(crate) shared: Arc<Shared>,
    pub(crate) inbox: mpsc::Receiver<Incoming>,
    requests: Option<RequestReceiver>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for QuicTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicTransport")
            .field("id", &self.shared.id)
            .field("local_addr", &self.shared.local_addr)
            .finish_non_exhaustive()
    }
}

impl QuicTransport {
    /// A builder for node `identity` (a node identity issued by `ca`).
    pub fn builder(identity: Identity, ca: CaCert) -> QuicTransportBuilder {
        QuicTransportBuilder {
            identity,
            ca,
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            peers: HashMap::new(),
            config: QuicConfig::default(),
            runtime: None,
            serve_clients: false,
            revoked: None,
        }
    }

    /// This node's id, from its certificate.
    pub fn id(&self) -> NodeId {
        self.shared.id
    }

    /// The address the endpoint listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// Sets `id`'s address; returns the previous one. A pooled connection
    /// to an old address is replaced on the next send.
    pub fn add_peer(&self, id: NodeId, addr: SocketAddr) -> Option<SocketAddr> {
        self.shared.add_peer(id, addr)
    }

    /// Sets a gossip member's address from [`Member::address`]; see
    /// [`resolve_member`].
    ///
    /// # Errors
    /// [`AddressError`]; the peer table is unchanged.
    pub fn add_member(&self, member: &Member) -> Result<Option<SocketAddr>, AddressError> {
        Ok(self.add_peer(member.id, resolve_member(member)?))
    }

    /// A handle for other threads: peers, stats, shutdown.
    pub fn handle(&self) -> QuicHandle {
        QuicHandle {
            shared: Arc::clone(&self.shared),
            requests: self.requests.clone(),
        }
    }

    /// Client requests, when built with
    /// [`serve_clients`](QuicTransportBuilder::serve_clients).
    pub fn requests(&self) -> Option<RequestReceiver> {
        self.requests.clone()
    }

    /// What the transport did so far.
    pub fn stats(&self) -> QuicStats {
        self.shared.counters.snapshot()
    }

    /// Shuts down gracefully: stops accepting, flushes and finishes every
    /// open stream, closes the endpoint and waits for it to go idle, within
    /// [`QuicConfig::shutdown_timeout`].
    pub fn shutdown(self) {
        // Drop does the work.
    }
}

fn in_async_context() -> bool {
    tokio::runtime::Handle::try_current().is_ok()
}

impl Transport for QuicTransport {
    fn send(&mut self, frame: Transmit) -> Result<(), TransportError> {
        self.shared.send(frame)
    }

    fn end_exchange(&mut self, end: ExchangeEnd) {
        self.shared.end_exchange(end);
    }

    fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Incoming>, TransportError> {
        if self.shared.is_closed() {
            return Err(TransportError::Closed);
        }
        match self.inbox.try_recv() {
            Ok(incoming) => return Ok(Some(incoming)),
            Err(mpsc::error::TryRecvError::Disconnected) => return Err(TransportError::Closed),
            Err(mpsc::error::TryRecvError::Empty) => {}
        }
        if timeout.is_zero() {
            return Ok(None);
        }
        if in_async_context() {
            return Err(TransportError::Io(std::io::Error::other(
                "QuicTransport::recv_timeout called from inside an async runtime",
            )));
        }
        let inbox = &mut self.inbox;
        let received = self
            .shared
            .runtime
            .block_on(async { tokio::time::timeout(timeout, inbox.recv()).await });
        match received {
            Ok(Some(incoming)) => Ok(Some(incoming)),
            Ok(None) => Err(TransportError::Closed),
            Err(_) => Ok(None),
        }
    }
}

impl Drop for QuicTransport {
    fn drop(&mut self) {
        match self.runtime.take() {
            Some(runtime) if in_async_context() && !self.shared.is_finished() => {
                shut_down_elsewhere(Arc::clone(&self.shared), runtime);
            }
            runtime => {
                shutdown_blocking(&self.shared);
                if let Some(runtime) = runtime {
                    runtime.shutdown_background();
                }
            }
        }
    }
}

/// Shuts the transport down on a thread of its own, which then drops the
/// transport's runtime: inside an async runtime nothing may block, and the
/// shutdown spawned there would die with the runtime before it flushed.
fn shut_down_elsewhere(shared: Arc<Shared>, runtime: tokio::runtime::Runtime) {
    let (hand_over, handed) = std::sync::mpsc::channel::<tokio::runtime::Runtime>();
    let task = Arc::clone(&shared);
    let spawned = std::thread::Builder::new()
        .name("quic-shutdown".to_owned())
        .spawn(move || {
            if let Ok(runtime) = handed.recv() {
                runtime.block_on(async move { task.shutdown().await });
                runtime.shutdown_background();
            }
        });
    if spawned.is_ok() {
        if let Err(returned) = hand_over.send(runtime) {
            returned.0.shutdown_background();
        }
    } else {
        // No thread to be had: the old way, without the flush.
        shutdown_blocking(&shared);
        runtime.shutdown_background();
    }
}

fn shutdown_blocking(shared: &Arc<Shared>) {
    if shared.is_finished() {
        return;
    }
    let task = Arc::clone(shared);
    if in_async_context() {
        // Cannot block here: shut down in the background.
        shared.runtime.spawn(async move { task.shutdown().await });
    } else {
        shared
            .runtime
            .block_on(async move { task.shutdown().await });
    }
}

/// A cheap, cloneable handle on a [`QuicTransport`], for the threads that do
/// not own it (the transport itself moves into the gossip driver).
#[derive(Clone)]
pub struct QuicHandle {
    shared: Arc<Shared>,
    requests: Option<RequestReceiver>,
}

impl std::fmt::Debug for QuicHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicHandle")
            .field("id", &self.shared.id)
            .finish_non_exhaustive()
    }
}

impl QuicHandle {
    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.shared.id
    }

    /// The address the endpoint listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// See [`QuicTransport::add_peer`].
    pub fn add_peer(&self, id: NodeId, addr: SocketAddr) -> Option<SocketAddr> {
        self.shared.add_peer(id, addr)
    }

    /// Connects to `addr`, authenticating it by that IP address (the peer's
    /// node certificate must name it, as `sim-cli certs --node ID=IP`
    /// makes it), and returns the id its certificate proves. For a seed
    /// given by address alone. The connection is closed again; nothing is
    /// added to the peer table. Blocks for up to the connect timeout: call it
    /// from outside the transport's runtime.
    ///
    /// # Errors
    /// [`DiscoverError`] if no node could be authenticated there.
    pub fn discover(&self, addr: SocketAddr) -> Result<NodeId, DiscoverError> {
        self.shared.runtime.block_on(self.shared.discover(addr))
    }

    /// Forgets `id`'s address and closes the pooled connection to it; a
    /// frame that would open a new stream to it fails with
    /// [`TransportError::UnknownPeer`] from now on (answers on a stream it
    /// opened still go).
    pub fn remove_peer(&self, id: NodeId) -> Option<SocketAddr> {
        self.shared.remove_peer(id)
    }

    /// `id`'s address, if known.
    pub fn peer_addr(&self, id: NodeId) -> Option<SocketAddr> {
        self.shared.peer_addr(id)
    }

    /// The ids with a known address, in order.
    pub fn peers(&self) -> Vec<NodeId> {
        self.shared.peer_ids()
    }

    /// See [`QuicTransport::add_member`].
    ///
    /// # Errors
    /// [`AddressError`]; the peer table is unchanged.
    pub fn add_member(&self, member: &Member) -> Result<Option<SocketAddr>, AddressError> {
        Ok(self.add_peer(member.id, resolve_member(member)?))
    }

    /// Feeds every member's address (skipping this node), for instance from
    /// `NodeHandle::with_node(|node| node.members())`. Returns the members
    /// whose address could not be used; the others are in the table. Host
    /// names are looked up at most once a minute (a failed lookup is tried
    /// again after 5 s), so calling this every interval costs no DNS
    /// queries in between.
    pub fn sync_members<'a>(
        &self,
        members: impl IntoIterator<Item = &'a Member>,
    ) -> Vec<AddressError> {
        let now = std::time::Instant::now();
        let lookup = |address: &str| self.shared.dns.resolve(address, now);
        members
            .into_iter()
            .filter(|member| member.id != self.shared.id)
            .filter_map(|member| {
                resolve_member_with(member, lookup)
                    .map(|addr| self.add_peer(member.id, addr))
                    .err()
            })
            .collect()
    }

    /// See [`QuicTransport::requests`].
    pub fn requests(&self) -> Option<RequestReceiver> {
        self.requests.clone()
    }

    /// See [`QuicTransport::stats`].
    pub fn stats(&self) -> QuicStats {
        self.shared.counters.snapshot()
    }

    /// Whether shutdown has begun: the transport's `recv_timeout` now
    /// returns [`TransportError::Closed`], which ends a gossip driver.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// Shuts the transport down gracefully (see
    /// [`QuicTransport::shutdown`]) and waits for it, within the shutdown
    /// bound; the driver using it then stops. From inside an async runtime
    /// it only starts the shutdown.
    pub fn shutdown(&self) {
        shutdown_blocking(&self.shared);
    }
}
