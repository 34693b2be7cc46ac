//! Deltas in flight: a node sends each entry to a peer once, even when both
//! sides' exchanges cross or a `Syn` comes twice, and sends a range again
//! when the delta carrying it was lost.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Net, member};
use gossip::{Config, MessageKind, Node};
use lww_crdt::{Hlc, NodeId};

const KEYS: usize = 300;

/// Node 0 holds `KEYS` keys, node 1 nothing; messages hold about 20 entries,
/// so a catch-up takes many deltas.
fn catch_up_pair() -> Net {
    let config = |id| {
        Config::builder(NodeId::new(id))
            .fanout(1)
            .max_message_bytes(2_048)
            .build()
            .unwrap()
    };
    let mut a = Node::new(config(0), [member(1)]);
    for i in 0..KEYS {
        a.put(
            format!("key-{i:04}"),
            format!("value-{i}"),
            1_000 + i as u64,
        )
        .unwrap();
    }
    let b = Node::new(config(1), [member(0)]);
    Net::new(vec![a, b])
}

/// A gossip round a second after `now` until node 1 holds node 0's map.
fn rounds_until_caught_up(net: &mut Net, mut now: u64) {
    let mut rounds = 0;
    while !caught_up(net) {
        now += 1_000;
        net.round(now);
        rounds += 1;
        assert!(rounds < 100, "no catch-up after {rounds} rounds");
    }
    assert!(net.refused.is_empty(), "{:?}", net.refused);
}

fn caught_up(net: &Net) -> bool {
    net.nodes[0].map() == net.nodes[1].map()
}

#[test]
fn crossing_exchanges_carry_each_entry_once() {
    let mut net = catch_up_pair();
    let mut now = 10_000;
    let mut rounds = 0;
    while !caught_up(&net) {
        // Both open an exchange at once: the seeded node answers one with a
        // delta, and fills its own with the next one, not the same.
        net.round(now);
        now += 1_000;
        rounds += 1;
        assert!(rounds < 100, "no catch-up after {rounds} rounds");
    }
    assert!(net.refused.is_empty(), "{:?}", net.refused);
    let (a, b) = (net.nodes[0].metrics(), net.nodes[1].metrics());
    assert!(
        net.count(0, 1, MessageKind::SynAck) > 0 && net.count(0, 1, MessageKind::Ack) > 0,
        "deltas went both ways: {:?}",
        net.log
    );
    assert_eq!(a.entries_sent, KEYS as u64, "every entry once");
    assert_eq!(b.entries_received, KEYS as u64);
    assert_eq!(b.entries_redundant, 0);
}

#[test]
fn a_lost_delta_is_sent_again() {
    let mut net = catch_up_pair();
    let now = 10_000;
    net.tick_all(now);
    // Lose the first delta the seeded node sends; the one after it, which
    // counted on it, arrives and must not be taken.
    let mut lost = false;
    while let Some((from, to, kind, bytes)) = net.peek() {
        let drop = !lost && from == 0 && kind == MessageKind::SynAck && bytes > 500;
        net.down[to] = drop;
        net.step(now);
        net.down[to] = false;
        lost |= drop;
    }
    assert!(lost);
    // An empty part may still tell that node 0 wrote nothing before its
    // first entry; the vector must claim none of the entries.
    let first_write = Hlc::new(1_000, 0);
    assert!(
        net.nodes[1].version_vector().get(NodeId::new(0)) < first_write,
        "nothing claimed"
    );
    assert_eq!(net.nodes[1].map().entry_count(), 0, "nothing taken");
    rounds_until_caught_up(&mut net, now);
    assert!(net.nodes[0].metrics().entries_sent > KEYS as u64, "resent");
    assert!(
        net.nodes[1].metrics().entries_redundant > 0,
        "the overtaking delta was left out"
    );
}

