//! The client channel: [`QuicClient`] on the client side; [`ClientRequest`],
//! [`Responder`] and [`RequestReceiver`] on the node side.
//!
//! A client connects with the client certificate and ALPN
//! [`CLIENT_ALPN`](crate::CLIENT_ALPN), and sends each request on a
//! bidirectional stream of its own: one frame in, one frame out. What the
//! bytes mean is the application's business.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quinn::{Connection, Endpoint};
use tokio::sync::{OwnedSemaphorePermit, oneshot};

use crate::certs::{CaCert, Identity};
use crate::config::{QuicConfig, transport_config};
use crate::frame::{self, FrameError};
use crate::lock;
use crate::tls::{self, TlsError};

/// One client request, handed to the application by a
/// [`RequestReceiver`].
#[derive(Debug)]
pub struct ClientRequest {
    /// The request frame.
    pub body: Vec<u8>,
    /// The client's address.
    pub remote: SocketAddr,
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
    tx: oneshot::Sender<Vec<u8>>,
    max: usize,
    _permit: OwnedSemaphorePermit,
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
        tx: oneshot::Sender<Vec<u8>>,
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
        if response.len() > self.max || response.is_empty() {
            return Err(RespondError::TooLarge {
                len: response.len(),
                max: self.max,
            });
        }
        self.tx.send(response).map_err(|_| RespondError::Gone)
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
        let max = self.config.max_frame_bytes();
        if body.is_empty() || body.len() > max {
            return Err(ClientError::RequestSize {
                len: body.len(),
                max,
            });
        }
        let conn = self.connection()?;
        let exchange = async {
            let (mut send, mut recv) = conn.open_bi().await?;
            frame::write_frame(&mut send, body)
                .await
                .map_err(|err| match err {
                    frame::WriteFrameError::Write(quinn::WriteError::Stopped(code)) => {
                        ClientError::Refused(code.into_inner())
                    }
                    frame::WriteFrameError::Write(quinn::WriteError::ConnectionLost(err)) => {
                        ClientError::Connection(err)
                    }
                    _ => ClientError::MalformedResponse,
                })?;
            let _ = send.finish();
            match frame::read_frame(&mut recv, max, timeout, timeout).await {
                Ok(Some(response)) => Ok(response),
                Ok(None) => Err(ClientError::MalformedResponse),
                Err(FrameError::Reset(code)) => Err(ClientError::Refused(code.into_inner())),
                Err(FrameError::Lost(quinn::ReadError::ConnectionLost(err))) => {
                    Err(ClientError::Connection(err))
                }
                Err(FrameError::Timeout) => Err(ClientError::Timeout),
                Err(_) => Err(ClientError::MalformedResponse),
            }
        };
        self.runtime
            .block_on(async { tokio::time::timeout(timeout, exchange).await })
            .map_err(|_| ClientError::Timeout)?
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
