//! The wire codec: the only module that names the serializer.
//!
//! A frame is a versioned envelope around one [`Message`], encoded with
//! bincode 2.0.1 (standard configuration: little-endian, variable-length
//! integers). Decoding refuses frames over the configured size before reading
//! them and never lets a length prefix claim more than
//! [`HARD_MAX_MESSAGE_BYTES`], so no input allocates beyond that.

use serde::{Deserialize, Serialize};

use crate::config::HARD_MAX_MESSAGE_BYTES;
use crate::message::Message;

/// The wire format version this build speaks.
pub const WIRE_VERSION: u8 = 5;

#[derive(Serialize)]
struct EnvelopeRef<'a> {
    version: u8,
    message: &'a Message,
}

#[derive(Deserialize)]
struct EnvelopeHeader {
    version: u8,
}

#[derive(Deserialize)]
struct Envelope {
    #[allow(dead_code)]
    version: u8,
    message: Message,
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<HARD_MAX_MESSAGE_BYTES>()
}

/// Why bytes could not be decoded into a message. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The frame is longer than allowed; it was not read.
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// The frame's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The frame speaks another wire version.
    #[error("wire version {0} is not supported (this node speaks {WIRE_VERSION})")]
    Version(u8),
    /// The bytes are not a valid message.
    #[error("malformed message: {0}")]
    Malformed(#[from] bincode::error::DecodeError),
    /// The frame holds a message followed by stray bytes.
    #[error("{0} trailing bytes after the message")]
    Trailing(usize),
}

/// Why a message could not be encoded. Nothing was sent.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The serializer failed.
    #[error("encoding failed: {0}")]
    Codec(#[from] bincode::error::EncodeError),
    /// The encoded message is larger than allowed.
    #[error("message of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// The encoded length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// Encodes `message` into a frame of at most `max_len` bytes.
///
/// # Errors
/// [`EncodeError`] if it does not fit or cannot be encoded.
pub fn encode(message: &Message, max_len: usize) -> Result<Vec<u8>, EncodeError> {
    let envelope = EnvelopeRef {
        version: WIRE_VERSION,
        message,
    };
    let bytes = bincode::serde::encode_to_vec(&envelope, config())?;
    if bytes.len() > max_len {
        return Err(EncodeError::TooLarge {
            len: bytes.len(),
            max: max_len,
        });
    }
    Ok(bytes)
}

/// Decodes one frame of at most `max_len` bytes.
///
/// # Errors
/// [`DecodeError`] for oversize frames, other wire versions, malformed bytes
/// (including deltas whose entries lie beyond their frontier) and trailing
/// bytes. Never panics, whatever the input.
pub fn decode(bytes: &[u8], max_len: usize) -> Result<Message, DecodeError> {
    let max = max_len.min(HARD_MAX_MESSAGE_BYTES);
    if bytes.len() > max {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max,
        });
    }
    let (header, _): (EnvelopeHeader, usize) = bincode::serde::decode_from_slice(bytes, config())?;
    if header.version != WIRE_VERSION {
        return Err(DecodeError::Version(header.version));
    }
    let (envelope, read): (Envelope, usize) = bincode::serde::decode_from_slice(bytes, config())?;
    if read != bytes.len() {
        return Err(DecodeError::Trailing(bytes.len() - read));
    }
    Ok(envelope.message)
}

#[cfg(test)]
mod tests {
    use lww_crdt::{Entry, Hlc, NodeId, Stamp, VersionVector};

    use super::*;
    use crate::message::{Ack, Digest, Syn, SynFlags};

    fn sample() -> Message {
        let stamp = Stamp::new(Hlc::from_u64(7), NodeId::new(3));
        Message::Ack(Ack {
            exchange: 9,
            incarnation: 2,
            from_initiator: true,
            delta: {
                let mut map = crate::StoreMap::new();
                map.insert("k".to_owned(), Entry::value(stamp, "v".to_owned()));
                map.delta_since(&VersionVector::new(), lww_crdt::Budget::UNLIMITED)
            },
            vector: Some(VersionVector::new()),
            members: None,
        })
    }

    #[test]
    fn round_trips() {
        let bytes = encode(&sample(), 1 << 20).unwrap();
        assert_eq!(decode(&bytes, 1 << 20).unwrap(), sample());
    }

    #[test]
    fn equal_nodes_syn_is_tiny() {
        let syn = Message::Syn(Syn {
            exchange: u64::MAX,
            incarnation: u32::MAX,
            flags: SynFlags::LEAVING.with(SynFlags::WANTS_CLOCK, true),
            digest: Digest::Hash(u64::MAX),
            members_hash: u64::MAX,
            max_message_bytes: Some(u32::MAX),
        });
        // Worst case: every varint at its widest.
        assert!(encode(&syn, 1 << 20).unwrap().len() <= 45);
    }

    #[test]
    fn a_power_of_two_limit_takes_one_byte_and_any_limit_round_trips() {
        let syn = |limit| {
            Message::Syn(Syn {
                exchange: 1,
                incarnation: 1,
                flags: SynFlags::default(),
                digest: Digest::Hash(1),
                members_hash: 1,
                max_message_bytes: limit,
            })
        };
        let len = |limit| encode(&syn(limit), 1 << 20).unwrap().len();
        assert_eq!(len(Some(1 << 20)), len(None) + 1);
        for limit in [
            None,
            Some(512),
            Some(1_000),
            Some(1 << 20),
            Some(16 << 20),
            Some(u32::MAX),
        ] {
            let bytes = encode(&syn(limit), 1 << 20).unwrap();
            assert_eq!(decode(&bytes, 1 << 20).unwrap(), syn(limit));
        }
    }

    #[test]
    fn refuses_oversize_trailing_and_other_versions() {
        let mut bytes = encode(&sample(), 1 << 20).unwrap();
        assert!(matches!(
            decode(&bytes, 4),
            Err(DecodeError::TooLarge { .. })
        ));
        bytes.push(0);
        assert!(matches!(
            decode(&bytes, 1 << 20),
            Err(DecodeError::Trailing(1))
        ));
        bytes.pop();
        bytes[0] = WIRE_VERSION + 1;
        assert!(matches!(
            decode(&bytes, 1 << 20),
            Err(DecodeError::Version(_))
        ));
        assert!(matches!(
            encode(&sample(), 4),
            Err(EncodeError::TooLarge { .. })
        ));
    }
}
