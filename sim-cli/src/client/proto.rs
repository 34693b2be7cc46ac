//! The client protocol: what `sim-cli put|get|delete|status|keys|watch` ask
//! a node and what it answers, and the one place that encodes them.
//!
//! Each request travels on a QUIC stream of its own (the transport's client
//! channel, ALPN `gossip-kv-client/1`): one request frame in, one response
//! frame out; a [`Request::Watch`] is answered with frames until either
//! side ends the stream. A frame is a protocol version byte ([`PROTO_VERSION`])
//! followed by one bincode 2.0.1 value (standard configuration), decoded
//! with a size limit and refused if bytes trail it. A node answers every
//! frame, a bad one included, with a [`Response`]; a request it cannot read
//! gets [`Response::Error`], never a panic or a silent reset.

use gossip::{Liveness, Metrics};
use lww_crdt::{Entry, Hlc, NodeId, Stamp};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The client protocol version this build speaks. A frame starting with
/// another byte is answered with [`ProtoError::UnsupportedVersion`].
pub const PROTO_VERSION: u8 = 7;

/// The largest frame either side decodes: the QUIC transport's default frame
/// cap (4 MiB).
pub const MAX_FRAME_BYTES: usize = transport_quic::DEFAULT_MAX_FRAME_BYTES;

/// What a client asks a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Write `value` to `key`; answered with [`Response::Written`].
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Read `key`; answered with [`Response::Entry`].
    Get {
        /// The key.
        key: String,
    },
    /// Delete `key` (write a tombstone); answered with
    /// [`Response::Written`].
    Delete {
        /// The key.
        key: String,
    },
    /// Describe the node; answered with [`Response::Status`].
    Status,
    /// The live keys under `prefix` after `after`, in key order, at most
    /// `limit` of them; answered with [`Response::Listing`].
    List {
        /// Only keys starting with this.
        prefix: String,
        /// Only keys after this one (the `next_after` of the page before).
        after: Option<String>,
        /// At most this many keys, 1 to [`MAX_LIST`]; fewer if their
        /// values would not fit a frame.
        limit: u32,
    },
    /// Follow the changes to keys under `prefix`: answered with
    /// [`Response::Watching`] once the watch is in place, then on the same
    /// stream with [`Response::Changes`] and [`Response::Missed`] frames
    /// until either side ends it.
    Watch {
        /// Only keys starting with this.
        prefix: String,
    },
}

/// The most keys one [`Request::List`] returns.
pub const MAX_LIST: u32 = 1_000;

/// What a node answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The write was applied locally with this stamp; gossip spreads it.
    Written {
        /// The write's stamp.
        stamp: Stamp,
    },
    /// The entry of the key asked for: `None` if this node never saw it
    /// (or purged its tombstone), a tombstone if it was deleted.
    Entry {
        /// The entry.
        entry: Option<Entry<String>>,
    },
    /// The node's state.
    Status(Box<Status>),
    /// A page of live keys with their values, in key order.
    Listing {
        /// The keys and their values.
        keys: Vec<(String, String)>,
        /// Pass as `after` for the next page; `None` on the last.
        next_after: Option<String>,
    },
    /// The watch is in place: every change made on the node from now on
    /// follows.
    Watching,
    /// Changes the node made, in order: client writes on it and entries
    /// from peers' deltas.
    Changes {
        /// The changes.
        changes: Vec<Changed>,
    },
    /// The watcher read too slowly: this many batches of changes were
    /// dropped for it. Reading the keys again catches up.
    Missed {
        /// Batches dropped.
        batches: u64,
    },
    /// The request was refused; nothing changed.
    Error(ProtoError),
}

/// One change a watch reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changed {
    /// The key.
    pub key: String,
    /// What it holds now: a value, or a tombstone (deleted).
    pub entry: Entry<String>,
    /// The peer whose delta brought it; `None` for a client write on the
    /// node.
    pub from: Option<NodeId>,
}

