//! Length-prefixed frames on QUIC streams: [`read_frame`] and
//! [`write_frame`], shared by the node's streams (`net`) and the client
//! (`client`).
//!
//! A frame is a 4-byte big-endian length ([`wire::PREFIX_LEN`]) followed
//! by that many bytes; an empty frame is malformed.

use std::time::Duration;

use quinn::{ReadExactError, RecvStream, SendStream, VarInt};
use tokio::sync::Semaphore;
use tokio::time::timeout;

use crate::wire;

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
            FrameError::TooLarge { .. } => Some(wire::STREAM_FRAME_TOO_LARGE),
            FrameError::Empty | FrameError::Truncated => Some(wire::STREAM_MALFORMED),
            FrameError::Timeout => Some(wire::STREAM_TIMEOUT),
            FrameError::OverBudget { .. } => Some(wire::STREAM_BUSY),
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
    let mut prefix = [0u8; wire::PREFIX_LEN];
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
    let prefix = wire::frame_prefix(payload.len()).ok_or(WriteFrameError::TooLong)?;
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
