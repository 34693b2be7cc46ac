//! Upper bounds on encoded sizes, all in one place: a delta is cut to a byte
//! budget by adding up these bounds, without encoding anything.
//!
//! Every bound is for bincode 2.0.1's standard configuration: the encoding
//! of [`codec`](crate::codec) (less its version byte), and of the `gossip`
//! crate's wire, which builds its own bounds from these. In it, an integer
//! wider than a byte is a variable-length integer: below 251 one byte, else
//! a marker byte and the value in 2, 4 or 8 little-endian bytes. The
//! lengths of strings, lists and maps are `u64`s, encoded the same way; a
//! `bool`, a `u8` and the tag of an `Option` take one byte. The tests below
//! check each bound against real encodings of the widest values.

use crate::Entry;

/// The most bytes a variable-length integer takes, and so a length prefix:
/// a `u64` at or above 2^32 is a marker byte and 8 bytes.
pub const MAX_VARINT_LEN: usize = 1 + 8;

/// The most bytes a variable-length `u32` takes: a marker byte and 4 bytes.
pub const MAX_U32_VARINT_LEN: usize = 1 + 4;

/// The bytes of a `bool`, a `u8`, the tag of an `Option`, and the variant
/// index of an enum with fewer than 251 variants.
pub const TAG_LEN: usize = 1;

/// At most how many bytes a [`Stamp`](crate::Stamp) takes: its timestamp
/// and its origin, a `u64` each.
pub const STAMP_LEN: usize = 2 * MAX_VARINT_LEN;

/// At most how many bytes an [`Entry`] takes beyond its value: its stamp,
/// and the tag of its value's `Option` (`None` for a tombstone).
pub const ENTRY_FRAME_LEN: usize = STAMP_LEN + TAG_LEN;

/// At most how many bytes a [`VersionVector`](crate::VersionVector) takes
/// beyond its origins: the length of its map.
pub const VECTOR_FRAME_LEN: usize = MAX_VARINT_LEN;

/// At most how many bytes one origin of a version vector takes: its id and
/// its frontier, a `u64` each.
pub const VECTOR_ORIGIN_LEN: usize = 2 * MAX_VARINT_LEN;

/// At most how many bytes one origin adds to a [`Delta`](crate::Delta)'s
/// frontiers: its id and timestamp in `covered`, and again in `since`.
pub const COVERED_ORIGIN_LEN: usize = 2 * VECTOR_ORIGIN_LEN;

/// At most how many bytes a [`Delta`](crate::Delta) takes beyond its
/// entries and origins: the length of its entry list, the frames of its two
/// frontiers (`covered` and `since`), and its `complete` flag.
pub const DELTA_FRAME_LEN: usize = MAX_VARINT_LEN + 2 * VECTOR_FRAME_LEN + TAG_LEN;

/// An upper bound on the encoded size of a key or value, used to cut deltas
/// at a byte budget without encoding them.
///
/// The bound must hold for the codec in use; the implementations here allow
/// a length prefix of [`MAX_VARINT_LEN`], the most a variable-length `u64`
/// takes.
pub trait EncodedLen {
    /// At most how many bytes this takes on the wire.
    fn encoded_len(&self) -> usize;
}

impl EncodedLen for String {
    fn encoded_len(&self) -> usize {
        self.len() + MAX_VARINT_LEN
    }
}

impl EncodedLen for Vec<u8> {
    fn encoded_len(&self) -> usize {
        self.len() + MAX_VARINT_LEN
    }
}

impl EncodedLen for u64 {
    fn encoded_len(&self) -> usize {
        MAX_VARINT_LEN
    }
}

impl EncodedLen for u32 {
    fn encoded_len(&self) -> usize {
        MAX_VARINT_LEN
    }
}

