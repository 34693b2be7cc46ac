//! Tombstone collection learns only what a peer surely holds: a `Behind`
//! answer describes the responder against the vector the initiator's `Syn`
//! carried, so if the initiator's vector moved in between, the answer says
//! nothing about the responder's hold on the newer writes.

#![allow(clippy::unwrap_used)]

mod common;

use common::Net;
use gossip::MessageKind;

const INTERVAL: u64 = 100;

fn three_nodes() -> Net {
    Net::full(3, |b| {
        b.fanout(2)
            .tick_interval_ms(INTERVAL)
            .exchange_timeout_ms(150)
            .gc_every_ticks(2)
    })
}

/// Every node up ticks and every frame is carried, until all maps agree.
fn rounds_until_equal(net: &mut Net, mut now: u64) -> u64 {
    let mut rounds = 0;
    while net.nodes.iter().any(|n| n.map() != net.nodes[0].map()) {
        now += INTERVAL;
        net.round(now);
        rounds += 1;
        assert!(rounds < 200, "no convergence after {rounds} rounds");
    }
    now
}

#[test]
fn a_delete_learned_during_an_exchange_is_not_collected_while_the_responder_lacks_it() {
    let mut net = three_nodes();
    let mut now = 10_000;
    // Node 2 writes and pushes it to both others, which have not met yet.
    net.nodes[2]
        .put("colour".to_owned(), "blue".to_owned(), now)
        .unwrap();
    net.tick(2, now);
    net.pump(now);
    assert!(net.nodes.iter().all(|n| n.get("colour") == Some("blue")));
    // Node 1 writes, so it is ahead of node 0 and nowhere behind; node 2
    // deletes.
    now += 1;
    net.nodes[1]
        .put("shape".to_owned(), "square".to_owned(), now)
        .unwrap();
    net.nodes[2].delete("colour".to_owned(), now).unwrap();
    // Node 0 opens exchanges with both. It learns the delete from node 2
    // while node 1's answer, a `Behind` digest against the vector node 0
    // sent, is held back.
    net.tick(0, now);
    let mut held = None;
    while let Some((from, to, kind, _)) = net.peek() {
        if held.is_none() && (from, to, kind) == (1, 0, MessageKind::SynAck) {
            held = net.hold();
            continue;
        }
        net.step(now);
    }
    assert_eq!(net.nodes[0].get("colour"), None, "node 0 took the delete");
    // Node 0's second tick snapshots its vector, delete included; then node
    // 1's answer lands, within its exchange's deadline.
    now += INTERVAL;
    net.tick(0, now);
    net.pump(now);
    net.release(held.expect("node 1 answered"));
    net.step(now);
    // Node 1 is cut off before anything brings it the delete.
    net.down[1] = true;
    net.pump(now);
    assert_eq!(net.nodes[1].get("colour"), Some("blue"));

    for _ in 0..40 {
        now += INTERVAL;
        net.round(now);
    }
    assert_eq!(
        net.nodes[0].metrics().tombstones_purged,
        0,
        "node 0 collected a delete that node 1 lacks"
    );
    net.down[1] = false;
    rounds_until_equal(&mut net, now);
    assert_eq!(
        net.nodes[1].get("colour"),
        None,
        "the delete reached node 1"
    );
    assert!(net.refused.is_empty(), "{:?}", net.refused);
}
