//! Pulling: a node that gets a delta cut to the message budget opens the next
//! exchanges with its sender at once, so a catch-up runs at the pace the
//! nodes apply it, not one message per tick, and still carries each entry
//! once.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Net, member};
use gossip::{Config, ConfigError, Liveness, MAX_PULL_DEPTH, MessageKind, Node};
use lww_crdt::NodeId;

const KEYS: usize = 300;

/// Node 0 holds `KEYS` keys, node 1 nothing; messages hold about 20 entries,
/// so the catch-up takes some 15 deltas.
fn catch_up_pair(pull_depth: usize) -> Net {
    let config = |id| {
        Config::builder(NodeId::new(id))
            .fanout(1)
            .max_message_bytes(2_048)
            .pull_depth(pull_depth)
            .build()
            .unwrap()
    };
    let mut seeded = Node::new(config(0), [member(1)]);
    for i in 0..KEYS {
        seeded
            .put(
                format!("key-{i:04}"),
                format!("value-{i}"),
                1_000 + i as u64,
            )
            .unwrap();
    }
    let fresh = Node::new(config(1), [member(0)]);
    Net::new(vec![seeded, fresh])
}

/// The fresh node ticks once; every frame that follows is carried.
fn one_tick_of_the_fresh_node(net: &mut Net) {
    let now = 10_000;
    net.tick(1, now);
    net.pump(now);
    assert!(net.refused.is_empty(), "{:?}", net.refused);
}

/// The most exchanges the fresh node had open with the seeded node at once,
/// as seen on the wire: `Syn`s carried less `SynAck`s carried back.
fn most_open_at_once(net: &Net) -> usize {
    let mut open = 0_i64;
    let mut most = 0;
    for sent in &net.log {
        match (sent.from, sent.kind) {
            (1, MessageKind::Syn) => open += 1,
            (0, MessageKind::SynAck) => open -= 1,
            _ => {}
        }
        most = most.max(open);
    }
    usize::try_from(most).unwrap()
}

#[test]
fn a_node_far_behind_catches_up_within_one_tick() {
    let mut net = catch_up_pair(MAX_PULL_DEPTH);
    one_tick_of_the_fresh_node(&mut net);
    assert_eq!(
        net.nodes[1].map(),
        net.nodes[0].map(),
        "caught up without another tick"
    );
    assert_eq!(net.nodes[1].version_vector(), net.nodes[0].version_vector());
    let (seeded, fresh) = (net.nodes[0].metrics(), net.nodes[1].metrics());
    let deltas = net.count(0, 1, MessageKind::SynAck);
    assert!(deltas > 10, "the catch-up took many deltas: {deltas}");
    assert!(
        fresh.exchanges_pulled as usize >= deltas - 1,
        "every delta after the first was pulled: {fresh:?}"
    );
    assert_eq!(
        most_open_at_once(&net),
        MAX_PULL_DEPTH,
        "the seeded node prepared the next parts while the fresh one applied"
    );
    assert_eq!(seeded.entries_sent, KEYS as u64, "every entry once");
    assert_eq!(fresh.entries_redundant, 0);
}

#[test]
fn pulling_stops_once_caught_up() {
    let mut net = catch_up_pair(MAX_PULL_DEPTH);
    one_tick_of_the_fresh_node(&mut net);
    let pulled = net.nodes[1].metrics().exchanges_pulled;
    let sent = net.log.len();
    // Equal now: each tick's exchange is a hash and its answer.
    for round in 1..=3 {
        net.round(10_000 + round * 1_000);
    }
    assert_eq!(net.nodes[1].metrics().exchanges_pulled, pulled);
    assert!(net.log.len() - sent <= 3 * 2 * 2, "{:?}", &net.log[sent..]);
}

#[test]
fn a_pull_depth_of_zero_keeps_catch_up_at_one_delta_per_tick() {
    let mut net = catch_up_pair(0);
    one_tick_of_the_fresh_node(&mut net);
    let fresh = net.nodes[1].metrics();
    assert_eq!(fresh.exchanges_pulled, 0);
    assert_eq!(net.count(0, 1, MessageKind::SynAck), 1);
    assert!(
        net.nodes[1].map().entry_count() < KEYS / 4,
        "one delta's worth: {}",
        net.nodes[1].map().entry_count()
    );
    assert_eq!(most_open_at_once(&net), 1);
}

#[test]
fn a_lost_pulled_delta_is_sent_again() {
    let mut net = catch_up_pair(MAX_PULL_DEPTH);
    let now = 10_000;
    net.tick(1, now);
    // Lose the third delta, which the fresh node pulled; the ones pulled
    // with it counted on it, and must not be taken past it.
    let mut deltas = 0;
    while let Some((from, to, kind, _)) = net.peek() {
        let lose = from == 0 && kind == MessageKind::SynAck && {
            deltas += 1;
            deltas == 3
        };
        net.down[to] = lose;
        net.step(now);
        net.down[to] = false;
    }
    assert!(deltas > 3);
    assert_ne!(net.nodes[1].map(), net.nodes[0].map(), "a part is missing");
    let mut now = now;
    let mut rounds = 0;
    while net.nodes[1].map() != net.nodes[0].map() {
        now += 1_000;
        net.round(now);
        rounds += 1;
        assert!(rounds < 20, "no catch-up after {rounds} rounds");
    }
    assert_eq!(net.nodes[1].version_vector(), net.nodes[0].version_vector());
    assert!(net.refused.is_empty(), "{:?}", net.refused);
}

#[test]
fn a_pull_depth_above_the_peer_in_flight_limit_is_refused() {
    let built = Config::builder(NodeId::new(1))
        .pull_depth(MAX_PULL_DEPTH + 1)
        .build();
    assert_eq!(built, Err(ConfigError::PullDepth(MAX_PULL_DEPTH + 1)));
}