/// Why a node refused a request. In every case nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ProtoError {
    /// The frame speaks another protocol version.
    #[error("the node speaks client protocol version {supported}, the request {got}")]
    UnsupportedVersion {
        /// The version byte of the request.
        got: u8,
        /// The version the node speaks.
        supported: u8,
    },
    /// The frame is not a request.
    #[error("the node could not decode the request ({reason})")]
    Malformed {
        /// What was wrong.
        reason: DecodeFailure,
    },
    /// The entry is too large to travel in one gossip message.
    #[error("key and value take up to {len} bytes; at most {max} fit a gossip message")]
    TooLarge {
        /// The entry's encoded bound.
        len: u64,
        /// The largest accepted.
        max: u64,
    },
    /// The node has not heard from any member yet, or not measured its
    /// clock against theirs, so it takes no writes.
    #[error(
        "the node has not joined the cluster yet: no member has answered it, or its clock is not \
         yet measured against theirs; retry"
    )]
    NotJoined,
    /// The node is shutting down; the write was not taken.
    #[error("the node is shutting down; the write was not taken: send it to another node")]
    ShuttingDown,
    /// The node's clock is beyond the cluster's maximum offset from most of
    /// its peers; the write was not taken.
    #[error(
        "the node's clock is more than {max_offset_ms} ms off from {peers_beyond} of the \
         {peers_measured} peers it measured (median offset {median_offset_ms} ms); the write \
         was not taken: fix its clock, or send the write to another node"
    )]
    ClockOutOfRange {
        /// Peers measured beyond the maximum offset.
        peers_beyond: u64,
        /// Peers measured.
        peers_measured: u64,
        /// The median offset, peer minus node (ms).
        median_offset_ms: i64,
        /// The cluster's maximum offset (ms).
        max_offset_ms: u64,
    },
    /// The node's clock holds the largest timestamp and cannot stamp a
    /// write after it; the write was not taken.
    #[error(
        "the node's clock has reached the largest timestamp ({last}) and cannot stamp the write; \
         send it to another node"
    )]
    ClockExhausted {
        /// The clock's last timestamp.
        last: Hlc,
    },
    /// The node holds as much as its quota allows; the write was not taken.
    #[error(
        "the node is full: it holds {held} {what}, its quota (--{flag}) is {max}; the write \
         was not taken: delete keys, or raise the quota"
    )]
    StoreFull {
        /// What is full: "keys" or "bytes of data".
        what: String,
        /// The node flag that sets the quota.
        flag: String,
        /// How much the node holds.
        held: u64,
        /// The quota.
        max: u64,
    },
    /// A listing's limit is out of range.
    #[error("limit {limit} is out of range: give 1 to {max}")]
    BadLimit {
        /// The limit asked for.
        limit: u64,
        /// The largest accepted.
        max: u64,
    },
    /// The node follows as many watches as it will; none was started.
    #[error("the node follows {max} watches already; retry later")]
    TooManyWatches {
        /// Watches the node follows at once.
        max: u64,
    },
    /// The client's certificate gives it the role `read`: it may read, not
    /// write. The write was not taken.
    #[error(
        "client {client:?} has role {role}: it may read but not write; the write was not taken \
         (use a client certificate with role write)"
    )]
    Forbidden {
        /// The client's name, from its certificate.
        client: String,
        /// Its role, from its certificate.
        role: String,
    },
    /// The node's data directory failed: the write may be in its memory
    /// and may still spread, but it was not made durable, and the node is
    /// stopping.
    #[error(
        "the node's storage failed ({message}); the write was not acknowledged and may or may          not be kept: send it to another node"
    )]
    Storage {
        /// What failed.
        message: String,
    },
    /// A peer refused the node as expired: it was silent for longer than
    /// the cluster's retention window, and deletes it may not have seen
    /// were collected. The write was not taken.
    #[error(
        "the node expired (peer {by} did not hear from it within the retention window); the \
         write was not taken: send it to another node, and start this one empty to rejoin"
    )]
    Expired {
        /// The peer that refused it.
        by: u64,
    },
}