#[test]
fn a_delta_that_overtakes_the_one_it_follows_is_held_until_that_lands() {
    let mut net = catch_up_pair();
    let now = 10_000;
    net.tick_all(now);
    // Hold the seeded node's first delta back until the next one has
    // landed: the next one starts where the held one ends.
    let mut held = None;
    while let Some((from, _, kind, bytes)) = net.peek() {
        if held.is_none() && from == 0 && kind == MessageKind::SynAck && bytes > 500 {
            held = net.hold();
            continue;
        }
        net.step(now);
    }
    let before = net.nodes[1].map().entry_count();
    assert!(before == 0, "the later delta waits");
    net.release(held.expect("a delta was sent"));
    net.pump(now);
    let after = net.nodes[1].map().entry_count();
    assert!(after > 20, "both deltas applied: {after} entries");
    rounds_until_caught_up(&mut net, now);
    assert_eq!(
        net.nodes[0].metrics().entries_sent,
        KEYS as u64,
        "nothing resent"
    );
    assert_eq!(net.nodes[1].metrics().entries_redundant, 0);
}

#[test]
fn frames_delivered_in_any_order_still_carry_each_entry_about_once() {
    for seed in 0..20 {
        let mut net = catch_up_pair();
        let mut now = 10_000;
        let mut steps = 0;
        while !caught_up(&net) {
            net.tick_all(now);
            // A few frames a millisecond, in random order, with ticks of
            // both nodes in between: exchanges overlap and deltas overtake.
            net.shuffle(seed * 100_000 + steps);
            for _ in 0..3 {
                net.step(now);
            }
            now += 300;
            steps += 1;
            assert!(steps < 10_000, "seed {seed}: no catch-up");
        }
        assert!(net.refused.is_empty(), "{:?}", net.refused);
        let sent = net.nodes[0].metrics().entries_sent;
        assert!(
            sent <= KEYS as u64 * 5 / 4,
            "seed {seed}: {sent} entries sent for {KEYS}"
        );
    }
}

/// Node 0 holds one key, node 1 nothing; node 1 has just sent its `Syn`
/// (queued, not carried yet).
fn colour_pair_syncing(now: u64) -> Net {
    let mut net = Net::full(2, |b| b.fanout(1));
    net.nodes[0]
        .put("colour".to_owned(), "blue".to_owned(), now)
        .unwrap();
    net.tick(1, now);
    net
}

#[test]
fn a_duplicated_syn_is_answered_once() {
    // A second answer would carry a second delta that is never taken, left
    // in flight until its deadline.
    let now = 10_000;
    let mut net = colour_pair_syncing(now);
    let syn = net.hold().expect("node 1's Syn");
    net.release(syn.clone());
    net.release(syn);
    net.pump(now);
    assert_eq!(net.count(0, 1, MessageKind::SynAck), 1, "{:?}", net.log);
    assert_eq!(net.nodes[1].get("colour"), Some("blue"));
    assert!(net.refused.is_empty(), "{:?}", net.refused);
}

#[test]
fn a_restarted_peer_is_answered_though_it_reuses_an_exchange_number() {
    let now = 10_000;
    let mut net = colour_pair_syncing(now);
    net.step(now).expect("node 1's Syn reaches node 0");
    net.hold()
        .expect("node 0's SynAck, lost with node 1's first life");
    // Node 1 restarts empty, in a new incarnation, within the exchange
    // timeout: its first exchange has the number its old life's first had.
    let config = Config::builder(NodeId::new(1))
        .fanout(1)
        .incarnation(1)
        .build()
        .unwrap();
    net.nodes[1] = Node::new(config, [member(0)]);
    let later = now + 100;
    net.tick(1, later);
    net.pump(later);
    // The held SynAck never reached the log: this one answers the new life.
    assert_eq!(net.count(0, 1, MessageKind::SynAck), 1, "{:?}", net.log);
    assert_eq!(net.nodes[1].get("colour"), Some("blue"));
}
