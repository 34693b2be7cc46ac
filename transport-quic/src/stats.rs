//! [`QuicStats`]: what a transport did, counted with atomics.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! stats {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// What a transport did since it started. A snapshot: counters only
        /// grow.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct QuicStats {
            $($(#[$doc])* pub $name: u64,)*
        }

        #[derive(Debug, Default)]
        pub(crate) struct Counters {
            $(pub(crate) $name: AtomicU64,)*
        }

        impl Counters {
            pub(crate) fn snapshot(&self) -> QuicStats {
                QuicStats {
                    $($name: self.$name.load(Ordering::Relaxed),)*
                }
            }
        }
    };
}

stats! {
    /// Connections to peers established (dials that succeeded).
    connections_dialed,
    /// Dials that failed or timed out.
    connect_failures,
    /// Incoming connections refused because a limit was reached: pending
    /// handshakes (in all, or from one source IP address), or
    /// `max_incoming_connections` established ones.
    connections_refused_busy,
    /// Incoming connections answered with a QUIC Retry: under handshake
    /// load, a source must prove its address before it costs any state.
    handshakes_retried,
    /// Incoming connections whose TLS handshake succeeded.
    connections_accepted,
    /// Incoming connections refused at the handshake (no certificate, one
    /// from another CA, a handshake timeout).
    handshakes_refused,
    /// Incoming connections closed after the handshake because the identity
    /// did not hold: a hello claiming another node id, a missing or
    /// malformed hello, or a certificate on the wrong ALPN.
    identities_refused,
    /// Exchange streams this node opened.
    streams_opened,
    /// Exchange streams peers opened that were served.
    streams_accepted,
    /// Streams refused because a limit was reached: served exchanges in
    /// all or for one peer, or the byte budget of frames still arriving.
    streams_refused_busy,
    /// Streams reset for a malformed header or frame, a frame over the cap,
    /// a read timeout, or outliving `stream_lifetime`.
    streams_rejected,
    /// Frames written to peers.
    frames_sent,
    /// Payload bytes written to peers.
    bytes_sent,
    /// Frames received from peers and handed to the node.
    frames_received,
    /// Payload bytes received from peers.
    bytes_received,
    /// Frames sent as datagrams (counted in `frames_sent` too).
    datagrams_sent,
    /// Frames received as datagrams (counted in `frames_received` too).
    datagrams_received,
    /// Datagrams dropped for being empty or over the frame cap.
    datagrams_rejected,
    /// Frames given to `send` that could not be delivered to the network
    /// (connect failure, stream refused or reset, shutdown bound reached).
    frames_dropped,
    /// Client requests answered.
    requests_answered,
    /// Client requests refused (limit reached, malformed, unanswered).
    requests_refused,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}
