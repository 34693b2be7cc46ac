//! The wire format on top of QUIC: the hello, stream headers, frames and
//! error codes.
//!
//! A node dialing a peer (ALPN [`PEER_ALPN`](crate::PEER_ALPN)):
//!
//! 1. opens one unidirectional stream, writes a [hello](encode_hello)
//!    naming its node id, and finishes it. The server accepts nothing else
//!    until the hello arrived and the peer's certificate proved valid for
//!    `node-<id>.gossip-kv`.
//! 2. opens one bidirectional stream per gossip exchange; each starts with a
//!    [`StreamHeader`] naming the exchange, followed by frames in both
//!    directions.
//!
//! A client (ALPN [`CLIENT_ALPN`](crate::CLIENT_ALPN)) opens one
//! bidirectional stream per request: one frame each way, no header.
//!
//! A frame is a `u32` big-endian length followed by that many bytes, at
//! least 1 and at most the configured cap. Streams and connections that
//! break these rules are reset or closed with the codes below. Frames are
//! read and written here too (`read_frame`, `write_frame`), the same way by
//! the node's streams (`net`) and the client (`client`), so that the
//! format lives in this one file.

use std::time::Duration;

use lww_crdt::NodeId;
use quinn::{ReadExactError, RecvStream, SendStream, VarInt};
use tokio::sync::Semaphore;
use tokio::time::timeout;

/// Magic bytes opening a hello.
pub const HELLO_MAGIC: [u8; 4] = *b"GKVH";
/// Magic bytes opening a stream header.
pub const STREAM_MAGIC: [u8; 4] = *b"GKVS";
/// The version of this wire format; the ALPN names it too.
pub const VERSION: u8 = 1;
/// Length of an encoded hello.
pub const HELLO_LEN: usize = 13;
/// Length of an encoded stream header.
pub const STREAM_HEADER_LEN: usize = 14;
/// Length of a frame's length prefix.
pub const PREFIX_LEN: usize = 4;

/// Stream error code: a normal end (the reader stopped a stream it has no
/// more use for).
pub const STREAM_DONE: u32 = 0;
/// Stream error code: a frame was longer than the receiver's cap.
pub const STREAM_FRAME_TOO_LARGE: u32 = 0x10;
/// Stream error code: malformed header or frame (bad magic, version, flags,
/// empty or truncated frame).
pub const STREAM_MALFORMED: u32 = 0x11;
/// Stream error code: the receiver serves its maximum of concurrent
/// exchanges (or requests) and refused this one.
pub const STREAM_BUSY: u32 = 0x12;
/// Stream error code: a frame or header did not arrive in time.
pub const STREAM_TIMEOUT: u32 = 0x13;
/// Stream error code: the receiver is shutting down.
pub const STREAM_SHUTDOWN: u32 = 0x14;
/// Stream error code: a client request got no response (the application
/// declined or gave up).
pub const STREAM_UNANSWERED: u32 = 0x15;

/// Connection close code: a normal close.
pub const CONN_DONE: u32 = 0;
/// Connection close code: the hello was missing, late or malformed.
pub const CONN_BAD_HELLO: u32 = 0x20;
/// Connection close code: the peer's certificate is not valid for the node
/// id its hello claims.
pub const CONN_IDENTITY_REFUSED: u32 = 0x21;
/// Connection close code: the certificate's role does not match the ALPN
/// (a node certificate on the client protocol, or the reverse).
pub const CONN_ROLE_REFUSED: u32 = 0x22;
/// Connection close code: the endpoint is shutting down.
pub const CONN_SHUTDOWN: u32 = 0x23;
/// Connection close code: `max_incoming_connections` connections are
/// established already.
pub const CONN_BUSY: u32 = 0x24;
/// Connection close code: the peer's certificate was revoked while the
/// connection was open (its serial joined the deny-list).
pub const CONN_REVOKED: u32 = 0x25;

/// Why bytes are not a valid hello or stream header. Nothing was changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Wrong length.
    #[error("expected {expected} bytes, got {got}")]
    Length {
        /// The length required.
        expected: usize,
        /// The length received.
        got: usize,
    },
    /// Wrong magic bytes: not this protocol.
    #[error("bad magic bytes")]
    Magic,
    /// Another wire version.
    #[error("unsupported wire version {0}")]
    Version(u8),
    /// Unknown flag bits.
    #[error("unknown flags {0:#04x}")]
    Flags(u8),
}

