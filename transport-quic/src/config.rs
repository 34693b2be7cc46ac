//! [`QuicConfig`]: limits and timeouts, validated once.

use std::time::Duration;

/// The default frame cap: 4 MiB.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 4 << 20;

/// Why a [`QuicConfigBuilder`] was refused. Nothing was built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuicConfigError {
    /// The frame cap is zero or does not fit the `u32` length prefix.
    #[error("max_frame_bytes must be between 1 and {max}, got {got}", max = u32::MAX)]
    FrameCap {
        /// The value given.
        got: usize,
    },
    /// A timeout or period is zero.
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
}

/// Limits and timeouts of a QUIC transport or client. Build one with
/// [`QuicConfig::builder`]; [`QuicConfig::default`] holds the defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuicConfig {
    max_frame_bytes: usize,
    max_incoming_frame_bytes: usize,
    connect_timeout: Duration,
    read_timeout: Duration,
    exchange_idle: Duration,
    max_concurrent_exchanges: usize,
    max_concurrent_requests: usize,
    max_incoming_connections: usize,
    handshake_timeout: Duration,
    max_pending_handshakes: usize,
    max_pending_handshakes_per_source: usize,
    max_exchanges_per_peer: usize,
    max_requests_per_connection: usize,
    stream_lifetime: Duration,
    max_partial_frame_bytes: usize,
    request_timeout: Duration,
    inbox_capacity: usize,
    keep_alive: Duration,
    idle_timeout: Duration,
    reconnect_backoff: Duration,
    initial_rtt: Duration,
    shutdown_timeout: Duration,
    worker_threads: usize,
    datagrams: bool,
}

/// Incoming datagram bytes held per connection before the oldest are
/// dropped: some fifty idle exchanges' worth, far more than a peer sends
/// between two reads.
const DATAGRAM_BUFFER_BYTES: usize = 64 << 10;

impl Default for QuicConfig {
    fn default() -> QuicConfig {
        QuicConfig {
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            max_incoming_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(5),
            exchange_idle: Duration::from_secs(3),
            max_concurrent_exchanges: 256,
            max_concurrent_requests: 64,
            max_incoming_connections: 1024,
            handshake_timeout: Duration::from_secs(3),
            max_pending_handshakes: 128,
            max_pending_handshakes_per_source: 32,
            max_exchanges_per_peer: 64,
            max_requests_per_connection: 16,
            stream_lifetime: Duration::from_secs(15),
            max_partial_frame_bytes: 64 << 20,
            request_timeout: Duration::from_secs(10),
            inbox_capacity: 1024,
            keep_alive: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
            reconnect_backoff: Duration::from_millis(500),
            initial_rtt: Duration::from_millis(100),
            shutdown_timeout: Duration::from_secs(5),
            worker_threads: 1,
            datagrams: true,
        }
    }
}