/// What was wrong with a frame that could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum DecodeFailure {
    /// The frame is empty.
    #[error("empty frame")]
    Empty,
    /// The frame is larger than [`MAX_FRAME_BYTES`].
    #[error("frame of {len} bytes exceeds {max}")]
    TooLarge {
        /// Its length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The bytes after the version are not a valid value.
    #[error("invalid encoding")]
    Invalid,
    /// A valid value followed by stray bytes.
    #[error("{0} trailing bytes")]
    Trailing(u64),
}

/// Why a frame could not be decoded. Nothing was changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The frame starts with another protocol version.
    #[error("client protocol version {0} is not supported (this build speaks {PROTO_VERSION})")]
    Version(u8),
    /// The frame is not a valid value.
    #[error(transparent)]
    Malformed(#[from] DecodeFailure),
}

impl DecodeError {
    /// The error response a node sends for this failure.
    pub fn to_response(self) -> Response {
        Response::Error(match self {
            DecodeError::Version(got) => ProtoError::UnsupportedVersion {
                got,
                supported: PROTO_VERSION,
            },
            DecodeError::Malformed(reason) => ProtoError::Malformed { reason },
        })
    }
}

/// One member as the node sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// The member id.
    pub id: NodeId,
    /// Its advertised address (empty if unknown).
    pub address: String,
    /// `None` for the node itself.
    pub liveness: Option<Liveness>,
    /// Failed exchanges in a row.
    pub failures: u32,
    /// Milliseconds since it was last heard from, if ever.
    pub last_heard_ms_ago: Option<u64>,
    /// The incarnation it last spoke as (its own, for the node itself).
    pub incarnation: Option<u32>,
    /// Its clock minus the node's (ms), as last measured; `None` for the
    /// node itself and for peers not measured yet.
    pub clock_offset_ms: Option<i64>,
}

/// One origin of the version vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginStatus {
    /// The origin id (incarnation in the high 32 bits, member in the low).
    pub origin: NodeId,
    /// How far this node holds that origin's writes.
    pub hlc: Hlc,
}

