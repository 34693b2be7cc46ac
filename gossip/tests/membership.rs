//! Members and their addresses spread through the exchanges themselves: a
//! node named by no one joins by contacting one member, and that member
//! learns the newcomer's advertised address from the newcomer's own member
//! list, even when their maps are equal and the exchange carries no data.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Net, builder};
use gossip::{Event, Liveness, Member, Node};
use lww_crdt::NodeId;

fn addressed(id: u64) -> Member {
    Member {
        id: NodeId::new(id),
        address: format!("10.0.0.{id}:7000"),
    }
}

fn node(id: u64, seeds: &[u64]) -> Node {
    let config = builder(id)
        .address(addressed(id).address)
        .fanout(1)
        .build()
        .unwrap();
    Node::new(config, seeds.iter().map(|&s| addressed(s)))
}

/// Node 1 names node 0; node 0 names no one. Both maps are empty, so the
/// `SynAck` is a matching hash and the exchange is over on node 0's side;
/// node 1's list, with its own address, comes in the `Ack` after it. Before,
/// node 0 dropped that `Ack` as late and never learned where node 1 was.
#[test]
fn a_member_learns_a_newcomers_address_in_an_exchange_without_data() {
    let mut net = Net::new(vec![node(0, &[]), node(1, &[0])]);
    net.tick(1, 1_000);
    net.pump(1_000);
    let peers = net.nodes[0].peers();
    assert_eq!(peers.len(), 1);
    assert_eq!(
        peers[0].member,
        addressed(1),
        "node 0 lacks node 1's address"
    );
    assert_eq!(net.nodes[0].members(), net.nodes[1].members());
}

/// Three newcomers each name node 0 only: after a few rounds every node
/// knows every other with its address.
#[test]
fn newcomers_naming_one_seed_learn_every_address() {
    let mut net = Net::new(vec![
        node(0, &[]),
        node(1, &[0]),
        node(2, &[0]),
        node(3, &[0]),
    ]);
    for round in 1..=10 {
        net.round(round * 1_000);
    }
    let everyone: Vec<Member> = (0..4).map(addressed).collect();
    for node in &net.nodes {
        assert_eq!(node.members(), everyone, "node {}", node.id());
    }
}

/// Each node says when its member list last changed: the time of the
/// round in which it learned its last member, not later, and it keeps that
/// time through rounds that bring nothing new.
#[test]
fn a_node_tells_when_its_member_list_last_changed() {
    let mut net = Net::new(vec![
        node(0, &[]),
        node(1, &[0]),
        node(2, &[0]),
        node(3, &[0]),
    ]);
    assert_eq!(net.nodes[0].membership_changed_ms(), None);
    let everyone: Vec<Member> = (0..4).map(addressed).collect();
    let mut complete_at = [None; 4];
    for round in 1..=10 {
        let now = round * 1_000;
        net.round(now);
        for (i, node) in net.nodes.iter().enumerate() {
            if complete_at[i].is_none() && node.members() == everyone {
                complete_at[i] = Some(now);
            }
        }
    }
    for (i, node) in net.nodes.iter().enumerate() {
        let at = complete_at[i].unwrap();
        let changed = node.membership_changed_ms().unwrap();
        assert!(
            changed <= at && changed > at - 1_000,
            "node {i}: list complete in the round at {at} ms, changed at {changed} ms"
        );
    }
    assert!(
        complete_at.iter().all(|at| at.unwrap() < 10_000),
        "the last rounds must bring nothing new for the test to mean anything"
    );
}

/// A member at a 100 ms interval whose exchanges time out after 100 ms and
/// which collects tombstones every other tick, in `incarnation`.
fn quick(id: u64, incarnation: u32) -> gossip::Config {
    gossip::Config::for_interval(NodeId::new(id), 100, 100)
        .fanout(2)
        .gc_every_ticks(2)
        .incarnation(incarnation)
        .build()
        .unwrap()
}

/// Node 2 leaves: its last exchanges carry its last write to both others,
/// which mark it Left. It then stops for good (down), yet nobody suspects
/// it, probes it or waits for it: a delete made afterwards is collected
/// everywhere. Restarted empty in a newer incarnation, it is alive again
/// and catches up.
#[test]
fn a_member_that_leaves_is_neither_suspected_nor_waited_for() {
    let nodes = (0..3)
        .map(|id| {
            Node::new(
                quick(id, 0),
                (0..3).filter(|&p| p != id).map(common::member),
            )
        })
        .collect();
    let mut net = Net::new(nodes);
    let mut now = 1_000;
    net.nodes[0].put("doomed".into(), "v".into(), now).unwrap();
    for _ in 0..5 {
        now += 100;
        net.round(now);
    }
    net.nodes[2]
        .put("last".into(), "words".into(), now)
        .unwrap();
    let syns_before_leaving =
        net.count(0, 2, gossip::MessageKind::Syn) + net.count(1, 2, gossip::MessageKind::Syn);
    assert_eq!(net.nodes[2].leave(now), 2);
    assert_eq!(
        net.nodes[2].put("late".into(), "x".into(), now),
        Err(gossip::WriteError::Draining)
    );
    net.pump(now);
    net.down[2] = true;
    for i in 0..2 {
        assert_eq!(net.nodes[i].get("last"), Some("words"), "node {i}");
        assert_eq!(net.nodes[i].liveness(NodeId::new(2)), Some(Liveness::Left));
    }
    net.nodes[0].delete("doomed".into(), now).unwrap();
    for _ in 0..60 {
        now += 100;
        net.round(now);
    }
    for i in 0..2 {
        assert_eq!(net.nodes[i].liveness(NodeId::new(2)), Some(Liveness::Left));
        assert_eq!(
            net.nodes[i].map().tombstone_count(),
            0,
            "node {i} waits for node 2"
        );
    }
    let about_2: Vec<&Event> = net
        .events
        .iter()
        .filter(|(i, _)| *i < 2)
        .map(|(_, e)| e)
        .filter(|e| matches!(e, Event::PeerSuspect(id) | Event::PeerDown(id) | Event::PeerLeft(id) if id.get() == 2))
        .collect();
    assert_eq!(
        about_2,
        [
            &Event::PeerLeft(NodeId::new(2)),
            &Event::PeerLeft(NodeId::new(2))
        ]
    );
    let syns_to_2 = |net: &Net| {
        net.count(0, 2, gossip::MessageKind::Syn) + net.count(1, 2, gossip::MessageKind::Syn)
    };
    assert_eq!(
        syns_to_2(&net),
        syns_before_leaving,
        "node 2 contacted after it left"
    );

    net.nodes[2] = Node::new(quick(2, 1), [common::member(0)]);
    net.down[2] = false;
    for _ in 0..5 {
        now += 100;
        net.round(now);
    }
    for i in 0..2 {
        assert_eq!(net.nodes[i].liveness(NodeId::new(2)), Some(Liveness::Alive));
    }
    assert_eq!(net.nodes[2].get("last"), Some("words"));
    assert_eq!(net.nodes[2].get("doomed"), None);
}

