//! The async core: the endpoint, the accept loop, the links to peers
//! (`link`), one
//! task pair per exchange stream, client requests, and graceful shutdown.
//!
//! Every task runs on the transport's tokio runtime and is tracked, so
//! shutdown can wait for them. The blocking [`QuicTransport`] calls into
//! [`Shared::send`], which never blocks: it queues the frame on the
//! exchange's stream task, creating one when needed.
//!
//! [`QuicTransport`]: crate::QuicTransport

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gossip::{ExchangeEnd, MessageKind, Transmit, TransportError, lock};
use lww_crdt::NodeId;
use quinn::{Connection, ReadExactError, RecvStream, SendStream, VarInt};
use rustls::pki_types::CertificateDer;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::time::{Instant, timeout, timeout_at};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::certs::{self, node_name};
use crate::client::{Answer, ClientRequest, Responder};
use crate::config::QuicConfig;
use crate::stats::Counters;
use crate::tls::{self, CLIENT_ALPN, PEER_ALPN};
use crate::wire::{self, FrameError, StreamHeader, WriteFrameError, read_frame, write_frame};

mod accept;
mod admission;
mod link;
mod serve_client;
mod stream;
mod warnings;

use link::Link;
use warnings::{Refusal, Warnings};

/// How long shutdown waits, after closing the endpoint, for the close frames
/// to go out.
const CLOSE_GRACE: Duration = Duration::from_millis(100);

fn code(value: u32) -> VarInt {
    VarInt::from_u32(value)
}

/// Whether the peer closed the connection because it was done with it or
/// gave up on it, rather than because anything failed: a node that dials
/// only to learn who listens here (a seed given by address alone) closes as
/// soon as its side of the handshake is done, often before this side's
/// handshake or the hello is; a node whose dial timed out drops it. Closed
/// before the handshake ends, that reaches this side as a transport close
/// with `APPLICATION_ERROR` (an application's own code cannot travel then);
/// after, as the application's `CONN_DONE`. That is no refused connection.
fn closed_when_done(err: &quinn::ConnectionError) -> bool {
    match err {
        quinn::ConnectionError::ApplicationClosed(close) => {
            close.error_code == code(wire::CONN_DONE)
        }
        quinn::ConnectionError::ConnectionClosed(close) => {
            close.error_code == quinn::TransportErrorCode::APPLICATION_ERROR
        }
        _ => false,
    }
}

/// One exchange's stream, as seen from this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct StreamKey {
    peer: NodeId,
    exchange: u64,
    /// Whether this node initiated the exchange.
    initiated_here: bool,
}

struct StreamEntry {
    generation: u64,
    queue: mpsc::UnboundedSender<StreamCommand>,
}

/// What the node hands an exchange's stream task, in order.
enum StreamCommand {
    /// A frame to write.
    Frame(Vec<u8>),
    /// The node sends nothing more in this exchange: finish the send side.
    End,
}

/// Empties a stream's closed queue; returns how many frames it dropped.
fn drain_dropped(rx: &mut mpsc::UnboundedReceiver<StreamCommand>) -> u64 {
    let mut dropped = 0;
    while let Ok(command) = rx.try_recv() {
        dropped += u64::from(matches!(command, StreamCommand::Frame(_)));
    }
    dropped
}

/// Dialing one peer: one dial at a time, the last failure, for the
/// backoff, and how many dials failed since one last succeeded.
#[derive(Default)]
struct Slot {
    failed: Option<(Instant, SocketAddr)>,
    failures: u64,
}

/// Why [`QuicHandle::discover`](crate::QuicHandle::discover) found no node
/// at an address. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    /// No authenticated connection could be made: nobody listens there, the
    /// handshake failed (a certificate of another cluster, or one that does
    /// not name this IP address), or it timed out.
    #[error("could not connect: {0}")]
    Connect(String),
    /// The certificate presented names no node.
    #[error("its certificate names no node")]
    NotANode,
    /// The address is this node's own.
    #[error("the address is this node's own")]
    Itself,
}

