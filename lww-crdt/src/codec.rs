//! A safe binary encoding for maps, deltas and vectors: [`encode`] and
//! [`decode`].
//!
//! The format is one version byte ([`CODEC_VERSION`]) and the value in
//! bincode 2.0.1's standard configuration (varints, little-endian). Maps
//! encode their entries sorted by key, so equal maps give equal bytes.
//!
//! The types serialize with serde, so any serde format works, but a decoder
//! without a size limit is a hazard: with bincode's default configuration,
//! ten hostile bytes claiming a 4 EiB string abort the process, and an
//! enormous length panics. [`decode`] bounds every allocation it makes to a
//! small multiple of the input's length, checks what the types check
//! (entries within their frontier, no key twice), and refuses trailing
//! bytes. Whatever decoder you use instead needs such a limit.
//!
//! ```
//! use lww_crdt::{codec, LwwMap, Hlc, NodeId, Stamp};
//!
//! let mut map: LwwMap<String, String> = LwwMap::new();
//! map.put("k".into(), "v".into(), Stamp::new(Hlc::new(1_000, 0), NodeId::new(1)));
//! let bytes = codec::encode(&map)?;
//! let back: LwwMap<String, String> = codec::decode(&bytes)?;
//! assert_eq!(back, map);
//! // Ten hostile bytes are an error, not an abort.
//! let hostile = [codec::CODEC_VERSION, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
//! assert!(codec::decode::<LwwMap<String, String>>(&hostile).is_err());
//! # Ok::<(), codec::CodecError>(())
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The format version [`encode`] writes and [`decode`] reads.
pub const CODEC_VERSION: u8 = 1;

/// How many bytes of memory a decode may claim per byte of input (and at
/// least [`MIN_CLAIM`]): room for the in-memory size of entries, whose
/// smallest encoding is a few bytes.
const CLAIM_PER_INPUT_BYTE: usize = 64;

/// The least a decode may claim, however short its input.
const MIN_CLAIM: usize = 1 << 16;

/// The larger claim tiers, capped at what the platform can address.
const TIER_4G: usize = (u32::MAX as usize).saturating_add(1);
const TIER_64G: usize = TIER_4G.saturating_mul(16);
const TIER_1T: usize = TIER_64G.saturating_mul(16);

/// Why a value could not be encoded or decoded. Nothing was built.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The input is empty.
    #[error("no bytes to decode")]
    Empty,
    /// The input starts with another format version.
    #[error("format version {0} is not supported (this build reads {CODEC_VERSION})")]
    Version(u8),
    /// The input is not a valid value of the type: truncated, malformed,
    /// claiming more memory than its length allows, or failing the type's
    /// own checks.
    #[error("invalid encoding: {0}")]
    Invalid(String),
    /// A valid value followed by stray bytes.
    #[error("{0} bytes trail the value")]
    Trailing(usize),
    /// The value could not be encoded.
    #[error("cannot encode: {0}")]
    Encode(String),
}

/// Encodes `value` (a map, a delta, a vector) after a version byte.
///
/// # Errors
/// [`CodecError::Encode`] if serializing fails, which the types of this
/// crate never do with keys and values that serialize.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut bytes = vec![CODEC_VERSION];
    let body = bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|err| CodecError::Encode(err.to_string()))?;
    bytes.extend_from_slice(&body);
    Ok(bytes)
}

/// Decodes what [`encode`] wrote, allocating at most 64 bytes of memory per
/// byte of input (64 KiB at least), whatever the input claims. Never
/// panics.
///
/// # Errors
/// [`CodecError`]: empty input, another version, an invalid or oversize
/// value, or trailing bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if version != CODEC_VERSION {
        return Err(CodecError::Version(version));
    }
    let claim = body
        .len()
        .saturating_mul(CLAIM_PER_INPUT_BYTE)
        .max(MIN_CLAIM);
    // bincode takes its limit as a constant: the smallest tier at or above
    // the claim allowed.
    let (value, read) = if claim <= 1 << 16 {
        decode_within::<T, { 1 << 16 }>(body)
    } else if claim <= 1 << 20 {
        decode_within::<T, { 1 << 20 }>(body)
    } else if claim <= 1 << 24 {
        decode_within::<T, { 1 << 24 }>(body)
    } else if claim <= 1 << 28 {
        decode_within::<T, { 1 << 28 }>(body)
    } else if claim <= TIER_4G {
        decode_within::<T, TIER_4G>(body)
    } else if claim <= TIER_64G {
        decode_within::<T, TIER_64G>(body)
    } else {
        decode_within::<T, TIER_1T>(body)
    }?;
    if read != body.len() {
        return Err(CodecError::Trailing(body.len() - read));
    }
    Ok(value)
}

fn decode_within<T: DeserializeOwned, const LIMIT: usize>(
    body: &[u8],
) -> Result<(T, usize), CodecError> {
    let config = bincode::config::standard().with_limit::<LIMIT>();
    bincode::serde::decode_from_slice(body, config)
        .map_err(|err| CodecError::Invalid(err.to_string()))
}
