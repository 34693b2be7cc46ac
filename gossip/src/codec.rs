//! The wire codec: the only module that names the serializer.
//!
//! A frame is a versioned envelope around one [`Message`], encoded with
//! bincode 2.0.1 (standard configuration: little-endian, variable-length
//! integers). Decoding refuses frames over the configured size before reading
//! them and never lets a length prefix claim more than
//! [`HARD_MAX_MESSAGE_BYTES`], so no input allocates beyond that.
//!
//! It also holds the wire's size bounds: at most how many bytes each part
//! of a message takes, by which a node cuts the delta it sends to the room
//! the rest leaves, without encoding anything twice. They build on
//! `lww_crdt::encoded_len`, the bounds of the entries, vectors and deltas
//! the messages carry.

use lww_crdt::VersionVector;
use lww_crdt::encoded_len::{
    DELTA_FRAME_LEN, MAX_U32_VARINT_LEN, MAX_VARINT_LEN, TAG_LEN, VECTOR_FRAME_LEN,
    VECTOR_ORIGIN_LEN,
};
use serde::{Deserialize, Serialize};

use crate::config::HARD_MAX_MESSAGE_BYTES;
use crate::message::{Digest, MemberList, Message};

/// The wire format version this build speaks.
pub const WIRE_VERSION: u8 = 6;

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

// Size bounds, in bincode's standard configuration (see
// `lww_crdt::encoded_len` for how it encodes integers, lengths and tags).
// A delta is cut to `max_message_bytes` less `MESSAGE_OVERHEAD` less the
// bounds of whatever else its message carries; its own bound, frame
// included, is `Delta::encoded_len`.

/// At most how many bytes a message takes beyond its delta, digest, vector
/// and member list: a `SynAck`'s, the largest of the messages that carry a
/// delta. In order: the envelope's version byte and the message's variant,
/// the exchange id (a `u64`), the incarnation (a `u32`), the digest's
/// variant, `wants_vector`, the member list's `Option` tag, the member hash
/// (a `u64`), the clock reading (an `Option<u64>`), and the refusal's
/// `Option` tag (`None` whenever a delta goes). An `Ack` takes 19.
const MESSAGE_FIELDS_LEN: usize = TAG_LEN
    + TAG_LEN
    + MAX_VARINT_LEN
    + MAX_U32_VARINT_LEN
    + TAG_LEN
    + TAG_LEN
    + TAG_LEN
    + MAX_VARINT_LEN
    + (TAG_LEN + MAX_VARINT_LEN)
    + TAG_LEN;

/// At most how many bytes a delta's frame really takes, where its bound
/// ([`DELTA_FRAME_LEN`]) allows a full varint for each of its three
/// lengths: what they count fits a frame under [`HARD_MAX_MESSAGE_BYTES`],
/// so each is below 2^32 and a `u32`'s varint at most.
const DELTA_FRAME_REAL_LEN: usize = 3 * MAX_U32_VARINT_LEN + TAG_LEN;

/// The bytes every message keeps for its own fields and its delta's frame:
/// a round 64, which [`MESSAGE_FIELDS_LEN`] and [`DELTA_FRAME_REAL_LEN`]
/// (55 together) fit in. Lowering it to their sum would change where every
/// delta is cut.
const MESSAGE_ROOM: usize = 64;

const _: () = assert!(MESSAGE_FIELDS_LEN + DELTA_FRAME_REAL_LEN <= MESSAGE_ROOM);

/// Room left in every message for its envelope, ids, flags and hashes,
/// beyond the delta's own framing ([`DELTA_FRAME_LEN`], which its budget
/// counts): [`MESSAGE_ROOM`] in all.
pub(crate) const MESSAGE_OVERHEAD: usize = MESSAGE_ROOM - DELTA_FRAME_LEN;

/// At most how many bytes a [`Digest::Hash`] takes beyond its variant
/// (counted in [`MESSAGE_FIELDS_LEN`]): the hash, a `u64`.
const HASH_DIGEST_LEN: usize = MAX_VARINT_LEN;

/// At most how many bytes a [`Digest::Behind`] takes beyond its variant and
/// its lagging origins: the hash and the length of the list, a `u64` each.
/// Each origin takes what an origin of a vector does, its id and frontier.
const BEHIND_DIGEST_FRAME_LEN: usize = 2 * MAX_VARINT_LEN;

