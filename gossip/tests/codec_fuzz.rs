//! The wire codec and `Node::handle_message` against hostile bytes.
//!
//! `gossip::codec::decode` never panics: not on arbitrary bytes, not on
//! valid frames of every message kind (with deltas, digests of every form,
//! vectors and member lists) whose bytes are flipped, replaced, inserted or
//! cut; it returns a message or a typed `DecodeError`, and a strict prefix of
//! a valid frame is always refused. Whatever `decode` refuses,
//! `handle_message` refuses with `MessageError::Decode`, leaving the node's
//! map, version vector, members and open exchanges as they were (a later
//! valid answer still completes the exchange).

#![allow(clippy::unwrap_used)]

mod common;

use common::member;
use gossip::codec::{self, DecodeError};
use gossip::{
    Ack, Config, Departure, Digest, Member, MemberList, Message, MessageError, Node, Refusal,
    StoreDelta, Syn, SynAck, SynFlags, writer_origin,
};
use lww_crdt::{Budget, Hlc, LwwMap, NodeId, Stamp, VersionVector};
use proptest::prelude::*;

const MAX: usize = 1 << 20;
const NOW: u64 = 10_000_000;

fn origin(n: u64) -> NodeId {
    writer_origin(NodeId::new(n % 4), (n / 4) as u32)
}

fn hlc() -> impl Strategy<Value = Hlc> {
    (NOW - 5_000..=NOW, any::<u16>()).prop_map(|(ms, logical)| Hlc::new(ms, logical))
}

fn vector() -> impl Strategy<Value = VersionVector> {
    prop::collection::vec((0u64..8, hlc()), 0..6)
        .prop_map(|pairs| pairs.into_iter().map(|(o, h)| (origin(o), h)).collect())
}

/// A delta as a node would send it: everything a map holds beyond nothing.
fn delta() -> impl Strategy<Value = StoreDelta> {
    prop::collection::vec(
        (
            "[a-d]{1,3}",
            prop::option::of("[a-z0-9]{0,12}"),
            0u64..8,
            hlc(),
        ),
        0..6,
    )
    .prop_map(|writes| {
        let mut map: LwwMap<String, String> = LwwMap::new();
        for (key, value, o, hlc) in writes {
            let stamp = Stamp::new(hlc, origin(o));
            match value {
                Some(value) => map.put(key, value, stamp),
                None => map.delete(key, stamp),
            };
        }
        map.delta_since(&VersionVector::new(), Budget::UNLIMITED)
    })
}

fn digest() -> impl Strategy<Value = Digest> {
    prop_oneof![
        any::<u64>().prop_map(Digest::Hash),
        vector().prop_map(Digest::Full),
        (any::<u64>(), vector()).prop_map(|(hash, v)| Digest::Behind {
            hash,
            lagging: v.iter().collect(),
        }),
    ]
}

fn members() -> impl Strategy<Value = Option<MemberList>> {
    prop::option::of(
        (
            prop::collection::vec(
                (0u64..20, "[a-z0-9.:]{0,10}").prop_map(|(id, address)| Member {
                    id: NodeId::new(id),
                    address,
                }),
                0..5,
            ),
            prop::collection::vec(
                (0u64..20, any::<u32>(), any::<bool>()).prop_map(|(id, incarnation, expired)| {
                    Departure {
                        id: NodeId::new(id),
                        incarnation,
                        expired,
                    }
                }),
                0..3,
            ),
        )
            .prop_map(|(members, left)| MemberList { members, left }),
    )
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (
            any::<u64>(),
            any::<u32>(),
            (any::<bool>(), any::<bool>()),
            digest(),
            any::<u64>(),
            // Every limit a node can hold (at least 512) and every power of two.
            prop::option::of(prop_oneof![(0u32..32).prop_map(|e| 1 << e), 32u32..])
        )
            .prop_map(
                |(
                    exchange,
                    incarnation,
                    (leaving, wants_clock),
                    digest,
                    members_hash,
                    max_message_bytes,
                )| {
                    Message::Syn(Syn {
                        exchange,
                        incarnation,
                        flags: SynFlags::default()
                            .with(SynFlags::LEAVING, leaving)
                            .with(SynFlags::WANTS_CLOCK, wants_clock),
                        digest,
                        members_hash,
                        max_message_bytes,
                    })
                }
            ),
        (
            (any::<u64>(), any::<u32>(), delta()),
            (digest(), any::<bool>(), members(), any::<u64>()),
            (
                prop::option::of(any::<u64>()),
                prop::option::of(any::<u32>())
            )
        )
            .prop_map(
                |(
                    (exchange, incarnation, delta),
                    (digest, wants_vector, members, members_hash),
                    (time_ms, refusal),
                )| {
                    Message::SynAck(SynAck {
                        exchange,
                        incarnation,
                        delta,
                        digest,
                        wants_vector,
                        members,
                        members_hash,
                        time_ms,
                        refusal: refusal.map(|limit| match limit {
                            0 => Refusal::LimitUnknown,
                            limit => Refusal::MaxMessageBytes(limit),
                        }),
                    })
                }
            ),
        (
            any::<u64>(),
            any::<u32>(),
            any::<bool>(),
            delta(),
            prop::option::of(vector()),
            members()
        )
            .prop_map(
                |(exchange, incarnation, from_initiator, delta, vector, members)| {
                    Message::Ack(Ack {
                        exchange,
                        incarnation,
                        from_initiator,
                        delta,
                        vector,
                        members,
                    })
                }
            ),
    ]
}

