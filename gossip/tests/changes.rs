//! The change log a durable caller keeps (`Node::record_changes`): written
//! to a copy of the map in the order it comes, it rebuilds the node's map
//! exactly, through client writes, deltas from peers (with entries that
//! lose to newer ones) and tombstone collection.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use common::Net;
use gossip::Change;
use lww_crdt::Entry;

const INTERVAL: u64 = 100;

/// What a durable copy holds: the entries the log wrote, less the keys it
/// collected.
fn replay(copy: &mut BTreeMap<String, Entry<String>>, changes: Vec<Change>) {
    for change in changes {
        match change {
            Change::Wrote { key, entry, .. } => {
                copy.insert(key, entry);
            }
            Change::Collected { key } => {
                copy.remove(&key);
            }
        }
    }
}

fn entries(net: &Net, node: usize) -> BTreeMap<String, Entry<String>> {
    net.nodes[node]
        .map()
        .entries()
        .map(|(key, entry)| (key.clone(), entry.clone()))
        .collect()
}

/// Runs a round and replays node 0's log into `copy`; returns how many
/// tombstones it collected. Checks that no change is logged twice: the same
/// write reaching the node from two peers, or twice from one, is one change.
fn round_and_replay(net: &mut Net, now: u64, copy: &mut BTreeMap<String, Entry<String>>) -> usize {
    net.round(now);
    let changes = net.nodes[0].take_changes();
    for change in &changes {
        if let Change::Wrote { key, entry, .. } = change {
            assert_ne!(
                copy.get(key).map(|held| held.stamp),
                Some(entry.stamp),
                "{key} at {} logged again",
                entry.stamp
            );
        }
    }
    let collected = changes
        .iter()
        .filter(|c| matches!(c, Change::Collected { .. }))
        .count();
    replay(copy, changes);
    collected
}

#[test]
fn replaying_the_change_log_rebuilds_the_map_through_writes_deltas_and_collection() {
    let mut net = Net::full(3, |b| {
        b.fanout(2)
            .tick_interval_ms(INTERVAL)
            .exchange_timeout_ms(150)
            .gc_every_ticks(2)
    });
    net.nodes[0].record_changes();
    let mut copy = BTreeMap::new();
    let mut now = 10_000;
    let mut collected = 0;
    for round in 0..60u64 {
        let writer = (round % 3) as usize;
        let key = format!("k{}", round % 7);
        if round % 5 == 4 {
            net.nodes[writer].delete(key, now).unwrap();
        } else {
            net.nodes[writer]
                .put(key, format!("v{round}"), now)
                .unwrap();
        }
        now += INTERVAL;
        collected += round_and_replay(&mut net, now, &mut copy);
        assert_eq!(copy, entries(&net, 0), "after round {round}");
    }
    // Quiet rounds, until every tombstone is collected everywhere.
    for _ in 0..40 {
        now += INTERVAL;
        collected += round_and_replay(&mut net, now, &mut copy);
    }
    assert_eq!(copy, entries(&net, 0));
    assert!(collected > 0, "no tombstone was collected");
    assert_eq!(net.nodes[0].map().tombstone_count(), 0);
    // A node that does not record keeps no log.
    assert!(net.nodes[1].take_changes().is_empty());
}

/// The same write reaching a node from two peers in one round is one
/// change: node 2's delta brings `w2`, then node 1's brings `w1` and `w2`
/// again. A watcher used to hear of `w2` twice.
#[test]
fn a_write_arriving_twice_is_logged_once() {
    let mut net = Net::full(3, |b| {
        b.fanout(2)
            .tick_interval_ms(INTERVAL)
            .exchange_timeout_ms(50)
    });
    let mut now = 10_000;
    net.round(now);
    // Node 0 away: node 2's write reaches node 1 only; node 1 writes too.
    net.down[0] = true;
    net.nodes[2].put("w2".into(), "2".into(), now).unwrap();
    now += INTERVAL;
    net.round(now);
    assert_eq!(net.nodes[1].get("w2"), Some("2"));
    net.nodes[1].put("w1".into(), "1".into(), now).unwrap();
    net.down[0] = false;
    net.nodes[0].record_changes();
    // Both open exchanges with node 0 before it answers either: node 2's
    // delta lands first, then node 1's.
    now += INTERVAL;
    net.tick(2, now);
    net.tick(1, now);
    net.pump(now);
    let mut seen = BTreeMap::new();
    for change in net.nodes[0].take_changes() {
        if let Change::Wrote { key, entry, .. } = change {
            assert!(
                seen.insert(key.clone(), entry.stamp).is_none(),
                "{key} logged twice"
            );
        }
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
}
