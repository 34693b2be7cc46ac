//! Members and their addresses spread through the exchanges themselves: a
//! node named by no one joins by contacting one member, and that member
//! learns the newcomer's advertised address from the newcomer's own member
//! list, even when their maps are equal and the exchange carries no data.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Net, builder};
use gossip::{Member, Node};
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