/// A damage done to a valid frame.
#[derive(Clone, Debug)]
enum Mutation {
    /// XOR the byte at (index mod len) with a non-zero mask.
    Flip(usize, u8),
    /// Replace the byte at (index mod len).
    Replace(usize, u8),
    /// Insert a byte at (index mod len + 1).
    Insert(usize, u8),
    /// Remove the byte at (index mod len).
    Remove(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..).prop_map(|(i, m)| Mutation::Flip(i, m)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Replace(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Remove),
    ]
}

fn mutate(bytes: &mut Vec<u8>, mutation: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    let at = |i: usize| i % bytes.len();
    match *mutation {
        Mutation::Flip(i, mask) => {
            let i = at(i);
            bytes[i] ^= mask;
        }
        Mutation::Replace(i, b) => {
            let i = at(i);
            bytes[i] = b;
        }
        Mutation::Insert(i, b) => {
            let i = at(i) + 1;
            bytes.insert(i, b);
        }
        Mutation::Remove(i) => {
            let i = at(i);
            bytes.remove(i);
        }
    }
}

/// A decode result, checked to be a message or a typed error.
fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
    let result = codec::decode(bytes, MAX);
    match &result {
        Ok(_)
        | Err(DecodeError::TooLarge { .. })
        | Err(DecodeError::Version(_))
        | Err(DecodeError::Malformed(_))
        | Err(DecodeError::Trailing(_)) => {}
    }
    result
}

/// A node holding some state, with an exchange open towards node 1.
fn node_with_state() -> (Node, u64) {
    let config = Config::builder(NodeId::new(0)).fanout(1).build().unwrap();
    let mut node = Node::new(config, [member(1)]);
    node.put("a".into(), "1".into(), NOW).unwrap();
    node.put("b".into(), "2".into(), NOW).unwrap();
    node.delete("a".into(), NOW + 1).unwrap();
    node.handle_tick(NOW);
    let syn = node.poll_transmit().expect("a Syn to node 1");
    (node, syn.exchange)
}

