//! Shared fixtures: QUIC transports on loopback, a log capture, polling with
//! a deadline, and a raw quinn endpoint for speaking the wire protocol by
//! hand (well or badly).

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use gossip::{Incoming, Transport};
use lww_crdt::NodeId;
use quinn::{Connection, Endpoint, RecvStream, SendStream, VarInt};
use transport_quic::certs::{ClusterCa, Identity};
use transport_quic::{QuicConfig, QuicConfigBuilder, QuicTransport, wire};

/// Timeouts short enough for tests, long enough for a loaded 2-core box.
pub fn test_config() -> QuicConfig {
    test_config_builder().build().unwrap()
}

/// [`test_config`] before it is built, to change one setting more.
pub fn test_config_builder() -> QuicConfigBuilder {
    QuicConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .read_timeout(Duration::from_secs(3))
        .exchange_idle(Duration::from_millis(500))
        .reconnect_backoff(Duration::from_millis(100))
        .shutdown_timeout(Duration::from_secs(3))
}

/// `n` transports with ids `0..n` on 127.0.0.1, every one knowing every
/// other's address.
pub fn quic_cluster(ca: &ClusterCa, n: u64, config: &QuicConfig) -> Vec<QuicTransport> {
    let transports: Vec<QuicTransport> = (0..n)
        .map(|id| {
            QuicTransport::builder(
                ca.issue_node(NodeId::new(id), &["127.0.0.1".to_owned()])
                    .unwrap(),
                ca.cert().clone(),
            )
            .config(config.clone())
            .build()
            .unwrap()
        })
        .collect();
    for a in &transports {
        for b in &transports {
            if a.id() != b.id() {
                a.add_peer(b.id(), b.local_addr());
            }
        }
    }
    transports
}

/// Polls `check` until it holds or `limit` passes.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Receives frames until `want` have arrived or `limit` passes.
pub fn receive(transport: &mut impl Transport, want: usize, limit: Duration) -> Vec<Incoming> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    while got.len() < want {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match transport.recv_timeout(left.min(Duration::from_millis(200))) {
            Ok(Some(incoming)) => got.push(incoming),
            Ok(None) => {}
            Err(err) => panic!("recv failed: {err}"),
        }
    }
    got
}

// ---- log capture ----

#[derive(Clone)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = Sink(Arc::clone(&buffer));
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || sink.clone())
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        buffer
    })
}

/// Starts capturing logs (call before anything logs).
pub fn capture_logs() {
    log_buffer();
}

/// The captured log lines that contain every one of `needles`.
pub fn log_lines_with(needles: &[&str]) -> Vec<String> {
    let text = String::from_utf8_lossy(&log_buffer().lock().unwrap()).into_owned();
    text.lines()
        .filter(|line| needles.iter().all(|needle| line.contains(needle)))
        .map(str::to_owned)
        .collect()
}

/// Waits until a log line containing every one of `needles` appears.
pub fn logged(needles: &[&str]) -> bool {
    eventually(Duration::from_secs(10), || {
        !log_lines_with(needles).is_empty()
    })
}

// ---- a raw QUIC endpoint ----

/// A bare quinn client endpoint with its own runtime.
pub struct Raw {
    pub runtime: tokio::runtime::Runtime,
    pub endpoint: Endpoint,
}

impl Raw {
    pub fn new() -> Raw {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let endpoint = {
            let _guard = runtime.enter();
            Endpoint::client(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).unwrap()
        };
        Raw { runtime, endpoint }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.endpoint.local_addr().unwrap()
    }

    /// Connects with `tls`; the handshake's result from this side.
    pub fn connect(
        &self,
        tls: rustls::ClientConfig,
        addr: SocketAddr,
        server_name: &str,
    ) -> Result<Connection, quinn::ConnectionError> {
        let config = transport_quic::tls::quinn_client(tls).unwrap();
        self.runtime.block_on(async {
            let connecting = self
                .endpoint
                .connect_with(config, addr, server_name)
                .unwrap();
            tokio::time::timeout(Duration::from_secs(10), connecting)
                .await
                .expect("handshake timed out")
        })
    }

    /// Connects as a node with `identity`, sends a hello naming `claim`.
    pub fn connect_as(
        &self,
        identity: &Identity,
        ca: &ClusterCa,
        addr: SocketAddr,
        server: NodeId,
        claim: NodeId,
    ) -> Connection {
        let tls = transport_quic::tls::peer_client_config(identity, ca.cert()).unwrap();
        let conn = self
            .connect(tls, addr, &transport_quic::certs::node_name(server))
            .unwrap();
        self.send_uni(&conn, &wire::encode_hello(claim));
        conn
    }

    pub fn send_uni(&self, conn: &Connection, bytes: &[u8]) {
        self.runtime.block_on(async {
            let mut uni = conn.open_uni().await.unwrap();
            uni.write_all(bytes).await.unwrap();
            uni.finish().unwrap();
        });
    }

    /// Opens a bidirectional stream and writes `bytes` on it.
    pub fn open_with(&self, conn: &Connection, bytes: &[u8]) -> (SendStream, RecvStream) {
        self.runtime.block_on(async {
            let (mut send, recv) = conn.open_bi().await.unwrap();
            send.write_all(bytes).await.unwrap();
            (send, recv)
        })
    }

    /// Waits for the peer to reset or stop the stream; the code it used.
    pub fn reset_code(&self, send: &mut SendStream, recv: &mut RecvStream) -> Option<u64> {
        self.runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), async {
                let mut buf = [0u8; 64];
                loop {
                    match recv.read(&mut buf).await {
                        Err(quinn::ReadError::Reset(code)) => return Some(code.into_inner()),
                        Err(_) | Ok(None) => break,
                        Ok(Some(_)) => {}
                    }
                }
                match send.stopped().await {
                    Ok(Some(code)) => Some(code.into_inner()),
                    _ => None,
                }
            })
            .await
            .expect("the peer neither reset nor stopped the stream")
        })
    }

    /// Waits for the connection to close; the application close code, if
    /// the peer closed it that way.
    pub fn closed(&self, conn: &Connection) -> quinn::ConnectionError {
        self.runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), conn.closed())
                .await
                .expect("the peer kept the connection open")
        })
    }
}

impl Drop for Raw {
    /// Closes every connection and lets the peer hear it, so the peer's
    /// shutdown does not wait for acknowledgements that cannot come.
    fn drop(&mut self) {
        self.endpoint.close(0u32.into(), b"bye");
        let endpoint = self.endpoint.clone();
        self.runtime.block_on(async {
            let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
        });
    }
}

/// The application close code of a closed connection.
pub fn app_close_code(err: &quinn::ConnectionError) -> Option<u64> {
    match err {
        quinn::ConnectionError::ApplicationClosed(close) => Some(close.error_code.into_inner()),
        _ => None,
    }
}

/// A frame: length prefix and payload.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = wire::frame_prefix(payload.len()).unwrap().to_vec();
    out.extend_from_slice(payload);
    out
}

/// `VarInt` from a code constant.
pub fn var(code: u32) -> VarInt {
    VarInt::from_u32(code)
}
