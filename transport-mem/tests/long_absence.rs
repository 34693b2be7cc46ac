//! Members that stay away far longer than every timeout: down detection
//! (4 failed exchanges), the GC period (10 rounds), and the one-minute
//! eviction earlier versions had (30 rounds here). A partitioned or
//! unavailable member holds tombstone collection back for as long as it is
//! away, keeps what it holds, and converges once it is back: nothing is
//! lost, nothing deleted comes back, and nobody stays split.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Monitor, Reference, assert_converged_to_reference, run_checked};
use transport_mem::{Cluster, ClusterConfig};

fn cluster(nodes: usize, seed: u64) -> Cluster {
    Cluster::new(ClusterConfig {
        nodes,
        fanout: 2,
        seed,
        ..ClusterConfig::default()
    })
    .unwrap()
}

fn tombstones(cluster: &Cluster, nodes: impl Iterator<Item = usize>) -> usize {
    nodes
        .map(|i| cluster.node(i).unwrap().map().tombstone_count())
        .sum()
}

/// Node 7 is cut off for 300 rounds (ten times the former eviction time)
/// while both sides write, delete and overwrite the same keys. Before
/// members were kept for good, both sides evicted each other, nobody
/// contacted an evicted member again, and the run ended split.
#[test]
fn a_partition_of_ten_eviction_times_heals_with_every_write_kept() {
    for seed in [1, 2, 3] {
        let mut c = cluster(8, seed);
        let mut reference = Reference::new();
        let mut monitor = Monitor::new();
        for (node, key, value) in [(0, "a", "1"), (1, "b", "1"), (2, "c", "1")] {
            let stamp = c.put(node, key, value).unwrap();
            reference.record(key, stamp, Some(value.to_owned()));
        }
        run_checked(&mut c, &reference, &mut monitor, 20);
        c.partition(|i| u32::from(i == 7));
        for round in 0..300u64 {
            if round % 50 == 10 {
                // The majority deletes `a` and overwrites `b`; the cut-off
                // node overwrites `c` and writes a key of its own.
                let stamp = c.delete(round as usize % 7, "a").unwrap();
                reference.record("a", stamp, None);
                let value = format!("majority-{round}");
                let stamp = c.put(1, "b", &value).unwrap();
                reference.record("b", stamp, Some(value));
                let value = format!("minority-{round}");
                let stamp = c.put(7, "c", &value).unwrap();
                reference.record("c", stamp, Some(value.clone()));
                let stamp = c.put(7, &format!("only-7-{round}"), &value).unwrap();
                reference.record(&format!("only-7-{round}"), stamp, Some(value));
            }
            c.run_round();
            monitor.check(&c, &reference);
        }
        assert!(!c.converged());
        // The delete of `a` is held back on the majority side all along.
        assert!(
            tombstones(&c, 0..7) > 0,
            "seed {seed}: collected past node 7"
        );
        c.heal();
        let mut rounds = 0;
        while !c.converged() {
            assert!(
                rounds < 40,
                "seed {seed}: still split 40 rounds after the heal"
            );
            c.run_round();
            monitor.check(&c, &reference);
            rounds += 1;
        }
        assert_converged_to_reference(&c, &reference);
        for i in 0..8 {
            assert_eq!(c.get(i, "a"), None, "seed {seed}: node {i} reads a again");
            assert_eq!(c.node(i).unwrap().incarnation(), 0, "node {i} rejoined");
        }
        // With everyone back, the tombstones go.
        run_checked(&mut c, &reference, &mut monitor, 60);
        assert_eq!(tombstones(&c, 0..8), 0, "seed {seed}: tombstones kept");
        assert_converged_to_reference(&c, &reference);
        eprintln!("seed {seed}: converged {rounds} rounds after the heal");
    }
}

/// The old value of `k` stays on node 7 while it is away; the delete that
/// everyone else holds is kept for it, and it learns the delete on return.
#[test]
fn an_absent_member_holds_collection_back_for_as_long_as_it_is_away() {
    let mut c = cluster(8, 11);
    c.put(0, "k", "v").unwrap();
    c.run_rounds(10);
    assert!(c.converged());
    c.set_available(7, false).unwrap();
    c.delete(1, "k").unwrap();
    c.run_rounds(400);
    assert_eq!(
        tombstones(&c, 0..7),
        7,
        "purged while node 7 had not seen the delete"
    );
    assert_eq!(c.get(7, "k"), Some("v"));
    c.set_available(7, true).unwrap();
    c.run_rounds(60);
    assert!(c.converged());
    assert!((0..8).all(|i| c.get(i, "k").is_none()));
    assert_eq!(tombstones(&c, 0..8), 0, "never purged after the return");
}