/// Feeds `bytes` to a node; if the codec refuses them, so must the node,
/// with nothing changed.
fn check_node_refuses_undecodable(bytes: &[u8]) {
    let (mut node, _) = node_with_state();
    let map = node.map().clone();
    let vector = node.version_vector().clone();
    let members = node.members();
    let rejected = node.metrics().messages_rejected;
    let result = node.handle_message(NodeId::new(1), bytes, NOW + 10);
    if decode(bytes).is_err() {
        assert!(
            matches!(result, Err(MessageError::Decode { .. })),
            "{result:?}"
        );
        assert_eq!(node.map(), &map);
        assert_eq!(node.version_vector(), &vector);
        assert_eq!(node.members(), members);
        assert_eq!(node.metrics().messages_rejected, rejected + 1);
        assert!(node.poll_transmit().is_none());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn decoding_bytes_that_start_like_a_frame_never_panics(
        kind in 0u8..4,
        bytes in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        // The version byte and a variant tag, then anything.
        let mut frame = vec![codec::WIRE_VERSION, kind];
        frame.extend(bytes);
        let _ = decode(&frame);
        check_node_refuses_undecodable(&frame);
    }

    #[test]
    fn valid_frames_round_trip(message in message()) {
        let bytes = codec::encode(&message, MAX).unwrap();
        prop_assert_eq!(decode(&bytes).unwrap(), message);
    }

    #[test]
    fn mutated_frames_never_panic_and_the_node_refuses_what_the_codec_refuses(
        message in message(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let mut bytes = codec::encode(&message, MAX).unwrap();
        for m in &mutations {
            mutate(&mut bytes, m);
        }
        let _ = decode(&bytes);
        check_node_refuses_undecodable(&bytes);
    }

    #[test]
    fn truncated_frames_are_refused_and_change_nothing(message in message(), cut in any::<usize>()) {
        let bytes = codec::encode(&message, MAX).unwrap();
        let len = cut % bytes.len();
        prop_assert!(decode(&bytes[..len]).is_err());
        check_node_refuses_undecodable(&bytes[..len]);
    }
}

/// Real frames from a real exchange, cut at every length and with every
/// byte flipped: none panics, every prefix is refused, and the node
/// refusing them keeps its open exchange, which the intact answer then
/// completes.
#[test]
fn every_prefix_and_every_flipped_byte_of_real_frames_is_handled() {
    let (mut a, exchange) = node_with_state();
    let config = Config::builder(NodeId::new(1)).build().unwrap();
    let mut b = Node::new(config, [member(0)]);
    b.put("c".into(), "3".into(), NOW).unwrap();
    b.delete("b".into(), NOW + 2).unwrap();
    // Node 1 answers node 0's Syn, as node 0 sent it.
    let syn = Message::Syn(Syn {
        exchange,
        incarnation: 0,
        flags: Default::default(),
        digest: Digest::Full(a.version_vector().clone()),
        members_hash: 0,
        max_message_bytes: Some(MAX as u32),
    });
    b.handle_message(NodeId::new(0), &codec::encode(&syn, MAX).unwrap(), NOW + 5)
        .unwrap();
    let syn_ack = b.poll_transmit().expect("a SynAck").payload;
    assert!(matches!(decode(&syn_ack), Ok(Message::SynAck(ref s)) if !s.delta.is_empty()));

    let map = a.map().clone();
    let vector = a.version_vector().clone();
    for len in 0..syn_ack.len() {
        assert!(decode(&syn_ack[..len]).is_err());
        let result = a.handle_message(NodeId::new(1), &syn_ack[..len], NOW + 6);
        assert!(
            matches!(result, Err(MessageError::Decode { .. })),
            "{result:?}"
        );
    }
    for i in 0..syn_ack.len() {
        for mask in [0x01, 0x80, 0xff] {
            let mut bytes = syn_ack.clone();
            bytes[i] ^= mask;
            if decode(&bytes).is_err() {
                let result = a.handle_message(NodeId::new(1), &bytes, NOW + 6);
                assert!(matches!(result, Err(MessageError::Decode { .. })));
            }
        }
    }
    // Nothing a refused frame carried got in...
    assert_eq!(a.map(), &map);
    assert_eq!(a.version_vector(), &vector);
    // ...and the exchange is still open for the real answer.
    a.handle_message(NodeId::new(1), &syn_ack, NOW + 6).unwrap();
    assert_eq!(a.get("c"), Some("3"));
    assert_eq!(a.get("b"), None);
    assert_eq!(a.metrics().exchanges_completed, 1);
}

#[test]
fn oversize_frames_are_refused_unread() {
    let bytes = vec![0u8; 2_000];
    assert!(matches!(
        codec::decode(&bytes, 1_000),
        Err(DecodeError::TooLarge {
            len: 2_000,
            max: 1_000
        })
    ));
    let config = Config::builder(NodeId::new(0))
        .max_message_bytes(1_024)
        .build()
        .unwrap();
    let mut node = Node::new(config, [member(1)]);
    let result = node.handle_message(NodeId::new(1), &bytes, NOW);
    assert!(matches!(
        result,
        Err(MessageError::Decode {
            source: DecodeError::TooLarge { .. },
            ..
        })
    ));
    assert!(node.map().is_empty());
}