#[test]
fn a_node_whose_vector_would_crowd_the_message_does_not_pull() {
    // 30 writers: a vector of 30 origins takes more than a quarter of a
    // 2 KiB message, so each pulled `Syn` would cost more than it saves.
    let mut net = Net::full(30, |b| b.fanout(1).max_message_bytes(2_048));
    let mut now = 10_000;
    for (i, node) in net.nodes.iter_mut().enumerate() {
        node.put(format!("writer-{i}"), "here".to_owned(), now)
            .unwrap();
    }
    let mut rounds = 0;
    while net.nodes.iter().any(|n| n.map() != net.nodes[0].map()) {
        now += 1_000;
        net.round(now);
        rounds += 1;
        assert!(rounds < 50, "no convergence after {rounds} rounds");
    }
    for i in 0..KEYS {
        net.nodes[0]
            .put(format!("key-{i:04}"), format!("value-{i}"), now + i as u64)
            .unwrap();
    }
    now += 1_000;
    net.round(now);
    // Node 0's peers this round got one cut delta each, and still lack most.
    let behind = net.nodes[1..]
        .iter()
        .filter(|n| n.map().entry_count() > 30 && n.map().entry_count() < 30 + KEYS / 2)
        .count();
    assert!(behind > 0, "some node got part of the new keys");
    let pulled: u64 = net.nodes.iter().map(|n| n.metrics().exchanges_pulled).sum();
    assert_eq!(pulled, 0);
    assert!(net.refused.is_empty(), "{:?}", net.refused);
}

#[test]
fn a_node_pulls_from_one_peer_at_a_time() {
    // Nodes 0 and 1 hold the same keys; node 2, fresh, opens an exchange
    // with both. Both answer with the same first part, but only one of them
    // is pulled from: the other would send the same next parts again.
    let config = |id| {
        Config::builder(NodeId::new(id))
            .fanout(2)
            .max_message_bytes(2_048)
            .build()
            .unwrap()
    };
    let mut seeded = Node::new(config(0), [member(1), member(2)]);
    for i in 0..KEYS {
        seeded
            .put(
                format!("key-{i:04}"),
                format!("value-{i}"),
                1_000 + i as u64,
            )
            .unwrap();
    }
    let copy = Node::new(config(1), [member(0), member(2)]);
    let fresh = Node::new(config(2), [member(0), member(1)]);
    let mut net = Net::new(vec![seeded, copy, fresh]);
    // Node 2 stays away until node 1 holds everything.
    net.down[2] = true;
    let mut now = 10_000;
    while net.nodes[1].map() != net.nodes[0].map() {
        now += 1_000;
        net.round(now);
    }
    let sent_before: Vec<u64> = (0..2)
        .map(|i| net.nodes[i].metrics().entries_sent)
        .collect();
    net.down[2] = false;
    now += 1_000;
    net.tick(2, now);
    net.pump(now);
    assert_eq!(
        net.nodes[2].map(),
        net.nodes[0].map(),
        "caught up in one tick"
    );
    assert!(net.refused.is_empty(), "{:?}", net.refused);
    let sent: Vec<u64> = (0..2)
        .map(|i| net.nodes[i].metrics().entries_sent - sent_before[i])
        .collect();
    let received = net.nodes[2].metrics().entries_received;
    // One peer sent all but its first part; the other, one part only.
    assert!(
        sent.iter().any(|&s| s < KEYS as u64 / 4),
        "one peer sent one part: {sent:?}"
    );
    assert!(
        received < KEYS as u64 * 5 / 4,
        "{received} entries for {KEYS}"
    );
}

#[test]
fn on_a_slow_link_a_node_pulls_one_exchange_at_a_time() {
    // Each answer takes a second to arrive, a third of the exchange timeout
    // (3 s): three answers sharing the link would come at its deadline.
    let mut net = catch_up_pair(MAX_PULL_DEPTH);
    let mut now = 10_000;
    net.tick(1, now);
    let mut steps = 0;
    while let Some((from, _, kind, _)) = net.peek() {
        if from == 0 && kind == MessageKind::SynAck {
            now += 1_000;
        }
        net.step(now);
        steps += 1;
        assert!(steps < 10_000);
    }
    assert_eq!(net.nodes[1].map(), net.nodes[0].map(), "caught up");
    assert_eq!(most_open_at_once(&net), 1);
    let fresh = net.nodes[1].metrics();
    assert_eq!(fresh.messages_late, 0, "{fresh:?}");
    assert!(fresh.exchanges_pulled > 5, "{fresh:?}");
}

#[test]
fn a_peer_lost_in_the_middle_of_a_pull_counts_one_failure_not_one_per_exchange() {
    let mut net = catch_up_pair(MAX_PULL_DEPTH);
    let mut now = 10_000;
    net.tick(1, now);
    // Carry frames until the fresh node has pulled; then the seeded node
    // goes silent.
    while net.nodes[1].metrics().exchanges_pulled < MAX_PULL_DEPTH as u64 {
        net.step(now).expect("frames until the pull");
    }
    net.down[0] = true;
    net.pump(now);
    // Past every deadline: the pulled exchanges expire, and the tick opens a
    // new exchange, which fails in turn.
    now += 3_001;
    net.tick(1, now);
    net.pump(now);
    assert_eq!(
        net.nodes[1].liveness(NodeId::new(0)),
        Some(Liveness::Alive),
        "expired pulls count nothing"
    );
    for _ in 0..2 {
        now += 3_001;
        net.tick(1, now);
        net.pump(now);
    }
    assert_eq!(
        net.nodes[1].liveness(NodeId::new(0)),
        Some(Liveness::Suspect),
        "two failed ticks make it suspect"
    );
}
