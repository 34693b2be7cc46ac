//! `lww_crdt::codec`: round trips for maps, deltas and vectors, and hostile
//! bytes that are errors, never a panic or an allocation out of proportion
//! to the input.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Map, any_budget, any_state, any_vector};
use lww_crdt::codec::{self, CODEC_VERSION, CodecError};
use lww_crdt::{Delta, VersionVector};
use proptest::prelude::*;

proptest! {
    #[test]
    fn maps_deltas_and_vectors_round_trip(
        map in any_state(),
        peer in any_vector(),
        budget in any_budget(),
    ) {
        let back: Map = codec::decode(&codec::encode(&map).unwrap()).unwrap();
        prop_assert_eq!(&back, &map);
        let delta = map.delta_since(&peer, budget);
        let back: Delta<String, String> = codec::decode(&codec::encode(&delta).unwrap()).unwrap();
        prop_assert_eq!(&back, &delta);
        let back: VersionVector = codec::decode(&codec::encode(&peer).unwrap()).unwrap();
        prop_assert_eq!(&back, &peer);
    }

    #[test]
    fn random_bytes_are_errors_not_panics(
        body in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut bytes = vec![CODEC_VERSION];
        bytes.extend_from_slice(&body);
        let _ = codec::decode::<Map>(&bytes);
        let _ = codec::decode::<Delta<String, String>>(&bytes);
        let _ = codec::decode::<VersionVector>(&bytes);
    }
}

/// With bincode's default configuration, these lengths ask for a 4 EiB
/// string (an abort) or overflow (a panic).
#[test]
fn hostile_lengths_are_refused() {
    let huge_varint = [0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
    let max_varint = [0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
    for claim in [&huge_varint[..], &max_varint[..]] {
        // As the entry count of a map, and as the first key's length.
        let mut as_count = vec![CODEC_VERSION];
        as_count.extend_from_slice(claim);
        let mut as_key = vec![CODEC_VERSION, 1];
        as_key.extend_from_slice(claim);
        for bytes in [as_count, as_key] {
            assert!(matches!(
                codec::decode::<Map>(&bytes),
                Err(CodecError::Invalid(_))
            ));
            assert!(codec::decode::<Delta<String, String>>(&bytes).is_err());
        }
    }
}

#[test]
fn framing_errors_are_typed() {
    let map = Map::new();
    let mut bytes = codec::encode(&map).unwrap();
    assert!(matches!(codec::decode::<Map>(&[]), Err(CodecError::Empty)));
    bytes[0] = CODEC_VERSION + 1;
    assert!(matches!(
        codec::decode::<Map>(&bytes),
        Err(CodecError::Version(v)) if v == CODEC_VERSION + 1
    ));
    bytes[0] = CODEC_VERSION;
    bytes.push(0);
    assert!(matches!(
        codec::decode::<Map>(&bytes),
        Err(CodecError::Trailing(1))
    ));
}

proptest! {
    /// The byte budget bounds the whole encoded delta, its framing
    /// included (it used to come out a few bytes over).
    #[test]
    fn an_encoded_delta_fits_its_byte_budget(
        map in any_state(),
        peer in any_vector(),
        max_bytes in 0usize..400,
    ) {
        let delta = map.delta_since(&peer, lww_crdt::Budget::bytes(max_bytes).strict());
        let encoded = codec::encode(&delta).unwrap().len() - 1;
        prop_assert!(encoded <= max_bytes.max(lww_crdt::DELTA_FRAME_LEN), "{} > {}", encoded, max_bytes);
    }
}

/// Time zero is what a vector holds for an origin it saw nothing of: an
/// entry stamped with it could never travel in a delta. It is not taken,
/// and decoding refuses it.
#[test]
fn entries_at_time_zero_are_refused() {
    use lww_crdt::{Applied, Entry, Hlc, NodeId, Stamp};
    let zero = Stamp::new(Hlc::ZERO, NodeId::new(1));
    let mut map = Map::new();
    assert_eq!(map.put("k".into(), "v".into(), zero), Applied::Unchanged);
    assert_eq!(map.entry_count(), 0);
    assert!(map.version_vector().is_empty());

    #[derive(serde::Serialize)]
    struct Parts {
        entries: Vec<(String, Entry<String>)>,
        version_vector: VersionVector,
        purged: VersionVector,
    }
    let forged = Parts {
        entries: vec![("k".into(), Entry::value(zero, "v".into()))],
        version_vector: VersionVector::new(),
        purged: VersionVector::new(),
    };
    assert!(matches!(
        codec::decode::<Map>(&codec::encode(&forged).unwrap()),
        Err(CodecError::Invalid(_))
    ));
}
