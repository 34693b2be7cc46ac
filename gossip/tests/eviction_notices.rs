//! No peer's word empties a node. A hostile member answers every `Syn` with
//! an eviction notice (`SynAck::evicted` of wire version 2, the last that
//! had one) and sends unsolicited notices for every exchange number it might
//! guess, while one honest node is also cut off from the rest for many GC
//! periods (so that, had notices ever been plausible, they would be now).
//! Before, each notice made its receiver drop its whole state and rejoin
//! under a new incarnation: three honest nodes went to zero keys within one
//! round and stayed there. Now no member is evicted, the wire has no such
//! notice, and a frame of the old version is refused unread.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::VecDeque;

use common::member;
use gossip::codec::{self, DecodeError};
use gossip::{Config, Digest, Message, Node, StoreDelta, SynAck};
use lww_crdt::NodeId;

const HOSTILE: u64 = 3;
const INTERVAL: u64 = 100;
const MAX: usize = 1 << 20;

/// An eviction notice as wire version 2 encoded it: this version's `SynAck`
/// with `evicted` (true) and `vouch` (false) after the incarnation.
fn notice(exchange: u64) -> Vec<u8> {
    // bincode's variable-length integers: one byte below 251, else a marker
    // byte and 2, 4 or 8 bytes.
    let exchange_len = match exchange {
        0..251 => 1,
        251..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    };
    let now = codec::encode(
        &Message::SynAck(SynAck {
            exchange,
            incarnation: 0,
            delta: StoreDelta::default(),
            digest: Digest::Hash(0),
            wants_vector: false,
            members: None,
            members_hash: 0,
            time_ms: None,
            refusal: None,
        }),
        MAX,
    )
    .unwrap();
    // version, variant, exchange, incarnation (0: one byte), then the rest.
    let rest = 2 + exchange_len + 1;
    let mut old = vec![2];
    old.extend_from_slice(&now[1..rest]);
    old.extend_from_slice(&[1, 0]);
    // Without the two one-byte fields wire version 4 added at the end.
    old.extend_from_slice(&now[rest..now.len() - 2]);
    old
}

#[test]
fn an_old_eviction_notice_is_refused_unread() {
    for exchange in [7, 300, 70_000, u64::MAX] {
        assert!(matches!(
            codec::decode(&notice(exchange), MAX),
            Err(DecodeError::Version(2))
        ));
    }
}

fn honest(id: u64) -> Node {
    let config = Config::for_interval(NodeId::new(id), INTERVAL, INTERVAL)
        .fanout(2)
        .gc_every_ticks(2)
        .build()
        .unwrap();
    let peers = (0..=HOSTILE).filter(|&p| p != id).map(member);
    Node::new(config, peers)
}

#[test]
fn eviction_notices_from_a_hostile_member_change_nothing() {
    let mut nodes: Vec<Node> = (0..HOSTILE).map(honest).collect();
    let mut now = 1_000_000;
    for (i, node) in nodes.iter_mut().enumerate() {
        node.put(format!("key-{i}"), "kept".into(), now).unwrap();
    }
    // (to, from, payload)
    let mut wire: VecDeque<(u64, u64, Vec<u8>)> = VecDeque::new();
    for round in 0..400u64 {
        now += INTERVAL;
        // Node 2 is cut off from nodes 0 and 1 for rounds 20..300, long
        // past down detection and many GC periods; the hostile member
        // reaches everyone throughout.
        let cut = |a: u64, b: u64| {
            (20..300).contains(&round) && a != HOSTILE && b != HOSTILE && (a == 2) != (b == 2)
        };
        for node in &mut nodes {
            node.handle_tick(now);
        }
        for to in 0..HOSTILE {
            for exchange in 0..8 {
                wire.push_back((to, HOSTILE, notice(exchange)));
            }
        }
        loop {
            for (from, node) in (0u64..).zip(nodes.iter_mut()) {
                while let Some(t) = node.poll_transmit() {
                    wire.push_back((t.to.get(), from, t.payload));
                }
                while node.poll_exchange_end().is_some() {}
                while node.poll_event().is_some() {}
            }
            let Some((to, from, payload)) = wire.pop_front() else {
                break;
            };
            if to == HOSTILE {
                if let Ok(Message::Syn(syn)) = codec::decode(&payload, MAX) {
                    wire.push_back((from, HOSTILE, notice(syn.exchange)));
                }
                continue;
            }
            if cut(to, from) {
                continue;
            }
            let _ = nodes[to as usize].handle_message(NodeId::new(from), &payload, now);
        }
        for (i, node) in nodes.iter().enumerate() {
            assert_eq!(node.incarnation(), 0, "round {round}: node {i} rejoined");
            assert_eq!(
                node.get(&format!("key-{i}")),
                Some("kept"),
                "round {round}: node {i} lost its own key"
            );
        }
    }
    for node in &nodes {
        for i in 0..HOSTILE {
            assert_eq!(node.get(&format!("key-{i}")), Some("kept"));
        }
        assert_eq!(node.map(), nodes[0].map());
        // Every notice reached it, and was refused.
        assert!(node.metrics().messages_rejected > 3_000);
    }
}
