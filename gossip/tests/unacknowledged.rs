//! `Node::oldest_unacknowledged_write`: the oldest client write no peer is
//! known to hold, which a crash of the writer would lose.

#![allow(clippy::unwrap_used)]

mod common;

use common::Net;
use lww_crdt::Hlc;

const INTERVAL: u64 = 100;

/// Three nodes; `max_message_bytes` small enough to cut a few thousand
/// entries into parts.
fn net(max_message_bytes: usize) -> Net {
    Net::full(3, |b| {
        b.fanout(2)
            .tick_interval_ms(INTERVAL)
            .exchange_timeout_ms(150)
            .max_message_bytes(max_message_bytes)
    })
}

#[test]
fn a_write_is_unacknowledged_until_a_peer_is_known_to_hold_it() {
    let mut net = net(1 << 20);
    let mut now = 1_000;
    net.round(now);
    assert_eq!(net.nodes[0].oldest_unacknowledged_write(), None);

    let first = net.nodes[0].put("a".into(), "1".into(), now).unwrap();
    now += 1;
    net.nodes[0].put("b".into(), "2".into(), now).unwrap();
    assert_eq!(net.nodes[0].oldest_unacknowledged_write(), Some(first.hlc));

    // Cut off: nobody learns of them, however long it lasts.
    net.down[1] = true;
    net.down[2] = true;
    for _ in 0..5 {
        now += INTERVAL;
        net.round(now);
    }
    assert_eq!(net.nodes[0].oldest_unacknowledged_write(), Some(first.hlc));

    net.down[1] = false;
    net.down[2] = false;
    let mut rounds = 0;
    while net.nodes[0].oldest_unacknowledged_write().is_some() {
        rounds += 1;
        assert!(rounds < 10, "still unacknowledged after {rounds} rounds");
        now += INTERVAL;
        net.round(now);
    }
    assert!(net.nodes[1..].iter().all(|n| n.get("b") == Some("2")));
}

#[test]
fn past_the_queue_the_oldest_is_found_in_the_map() {
    let mut net = net(8 * 1024);
    let mut now = 1_000;
    net.round(now);
    net.down[1] = true;
    net.down[2] = true;
    let mut stamps: Vec<Hlc> = Vec::new();
    for i in 0..3_000 {
        now += 1;
        let stamp = net.nodes[0].put(format!("k{i}"), "v".into(), now).unwrap();
        stamps.push(stamp.hlc);
    }
    net.down[1] = false;
    net.down[2] = false;
    // Deltas are cut to a budget, so peers take the writes in parts: the
    // oldest unacknowledged write moves forward through them, and is
    // always one of them, also once the queue of the first ones drained.
    let mut last = net.nodes[0].oldest_unacknowledged_write().unwrap();
    assert_eq!(last, stamps[0]);
    let mut seen_past_queue = false;
    for _ in 0..200 {
        now += INTERVAL;
        net.round(now);
        match net.nodes[0].oldest_unacknowledged_write() {
            Some(oldest) => {
                assert!(oldest >= last, "moved back from {last:?} to {oldest:?}");
                assert!(stamps.contains(&oldest));
                seen_past_queue |= oldest > stamps[1_023];
                last = oldest;
            }
            None => break,
        }
    }
    assert_eq!(net.nodes[0].oldest_unacknowledged_write(), None);
    assert!(net.nodes[1..].iter().all(|n| n.map().len() == 3_000));
    assert!(seen_past_queue, "the scan past the queue was not exercised");
}
