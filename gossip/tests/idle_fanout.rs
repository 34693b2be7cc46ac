//! The idle fan-out: a node whose last round found nothing new contacts
//! fewer peers, and goes back to the full fan-out as soon as it writes,
//! receives something, or meets a vector or member list unlike its own.

mod common;

use common::Net;
use gossip::{ConfigBuilder, MessageKind};

const NODES: u64 = 12;
const TICK_MS: u64 = 1_000;

fn quiet_net(idle_fanout: Option<usize>) -> Net {
    let mut net = Net::full(NODES, |b: ConfigBuilder| {
        b.tick_interval_ms(TICK_MS).idle_fanout(idle_fanout)
    });
    // Rounds until every pair has compared hashes and all is quiet.
    for round in 1..=10 {
        net.round(round * TICK_MS);
    }
    net
}

/// `Syn`s sent by `node` (or by all, if `None`) in one round at `now_ms`.
fn syns_in_round(net: &mut Net, now_ms: u64, node: Option<usize>) -> usize {
    let before = net.log.len();
    net.round(now_ms);
    net.log[before..]
        .iter()
        .filter(|s| s.kind == MessageKind::Syn && node.is_none_or(|n| s.from == n))
        .count()
}

#[test]
fn a_quiet_cluster_contacts_one_peer_per_node_and_round() {
    let mut idle = quiet_net(Some(1));
    let mut busy = quiet_net(None);
    assert_eq!(syns_in_round(&mut idle, 11 * TICK_MS, None), NODES as usize);
    assert_eq!(
        syns_in_round(&mut busy, 11 * TICK_MS, None),
        3 * NODES as usize
    );
}

#[test]
fn a_write_and_what_it_reaches_go_back_to_the_full_fanout() {
    let mut net = quiet_net(Some(1));
    net.nodes[5]
        .put("key".into(), "value".into(), 11 * TICK_MS)
        .expect("write taken");
    // The writer's next round reaches three peers.
    assert_eq!(syns_in_round(&mut net, 11 * TICK_MS, Some(5)), 3);
    let reached: Vec<usize> = (0..NODES as usize)
        .filter(|&i| i != 5 && net.nodes[i].get("key").is_some())
        .collect();
    assert!(!reached.is_empty());
    // Every node that took the write in that round reaches three peers in
    // the next.
    let before = net.log.len();
    net.round(12 * TICK_MS);
    for node in reached {
        let syns = net.log[before..]
            .iter()
            .filter(|s| s.kind == MessageKind::Syn && s.from == node)
            .count();
        assert_eq!(syns, 3, "node {node} took the write but stayed idle");
    }
    // And the write spreads as with the full fan-out.
    for round in 13..=20 {
        net.round(round * TICK_MS);
    }
    assert!(net.nodes.iter().all(|n| n.get("key") == Some("value")));
    // Once quiet again, the cluster is back to one exchange per node.
    assert_eq!(syns_in_round(&mut net, 21 * TICK_MS, None), NODES as usize);
}

#[test]
fn an_idle_fanout_of_zero_is_refused() {
    let config = common::builder(1).idle_fanout(Some(0)).build();
    assert_eq!(config, Err(gossip::ConfigError::ZeroFanout));
}
