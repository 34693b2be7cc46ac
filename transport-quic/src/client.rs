//! The client channel: [`QuicClient`] and [`Subscription`] on the client
//! side; [`ClientRequest`], [`Responder`], [`ResponseStream`] and
//! [`RequestReceiver`] on the node side.
//!
//! A client connects with the client certificate and ALPN
//! [`CLIENT_ALPN`](crate::CLIENT_ALPN), and sends each request on a
//! bidirectional stream of its own: one frame in, and one frame out
//! ([`Responder::respond`]), or frames out until either side ends the
//! stream ([`Responder::stream`], read with [`QuicClient::subscribe`]).
//! What the bytes mean is the application's business.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gossip::lock;
use quinn::{Connection, Endpoint, RecvStream};
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};

use crate::certs::{CaCert, ClientIdentity, Identity};
use crate::config::{QuicConfig, transport_config};
use crate::tls::{self, TlsError};
use crate::wire::{self, FrameError, WriteFrameError};

/// One client request, handed to the application by a
/// [`RequestReceiver`].
#[derive(Debug)]
pub struct ClientRequest {
    /// The request frame.
    pub body: Vec<u8>,
    /// The client's address.
    pub remote: SocketAddr,
    /// Who the client is and what it may do, as its certificate (verified
    /// in the handshake) says.
    pub client: ClientIdentity,
    /// Sends the response.
    pub responder: Responder,
}

/// Sends the response to one [`ClientRequest`]. Dropping it unanswered, or
/// not answering within the request timeout, resets the client's stream
/// with [`STREAM_UNANSWERED`](crate::wire::STREAM_UNANSWERED).
///
/// It holds the request's place among the
/// [`max_concurrent_requests`](crate::QuicConfig::max_concurrent_requests)
/// until it is answered or dropped, so requests the application has not
/// taken yet count against the limit.
#[derive(Debug)]
pub struct Responder {
    tx: oneshot::Sender<Answer>,
    max: usize,
    _permit: OwnedSemaphorePermit,
}

/// How a request is answered.
#[derive(Debug)]
pub(crate) enum Answer {
    /// One frame, then the stream ends.
    Once(Vec<u8>),
    /// Frames as they come, until the sender is dropped.
    Stream(mpsc::Receiver<Vec<u8>>),
}

/// Sends the frames of a streamed answer ([`Responder::stream`]): each
/// reaches the client in order; dropping it ends the stream cleanly.
///
/// A client that reads too slowly fills the backlog and then makes
/// [`send`](Self::send) wait; one that stops reading for the read timeout
/// has its stream reset. A stream holds no place among the concurrent
/// requests: the application bounds how many it keeps open.
#[derive(Debug)]
pub struct ResponseStream {
    tx: mpsc::Sender<Vec<u8>>,
    max: usize,
}

impl ResponseStream {
    /// Queues `frame` for the client, waiting while the backlog is full.
    ///
    /// # Errors
    /// [`RespondError::TooLarge`] for an empty or oversize frame (nothing
    /// sent, the stream goes on); [`RespondError::Gone`] once the client
    /// went away or the transport shut down.
    pub async fn send(&self, frame: Vec<u8>) -> Result<(), RespondError> {
        check_response(&frame, self.max)?;
        self.tx.send(frame).await.map_err(|_| RespondError::Gone)
    }

    /// [`send`](Self::send) for a thread outside any async runtime.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn send_blocking(&self, frame: Vec<u8>) -> Result<(), RespondError> {
        check_response(&frame, self.max)?;
        self.tx.blocking_send(frame).map_err(|_| RespondError::Gone)
    }

    /// Completes once the client went away, the stream broke or the
    /// transport shut down: nothing more will reach the client.
    pub async fn closed(&self) {
        self.tx.closed().await;
    }

    /// The largest frame [`send`](Self::send) takes.
    pub fn max_frame_bytes(&self) -> usize {
        self.max
    }
}

/// Refuses an empty response frame or one over `max`.
fn check_response(frame: &[u8], max: usize) -> Result<(), RespondError> {
    if frame.is_empty() || frame.len() > max {
        return Err(RespondError::TooLarge {
            len: frame.len(),
            max,
        });
    }
    Ok(())
}

/// Why a response was not sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RespondError {
    /// The response is empty or longer than the frame cap. Nothing was sent; the
    /// client's stream is reset as unanswered.
    #[error("response of {len} bytes is empty or exceeds the {max}-byte frame cap")]
    TooLarge {
        /// The response's length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// The request timed out, the client went away or the transport shut
    /// down. Nothing was sent.
    #[error("the request is no longer waiting for a response")]
    Gone,
}

impl Responder {
    pub(crate) fn new(
        tx: oneshot::Sender<Answer>,
        max: usize,
        permit: OwnedSemaphorePermit,
    ) -> Responder {
        Responder {
            tx,
            max,
            _permit: permit,
        }
    }