/// At most how many bytes a [`MemberList`] takes beyond its members and
/// departures: the lengths of its two lists.
const MEMBER_LIST_FRAME_LEN: usize = 2 * MAX_VARINT_LEN;

/// At most how many bytes a [`Member`](crate::Member) takes beyond its
/// address's bytes: its id (a `u64`) and its address's length.
const MEMBER_FRAME_LEN: usize = 2 * MAX_VARINT_LEN;

/// At most how many bytes a [`Departure`](crate::message::Departure) takes:
/// its id (a `u64`), its incarnation (a `u32`) and whether it expired (a
/// `bool`, one byte).
const DEPARTURE_LEN: usize = MAX_VARINT_LEN + MAX_U32_VARINT_LEN + 1;

/// At most how many bytes `digest` takes, beyond its variant.
pub(crate) fn digest_len_bound(digest: &Digest) -> usize {
    match digest {
        Digest::Hash(_) => HASH_DIGEST_LEN,
        Digest::Full(vector) => vector_len_bound(vector),
        Digest::Behind { lagging, .. } => {
            BEHIND_DIGEST_FRAME_LEN + VECTOR_ORIGIN_LEN * lagging.len()
        }
    }
}

/// At most how many bytes `vector` takes.
pub(crate) fn vector_len_bound(vector: &VersionVector) -> usize {
    VECTOR_FRAME_LEN + VECTOR_ORIGIN_LEN * vector.len()
}

/// At most how many bytes `list` takes, beyond its `Option` tag.
pub(crate) fn members_len_bound(list: &MemberList) -> usize {
    MEMBER_LIST_FRAME_LEN
        + list
            .members
            .iter()
            .map(|m| MEMBER_FRAME_LEN + m.address.len())
            .sum::<usize>()
        + DEPARTURE_LEN * list.left.len()
}

#[cfg(test)]
mod tests {
    use lww_crdt::{Budget, Entry, Hlc, NodeId, Stamp};

    use super::*;
    use crate::message::{Ack, Departure, Member, StoreDelta, Syn, SynAck, SynFlags};

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

    /// The bytes `value` takes on the wire.
    fn len<T: Serialize + ?Sized>(value: &T) -> usize {
        bincode::serde::encode_to_vec(value, config())
            .unwrap()
            .len()
    }

    /// `n` origins, every id and frontier at or above 2^32.
    fn widest_pairs(n: u64) -> Vec<(NodeId, Hlc)> {
        (0..n)
            .map(|i| (NodeId::new(u64::MAX - i), Hlc::from_u64(u64::MAX - i)))
            .collect()
    }

    fn widest_vector(n: u64) -> VersionVector {
        widest_pairs(n).into_iter().collect()
    }

    /// `members` members with addresses of `address_len` bytes and
    /// `departures` departures, every integer at its widest.
    fn widest_members(members: u64, address_len: usize, departures: u64) -> MemberList {
        MemberList {
            members: (0..members)
                .map(|i| Member {
                    id: NodeId::new(u64::MAX - i),
                    address: "a".repeat(address_len),
                })
                .collect(),
            left: (0..departures)
                .map(|i| Departure {
                    id: NodeId::new(u64::MAX - i),
                    incarnation: u32::MAX,
                    expired: true,
                })
                .collect(),
        }
    }

    #[test]
    fn message_fields_bound_every_message_that_carries_a_delta() {
        let empty_delta = len(&StoreDelta::default());
        assert!(empty_delta <= DELTA_FRAME_REAL_LEN);
        let syn_ack = Message::SynAck(SynAck {
            exchange: u64::MAX,
            incarnation: u32::MAX,
            delta: StoreDelta::default(),
            digest: Digest::Hash(u64::MAX),
            wants_vector: true,
            members: None,
            members_hash: u64::MAX,
            time_ms: Some(u64::MAX),
            refusal: None,
        });
        assert_eq!(
            encode(&syn_ack, 1 << 20).unwrap().len(),
            MESSAGE_FIELDS_LEN + HASH_DIGEST_LEN + empty_delta
        );
        let ack = Message::Ack(Ack {
            exchange: u64::MAX,
            incarnation: u32::MAX,
            from_initiator: true,
            delta: StoreDelta::default(),
            vector: None,
            members: None,
        });
        assert!(encode(&ack, 1 << 20).unwrap().len() <= MESSAGE_FIELDS_LEN + empty_delta);
    }