/// A member that joins after another left learns of the departure from the
/// member list, not only the members that heard the leaver say so: node 3,
/// which names node 0 only and starts after node 2 left, marks node 2 Left
/// at once, never contacts it, never suspects it, and collects a delete
/// without waiting for it. Before, the list carried members only, so node 3
/// took node 2 for alive, failed at it until it was Down, and held every
/// tombstone back for it for good. Node 2, restarted in a newer
/// incarnation, is alive again everywhere, node 3 included.
#[test]
fn a_member_that_joins_later_learns_who_left() {
    let mut nodes: Vec<Node> = (0..3)
        .map(|id| {
            Node::new(
                quick(id, 0),
                (0..3).filter(|&p| p != id).map(common::member),
            )
        })
        .collect();
    nodes.push(Node::new(quick(3, 0), [common::member(0)]));
    let mut net = Net::new(nodes);
    net.down[3] = true;
    let mut now = 1_000;
    for _ in 0..5 {
        now += 100;
        net.round(now);
    }
    net.nodes[2].leave(now);
    net.pump(now);
    net.down[2] = true;

    net.down[3] = false;
    for _ in 0..10 {
        now += 100;
        net.round(now);
    }
    let two = NodeId::new(2);
    assert!(net.nodes[3].members().iter().any(|m| m.id == two));
    assert_eq!(net.nodes[3].liveness(two), Some(Liveness::Left));
    net.nodes[3].put("doomed".into(), "v".into(), now).unwrap();
    for _ in 0..5 {
        now += 100;
        net.round(now);
    }
    net.nodes[0].delete("doomed".into(), now).unwrap();
    for _ in 0..60 {
        now += 100;
        net.round(now);
    }
    assert_eq!(
        net.count(3, 2, gossip::MessageKind::Syn),
        0,
        "node 3 contacted node 2"
    );
    for i in [0, 1, 3] {
        assert_eq!(net.nodes[i].liveness(two), Some(Liveness::Left), "node {i}");
        assert_eq!(
            net.nodes[i].map().tombstone_count(),
            0,
            "node {i} waits for node 2"
        );
    }
    let on_3: Vec<&Event> = net
        .events
        .iter()
        .filter(|(i, _)| *i == 3)
        .map(|(_, e)| e)
        .filter(|e| matches!(e, Event::PeerSuspect(id) | Event::PeerDown(id) | Event::PeerLeft(id) if *id == two))
        .collect();
    assert_eq!(on_3, [&Event::PeerLeft(two)]);

    net.nodes[2] = Node::new(quick(2, 1), [common::member(0)]);
    net.down[2] = false;
    for _ in 0..10 {
        now += 100;
        net.round(now);
    }
    for i in [0, 1, 3] {
        assert_eq!(
            net.nodes[i].liveness(two),
            Some(Liveness::Alive),
            "node {i}"
        );
        assert_eq!(net.nodes[i].members(), net.nodes[2].members(), "node {i}");
    }
}

/// Node 2 plants a false address for node 1, known to node 0 without one;
/// once node 1 itself speaks to node 0, its own address replaces the
/// planted one, and further hearsay does not bring it back.
#[test]
fn an_address_a_member_states_replaces_one_planted_by_another() {
    let planted = Member {
        id: NodeId::new(1),
        address: "10.6.6.6:7000".into(),
    };
    let mut zero = node(0, &[]);
    zero.add_member(Member {
        id: NodeId::new(1),
        address: String::new(),
    });
    zero.add_member(planted.clone());
    assert_eq!(zero.peers()[0].member, planted);
    let mut net = Net::new(vec![zero, node(1, &[0])]);
    net.tick(1, 1_000);
    net.pump(1_000);
    let one = net.nodes[0]
        .peers()
        .into_iter()
        .find(|peer| peer.member.id == NodeId::new(1))
        .unwrap();
    assert_eq!(one.member, addressed(1), "the planted address stuck");
    assert!(!net.nodes[0].add_member(planted));
    assert_eq!(net.nodes[0].members(), net.nodes[1].members());
}