    /// Whether the client's stream stopped waiting for the answer (the
    /// request timed out, or the transport shut down).
    fn is_abandoned(&self) -> bool {
        self.tx.is_closed()
    }

    /// Sends `response` to the client.
    ///
    /// # Errors
    /// [`RespondError`]; nothing was sent.
    pub fn respond(self, response: Vec<u8>) -> Result<(), RespondError> {
        check_response(&response, self.max)?;
        self.tx
            .send(Answer::Once(response))
            .map_err(|_| RespondError::Gone)
    }

    /// Answers with a stream of frames instead of one: the request gives up
    /// its place among the concurrent requests, and the frames sent on the
    /// returned [`ResponseStream`] reach the client in order. Up to
    /// `backlog` frames wait for a slow client.
    ///
    /// # Errors
    /// [`RespondError::Gone`]: the request is no longer waiting.
    pub fn stream(self, backlog: usize) -> Result<ResponseStream, RespondError> {
        let (tx, rx) = mpsc::channel(backlog.max(1));
        self.tx
            .send(Answer::Stream(rx))
            .map_err(|_| RespondError::Gone)?;
        Ok(ResponseStream { tx, max: self.max })
    }
}

/// Where a transport built with
/// [`serve_clients`](crate::QuicTransportBuilder::serve_clients) delivers
/// client requests. Clones share one queue, so several threads can serve.
#[derive(Clone, Debug)]
pub struct RequestReceiver {
    rx: crossbeam_channel::Receiver<ClientRequest>,
}

impl RequestReceiver {
    pub(crate) fn new(rx: crossbeam_channel::Receiver<ClientRequest>) -> RequestReceiver {
        RequestReceiver { rx }
    }

    /// Waits up to `timeout` for the next request. Requests whose client
    /// stopped waiting (they timed out in the queue) are dropped unseen: the
    /// client was already told its request went unanswered.
    ///
    /// # Errors
    /// [`RecvRequestError::Timeout`](crate::RecvRequestError::Timeout) if none came,
    /// [`RecvRequestError::Closed`](crate::RecvRequestError::Closed) once the transport shut down.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<ClientRequest, RecvRequestError> {
        let deadline = Instant::now() + timeout;
        loop {
            let request = self.rx.recv_deadline(deadline).map_err(|err| match err {
                crossbeam_channel::RecvTimeoutError::Timeout => RecvRequestError::Timeout,
                crossbeam_channel::RecvTimeoutError::Disconnected => RecvRequestError::Closed,
            })?;
            if !request.responder.is_abandoned() {
                return Ok(request);
            }
        }
    }

    /// Waits for the next request; `None` once the transport shut down.
    /// Skips abandoned requests, as [`recv_timeout`](Self::recv_timeout).
    pub fn recv(&self) -> Option<ClientRequest> {
        self.rx
            .iter()
            .find(|request| !request.responder.is_abandoned())
    }

    /// The next request if one is waiting. Skips abandoned requests, as
    /// [`recv_timeout`](Self::recv_timeout).
    pub fn try_recv(&self) -> Option<ClientRequest> {
        self.rx
            .try_iter()
            .find(|request| !request.responder.is_abandoned())
    }
}

/// Why [`RequestReceiver::recv_timeout`] returned no request. Nothing was
/// taken from the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecvRequestError {
    /// No request came in time.
    #[error("no request came in time")]
    Timeout,
    /// The transport shut down; no request will come.
    #[error("the transport shut down")]
    Closed,
}