/// Encodes the hello naming `id`.
pub fn encode_hello(id: NodeId) -> [u8; HELLO_LEN] {
    let mut out = [0u8; HELLO_LEN];
    out[..4].copy_from_slice(&HELLO_MAGIC);
    out[4] = VERSION;
    out[5..].copy_from_slice(&id.get().to_be_bytes());
    out
}

/// Decodes a hello.
///
/// # Errors
/// [`WireError`] for anything but exactly one valid hello.
pub fn decode_hello(bytes: &[u8]) -> Result<NodeId, WireError> {
    let bytes: &[u8; HELLO_LEN] = bytes.try_into().map_err(|_| WireError::Length {
        expected: HELLO_LEN,
        got: bytes.len(),
    })?;
    if bytes[..4] != HELLO_MAGIC {
        return Err(WireError::Magic);
    }
    if bytes[4] != VERSION {
        return Err(WireError::Version(bytes[4]));
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&bytes[5..]);
    Ok(NodeId::new(u64::from_be_bytes(id)))
}

/// The header opening an exchange stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StreamHeader {
    /// The exchange the stream carries, as the exchange's initiator
    /// numbered it.
    pub exchange: u64,
    /// Whether the node opening the stream initiated the exchange (true
    /// for a stream opened by a `Syn`; false when the responder opens a
    /// stream to carry a reply because the first one is gone).
    pub opener_initiated: bool,
}

const FLAG_OPENER_INITIATED: u8 = 1;

/// Encodes a stream header.
pub fn encode_stream_header(header: StreamHeader) -> [u8; STREAM_HEADER_LEN] {
    let mut out = [0u8; STREAM_HEADER_LEN];
    out[..4].copy_from_slice(&STREAM_MAGIC);
    out[4] = VERSION;
    out[5] = if header.opener_initiated {
        FLAG_OPENER_INITIATED
    } else {
        0
    };
    out[6..].copy_from_slice(&header.exchange.to_be_bytes());
    out
}

/// Decodes a stream header.
///
/// # Errors
/// [`WireError`] for anything but exactly one valid header.
pub fn decode_stream_header(bytes: &[u8]) -> Result<StreamHeader, WireError> {
    let bytes: &[u8; STREAM_HEADER_LEN] = bytes.try_into().map_err(|_| WireError::Length {
        expected: STREAM_HEADER_LEN,
        got: bytes.len(),
    })?;
    if bytes[..4] != STREAM_MAGIC {
        return Err(WireError::Magic);
    }
    if bytes[4] != VERSION {
        return Err(WireError::Version(bytes[4]));
    }
    if bytes[5] & !FLAG_OPENER_INITIATED != 0 {
        return Err(WireError::Flags(bytes[5]));
    }
    let mut exchange = [0u8; 8];
    exchange.copy_from_slice(&bytes[6..]);
    Ok(StreamHeader {
        exchange: u64::from_be_bytes(exchange),
        opener_initiated: bytes[5] & FLAG_OPENER_INITIATED != 0,
    })
}

/// The length prefix of a frame of `len` bytes, or `None` past `u32::MAX`.
pub fn frame_prefix(len: usize) -> Option<[u8; PREFIX_LEN]> {
    u32::try_from(len).ok().map(u32::to_be_bytes)
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("frame of {len} bytes exceeds the {max}-byte cap")]
    TooLarge { len: usize, max: usize },
    #[error("empty frame")]
    Empty,
    #[error("stream ended inside a frame")]
    Truncated,
    #[error("frame did not arrive in time")]
    Timeout,
    #[error("frame of {len} bytes does not fit the budget of frames still arriving")]
    OverBudget { len: usize },
    #[error("stream reset by the peer with code {0}")]
    Reset(VarInt),
    #[error("stream or connection closed: {0}")]
    Lost(quinn::ReadError),
}

impl FrameError {
    fn from_read(err: quinn::ReadError) -> FrameError {
        match err {
            quinn::ReadError::Reset(code) => FrameError::Reset(code),
            other => FrameError::Lost(other),
        }
    }