impl QuicConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> QuicConfigBuilder {
        QuicConfigBuilder {
            config: QuicConfig::default(),
        }
    }

    /// The largest frame sent or accepted, in bytes (default 4 MiB).
    pub fn max_frame_bytes(&self) -> usize {
        self.max_frame_bytes
    }

    /// The largest frame a peer or client may send this node (its gossip
    /// frames, datagrams and client requests), at most
    /// [`max_frame_bytes`](Self::max_frame_bytes) (default 4 MiB). A node
    /// sets it to its largest gossip message, so that no peer can make it
    /// buffer more than one message's worth per stream; answers to clients
    /// may still take `max_frame_bytes`.
    pub fn max_incoming_frame_bytes(&self) -> usize {
        self.max_incoming_frame_bytes.min(self.max_frame_bytes)
    }

    /// How long a connection handshake (and the hello after it) may take
    /// (default 5 s).
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// How long a frame or stream header may take to arrive once started,
    /// and how long a finished stream waits for the peer to acknowledge its
    /// data (default 5 s; a client's answer, once the transport stops,
    /// only five [`initial_rtt`](Self::initial_rtt)s).
    pub fn read_timeout(&self) -> Duration {
        self.read_timeout
    }

    /// The quiet period after which an exchange's stream is finished even
    /// though a node has not ended the exchange (default 3 s, the gossip
    /// exchange timeout's default). Nodes end their exchanges as they close,
    /// so this bounds only the ones cut short by a lost frame or a peer that
    /// went away.
    pub fn exchange_idle(&self) -> Duration {
        self.exchange_idle
    }

    /// How many peer-opened exchange streams are served at once, a stream
    /// counting until this node has ended its exchange; streams past it are
    /// reset with [`STREAM_BUSY`](crate::wire::STREAM_BUSY) (default 256).
    pub fn max_concurrent_exchanges(&self) -> usize {
        self.max_concurrent_exchanges
    }

    /// How many client requests are served at once; requests past it are
    /// reset with [`STREAM_BUSY`](crate::wire::STREAM_BUSY) (default 64).
    pub fn max_concurrent_requests(&self) -> usize {
        self.max_concurrent_requests
    }

    /// How many incoming connections (peers and clients, handshakes
    /// included) are held at once; connections past it are refused before
    /// the handshake (default 1024).
    pub fn max_incoming_connections(&self) -> usize {
        self.max_incoming_connections
    }

    /// How long an incoming connection's TLS handshake may take before it is
    /// dropped (default 3 s). Until then it holds a pending-handshake slot,
    /// not a connection slot.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// How many incoming handshakes from addresses that are not known
    /// peers may be under way at once (default 128). Past a quarter of it,
    /// a source that has not proved its address gets a QUIC Retry first,
    /// which costs this node no state, so a flood of spoofed or half-open
    /// handshakes cannot fill the slots; past all of it, new handshakes are
    /// refused. Known peers' addresses have as many slots again of their
    /// own.
    pub fn max_pending_handshakes(&self) -> usize {
        self.max_pending_handshakes
    }

    /// How many of the pending handshakes one source IP address may hold
    /// (default 32).
    pub fn max_pending_handshakes_per_source(&self) -> usize {
        self.max_pending_handshakes_per_source
    }

    /// How many exchange streams one peer may have served at once, over all
    /// its connections (default 64), within
    /// [`max_concurrent_exchanges`](Self::max_concurrent_exchanges): one
    /// peer cannot take the slots every other peer needs.
    pub fn max_exchanges_per_peer(&self) -> usize {
        self.max_exchanges_per_peer
    }

    /// How many requests one client connection may have open at once
    /// (default 16), within
    /// [`max_concurrent_requests`](Self::max_concurrent_requests).
    pub fn max_requests_per_connection(&self) -> usize {
        self.max_requests_per_connection
    }

    /// The longest a peer-opened exchange stream is served, however active
    /// it stays (default 15 s): an idle timer alone would let a peer that
    /// trickles bytes keep a slot for ever.
    pub fn stream_lifetime(&self) -> Duration {
        self.stream_lifetime
    }

    /// How many bytes of frames still arriving from peers and clients the
    /// node holds at once (default 64 MiB, and never less than
    /// [`max_incoming_frame_bytes`](Self::max_incoming_frame_bytes)). A
    /// frame whose announced length does not fit is refused with
    /// [`STREAM_BUSY`](crate::wire::STREAM_BUSY).
    pub fn max_partial_frame_bytes(&self) -> usize {
        self.max_partial_frame_bytes
            .max(self.max_incoming_frame_bytes())
    }

    /// How long the application has to answer a client request, and how
    /// long [`QuicClient`](crate::QuicClient) waits for an answer by
    /// default (default 10 s).
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// How many received frames wait for the node before readers pause
    /// and QUIC flow control holds peers back (default 1024).
    pub fn inbox_capacity(&self) -> usize {
        self.inbox_capacity
    }

    /// Keep-alive period of pooled connections (default 5 s).
    pub fn keep_alive(&self) -> Duration {
        self.keep_alive
    }

    /// A connection silent this long is closed (default 30 s).
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// After a failed connect, sends to that peer fail fast for this long
    /// instead of dialing again (default 500 ms).
    pub fn reconnect_backoff(&self) -> Duration {
        self.reconnect_backoff
    }

    /// The round-trip time a connection assumes before it has measured one
    /// (default 100 ms; QUIC's generic default is 333 ms). A handshake
    /// packet that is lost is sent again after about three times this, so
    /// it bounds how long a dial to a peer that was not yet listening
    /// waits: about 1 s with QUIC's default, 0.3 s with this one. Set it
    /// near the real round trip of the slowest link between nodes; below
    /// it, a handshake sends some packets twice. A stopping transport also
    /// measures its graces in it: ten of them for a dial under way, five
    /// for a client to acknowledge its last answer.
    pub fn initial_rtt(&self) -> Duration {
        self.initial_rtt
    }

    /// The bound on a graceful shutdown (default 5 s).
    pub fn shutdown_timeout(&self) -> Duration {
        self.shutdown_timeout
    }

    /// Worker threads of the runtime a transport creates when it is not
    /// given one (default 1).
    pub fn worker_threads(&self) -> usize {
        self.worker_threads
    }

    /// Whether a gossip frame that fits in one QUIC datagram, and whose
    /// exchange has no stream open, goes as a datagram rather than on a
    /// stream (default true). A datagram is not resent when lost; gossip
    /// copes with loss by design, and an idle exchange then costs two
    /// packets instead of a stream's six or so. Off, every frame goes on an
    /// exchange stream. Incoming datagrams are read either way.
    pub fn datagrams(&self) -> bool {
        self.datagrams
    }
}