/// Why a client could not connect or a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The TLS configuration could not be built (for instance, a node
    /// identity was given). Nothing was sent.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The client's runtime or socket could not be set up. Nothing was
    /// sent.
    #[error("client setup: {0}")]
    Setup(#[source] std::io::Error),
    /// The connection could not be started (for instance, an invalid
    /// server name). Nothing was sent.
    #[error("connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    /// The handshake failed, or the server closed the connection (it
    /// refused the certificate or does not serve clients). The request,
    /// if any, may have been sent.
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// The connection, request or response did not complete in time. The
    /// request may have been received.
    #[error("timed out")]
    Timeout,
    /// The request is empty or longer than the frame cap. Nothing was sent.
    #[error("request of {len} bytes is empty or exceeds the {max}-byte frame cap")]
    RequestSize {
        /// The request's length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// The server reset the request's stream with this code (see the
    /// `STREAM_*` codes in [`wire`](crate::wire)): busy, unanswered,
    /// malformed. The request may have been received.
    #[error("request refused by the server (code {0})")]
    Refused(u64),
    /// The response broke the framing (too large, empty, truncated). The
    /// request was received.
    #[error("malformed response")]
    MalformedResponse,
    /// The request could not be written whole: its stream was closed under
    /// it, or the connection refused it (0-RTT rejected). The node did not
    /// get it whole and answers nothing.
    #[error("request not sent: {0}")]
    RequestNotSent(#[source] quinn::WriteError),
}

/// A blocking client of one node: connects with the client certificate and
/// sends requests, each on a stream of its own. Usable from several threads
/// at once; not from inside an async runtime.
pub struct QuicClient {
    runtime: tokio::runtime::Runtime,
    endpoint: Endpoint,
    client_config: quinn::ClientConfig,
    remote: SocketAddr,
    server_name: String,
    conn: Mutex<Option<Connection>>,
    config: QuicConfig,
}

impl std::fmt::Debug for QuicClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicClient")
            .field("remote", &self.remote)
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl QuicClient {
    /// Connects to the node at `remote`, authenticating it as `server_name`:
    /// its node name (`node-<id>.gossip-kv`, see
    /// [`node_name`](crate::certs::node_name)), or an IP address or DNS name
    /// its certificate carries. `identity` must be the client identity.
    /// Waits up to `config.connect_timeout()`.
    ///
    /// # Errors
    /// [`ClientError`]; nothing was sent.
    pub fn connect(
        remote: SocketAddr,
        server_name: &str,
        identity: &Identity,
        ca: &CaCert,
        config: QuicConfig,
    ) -> Result<QuicClient, ClientError> {
        let mut client_config = tls::quinn_client(tls::client_config(identity, ca)?)?;
        client_config.transport_config(Arc::new(transport_config(&config, 0, 0)));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("gossip-kv-client")
            .enable_all()
            .build()
            .map_err(ClientError::Setup)?;
        let local = match (remote.ip().is_loopback(), remote.is_ipv4()) {
            (true, true) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            (true, false) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            (false, true) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            (false, false) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let endpoint = {
            let _guard = runtime.enter();
            Endpoint::client(SocketAddr::new(local, 0)).map_err(ClientError::Setup)?
        };
        let client = QuicClient {
            runtime,
            endpoint,
            client_config,
            remote,
            server_name: server_name.to_owned(),
            conn: Mutex::new(None),
            config,
        };
        client.connection()?;
        Ok(client)
    }

    /// The node's address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.remote
    }

    fn connection(&self) -> Result<Connection, ClientError> {
        let mut slot = lock(&self.conn);
        if let Some(conn) = slot.as_ref() {
            if conn.close_reason().is_none() {
                return Ok(conn.clone());
            }
        }
        *slot = None;
        // quinn starts the connection's driver task right away.
        let _guard = self.runtime.enter();
        let connecting = self.endpoint.connect_with(
            self.client_config.clone(),
            self.remote,
            &self.server_name,
        )?;
        let conn = self
            .runtime
            .block_on(async {
                tokio::time::timeout(self.config.connect_timeout(), connecting).await
            })
            .map_err(|_| ClientError::Timeout)??;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Sends `body` and waits up to the configured request timeout for the
    /// response. Reconnects first if the connection was lost.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn request(&self, body: &[u8]) -> Result<Vec<u8>, ClientError> {
        self.request_with_timeout(body, self.config.request_timeout())
    }

    /// Sends `body` and waits up to `timeout` for the response.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn request_with_timeout(
        &self,
        body: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, ClientError> {
        let max = self.checked_size(body)?;
        let conn = self.connection()?;
        let exchange = async {
            let (_send, mut recv) = send_request(&conn, body).await?;
            read_response(&mut recv, max, timeout).await
        };
        self.runtime
            .block_on(async { tokio::time::timeout(timeout, exchange).await })
            .map_err(|_| ClientError::Timeout)?
    }

    /// Sends `body` and waits up to the request timeout for the first
    /// frame of a streamed answer ([`Responder::stream`]); the rest are
    /// read with [`Subscription::next`]. A node that answers with one frame
    /// gives a subscription that ends after it.
    ///
    /// # Errors
    /// [`ClientError`], as [`request`](Self::request).
    pub fn subscribe(&self, body: &[u8]) -> Result<(Vec<u8>, Subscription<'_>), ClientError> {
        let max = self.checked_size(body)?;
        let conn = self.connection()?;
        let timeout = self.config.request_timeout();
        let opening = async {
            let (_send, mut recv) = send_request(&conn, body).await?;
            let first = read_response(&mut recv, max, timeout).await?;
            Ok::<_, ClientError>((first, recv))
        };
        let (first, recv) = self
            .runtime
            .block_on(async { tokio::time::timeout(timeout, opening).await })
            .map_err(|_| ClientError::Timeout)??;
        let subscription = Subscription {
            client: self,
            recv: Some(recv),
        };
        Ok((first, subscription))
    }

    /// The frame cap, if `body` fits it (and is not empty).
    fn checked_size(&self, body: &[u8]) -> Result<usize, ClientError> {
        let max = self.config.max_frame_bytes();
        if body.is_empty() || body.len() > max {
            return Err(ClientError::RequestSize {
                len: body.len(),
                max,
            });
        }
        Ok(max)
    }

    /// Closes the connection and waits briefly for the node to hear it.
    pub fn close(self) {
        self.endpoint.close(0u32.into(), b"client done");
        let endpoint = self.endpoint.clone();
        let _ = self.runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await
        });
    }
}