/// Declares [`TransportStatus`] and its conversion from
/// `transport_quic::QuicStats` from one list of fields, so that a field is
/// named once and copied by name. The order is the wire order: append new
/// fields, and bump [`PROTO_VERSION`] if any is added or removed.
macro_rules! transport_status {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// Transport counters (a subset of `transport_quic::QuicStats`).
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct TransportStatus {
            $($(#[$doc])* pub $name: u64,)*
        }

        impl From<transport_quic::QuicStats> for TransportStatus {
            fn from(stats: transport_quic::QuicStats) -> Self {
                TransportStatus {
                    $($name: stats.$name,)*
                }
            }
        }
    };
}

transport_status! {
    /// Connections to peers dialed.
    connections_dialed,
    /// Failed dials.
    connect_failures,
    /// Incoming connections accepted.
    connections_accepted,
    /// Incoming handshakes refused (no or foreign certificate).
    handshakes_refused,
    /// Incoming connections refused at a limit: pending handshakes (in all
    /// or from one source), or established connections.
    connections_refused_busy,
    /// Incoming connections answered with a QUIC Retry under handshake load.
    handshakes_retried,
    /// Peer streams refused at a limit: exchanges in all or for one peer, or
    /// the byte budget of frames still arriving.
    streams_refused_busy,
    /// Connections refused for a false identity claim or wrong ALPN.
    identities_refused,
    /// Streams reset for bad frames or timeouts.
    streams_rejected,
    /// Frames sent to peers.
    frames_sent,
    /// Payload bytes sent to peers.
    bytes_sent,
    /// Frames received from peers.
    frames_received,
    /// Payload bytes received from peers.
    bytes_received,
    /// Frames that could not be delivered.
    frames_dropped,
    /// Client requests answered.
    requests_answered,
    /// Client requests refused.
    requests_refused,
}

/// What `status` reports about a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The member id.
    pub id: NodeId,
    /// The incarnation it writes in.
    pub incarnation: u32,
    /// Whether it takes writes: it has heard from a member (or founded the
    /// cluster).
    pub joined: bool,
    /// The node's clock as measured against its peers': beyond the maximum
    /// offset from most of them, it refuses writes.
    pub clock: gossip::ClockStatus,
    /// The cluster's maximum clock offset (ms).
    pub max_clock_offset_ms: u64,
    /// The address it listens on.
    pub listen: String,
    /// Milliseconds since the daemon started.
    pub uptime_ms: u64,
    /// Gossip interval in ms.
    pub interval_ms: u64,
    /// Every member, this node first.
    pub members: Vec<MemberStatus>,
    /// Live keys.
    pub keys: u64,
    /// Tombstones held.
    pub tombstones: u64,
    /// The version vector, by origin.
    pub vector: Vec<OriginStatus>,
    /// Its largest hlc.
    pub max_hlc: Hlc,
    /// `gossip::vector_hash` of the version vector.
    pub vector_hash: u64,
    /// A hash of every entry (key, stamp, value), tombstones included:
    /// equal on two nodes exactly when they hold the same map (up to hash
    /// collisions).
    pub content_hash: u64,
    /// The node's gossip counters.
    pub metrics: Metrics,
    /// The transport's counters.
    pub transport: TransportStatus,
    /// Where the node keeps its state.
    pub storage: StorageStatus,
    /// The node's certificate and the revocation list it enforces.
    pub security: SecurityStatus,
    /// How long ago (ms) the oldest client write on this node that no peer
    /// is known to hold yet was made: what a crash of this node without a
    /// data directory would lose first. `None` when every write is held by
    /// some peer.
    pub oldest_unacknowledged_write_ms: Option<u64>,
    /// When the node's member list last changed, by the node's clock (ms
    /// since the Unix epoch): a member or an address learned, a departure
    /// or an expiry. Once the list holds every member, this is when the
    /// node came to know them all, which a client asking later, on a busy
    /// host, cannot time itself. `None` before the node's first round.
    pub members_changed_ms: Option<u64>,
}

/// The node's certificate and its revocation list, as `status` reports
/// them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityStatus {
    /// The serial of the node's certificate, in hex.
    pub certificate_serial: String,
    /// When the node's certificate expires, in seconds since 1970 (UTC).
    pub certificate_not_after: i64,
    /// The deny-list file (`--revoked`), if any.
    pub revoked_file: Option<String>,
    /// Serials on the deny-list in force.
    pub revoked_serials: u64,
    /// TLS handshakes refused because a certificate was on the list: QUIC
    /// peers and clients connecting, peers this node dialed, and HTTPS
    /// clients.
    pub revoked_refused: u64,
}

/// Where a node keeps its state, as `status` reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageStatus {
    /// The data directory; `None` when the node holds its state in memory
    /// only, and loses it when it stops.
    pub data_dir: Option<String>,
    /// The sync mode (`--sync`), with a data directory.
    pub sync: Option<String>,
    /// Bytes the data directory takes on disk.
    pub disk_bytes: u64,
}

#[derive(Serialize)]
struct EnvelopeRef<'a, T> {
    version: u8,
    body: &'a T,
}

#[derive(Deserialize)]
struct Envelope<T> {
    #[allow(dead_code)]
    version: u8,
    body: T,
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_FRAME_BYTES>()
}

/// Encodes a request or response into a frame.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let envelope = EnvelopeRef {
        version: PROTO_VERSION,
        body: value,
    };
    // Encoding into a Vec fails only past the limit, which no request the
    // CLI builds reaches: keys and values come from the command line and a
    // response is bounded by the node's state summary. Should it happen, an
    // empty frame goes out and the other side refuses it as malformed.
    bincode::serde::encode_to_vec(&envelope, config()).unwrap_or_default()
}

