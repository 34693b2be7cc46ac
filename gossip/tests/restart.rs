//! A member restarted without its state, under its old id, with a physical
//! clock that went backwards.
//!
//! It restarts under a new incarnation, so it writes under a new origin
//! (`gossip::writer_origin`): it never issues a stamp at or below one it
//! issued before in the only order that makes peers skip a write, the
//! per-origin order of version vectors. No peer's vector covers any of its
//! new stamps, while every peer's vector would have covered them under the
//! old origin; so every peer takes its new writes, even those whose clock
//! reading lies below the earlier life's.
//!
//! Across origins, last-writer-wins still orders writes by timestamp: a new
//! write to a key that the earlier life wrote with a later clock reading
//! loses to it. The test pins that down as the reference says (the greatest
//! stamp wins), so a change there is seen.

mod common;

use std::collections::BTreeMap;

use common::{Net, builder, member};
use gossip::{Node, writer_origin};
use lww_crdt::{Entry, NodeId, Stamp};

const T: u64 = 10_000_000;
/// A short gossip interval, so that rounds fit inside the 400 ms the clock
/// goes back.
const ROUND: u64 = 10;

fn configure(b: gossip::ConfigBuilder) -> gossip::ConfigBuilder {
    b.fanout(2)
        .tick_interval_ms(ROUND)
        .exchange_timeout_ms(2 * ROUND)
}

fn rounds(net: &mut Net, now: &mut u64, count: usize) {
    for _ in 0..count {
        *now += ROUND;
        net.round(*now);
    }
}

#[test]
fn a_restarted_node_whose_clock_went_back_writes_under_a_new_origin_that_every_peer_takes() {
    let mut net = Net::full(3, configure);
    // Node 0's clock runs 400 ms ahead in its first life.
    net.skew[0] = 400;
    let mut now = T;
    let mut written: Vec<(String, Stamp, Option<String>)> = Vec::new();
    let mut write = |net: &mut Net, node: usize, key: &str, value: &str, now: u64| {
        let local = net.local(node, now);
        let stamp = net.nodes[node]
            .put(key.to_owned(), value.to_owned(), local)
            .unwrap();
        written.push((key.to_owned(), stamp, Some(value.to_owned())));
        stamp
    };
    let early = write(&mut net, 0, "early", "old-early", now - 1_000);
    let old_k = write(&mut net, 0, "k", "old-k", now);
    let old_j = write(&mut net, 0, "j", "old-j", now + 1);
    write(&mut net, 1, "other", "from-1", now);
    rounds(&mut net, &mut now, 3);
    assert!(net.nodes.iter().all(|n| n.map() == net.nodes[0].map()));
    let old_origin = writer_origin(NodeId::new(0), 0);
    assert!([early, old_k, old_j].iter().all(|s| s.origin == old_origin));

    // Crash: the state is gone. Restart under the old id and a new
    // incarnation, with the clock corrected: 400 ms behind the last stamp
    // it issued.
    let config = configure(builder(0)).incarnation(1).build().unwrap();
    net.nodes[0] = Node::new(config, [member(1), member(2)]);
    net.skew[0] = 0;
    assert!(net.nodes[0].map().is_empty());
    let new_origin = writer_origin(NodeId::new(0), 1);
    assert_eq!(net.nodes[0].origin(), new_origin);
    assert_ne!(new_origin, old_origin);

    let restart = now + 1;
    let new_early = write(&mut net, 0, "early", "new-early", restart);
    let new_k = write(&mut net, 0, "k", "new-k", restart);
    let fresh = write(&mut net, 0, "fresh", "new-fresh", restart);
    let new_stamps = [new_early, new_k, fresh];
    assert!(new_k.hlc < old_j.hlc, "the clock did go back");
    for stamp in new_stamps {
        assert_eq!(stamp.origin, new_origin);
        for old in [early, old_k, old_j] {
            assert_ne!(stamp, old);
        }
        for peer in 1..3 {
            let vector = net.nodes[peer].version_vector();
            assert!(!vector.covers(stamp), "peer {peer} would skip {stamp}");
            // Under the old origin, the same clock reading would have been
            // skipped as already seen.
            assert!(vector.covers(Stamp::new(stamp.hlc, old_origin)));
        }
    }
    assert!(new_early < new_k && new_k < fresh, "strictly increasing");

    rounds(&mut net, &mut now, 4);
    assert!(net.refused.is_empty(), "{:?}", net.refused);
    let mut winners: BTreeMap<String, Entry<String>> = BTreeMap::new();
    for (key, stamp, value) in written {
        let entry = Entry { stamp, value };
        if winners.get(&key).is_none_or(|best| *best < entry) {
            winners.insert(key, entry);
        }
    }
    for (i, node) in net.nodes.iter().enumerate() {
        for (key, entry) in &winners {
            assert_eq!(node.get_entry(key), Some(entry), "node {i}, key {key}");
        }
        assert_eq!(node.map().entry_count(), winners.len());
        assert_eq!(node.get("early"), Some("new-early"));
        assert_eq!(node.get("fresh"), Some("new-fresh"));
        // The earlier life's later clock reading wins this one.
        assert_eq!(node.get("k"), Some("old-k"));
        assert!(node.version_vector().covers(fresh));
    }
}