    /// The code to reset a stream with, for errors that are the peer's
    /// fault.
    pub(crate) fn reset_code(&self) -> Option<u32> {
        match self {
            FrameError::TooLarge { .. } => Some(STREAM_FRAME_TOO_LARGE),
            FrameError::Empty | FrameError::Truncated => Some(STREAM_MALFORMED),
            FrameError::Timeout => Some(STREAM_TIMEOUT),
            FrameError::OverBudget { .. } => Some(STREAM_BUSY),
            FrameError::Reset(_) | FrameError::Lost(_) => None,
        }
    }
}

/// Reads one frame: waits up to `wait` for it to start and `read_timeout`
/// for the rest. `Ok(None)` when the stream finished cleanly between
/// frames. Never allocates more than the announced length, which is at
/// most `max`. With a `budget`, the announced length is taken from it for
/// as long as the frame is arriving, and a frame that does not fit is
/// refused.
pub(crate) async fn read_frame(
    recv: &mut RecvStream,
    max: usize,
    budget: Option<&Semaphore>,
    wait: Duration,
    read_timeout: Duration,
) -> Result<Option<Vec<u8>>, FrameError> {
    let mut prefix = [0u8; PREFIX_LEN];
    match timeout(wait, recv.read_exact(&mut prefix)).await {
        Err(_) => return Err(FrameError::Timeout),
        Ok(Ok(())) => {}
        Ok(Err(ReadExactError::FinishedEarly(0))) => return Ok(None),
        Ok(Err(ReadExactError::FinishedEarly(_))) => return Err(FrameError::Truncated),
        Ok(Err(ReadExactError::ReadError(err))) => return Err(FrameError::from_read(err)),
    }
    let len = usize::try_from(u32::from_be_bytes(prefix)).unwrap_or(usize::MAX);
    if len == 0 {
        return Err(FrameError::Empty);
    }
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    let _reserved = match budget {
        Some(budget) => Some(
            u32::try_from(len)
                .ok()
                .and_then(|n| budget.try_acquire_many(n).ok())
                .ok_or(FrameError::OverBudget { len })?,
        ),
        None => None,
    };
    let mut payload = Vec::with_capacity(len.min(64 * 1024));
    let body = async {
        while payload.len() < len {
            match recv.read_chunk(len - payload.len(), true).await {
                Ok(Some(chunk)) => payload.extend_from_slice(&chunk.bytes),
                Ok(None) => return Err(FrameError::Truncated),
                Err(err) => return Err(FrameError::from_read(err)),
            }
        }
        Ok(())
    };
    match timeout(read_timeout, body).await {
        Err(_) => Err(FrameError::Timeout),
        Ok(Err(err)) => Err(err),
        Ok(Ok(())) => Ok(Some(payload)),
    }
}

/// Writes one frame.
pub(crate) async fn write_frame(
    send: &mut SendStream,
    payload: &[u8],
) -> Result<(), WriteFrameError> {
    let prefix = frame_prefix(payload.len()).ok_or(WriteFrameError::TooLong)?;
    send.write_all(&prefix).await?;
    send.write_all(payload).await?;
    Ok(())
}

/// The error of [`write_frame`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum WriteFrameError {
    #[error("frame longer than a u32 length prefix")]
    TooLong,
    #[error(transparent)]
    Write(#[from] quinn::WriteError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trips_and_rejects_garbage() {
        let id = NodeId::new(u64::MAX - 3);
        assert_eq!(decode_hello(&encode_hello(id)), Ok(id));
        let mut bad = encode_hello(id);
        bad[0] ^= 1;
        assert_eq!(decode_hello(&bad), Err(WireError::Magic));
        bad = encode_hello(id);
        bad[4] = 9;
        assert_eq!(decode_hello(&bad), Err(WireError::Version(9)));
        assert!(matches!(
            decode_hello(&bad[..5]),
            Err(WireError::Length { .. })
        ));
    }

    #[test]
    fn stream_header_round_trips_and_rejects_garbage() {
        for opener_initiated in [true, false] {
            let header = StreamHeader {
                exchange: 77,
                opener_initiated,
            };
            assert_eq!(
                decode_stream_header(&encode_stream_header(header)),
                Ok(header)
            );
        }
        let mut bad = encode_stream_header(StreamHeader {
            exchange: 1,
            opener_initiated: true,
        });
        bad[5] = 0x81;
        assert_eq!(decode_stream_header(&bad), Err(WireError::Flags(0x81)));
        assert_eq!(decode_stream_header(&[0; 14]), Err(WireError::Magic));
    }
}