/// Builds a [`QuicConfig`]; every setter documents its default on the
/// matching [`QuicConfig`] getter.
#[derive(Clone, Debug)]
pub struct QuicConfigBuilder {
    config: QuicConfig,
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, value: $ty) -> Self {
                self.config.$name = value;
                self
            }
        )*
    };
}

impl QuicConfigBuilder {
    setters! {
        /// See [`QuicConfig::max_frame_bytes`].
        max_frame_bytes: usize;
        /// See [`QuicConfig::max_incoming_frame_bytes`].
        max_incoming_frame_bytes: usize;
        /// See [`QuicConfig::connect_timeout`].
        connect_timeout: Duration;
        /// See [`QuicConfig::read_timeout`].
        read_timeout: Duration;
        /// See [`QuicConfig::exchange_idle`].
        exchange_idle: Duration;
        /// See [`QuicConfig::max_concurrent_exchanges`].
        max_concurrent_exchanges: usize;
        /// See [`QuicConfig::max_concurrent_requests`].
        max_concurrent_requests: usize;
        /// See [`QuicConfig::max_incoming_connections`].
        max_incoming_connections: usize;
        /// See [`QuicConfig::handshake_timeout`].
        handshake_timeout: Duration;
        /// See [`QuicConfig::max_pending_handshakes`].
        max_pending_handshakes: usize;
        /// See [`QuicConfig::max_pending_handshakes_per_source`].
        max_pending_handshakes_per_source: usize;
        /// See [`QuicConfig::max_exchanges_per_peer`].
        max_exchanges_per_peer: usize;
        /// See [`QuicConfig::max_requests_per_connection`].
        max_requests_per_connection: usize;
        /// See [`QuicConfig::stream_lifetime`].
        stream_lifetime: Duration;
        /// See [`QuicConfig::max_partial_frame_bytes`].
        max_partial_frame_bytes: usize;
        /// See [`QuicConfig::request_timeout`].
        request_timeout: Duration;
        /// See [`QuicConfig::inbox_capacity`].
        inbox_capacity: usize;
        /// See [`QuicConfig::keep_alive`].
        keep_alive: Duration;
        /// See [`QuicConfig::idle_timeout`].
        idle_timeout: Duration;
        /// See [`QuicConfig::reconnect_backoff`].
        reconnect_backoff: Duration;
        /// See [`QuicConfig::initial_rtt`].
        initial_rtt: Duration;
        /// See [`QuicConfig::shutdown_timeout`].
        shutdown_timeout: Duration;
        /// See [`QuicConfig::worker_threads`].
        worker_threads: usize;
        /// See [`QuicConfig::datagrams`].
        datagrams: bool;
    }

