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

use gossip::{ExchangeEnd, MessageKind, Transmit, TransportError};
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
use crate::frame::{FrameError, WriteFrameError, read_frame, write_frame};
use crate::lock;
use crate::stats::Counters;
use crate::tls::{self, CLIENT_ALPN, PEER_ALPN};
use crate::wire::{self, StreamHeader};

mod link;
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

/// Dialing one peer: one dial at a time, and the last failure, for the
/// backoff.
#[derive(Default)]
struct Slot {
    failed: Option<(Instant, SocketAddr)>,
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
    serves_clients: bool,
    requests: Mutex<Option<crossbeam_channel::Sender<ClientRequest>>>,
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
}

impl Shared {
    pub(crate) fn start(parts: SharedParts) -> std::io::Result<Arc<Shared>> {
        let local_addr = parts.endpoint.local_addr()?;
        let shared = Arc::new(Shared {
            id: parts.id,
            exchanges: Arc::new(Semaphore::new(parts.config.max_concurrent_exchanges())),
            request_permits: Arc::new(Semaphore::new(parts.config.max_concurrent_requests())),
            connection_permits: Arc::new(Semaphore::new(parts.config.max_incoming_connections())),
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
            return Err(TransportError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "empty frames are not carried",
            )));
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
        let mut opened = self.open_bi(key).await;
        if opened.as_ref().is_err_and(LinkError::connection_lost) {
            let err = opened.as_ref().err();
            // A link the peer dropped (it restarted, say): dial once more.
            debug!(node = %self.id, peer = %key.peer, error = ?err, "link lost; redialing");
            opened = self.open_bi(key).await;
        }
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
                debug!(node = %self.id, %peer, %addr, "connected to peer");
                self.add_dialed_link(peer, &conn, addr);
                slot.failed = None;
                Ok(conn)
            }
            Err(err) => {
                Counters::add(&self.counters.connect_failures, 1);
                warn!(node = %self.id, %peer, peer_addr = %addr, error = %err, "could not connect to peer");
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

    // ---- one stream ----

    /// Writes the node's frames on one exchange's stream while a reader
    /// task delivers the peer's. The stream ends when both sides have ended
    /// the exchange (this node with [`StreamCommand::End`], the peer by
    /// finishing), when it goes quiet for `exchange_idle`, or on an error.
    /// The served-exchange `permit` goes as soon as this node has ended: it
    /// answers nothing more on this stream.
    #[allow(clippy::too_many_arguments)]
    async fn run_stream(
        self: &Arc<Self>,
        key: StreamKey,
        generation: u64,
        remote: SocketAddr,
        mut send: SendStream,
        recv: RecvStream,
        mut rx: mpsc::UnboundedReceiver<StreamCommand>,
        mut permit: Option<OwnedSemaphorePermit>,
    ) {
        let activity = Arc::new(Activity::new());
        let mut reader = self.tracker.spawn_on(
            Arc::clone(self).read_frames(key.peer, remote, recv, Arc::clone(&activity)),
            &self.runtime,
        );
        let idle = self.config.exchange_idle();
        let mut reader_end = None;
        let mut reset = None;
        let mut ended_here = false;
        loop {
            let quiet_until = activity.last() + idle;
            tokio::select! {
                command = rx.recv(), if !ended_here => match command {
                    Some(StreamCommand::Frame(payload)) => {
                        if let Err(err) = self.write_frame(&mut send, &payload).await {
                            Counters::add(&self.counters.frames_dropped, 1);
                            debug!(node = %self.id, peer = %key.peer, peer_addr = %remote, error = %err, "write failed");
                            reset = Some(wire::STREAM_DONE);
                            break;
                        }
                        activity.touch();
                    }
                    Some(StreamCommand::End) => {
                        self.forget(key, generation);
                        rx.close();
                        Counters::add(&self.counters.frames_dropped, drain_dropped(&mut rx));
                        let _ = send.finish();
                        ended_here = true;
                        drop(permit.take());
                        if reader_end.is_some() {
                            break;
                        }
                    }
                    // A newer stream took over this exchange.
                    None => break,
                },
                end = &mut reader, if reader_end.is_none() => {
                    let end = end.unwrap_or(ReaderEnd::Lost);
                    reader_end = Some(end);
                    match end {
                        ReaderEnd::Rejected(code) => reset = Some(code),
                        ReaderEnd::Lost => reset = Some(wire::STREAM_DONE),
                        ReaderEnd::Shutdown => {}
                        // The peer is done; this node may still owe it an
                        // answer to its last frame.
                        ReaderEnd::Finished if !ended_here => continue,
                        ReaderEnd::Finished => {}
                    }
                    break;
                },
                () = tokio::time::sleep_until(quiet_until) => {
                    if activity.last() + idle <= Instant::now() {
                        break;
                    }
                },
                () = self.stop.cancelled() => break,
            }
        }
        if !ended_here {
            // From here no frame can be queued for this stream: later frames
            // of the exchange open a new one.
            self.forget(key, generation);
            rx.close();
        }
        // A stream this node finished cleanly is not reset after all: the
        // peer may still be reading what it was sent.
        match reset.filter(|_| !ended_here) {
            None => {
                while let Ok(command) = rx.try_recv() {
                    let StreamCommand::Frame(payload) = command else {
                        continue;
                    };
                    if self.write_frame(&mut send, &payload).await.is_err() {
                        Counters::add(&self.counters.frames_dropped, 1);
                        break;
                    }
                }
                let _ = send.finish();
                // Wait until the peer has every byte, so that closing the
                // connection later cannot lose them.
                let _ = timeout(self.config.read_timeout(), send.stopped()).await;
            }
            Some(code_value) => {
                Counters::add(&self.counters.frames_dropped, drain_dropped(&mut rx));
                let _ = send.reset(code(code_value));
            }
        }
        if reader_end.is_none()
            && timeout(self.config.read_timeout(), &mut reader)
                .await
                .is_err()
        {
            reader.abort();
        }
        drop(permit);
    }

    async fn write_frame(&self, send: &mut SendStream, payload: &[u8]) -> Result<(), LinkError> {
        match timeout(self.config.read_timeout(), write_frame(send, payload)).await {
            Err(_) => Err(LinkError::Timeout),
            Ok(Err(WriteFrameError::Write(err))) => Err(LinkError::Write(err)),
            // Frames are checked against the cap (a u32) before queueing.
            Ok(Err(WriteFrameError::TooLong)) => Err(LinkError::Timeout),
            Ok(Ok(())) => {
                Counters::add(&self.counters.frames_sent, 1);
                Counters::add(&self.counters.bytes_sent, payload.len() as u64);
                Ok(())
            }
        }
    }

    async fn read_frames(
        self: Arc<Self>,
        peer: NodeId,
        remote: SocketAddr,
        mut recv: RecvStream,
        activity: Arc<Activity>,
    ) -> ReaderEnd {
        let max = self.config.max_incoming_frame_bytes();
        let wait = self.config.exchange_idle() + self.config.read_timeout();
        loop {
            let next = tokio::select! {
                next = read_frame(&mut recv, max, wait, self.config.read_timeout()) => next,
                () = self.stop.cancelled() => {
                    let _ = recv.stop(code(wire::STREAM_SHUTDOWN));
                    return ReaderEnd::Shutdown;
                }
            };
            match next {
                Ok(Some(payload)) => {
                    activity.touch();
                    Counters::add(&self.counters.frames_received, 1);
                    Counters::add(&self.counters.bytes_received, payload.len() as u64);
                    let incoming = gossip::Incoming {
                        from: peer,
                        payload,
                    };
                    tokio::select! {
                        sent = self.inbox.send(incoming) => if sent.is_err() {
                            return ReaderEnd::Shutdown;
                        },
                        () = self.stop.cancelled() => return ReaderEnd::Shutdown,
                    }
                }
                Ok(None) => return ReaderEnd::Finished,
                Err(err) => {
                    let Some(reset) = err.reset_code() else {
                        debug!(node = %self.id, %peer, peer_addr = %remote, error = %err, "stream ended");
                        return ReaderEnd::Lost;
                    };
                    Counters::add(&self.counters.streams_rejected, 1);
                    if matches!(err, FrameError::Timeout) {
                        debug!(node = %self.id, %peer, peer_addr = %remote, "stream went quiet without finishing; resetting it");
                    } else if let Some(suppressed) = self
                        .warnings
                        .admit(Refusal::Stream, std::time::Instant::now())
                    {
                        warn!(node = %self.id, %peer, peer_addr = %remote, error = %err, suppressed, "bad frame; resetting the stream");
                    }
                    let _ = recv.stop(code(reset));
                    return ReaderEnd::Rejected(reset);
                }
            }
        }
    }

    // ---- accepting ----

    async fn accept_loop(self: Arc<Self>) {
        loop {
            let incoming = tokio::select! {
                incoming = self.endpoint.accept() => incoming,
                () = self.stop.cancelled() => break,
            };
            let Some(incoming) = incoming else { break };
            let Ok(permit) = Arc::clone(&self.connection_permits).try_acquire_owned() else {
                Counters::add(&self.counters.connections_refused_busy, 1);
                debug!(node = %self.id, peer_addr = %incoming.remote_address(),
                    limit = self.config.max_incoming_connections(), "connection limit reached; refusing");
                incoming.refuse();
                continue;
            };
            let shared = Arc::clone(&self);
            self.tracker.spawn(async move {
                shared.handle_incoming(incoming).await;
                drop(permit);
            });
        }
    }

    async fn handle_incoming(self: Arc<Self>, incoming: quinn::Incoming) {
        let remote = incoming.remote_address();
        let connecting = match incoming.accept() {
            Ok(connecting) => connecting,
            Err(err) => {
                Counters::add(&self.counters.handshakes_refused, 1);
                if let Some(suppressed) = self
                    .warnings
                    .admit(Refusal::Handshake, std::time::Instant::now())
                {
                    warn!(node = %self.id, peer_addr = %remote, error = %err, suppressed, "refused connection before the handshake");
                }
                return;
            }
        };
        // Shutdown does not wait for a handshake or a hello: nothing of the
        // peer's is queued here yet.
        let handshake = self
            .stop
            .run_until_cancelled(timeout(self.config.connect_timeout(), connecting));
        let Some(handshake) = handshake.await else {
            return;
        };
        let conn = match handshake {
            Ok(Ok(conn)) => conn,
            Ok(Err(err)) if closed_when_done(&err) => {
                debug!(node = %self.id, peer_addr = %remote, "connection closed by the peer during the handshake");
                return;
            }
            Ok(Err(err)) => {
                Counters::add(&self.counters.handshakes_refused, 1);
                if let Some(suppressed) = self
                    .warnings
                    .admit(Refusal::Handshake, std::time::Instant::now())
                {
                    warn!(node = %self.id, peer_addr = %remote, error = %err, suppressed, "refused connection: TLS handshake failed");
                }
                return;
            }
            Err(_) => {
                Counters::add(&self.counters.handshakes_refused, 1);
                if let Some(suppressed) = self
                    .warnings
                    .admit(Refusal::Handshake, std::time::Instant::now())
                {
                    warn!(node = %self.id, peer_addr = %remote, suppressed, "refused connection: TLS handshake timed out");
                }
                return;
            }
        };
        Counters::add(&self.counters.connections_accepted, 1);
        let (alpn, chain) = tls::handshake_facts(&conn);
        let Some(leaf) = chain.and_then(|chain| chain.into_iter().next()) else {
            // The verifier requires a certificate; this is belt and braces.
            self.refuse(&conn, wire::CONN_ROLE_REFUSED, "no client certificate");
            return;
        };
        match alpn.as_deref() {
            Some(PEER_ALPN) => self.serve_peer(conn, leaf).await,
            Some(CLIENT_ALPN) if self.serves_clients => self.serve_client(conn, leaf).await,
            _ => self.refuse(&conn, wire::CONN_ROLE_REFUSED, "unexpected ALPN"),
        }
    }

    fn refuse(&self, conn: &Connection, close_code: u32, reason: &'static str) {
        Counters::add(&self.counters.identities_refused, 1);
        if let Some(suppressed) = self
            .warnings
            .admit(Refusal::Role, std::time::Instant::now())
        {
            warn!(node = %self.id, peer_addr = %conn.remote_address(), reason, suppressed, "refused connection");
        }
        conn.close(code(close_code), reason.as_bytes());
    }

    async fn serve_peer(self: &Arc<Self>, conn: Connection, leaf: CertificateDer<'static>) {
        let remote = conn.remote_address();
        let hello = self
            .stop
            .run_until_cancelled(timeout(self.config.connect_timeout(), async {
                let mut uni = conn.accept_uni().await.ok()?;
                uni.read_to_end(wire::HELLO_LEN).await.ok()
            }));
        let Some(hello) = hello.await else {
            conn.close(code(wire::CONN_SHUTDOWN), b"shutting down");
            return;
        };
        let Some(claimed) = hello
            .ok()
            .flatten()
            .and_then(|bytes| wire::decode_hello(&bytes).ok())
        else {
            if conn.close_reason().as_ref().is_some_and(closed_when_done) {
                debug!(node = %self.id, peer_addr = %remote, "connection closed by the peer before its hello");
                return;
            }
            self.refuse(
                &conn,
                wire::CONN_BAD_HELLO,
                "missing, late or malformed hello",
            );
            return;
        };
        if !tls::proves_node(&leaf, claimed) {
            let presented = certs::role_of(&leaf)
                .map(|role| role.to_string())
                .unwrap_or_else(|_| "no gossip-kv identity".to_owned());
            Counters::add(&self.counters.identities_refused, 1);
            if let Some(suppressed) = self
                .warnings
                .admit(Refusal::Identity, std::time::Instant::now())
            {
                warn!(node = %self.id, peer_addr = %remote, claimed = %claimed, certificate = %presented, suppressed,
                    "refused connection: the certificate is not valid for the node id the hello claims");
            }
            conn.close(code(wire::CONN_IDENTITY_REFUSED), b"identity mismatch");
            return;
        }
        debug!(node = %self.id, peer = %claimed, peer_addr = %remote, "peer authenticated");
        self.set_link(claimed, &conn, None);
        Arc::clone(self).serve_link(claimed, conn).await;
    }

    /// Serves the exchange streams `peer` opens on `conn`, each on a task of
    /// its own, within the served-exchange limit, until the connection
    /// closes.
    async fn accept_streams(self: &Arc<Self>, peer: NodeId, conn: &Connection) {
        let remote = conn.remote_address();
        while let Ok((mut send, mut recv)) = conn.accept_bi().await {
            let Ok(permit) = Arc::clone(&self.exchanges).try_acquire_owned() else {
                Counters::add(&self.counters.streams_refused_busy, 1);
                debug!(node = %self.id, %peer, peer_addr = %remote,
                    limit = self.config.max_concurrent_exchanges(), "exchange limit reached; refusing a stream");
                let _ = send.reset(code(wire::STREAM_BUSY));
                let _ = recv.stop(code(wire::STREAM_BUSY));
                continue;
            };
            let shared = Arc::clone(self);
            self.tracker
                .spawn(shared.serve_stream(peer, remote, send, recv, permit));
        }
    }

    async fn serve_stream(
        self: Arc<Self>,
        peer: NodeId,
        remote: SocketAddr,
        mut send: SendStream,
        mut recv: RecvStream,
        permit: OwnedSemaphorePermit,
    ) {
        let mut bytes = [0u8; wire::STREAM_HEADER_LEN];
        let header = match timeout(self.config.read_timeout(), recv.read_exact(&mut bytes)).await {
            Ok(Ok(())) => wire::decode_stream_header(&bytes).map_err(|err| err.to_string()),
            Ok(Err(ReadExactError::ReadError(_))) => return,
            Ok(Err(ReadExactError::FinishedEarly(n))) => {
                Err(format!("stream ended after {n} header bytes"))
            }
            Err(_) => Err("header did not arrive in time".to_owned()),
        };
        let header = match header {
            Ok(header) => header,
            Err(reason) => {
                Counters::add(&self.counters.streams_rejected, 1);
                if let Some(suppressed) = self
                    .warnings
                    .admit(Refusal::Stream, std::time::Instant::now())
                {
                    warn!(node = %self.id, %peer, peer_addr = %remote, %reason, suppressed, "bad stream header; resetting the stream");
                }
                let _ = send.reset(code(wire::STREAM_MALFORMED));
                let _ = recv.stop(code(wire::STREAM_MALFORMED));
                return;
            }
        };
        Counters::add(&self.counters.streams_accepted, 1);
        let key = StreamKey {
            peer,
            exchange: header.exchange,
            initiated_here: !header.opener_initiated,
        };
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let (queue, rx) = mpsc::unbounded_channel();
        lock(&self.streams).insert(key, StreamEntry { generation, queue });
        self.run_stream(key, generation, remote, send, recv, rx, Some(permit))
            .await;
    }

    async fn serve_client(self: &Arc<Self>, conn: Connection, leaf: CertificateDer<'static>) {
        let remote = conn.remote_address();
        if !tls::proves_client(&leaf) {
            self.refuse(
                &conn,
                wire::CONN_ROLE_REFUSED,
                "a node certificate on the client protocol",
            );
            return;
        }
        debug!(node = %self.id, client_addr = %remote, "client connected");
        loop {
            let stream = tokio::select! {
                stream = conn.accept_bi() => stream,
                () = self.stop.cancelled() => break,
            };
            let Ok((mut send, mut recv)) = stream else {
                break;
            };
            let Ok(permit) = Arc::clone(&self.request_permits).try_acquire_owned() else {
                Counters::add(&self.counters.requests_refused, 1);
                debug!(node = %self.id, client_addr = %remote, "request limit reached; refusing a request");
                let _ = send.reset(code(wire::STREAM_BUSY));
                let _ = recv.stop(code(wire::STREAM_BUSY));
                continue;
            };
            let shared = Arc::clone(self);
            self.tracker
                .spawn(shared.serve_request(remote, send, recv, permit));
        }
    }

    async fn serve_request(
        self: Arc<Self>,
        remote: SocketAddr,
        mut send: SendStream,
        mut recv: RecvStream,
        permit: OwnedSemaphorePermit,
    ) {
        let max = self.config.max_frame_bytes();
        let request_max = self.config.max_incoming_frame_bytes();
        let read_timeout = self.config.read_timeout();
        let refuse = |send: &mut SendStream, recv: &mut RecvStream, value: u32| {
            Counters::add(&self.counters.requests_refused, 1);
            let _ = send.reset(code(value));
            let _ = recv.stop(code(value));
        };
        let body = match read_frame(&mut recv, request_max, read_timeout, read_timeout).await {
            Ok(Some(body)) => body,
            Ok(None) => {
                warn!(node = %self.id, client_addr = %remote, "empty request stream; resetting it");
                refuse(&mut send, &mut recv, wire::STREAM_MALFORMED);
                return;
            }
            Err(err) => {
                if let Some(value) = err.reset_code() {
                    warn!(node = %self.id, client_addr = %remote, error = %err, "bad request frame; resetting the stream");
                    refuse(&mut send, &mut recv, value);
                }
                return;
            }
        };
        let (tx, rx) = oneshot::channel();
        let request = ClientRequest {
            body,
            remote,
            responder: Responder::new(tx, max, permit),
        };
        // The permit goes with the request, so the channel, which holds as
        // many requests as there are permits, is never full.
        let refused = match lock(&self.requests).as_ref() {
            Some(requests) => match requests.try_send(request) {
                Ok(()) => None,
                Err(crossbeam_channel::TrySendError::Full(_)) => Some(wire::STREAM_BUSY),
                Err(crossbeam_channel::TrySendError::Disconnected(_)) => {
                    Some(wire::STREAM_SHUTDOWN)
                }
            },
            None => Some(wire::STREAM_SHUTDOWN),
        };
        if let Some(value) = refused {
            refuse(&mut send, &mut recv, value);
            return;
        }
        match timeout(self.config.request_timeout(), rx).await {
            Ok(Ok(Answer::Stream(frames))) => self.stream_response(remote, send, frames).await,
            Ok(Ok(Answer::Once(response))) => {
                let written = timeout(read_timeout, write_frame(&mut send, &response)).await;
                if matches!(written, Ok(Ok(()))) {
                    let _ = send.finish();
                    let _ = timeout(read_timeout, send.stopped()).await;
                    Counters::add(&self.counters.requests_answered, 1);
                } else {
                    Counters::add(&self.counters.requests_refused, 1);
                    let _ = send.reset(code(wire::STREAM_TIMEOUT));
                }
            }
            Ok(Err(_)) | Err(_) => {
                debug!(node = %self.id, client_addr = %remote, "request unanswered");
                refuse(&mut send, &mut recv, wire::STREAM_UNANSWERED);
            }
        }
    }

    /// Writes the frames of a streamed answer as the application sends
    /// them, until it drops its end (the stream finishes), the client stops
    /// reading or leaves, or the transport shuts down (the stream
    /// finishes). A frame the client does not take within the read timeout
    /// resets the stream.
    async fn stream_response(
        &self,
        remote: SocketAddr,
        mut send: SendStream,
        mut frames: mpsc::Receiver<Vec<u8>>,
    ) {
        let read_timeout = self.config.read_timeout();
        let stopped = send.stopped();
        tokio::pin!(stopped);
        loop {
            let frame = tokio::select! {
                frame = frames.recv() => frame,
                () = self.stop.cancelled() => None,
                _ = &mut stopped => {
                    debug!(node = %self.id, client_addr = %remote, "client stopped reading a streamed answer");
                    Counters::add(&self.counters.requests_answered, 1);
                    return;
                }
            };
            let Some(frame) = frame else {
                let _ = send.finish();
                // Until the client has it all: the connection may close
                // once this task lets go of the stream.
                let _ = timeout(read_timeout, &mut stopped).await;
                Counters::add(&self.counters.requests_answered, 1);
                return;
            };
            match timeout(read_timeout, write_frame(&mut send, &frame)).await {
                Ok(Ok(())) => {}
                // The client stopped reading while this frame went out: it
                // is done, as if the stop had come between frames.
                Ok(Err(WriteFrameError::Write(quinn::WriteError::Stopped(_)))) => {
                    Counters::add(&self.counters.requests_answered, 1);
                    return;
                }
                _ => {
                    debug!(node = %self.id, client_addr = %remote, "client not reading a streamed answer; resetting it");
                    Counters::add(&self.counters.requests_refused, 1);
                    let _ = send.reset(code(wire::STREAM_TIMEOUT));
                    return;
                }
            }
        }
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
