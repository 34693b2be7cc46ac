//! Tombstone collection against members that stay away: a member down for
//! less than the eviction time holds collection back; one down for longer is
//! evicted, stops holding it back, and on return drops its state and rejoins
//! without bringing a collected delete's value back.

use transport_mem::{Cluster, ClusterConfig};

fn cluster(nodes: usize, eviction_rounds: u64) -> Cluster {
    Cluster::new(ClusterConfig {
        nodes,
        fanout: 2,
        seed: 11,
        eviction_rounds,
        ..ClusterConfig::default()
    })
    .expect("valid cluster")
}

fn tombstones(cluster: &Cluster, nodes: impl Iterator<Item = usize>) -> usize {
    nodes
        .map(|i| cluster.node(i).expect("live node").map().tombstone_count())
        .sum()
}

#[test]
fn an_absent_member_holds_collection_back_until_evicted() {
    let mut c = cluster(8, 40);
    c.put(0, "k", "v").expect("put");
    c.run_rounds(10);
    assert!(c.converged());
    c.set_available(7, false).expect("node 7 exists");
    c.delete(1, "k").expect("delete");
    // Well past several GC periods (10 rounds each), short of eviction.
    c.run_rounds(30);
    assert_eq!(
        tombstones(&c, 0..7),
        7,
        "purged while a member had not seen the delete"
    );
    // Failures make it suspect, then (probed every 10 rounds) down; 40
    // rounds later it is evicted, and a GC period or two after that the
    // tombstone goes.
    c.run_rounds(100);
    assert_eq!(tombstones(&c, 0..7), 0, "never purged after eviction");
    assert!((0..7).all(|i| c.get(i, "k").is_none()));
}

#[test]
fn an_evicted_member_returns_empty_and_resurrects_nothing() {
    let mut c = cluster(8, 15);
    c.put(0, "k", "old").expect("put");
    c.put(2, "kept", "yes").expect("put");
    c.run_rounds(10);
    assert!(c.converged());
    c.set_available(7, false).expect("node 7 exists");
    c.delete(1, "k").expect("delete");
    c.run_rounds(60);
    assert_eq!(tombstones(&c, 0..7), 0, "tombstone not collected");
    // Node 7 still holds the old value, and comes back.
    assert_eq!(c.get(7, "k"), Some("old"));
    c.set_available(7, true).expect("node 7 exists");
    c.run_rounds(20);
    let node7 = c.node(7).expect("node 7 live");
    assert!(
        node7.metrics().rejoins >= 1,
        "node 7 never told it was evicted"
    );
    assert!(node7.incarnation() >= 1);
    for i in 0..8 {
        assert_eq!(
            c.get(i, "k"),
            None,
            "node {i} brought the deleted value back"
        );
        assert_eq!(c.get(i, "kept"), Some("yes"), "node {i} lost a live key");
    }
    assert!(c.converged());
    // The rejoined node's new writes reach everyone.
    c.put(7, "fresh", "after").expect("put");
    c.run_rounds(10);
    assert!((0..8).all(|i| c.get(i, "fresh") == Some("after")));
}