    /// Validates and returns the configuration.
    ///
    /// # Errors
    /// [`QuicConfigError`] for a frame cap outside `1..=u32::MAX` or any
    /// zero timeout, period or count (a zero `reconnect_backoff` is
    /// allowed).
    pub fn build(self) -> Result<QuicConfig, QuicConfigError> {
        let c = self.config;
        if c.max_frame_bytes == 0 || u32::try_from(c.max_frame_bytes).is_err() {
            return Err(QuicConfigError::FrameCap {
                got: c.max_frame_bytes,
            });
        }
        if c.max_incoming_frame_bytes == 0 {
            return Err(QuicConfigError::FrameCap {
                got: c.max_incoming_frame_bytes,
            });
        }
        let durations = [
            ("connect_timeout", c.connect_timeout),
            ("read_timeout", c.read_timeout),
            ("exchange_idle", c.exchange_idle),
            ("request_timeout", c.request_timeout),
            ("handshake_timeout", c.handshake_timeout),
            ("stream_lifetime", c.stream_lifetime),
            ("keep_alive", c.keep_alive),
            ("idle_timeout", c.idle_timeout),
            ("initial_rtt", c.initial_rtt),
            ("shutdown_timeout", c.shutdown_timeout),
        ];
        for (name, value) in durations {
            if value.is_zero() {
                return Err(QuicConfigError::Zero(name));
            }
        }
        let counts = [
            ("max_concurrent_exchanges", c.max_concurrent_exchanges),
            ("max_concurrent_requests", c.max_concurrent_requests),
            ("max_incoming_connections", c.max_incoming_connections),
            ("max_pending_handshakes", c.max_pending_handshakes),
            (
                "max_pending_handshakes_per_source",
                c.max_pending_handshakes_per_source,
            ),
            ("max_exchanges_per_peer", c.max_exchanges_per_peer),
            ("max_requests_per_connection", c.max_requests_per_connection),
            ("max_partial_frame_bytes", c.max_partial_frame_bytes),
            ("inbox_capacity", c.inbox_capacity),
            ("worker_threads", c.worker_threads),
        ];
        for (name, value) in counts {
            if value == 0 {
                return Err(QuicConfigError::Zero(name));
            }
        }
        Ok(c)
    }
}

/// The transport parameters of one side of a connection.
pub(crate) fn transport_config(
    config: &QuicConfig,
    bidi_streams: u32,
    uni_streams: u32,
) -> quinn::TransportConfig {
    let mut transport = quinn::TransportConfig::default();
    transport.max_concurrent_bidi_streams(quinn::VarInt::from_u32(bidi_streams));
    transport.max_concurrent_uni_streams(quinn::VarInt::from_u32(uni_streams));
    transport.keep_alive_interval(Some(config.keep_alive()));
    transport.initial_rtt(config.initial_rtt());
    let idle = quinn::IdleTimeout::try_from(config.idle_timeout())
        .unwrap_or_else(|_| quinn::IdleTimeout::from(quinn::VarInt::from_u32(u32::MAX)));
    transport.max_idle_timeout(Some(idle));
    transport.datagram_receive_buffer_size(Some(DATAGRAM_BUFFER_BYTES));
    transport.datagram_send_buffer_size(DATAGRAM_BUFFER_BYTES);
    transport
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_build_and_bad_values_are_refused() {
        assert_eq!(QuicConfig::builder().build(), Ok(QuicConfig::default()));
        assert_eq!(
            QuicConfig::builder().max_frame_bytes(0).build(),
            Err(QuicConfigError::FrameCap { got: 0 })
        );
        assert_eq!(
            QuicConfig::builder().read_timeout(Duration::ZERO).build(),
            Err(QuicConfigError::Zero("read_timeout"))
        );
        assert_eq!(
            QuicConfig::builder().max_concurrent_exchanges(0).build(),
            Err(QuicConfigError::Zero("max_concurrent_exchanges"))
        );
        assert_eq!(
            QuicConfig::builder().initial_rtt(Duration::ZERO).build(),
            Err(QuicConfigError::Zero("initial_rtt"))
        );
    }

    /// The round trip assumed before one is measured reaches quinn: with
    /// its default (333 ms), a dial whose first packet is lost waits about
    /// a second before sending it again.
    #[test]
    fn connections_assume_the_configured_initial_round_trip() {
        let config = QuicConfig::builder()
            .initial_rtt(Duration::from_millis(40))
            .build()
            .unwrap();
        let debug = format!("{:?}", transport_config(&config, 1, 1));
        assert!(debug.contains("initial_rtt: 40ms"), "{debug}");
        let debug = format!("{:?}", transport_config(&QuicConfig::default(), 1, 1));
        assert!(debug.contains("initial_rtt: 100ms"), "{debug}");
    }
}
