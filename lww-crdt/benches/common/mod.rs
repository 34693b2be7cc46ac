//! Deterministic data shared by the benchmarks: 16-byte keys, 100-byte values,
//! stamps that increase per origin.

#![allow(dead_code)] // each bench target uses a different part of this module

use lww_crdt::{Hlc, NodeId, Stamp};

/// Length of every generated key, in bytes.
pub(crate) const KEY_LEN: usize = 16;
/// Length of every generated value, in bytes.
pub(crate) const VALUE_LEN: usize = 100;

/// The first timestamp handed out; any non-zero base works.
pub(crate) const BASE_HLC: u64 = 1 << 32;

/// SplitMix64: a fast, deterministic stream of well-mixed 64-bit numbers.
pub(crate) struct SplitMix(u64);

impl SplitMix {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound`.
    pub(crate) fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound as u64) as usize
    }
}

/// Key number `i`: exactly [`KEY_LEN`] bytes, with exact capacity.
pub(crate) fn key(i: usize) -> String {
    let mut key = String::with_capacity(KEY_LEN);
    key.push_str(&format!("k{i:015}"));
    debug_assert_eq!(key.len(), KEY_LEN);
    key
}

/// Value number `i`: exactly [`VALUE_LEN`] printable bytes, exact capacity.
pub(crate) fn value(i: usize) -> String {
    const ALPHABET: &[u8; 64] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
    let mut rng = SplitMix::new(i as u64);
    let mut value = String::with_capacity(VALUE_LEN);
    while value.len() < VALUE_LEN {
        let mut bits = rng.next_u64();
        for _ in 0..10 {
            if value.len() == VALUE_LEN {
                break;
            }
            value.push(char::from(ALPHABET[(bits & 63) as usize]));
            bits >>= 6;
        }
    }
    value
}

/// Pairs for keys `range`.
pub(crate) fn pairs(range: std::ops::Range<usize>) -> Vec<(String, String)> {
    range.map(|i| (key(i), value(i))).collect()
}

/// A stamp by `origin` at `BASE_HLC + offset`.
pub(crate) fn stamp(offset: u64, origin: u64) -> Stamp {
    Stamp::new(Hlc::from_u64(BASE_HLC + offset), NodeId::new(origin))
}
