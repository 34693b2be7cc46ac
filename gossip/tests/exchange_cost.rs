//! What an exchange between two equal nodes costs on the wire: once two
//! nodes have converged and each has seen the other's digest match its own,
//! every exchange either way is a `Syn` carrying a hash and a `SynAck`
//! matching it, at most 100 bytes in all (52 with the code of this commit),
//! whether the map holds a few keys or entries from 1,000 writer origins (a
//! cluster-sized version vector: 57 KB for the converging exchange, and one
//! 11.7 KB vector in the initiator's next `Syn`, see `converge`). Frames
//! are carried by hand and their payload lengths summed.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Net, Sent, member};
use gossip::{Config, MessageKind, Node, StoreMap, writer_origin};
use lww_crdt::{Hlc, NodeId, Stamp};

const BUDGET: usize = 100;
const NOW: u64 = 1_000_000;

/// Carries one exchange opened by `initiator` at `now`; returns its frames.
fn exchange(net: &mut Net, initiator: usize, now: u64) -> Vec<Sent> {
    let start = net.log.len();
    net.tick(initiator, now);
    net.pump(now);
    net.log[start..].to_vec()
}

fn cost(frames: &[Sent]) -> usize {
    frames.iter().map(|s| s.bytes).sum()
}

/// One push-pull exchange brings the two nodes to equal maps. The
/// initiator last heard the responder's digest before its own `Ack` landed,
/// so it does not yet know they are equal: its next `Syn` carries its whole
/// vector, answered by a matching hash. One exchange each way settles that.
fn converge(net: &mut Net, now: &mut u64) {
    *now += 1_000;
    let frames = exchange(net, 0, *now);
    assert!(
        cost(&frames) > BUDGET,
        "the converging exchange carries the state"
    );
    assert_eq!(net.nodes[0].map(), net.nodes[1].map());
    for initiator in [0, 1] {
        *now += 1_000;
        let frames = exchange(net, initiator, *now);
        let kinds: Vec<MessageKind> = frames.iter().map(|s| s.kind).collect();
        assert_eq!(
            kinds,
            [MessageKind::Syn, MessageKind::SynAck],
            "no delta between equal nodes"
        );
    }
    assert!(net.refused.is_empty(), "{:?}", net.refused);
}

/// Every exchange from then on, either way, is a hash and a matching hash.
fn assert_cheap_both_ways(net: &mut Net, mut now: u64) {
    for round in 0..5 {
        for initiator in [0, 1] {
            now += 1_000;
            let frames = exchange(net, initiator, now);
            let kinds: Vec<MessageKind> = frames.iter().map(|s| s.kind).collect();
            assert_eq!(kinds, [MessageKind::Syn, MessageKind::SynAck]);
            assert!(
                cost(&frames) <= BUDGET,
                "round {round}: exchange from {initiator} took {} bytes: {frames:?}",
                cost(&frames)
            );
        }
    }
    assert_eq!(net.nodes[0].map(), net.nodes[1].map());
}

fn pair(a_map: StoreMap, b_map: StoreMap) -> Net {
    let config = |id| Config::builder(NodeId::new(id)).fanout(1).build().unwrap();
    let a = Node::with_state(config(0), a_map, [member(1)]);
    let b = Node::with_state(config(1), b_map, [member(0)]);
    Net::new(vec![a, b])
}

#[test]
fn an_exchange_between_equal_nodes_costs_at_most_100_bytes() {
    let mut net = pair(StoreMap::new(), StoreMap::new());
    let mut now = NOW;
    for i in 0..20 {
        net.nodes[i % 2]
            .put(format!("key-{i}"), format!("value-{i}"), now)
            .unwrap();
        now += 7;
    }
    net.nodes[1].delete("key-3".into(), now).unwrap();
    converge(&mut net, &mut now);
    assert_cheap_both_ways(&mut net, now);
}

#[test]
fn an_exchange_between_equal_nodes_with_1000_origins_costs_at_most_100_bytes() {
    // A state written by 1,000 members, half of it on each node; they
    // converge before the cost is measured.
    let mut maps = [StoreMap::new(), StoreMap::new()];
    for origin in 0..1_000u64 {
        let stamp = Stamp::new(
            Hlc::new(NOW - 5_000 + origin, 0),
            writer_origin(NodeId::new(100 + origin), 0),
        );
        maps[(origin % 2) as usize].put(format!("key-{origin}"), format!("value-{origin}"), stamp);
    }
    let [a, b] = maps;
    let mut net = pair(a, b);
    let mut now = NOW;
    converge(&mut net, &mut now);
    assert_eq!(net.nodes[1].version_vector().len(), 1_000);
    assert_eq!(net.nodes[1].map().len(), 1_000);
    assert_cheap_both_ways(&mut net, now);
}