/// Opens a stream on `conn` and sends `body` on it as the whole request;
/// returns both halves. Keep the sending half until the first answer has
/// come: dropped sooner, the node waits out its read timeout before it
/// lets the stream go.
async fn send_request(
    conn: &Connection,
    body: &[u8],
) -> Result<(quinn::SendStream, RecvStream), ClientError> {
    let (mut send, recv) = conn.open_bi().await?;
    wire::write_frame(&mut send, body)
        .await
        .map_err(|err| write_error(err, body.len()))?;
    let _ = send.finish();
    Ok((send, recv))
}

/// The client error for a request frame of `len` bytes that could not be
/// written.
fn write_error(err: WriteFrameError, len: usize) -> ClientError {
    match err {
        WriteFrameError::Write(quinn::WriteError::Stopped(code)) => {
            ClientError::Refused(code.into_inner())
        }
        WriteFrameError::Write(quinn::WriteError::ConnectionLost(err)) => {
            ClientError::Connection(err)
        }
        WriteFrameError::Write(other) => ClientError::RequestNotSent(other),
        // Requests are checked against the frame cap first; this is what
        // a length beyond any prefix would be.
        WriteFrameError::TooLong => ClientError::RequestSize {
            len,
            max: u32::MAX as usize,
        },
    }
}

/// Reads one response frame, waiting up to `timeout` for it.
async fn read_response(
    recv: &mut RecvStream,
    max: usize,
    timeout: Duration,
) -> Result<Vec<u8>, ClientError> {
    next_frame(recv, max, timeout)
        .await?
        .ok_or(ClientError::MalformedResponse)
}

/// Reads the next frame of a response: `None` when the node ended the
/// stream between frames.
async fn next_frame(
    recv: &mut RecvStream,
    max: usize,
    wait: Duration,
) -> Result<Option<Vec<u8>>, ClientError> {
    match wire::read_frame(recv, max, None, wait, wait).await {
        Ok(frame) => Ok(frame),
        Err(FrameError::Reset(code)) => Err(ClientError::Refused(code.into_inner())),
        Err(FrameError::Lost(quinn::ReadError::ConnectionLost(err))) => {
            Err(ClientError::Connection(err))
        }
        Err(FrameError::Timeout) => Err(ClientError::Timeout),
        Err(_) => Err(ClientError::MalformedResponse),
    }
}

/// The rest of a streamed answer ([`QuicClient::subscribe`]). Dropping it
/// tells the node to stop sending.
#[derive(Debug)]
pub struct Subscription<'a> {
    client: &'a QuicClient,
    /// `None` once the stream ended or broke.
    recv: Option<RecvStream>,
}

impl Subscription<'_> {
    /// Waits up to `wait` for the next frame: `Ok(None)` once the node
    /// ended the stream (it shut down, or the answer is complete).
    ///
    /// # Errors
    /// [`ClientError::Timeout`] if none came in time, or the stream broke
    /// ([`ClientError`]): either way the subscription is over, and later
    /// calls return `Ok(None)`.
    pub fn next(&mut self, wait: Duration) -> Result<Option<Vec<u8>>, ClientError> {
        let Some(recv) = self.recv.as_mut() else {
            return Ok(None);
        };
        let max = self.client.config.max_frame_bytes();
        let frame = self.client.runtime.block_on(next_frame(recv, max, wait));
        if !matches!(frame, Ok(Some(_))) {
            // A frame cut off by the timeout would leave the stream
            // mid-frame: nothing after it could be read.
            self.recv = None;
        }
        frame
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_that_could_not_be_written_says_so() {
        let closed = write_error(WriteFrameError::Write(quinn::WriteError::ClosedStream), 5);
        assert!(matches!(
            closed,
            ClientError::RequestNotSent(quinn::WriteError::ClosedStream)
        ));
        let stopped = write_error(
            WriteFrameError::Write(quinn::WriteError::Stopped(quinn::VarInt::from_u32(0x12))),
            5,
        );
        assert!(matches!(stopped, ClientError::Refused(0x12)));
        let too_long = write_error(WriteFrameError::TooLong, 7);
        assert!(matches!(too_long, ClientError::RequestSize { len: 7, .. }));
    }
}
