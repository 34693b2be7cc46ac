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