impl<V: EncodedLen> Entry<V> {
    /// At most how many bytes this entry and `key` take on the wire: the key,
    /// the entry's frame ([`ENTRY_FRAME_LEN`]) and the value.
    pub fn encoded_len_with<K: EncodedLen>(&self, key: &K) -> usize {
        key.encoded_len() + ENTRY_FRAME_LEN + self.value.as_ref().map_or(0, EncodedLen::encoded_len)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde::Serialize;

    use super::*;
    use crate::{Budget, Delta, Hlc, LwwMap, NodeId, Stamp, VersionVector};

    /// The bytes `value` takes in the codec, less its version byte.
    fn len<T: Serialize + ?Sized>(value: &T) -> usize {
        crate::codec::encode(value).unwrap().len() - 1
    }

    /// The widest stamp: both of its integers at or above 2^32.
    fn widest_stamp(i: u64) -> Stamp {
        Stamp::new(Hlc::from_u64(u64::MAX - i), NodeId::new(u64::MAX - i))
    }

    #[test]
    fn integers_and_tags() {
        assert_eq!(len(&u64::MAX), MAX_VARINT_LEN);
        assert_eq!(len(&(1u64 << 32)), MAX_VARINT_LEN);
        assert_eq!(len(&u32::MAX), MAX_U32_VARINT_LEN);
        for value in [0, 250, 251, u64::from(u16::MAX), 1 << 16, 1 << 40] {
            assert!(len(&value) <= MAX_VARINT_LEN);
        }
        assert_eq!(len(&true), TAG_LEN);
        assert_eq!(len(&7u8), TAG_LEN);
        assert_eq!(len(&None::<u64>), TAG_LEN);
        assert_eq!(len(&Some(u64::MAX)), TAG_LEN + MAX_VARINT_LEN);
    }

    #[test]
    fn keys_and_values() {
        for n in [0, 1, 250, 251, 70_000] {
            let s = "x".repeat(n);
            assert!(len(&s) <= s.encoded_len(), "string of {n}");
            let bytes = vec![7u8; n];
            assert!(len(&bytes) <= bytes.encoded_len(), "bytes of {n}");
        }
        assert!(len(&u64::MAX) <= u64::MAX.encoded_len());
        assert!(len(&u32::MAX) <= u32::MAX.encoded_len());
    }

    #[test]
    fn stamps_and_entries() {
        assert_eq!(len(&widest_stamp(0)), STAMP_LEN);
        let key = "k".to_owned();
        let value = Entry::value(widest_stamp(0), "value".to_owned());
        assert_eq!(len(&value), ENTRY_FRAME_LEN + len("value"));
        assert!(len(&(&key, &value)) <= value.encoded_len_with(&key));
        let tombstone = Entry::<String>::tombstone(widest_stamp(0));
        assert_eq!(len(&tombstone), ENTRY_FRAME_LEN);
        assert!(len(&(&key, &tombstone)) <= tombstone.encoded_len_with(&key));
    }

    #[test]
    fn version_vectors() {
        let vector = |n: u64| -> VersionVector {
            (0..n)
                .map(|i| (NodeId::new(u64::MAX - i), Hlc::from_u64(u64::MAX - i)))
                .collect()
        };
        assert!(len(&vector(0)) <= VECTOR_FRAME_LEN);
        for n in [0, 1, 100, 300] {
            assert_eq!(len(&vector(n + 1)) - len(&vector(n)), VECTOR_ORIGIN_LEN);
            let bound = VECTOR_FRAME_LEN + VECTOR_ORIGIN_LEN * n as usize;
            assert!(len(&vector(n)) <= bound);
        }
    }

    #[test]
    fn deltas() {
        let empty = Delta::<String, String>::default();
        // Three one-byte lengths (no entry, two empty frontiers) and the
        // flag: each length is at most a varint.
        assert_eq!(len(&empty), 3 + TAG_LEN);
        assert!(len(&empty) <= DELTA_FRAME_LEN);
        assert!(len(&empty) <= empty.encoded_len());
        // One write per origin, every integer at its widest, to a peer that
        // holds each origin at a frontier just below it: each origin is in
        // `covered` and `since`.
        let delta = |n: u64| -> Delta<String, String> {
            let mut map = LwwMap::new();
            let mut peer = VersionVector::new();
            for i in 0..n {
                let stamp = widest_stamp(2 * i);
                map.put(format!("k{i}"), "v".to_owned(), stamp);
                peer.advance(stamp.origin, Hlc::from_u64(u64::MAX - 2 * i - 1));
            }
            let delta = map.delta_since(&peer, Budget::UNLIMITED);
            assert_eq!(
                (delta.covered().len(), delta.since().len()),
                (n as usize, n as usize)
            );
            delta
        };
        for n in [0, 1, 100, 300] {
            let (before, after) = (delta(n), delta(n + 1));
            let entry = Entry::value(widest_stamp(2 * n), "v".to_owned());
            let added = len(&(format!("k{n}"), entry));
            assert_eq!(len(&after) - len(&before), COVERED_ORIGIN_LEN + added);
            assert!(len(&after) <= after.encoded_len());
        }
    }
}