    #[test]
    fn digest_bounds_hold_at_the_widest() {
        let hash = Digest::Hash(u64::MAX);
        assert_eq!(len(&hash), TAG_LEN + digest_len_bound(&hash));
        let full = |n| Digest::Full(widest_vector(n));
        let behind = |n| Digest::Behind {
            hash: u64::MAX,
            lagging: widest_pairs(n),
        };
        for n in [0, 1, 100, 300] {
            for digest in [full(n), behind(n)] {
                assert!(len(&digest) <= TAG_LEN + digest_len_bound(&digest));
            }
            for digest in [full, behind] {
                let (before, after) = (digest(n), digest(n + 1));
                assert_eq!(
                    len(&after) - len(&before),
                    digest_len_bound(&after) - digest_len_bound(&before),
                    "one origin more"
                );
            }
        }
        let vector = widest_vector(10);
        assert!(len(&vector) <= vector_len_bound(&vector));
    }

    #[test]
    fn member_list_bounds_hold_at_the_widest() {
        for (members, address_len, departures) in
            [(0, 0, 0), (1, 0, 0), (3, 300, 2), (100, 20, 100)]
        {
            let list = widest_members(members, address_len, departures);
            assert!(len(&list) <= members_len_bound(&list));
            // A member's address length is short here, its bound a full
            // varint: the id and the address are what the bound must cover.
            let one_member_more = widest_members(members + 1, address_len, departures);
            let added = len(&one_member_more) - len(&list);
            assert_eq!(added, MAX_VARINT_LEN + len(&"a".repeat(address_len)));
            assert!(added <= members_len_bound(&one_member_more) - members_len_bound(&list));
            let one_departure_more = widest_members(members, address_len, departures + 1);
            assert_eq!(
                len(&one_departure_more) - len(&list),
                members_len_bound(&one_departure_more) - members_len_bound(&list)
            );
        }
    }

    /// What a node does: cut a delta to the room its message leaves, then
    /// encode the message at its limit.
    #[test]
    fn a_delta_cut_to_the_room_left_fits_its_message() {
        let mut map = crate::StoreMap::new();
        for i in 0..2_000u64 {
            let stamp = Stamp::new(Hlc::from_u64(u64::MAX - i), NodeId::new(u64::MAX - i % 7));
            map.insert(
                format!("key-{i}"),
                Entry::value(stamp, "v".repeat((i % 50) as usize)),
            );
        }
        let members = widest_members(3, 10, 2);
        for max in [512, 1_000, 4_096, 1 << 16] {
            let budget =
                |reserve: usize| Budget::bytes(max - (MESSAGE_OVERHEAD + reserve)).strict();
            let digest = Digest::Behind {
                hash: u64::MAX,
                lagging: widest_pairs(3),
            };
            let reserve = digest_len_bound(&digest) + members_len_bound(&members);
            let delta = map.delta_since(&VersionVector::new(), budget(reserve));
            assert!(!delta.is_empty(), "{max}");
            let syn_ack = Message::SynAck(SynAck {
                exchange: u64::MAX,
                incarnation: u32::MAX,
                delta,
                digest,
                wants_vector: true,
                members: Some(members.clone()),
                members_hash: u64::MAX,
                time_ms: Some(u64::MAX),
                refusal: None,
            });
            assert!(encode(&syn_ack, max).is_ok(), "SynAck within {max}");
            let vector = widest_vector(3);
            let reserve = vector_len_bound(&vector) + members_len_bound(&members);
            let ack = Message::Ack(Ack {
                exchange: u64::MAX,
                incarnation: u32::MAX,
                from_initiator: true,
                delta: map.delta_since(&VersionVector::new(), budget(reserve)),
                vector: Some(vector),
                members: Some(members.clone()),
            });
            assert!(encode(&ack, max).is_ok(), "Ack within {max}");
        }
    }
}