/// Decodes one frame. Never panics, whatever the bytes.
///
/// # Errors
/// [`DecodeError`] for another version, oversize, malformed or trailing
/// bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let Some(&version) = bytes.first() else {
        return Err(DecodeFailure::Empty.into());
    };
    if bytes.len() > MAX_FRAME_BYTES {
        return Err(DecodeFailure::TooLarge {
            len: bytes.len() as u64,
            max: MAX_FRAME_BYTES as u64,
        }
        .into());
    }
    if version != PROTO_VERSION {
        return Err(DecodeError::Version(version));
    }
    let (envelope, read): (Envelope<T>, usize) =
        bincode::serde::decode_from_slice(bytes, config()).map_err(|_| DecodeFailure::Invalid)?;
    if read != bytes.len() {
        return Err(DecodeFailure::Trailing((bytes.len() - read) as u64).into());
    }
    Ok(envelope.body)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use rand::{Rng, SeedableRng};

    use super::*;

    #[test]
    fn requests_and_responses_round_trip() {
        let requests = [
            Request::Put {
                key: "k".into(),
                value: "v".into(),
            },
            Request::Get { key: "k".into() },
            Request::Delete { key: "é".into() },
            Request::Status,
            Request::List {
                prefix: "p/".into(),
                after: Some("p/a".into()),
                limit: 10,
            },
            Request::Watch { prefix: "".into() },
        ];
        for request in requests {
            assert_eq!(decode::<Request>(&encode(&request)).unwrap(), request);
        }
        let stamp = Stamp::new(Hlc::new(1_700_000_000_000, 3), NodeId::new(7));
        let responses = [
            Response::Written { stamp },
            Response::Entry {
                entry: Some(Entry::value(stamp, "v".into())),
            },
            Response::Entry {
                entry: Some(Entry::tombstone(stamp)),
            },
            Response::Entry { entry: None },
            Response::Error(ProtoError::TooLarge { len: 9, max: 3 }),
            Response::Listing {
                keys: vec![("k".into(), "v".into())],
                next_after: Some("k".into()),
            },
            Response::Watching,
            Response::Changes {
                changes: vec![Changed {
                    key: "k".into(),
                    entry: Entry::tombstone(stamp),
                    from: Some(NodeId::new(2)),
                }],
            },
            Response::Missed { batches: 4 },
        ];
        for response in responses {
            assert_eq!(decode::<Response>(&encode(&response)).unwrap(), response);
        }
    }

    #[test]
    fn bad_frames_are_typed_errors() {
        assert_eq!(
            decode::<Request>(&[]),
            Err(DecodeError::Malformed(DecodeFailure::Empty))
        );
        assert_eq!(decode::<Request>(&[9, 0]), Err(DecodeError::Version(9)));
        assert_eq!(
            decode::<Request>(&[PROTO_VERSION, 200]),
            Err(DecodeError::Malformed(DecodeFailure::Invalid))
        );
        let mut bytes = encode(&Request::Status);
        bytes.push(0);
        assert_eq!(
            decode::<Request>(&bytes),
            Err(DecodeError::Malformed(DecodeFailure::Trailing(1)))
        );
        // A length prefix claiming more than the frame holds.
        let claim = [PROTO_VERSION, 1, 0xfc, 0xff, 0xff, 0xff, 0x7f];
        assert!(decode::<Request>(&claim).is_err());
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(5);
        for len in 0..2_000 {
            let mut bytes: Vec<u8> = (0..len % 64).map(|_| rng.random()).collect();
            if len % 2 == 0 {
                bytes.insert(0, PROTO_VERSION);
            }
            let _ = decode::<Request>(&bytes);
            let _ = decode::<Response>(&bytes);
        }
    }
}