/// Why a stream could not be opened or written. Internal: the node sees
/// lost frames, the log and the counters see the reason.
#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error("no address for the peer")]
    UnknownPeer,
    #[error("the last connect failed less than the reconnect backoff ago")]
    Backoff,
    #[error("timed out")]
    Timeout,
    #[error("the transport is stopping")]
    Stopping,
    #[error("a frame of {0} bytes is longer than a length prefix can say")]
    FrameTooLong(usize),
    #[error(transparent)]
    Connect(#[from] quinn::ConnectError),
    #[error(transparent)]
    Connection(#[from] quinn::ConnectionError),
    #[error(transparent)]
    Write(#[from] quinn::WriteError),
    #[error(transparent)]
    Closed(#[from] quinn::ClosedStream),
}

impl LinkError {
    fn connection_lost(&self) -> bool {
        matches!(
            self,
            LinkError::Connection(_) | LinkError::Write(quinn::WriteError::ConnectionLost(_))
        )
    }
}

/// How a stream's reader ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReaderEnd {
    /// The peer finished its side cleanly.
    Finished,
    /// The peer broke the framing; the stream must be reset with this code.
    Rejected(u32),
    /// The peer reset the stream or the connection went away.
    Lost,
    /// The transport is shutting down.
    Shutdown,
}

/// Milliseconds since `base` of the last frame either way on a stream.
struct Activity {
    base: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            base: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.base + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

pub(crate) struct Shared {
    pub(crate) id: NodeId,
    pub(crate) config: QuicConfig,
    pub(crate) endpoint: quinn::Endpoint,
    pub(crate) local_addr: SocketAddr,
    pub(crate) runtime: tokio::runtime::Handle,
    peer_client: quinn::ClientConfig,
    peers: Mutex<HashMap<NodeId, SocketAddr>>,
    dials: Mutex<HashMap<NodeId, Arc<tokio::sync::Mutex<Slot>>>>,
    links: Mutex<HashMap<NodeId, Link>>,
    streams: Mutex<HashMap<StreamKey, StreamEntry>>,
    next_generation: AtomicU64,
    inbox: mpsc::Sender<gossip::Incoming>,
    exchanges: Arc<Semaphore>,
    request_permits: Arc<Semaphore>,
    connection_permits: Arc<Semaphore>,
    /// Pending-handshake slots.
    admission: Arc<admission::Admission>,
    /// Each peer's share of `exchanges`.
    peer_exchanges: Mutex<HashMap<NodeId, Arc<Semaphore>>>,
    /// Bytes of frames still arriving, in all.
    frame_budget: Arc<Semaphore>,
    /// Members' host names, resolved.
    pub(crate) dns: crate::dns::DnsCache,
    serves_clients: bool,
    requests: Mutex<Option<crossbeam_channel::Sender<ClientRequest>>>,
    /// Serials refused at the handshake; open connections whose
    /// certificate joins it are closed.
    pub(crate) revoked: crate::revoked::DenyList,
    pub(crate) counters: Counters,
    /// Keeps warnings about refusals to one per kind per period.
    warnings: Warnings,
    tracker: TaskTracker,
    stop: CancellationToken,
    closed: AtomicBool,
    finished: AtomicBool,
    shutdown_lock: tokio::sync::Mutex<()>,
}

pub(crate) struct SharedParts {
    pub(crate) id: NodeId,
    pub(crate) config: QuicConfig,
    pub(crate) endpoint: quinn::Endpoint,
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) peer_client: quinn::ClientConfig,
    pub(crate) peers: HashMap<NodeId, SocketAddr>,
    pub(crate) inbox: mpsc::Sender<gossip::Incoming>,
    pub(crate) requests: Option<crossbeam_channel::Sender<ClientRequest>>,
    pub(crate) revoked: crate::revoked::DenyList,
}

impl Shared {
    pub(crate) fn start(parts: SharedParts) -> std::io::Result<Arc<Shared>> {
        let local_addr = parts.endpoint.local_addr()?;
        let shared = Arc::new(Shared {
            id: parts.id,
            exchanges: Arc::new(Semaphore::new(parts.config.max_concurrent_exchanges())),
            request_permits: Arc::new(Semaphore::new(parts.config.max_concurrent_requests())),
            connection_permits: Arc::new(Semaphore::new(parts.config.max_incoming_connections())),
            admission: admission::Admission::new(&parts.config),
            peer_exchanges: Mutex::new(HashMap::new()),
            dns: crate::dns::DnsCache::new(crate::dns::system),
            frame_budget: Arc::new(Semaphore::new(
                parts
                    .config
                    .max_partial_frame_bytes()
                    .min(Semaphore::MAX_PERMITS),
            )),
            config: parts.config,
            endpoint: parts.endpoint,
            local_addr,
            runtime: parts.runtime,
            peer_client: parts.peer_client,
            peers: Mutex::new(parts.peers),
            dials: Mutex::new(HashMap::new()),
            links: Mutex::new(HashMap::new()),
            streams: Mutex::new(HashMap::new()),
            next_generation: AtomicU64::new(0),
            inbox: parts.inbox,
            serves_clients: parts.requests.is_some(),
            requests: Mutex::new(parts.requests),
            revoked: parts.revoked,
            counters: Counters::default(),
            warnings: Warnings::default(),
            tracker: TaskTracker::new(),
            stop: CancellationToken::new(),
            closed: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            shutdown_lock: tokio::sync::Mutex::new(()),
        });
        let accept = Arc::clone(&shared);
        shared
            .tracker
            .spawn_on(accept.accept_loop(), &shared.runtime);
        info!(node = %shared.id, addr = %local_addr, "QUIC transport listening");
        Ok(shared)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Resolves once shutdown has begun.
    pub(crate) async fn stopped(&self) {
        self.stop.cancelled().await;
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    // ---- peers ----

    pub(crate) fn add_peer(&self, id: NodeId, addr: SocketAddr) -> Option<SocketAddr> {
        let old = lock(&self.peers).insert(id, addr);
        if old != Some(addr) {
            debug!(node = %self.id, peer = %id, %addr, "peer address set");
        }
        old
    }

    pub(crate) fn remove_peer(&self, id: NodeId) -> Option<SocketAddr> {
        let old = lock(&self.peers).remove(&id);
        lock(&self.dials).remove(&id);
        self.close_link(id);
        old
    }

    pub(crate) fn peer_addr(&self, id: NodeId) -> Option<SocketAddr> {
        lock(&self.peers).get(&id).copied()
    }

    pub(crate) fn peer_ids(&self) -> Vec<NodeId> {
        let mut ids: Vec<NodeId> = lock(&self.peers).keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    // ---- sending ----

    /// Queues `frame` on its exchange's stream. Never blocks.
    pub(crate) fn send(self: &Arc<Self>, frame: Transmit) -> Result<(), TransportError> {
        if self.is_closed() {
            return Err(TransportError::Closed);
        }
        let max = self.config.max_frame_bytes();
        if frame.payload.len() > max {
            return Err(TransportError::FrameTooLarge {
                len: frame.payload.len(),
                max,
            });
        }
        if frame.payload.is_empty() {
            return Err(TransportError::EmptyFrame);
        }
        // Each node numbers the exchanges it opens, so both directions may
        // use one number: the frame says which side of its exchange it is.
        let key = StreamKey {
            peer: frame.to,
            exchange: frame.exchange,
            initiated_here: frame.from_initiator,
        };
        let mut payload = frame.payload;
        // An exchange that has a stream stays on it, so that its frames
        // arrive in order and its stream ends when the exchange does.
        if frame.kind != MessageKind::Syn {
            if let Some(entry) = lock(&self.streams).get(&key) {
                match entry.queue.send(StreamCommand::Frame(payload)) {
                    Ok(()) => return Ok(()),
                    // The stream task is ending; carry the frame another
                    // way.
                    Err(mpsc::error::SendError(StreamCommand::Frame(back))) => payload = back,
                    Err(mpsc::error::SendError(StreamCommand::End)) => return Ok(()),
                }
            }
        }
        let payload = match self.send_datagram(frame.to, payload) {
            Ok(()) => return Ok(()),
            Err(back) => back,
        };
        // A peer whose address this node does not know yet (it joined
        // through someone else) is still reached on the link it opened;
        // only a new connection needs its address.
        if self.peer_addr(frame.to).is_none() && self.live_link(frame.to).is_none() {
            return Err(TransportError::UnknownPeer(frame.to));
        }
        self.open_stream(&mut lock(&self.streams), key, payload);
        Ok(())
    }

    fn open_stream(
        self: &Arc<Self>,
        streams: &mut HashMap<StreamKey, StreamEntry>,
        key: StreamKey,
        first: Vec<u8>,
    ) {
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let (queue, rx) = mpsc::unbounded_channel();
        // Cannot fail: the receiver is alive.
        let _ = queue.send(StreamCommand::Frame(first));
        // A stream left over for the same key sees its queue close and
        // finishes.
        streams.insert(key, StreamEntry { generation, queue });
        let shared = Arc::clone(self);
        self.tracker
            .spawn_on(shared.outgoing(key, generation, rx), &self.runtime);
    }

    /// Tells the stream of `end`'s exchange, if it has one, that this node
    /// sends nothing more in it.
    pub(crate) fn end_exchange(&self, end: ExchangeEnd) {
        let key = StreamKey {
            peer: end.peer,
            exchange: end.exchange,
            initiated_here: end.from_initiator,
        };
        if let Some(entry) = lock(&self.streams).get(&key) {
            // A closed queue means the stream is already ending.
            let _ = entry.queue.send(StreamCommand::End);
        }
    }

    /// Removes the stream entry if it is still this task's.
    fn forget(&self, key: StreamKey, generation: u64) {
        let mut streams = lock(&self.streams);
        if streams
            .get(&key)
            .is_some_and(|e| e.generation == generation)
        {
            streams.remove(&key);
        }
    }

    async fn outgoing(
        self: Arc<Self>,
        key: StreamKey,
        generation: u64,
        mut rx: mpsc::UnboundedReceiver<StreamCommand>,
    ) {
        let opening = async {
            let mut opened = self.open_bi(key).await;
            if opened.as_ref().is_err_and(LinkError::connection_lost) {
                let err = opened.as_ref().err();
                // A link the peer dropped (it restarted, say): dial once more.
                debug!(node = %self.id, peer = %key.peer, error = ?err, "link lost; redialing");
                opened = self.open_bi(key).await;
            }
            opened
        };
        // Frames queued before a stop still go, so a dial under way goes
        // on; but a dial to a peer that died would hold the shutdown until
        // the connect timeout. Once stopping, it gets ten assumed round
        // trips (1 s by default): a live peer's handshake takes two.
        let opened = tokio::select! {
            opened = opening => opened,
            () = self.stopping_for(10 * self.config.initial_rtt()) => Err(LinkError::Stopping),
        };
        match opened {
            Ok((remote, send, recv)) => {
                self.run_stream(key, generation, remote, send, recv, rx, None)
                    .await;
            }
            Err(err) => {
                self.forget(key, generation);
                rx.close();
                let dropped = drain_dropped(&mut rx);
                Counters::add(&self.counters.frames_dropped, dropped);
                debug!(node = %self.id, peer = %key.peer, exchange = key.exchange, error = %err,
                    dropped, "could not open an exchange stream");
            }
        }
    }

    /// Resolves once the transport has been stopping for `grace`: what a
    /// live peer or client would finish within it goes on, what waits on
    /// one that died gives way.
    pub(super) async fn stopping_for(&self, grace: Duration) {
        self.stop.cancelled().await;
        tokio::time::sleep(grace).await;
    }

    async fn open_bi(
        self: &Arc<Self>,
        key: StreamKey,
    ) -> Result<(SocketAddr, SendStream, RecvStream), LinkError> {
        let conn = self.connection(key.peer).await?;
        let opened = async {
            let (mut send, recv) = conn.open_bi().await?;
            let header = wire::encode_stream_header(StreamHeader {
                exchange: key.exchange,
                opener_initiated: key.initiated_here,
            });
            send.write_all(&header).await?;
            Ok::<_, LinkError>((send, recv))
        };
        match timeout(self.config.connect_timeout(), opened).await {
            Ok(Ok((send, recv))) => {
                Counters::add(&self.counters.streams_opened, 1);
                Ok((conn.remote_address(), send, recv))
            }
            Ok(Err(err)) => {
                if err.connection_lost() {
                    self.drop_link(key.peer, &conn);
                }
                Err(err)
            }
            Err(_) => Err(LinkError::Timeout),
        }
    }

    /// The link to `peer`, dialing it if there is none. One dial at a time
    /// per peer: concurrent callers wait for it and share its result.
    async fn connection(self: &Arc<Self>, peer: NodeId) -> Result<Connection, LinkError> {
        if let Some(conn) = self.live_link(peer) {
            return Ok(conn);
        }
        let slot = Arc::clone(lock(&self.dials).entry(peer).or_default());
        let mut slot = slot.lock().await;
        // Whoever held the slot before may have made the link.
        if let Some(conn) = self.live_link(peer) {
            return Ok(conn);
        }
        let addr = self.peer_addr(peer).ok_or(LinkError::UnknownPeer)?;
        let backing_off = slot.failed.is_some_and(|(when, at)| {
            at == addr && when.elapsed() < self.config.reconnect_backoff()
        });
        if backing_off {
            Counters::add(&self.counters.connect_failures, 1);
            return Err(LinkError::Backoff);
        }
        match self.dial(peer, addr).await {
            Ok(conn) => {
                Counters::add(&self.counters.connections_dialed, 1);
                if slot.failures > 0 {
                    info!(node = %self.id, %peer, peer_addr = %addr, failed_dials = slot.failures, "connected to peer again");
                } else {
                    debug!(node = %self.id, %peer, %addr, "connected to peer");
                }
                self.add_dialed_link(peer, &conn, addr);
                slot.failed = None;
                slot.failures = 0;
                Ok(conn)
            }
            Err(err) => {
                Counters::add(&self.counters.connect_failures, 1);
                // A peer that is down is dialed again at every probe: one
                // warning for the outage, not one per dial.
                if slot.failures == 0 {
                    warn!(node = %self.id, %peer, peer_addr = %addr, error = %err,
                        "could not connect to peer; further failures are logged at debug until it answers");
                } else {
                    debug!(node = %self.id, %peer, peer_addr = %addr, error = %err, failures = slot.failures + 1, "could not connect to peer");
                }
                slot.failures += 1;
                slot.failed = Some((Instant::now(), addr));
                Err(err)
            }
        }
    }

    /// Dials `addr` authenticating it by the address itself (its node
    /// certificate must name that IP), and returns the node its certificate
    /// proves; the connection is closed again.
    pub(crate) async fn discover(&self, addr: SocketAddr) -> Result<NodeId, DiscoverError> {
        let conn = self
            .dial_as(addr, &addr.ip().to_string())
            .await
            .map_err(|err| DiscoverError::Connect(err.to_string()))?;
        let (_, chain) = tls::handshake_facts(&conn);
        let found = chain
            .as_ref()
            .and_then(|chain| chain.first())
            .and_then(certs::node_in_certificate);
        conn.close(code(wire::CONN_DONE), b"discovered");
        match found {
            Some(id) if id == self.id => Err(DiscoverError::Itself),
            Some(id) => Ok(id),
            None => Err(DiscoverError::NotANode),
        }
    }

    async fn dial(&self, peer: NodeId, addr: SocketAddr) -> Result<Connection, LinkError> {
        self.dial_as(addr, &node_name(peer)).await
    }

    /// Connects to `addr`, authenticating it as `server_name`, and says
    /// hello: which node this is.
    async fn dial_as(&self, addr: SocketAddr, server_name: &str) -> Result<Connection, LinkError> {
        let connecting = self
            .endpoint
            .connect_with(self.peer_client.clone(), addr, server_name)?;
        let hello = wire::encode_hello(self.id);
        let dialed = async {
            let conn = connecting.await?;
            let mut uni = conn.open_uni().await?;
            uni.write_all(&hello).await?;
            uni.finish()?;
            Ok::<_, LinkError>(conn)
        };
        timeout(self.config.connect_timeout(), dialed)
            .await
            .map_err(|_| LinkError::Timeout)?
    }

    // ---- shutdown ----

    /// Stops accepting, lets every stream flush its queued frames and
    /// finish, closes the endpoint and waits for it to go idle, all within
    /// `shutdown_timeout`. Idempotent.
    pub(crate) async fn shutdown(self: &Arc<Self>) {
        let _guard = self.shutdown_lock.lock().await;
        if self.is_finished() {
            return;
        }
        let deadline = Instant::now() + self.config.shutdown_timeout();
        self.closed.store(true, Ordering::Release);
        self.endpoint.set_server_config(None);
        self.stop.cancel();
        // Request receivers see the end at once.
        lock(&self.requests).take();
        self.tracker.close();
        if timeout_at(deadline, self.tracker.wait()).await.is_err() {
            warn!(node = %self.id, "shutdown bound reached with streams still open; closing anyway");
        }
        self.endpoint
            .close(code(wire::CONN_SHUTDOWN), b"shutting down");
        // The close frames go out at once; waiting for idle past that only
        // waits out each connection's draining period (three probe
        // timeouts), some three seconds for a client caught mid-handshake,
        // whose round trip is still the 333 ms initial guess.
        let _ = timeout_at(
            deadline.min(Instant::now() + CLOSE_GRACE),
            self.endpoint.wait_idle(),
        )
        .await;
        self.finished.store(true, Ordering::Release);
        info!(node = %self.id, "QUIC transport shut down");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_peer_done_with_the_connection_closes_it_when_done() {
        let closed = |value: u32| {
            quinn::ConnectionError::ApplicationClosed(quinn::ApplicationClose {
                error_code: code(value),
                reason: bytes::Bytes::from_static(b"discovered"),
            })
        };
        assert!(closed_when_done(&closed(wire::CONN_DONE)));
        assert!(!closed_when_done(&closed(wire::CONN_SHUTDOWN)));
        assert!(!closed_when_done(&quinn::ConnectionError::TimedOut));
        let during_handshake = |error_code| {
            quinn::ConnectionError::ConnectionClosed(quinn::ConnectionClose {
                error_code,
                frame_type: None,
                reason: bytes::Bytes::new(),
            })
        };
        assert!(closed_when_done(&during_handshake(
            quinn::TransportErrorCode::APPLICATION_ERROR
        )));
        // A TLS alert is a refusal: the peer did not accept this node.
        assert!(!closed_when_done(&during_handshake(
            quinn::TransportErrorCode::crypto(42)
        )));
    }
}
