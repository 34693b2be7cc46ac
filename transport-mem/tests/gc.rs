//! Deletes and tombstone collection.
//!
//! What `collect_garbage` (gossip/src/node/collect.rs) guarantees: every GC
//! period (`gc_every_ticks`, 10 ticks by default) a node snapshots its own
//! version vector and purges only below the newest snapshot that every
//! member is known to dominate (learned from a digest in
//! an exchange with it), and that has stayed so for a whole further period.
//! So:
//!
//! - once no new writes come, every tombstone is purged on every node
//!   (`tombstones_purged` grows everywhere, `tombstone_count` reaches 0), and
//!   a purge changes no read and no version vector;
//! - a tombstone some member has not seen is never purged: a node
//!   unavailable since before a delete holds its purge back on every other
//!   node for as long as it stays away (here, 80 rounds; long_absence.rs
//!   goes to 400), while tombstones it did see are still purged; once it is
//!   back it learns the delete and the tombstone goes everywhere, and the
//!   deleted value never comes back.

#![allow(clippy::unwrap_used)]

mod common;

use common::{
    Monitor, Reference, Workload, assert_converged_to_reference, reads_of, run_checked,
    run_until_converged,
};
use gossip::Liveness;
use lww_crdt::NodeId;
use transport_mem::{Cluster, ClusterConfig};

const NODES: usize = 8;

fn cluster(seed: u64) -> Cluster {
    Cluster::new(ClusterConfig {
        nodes: NODES,
        fanout: 3,
        seed,
        ..ClusterConfig::default()
    })
    .unwrap()
}

fn put(cluster: &mut Cluster, reference: &mut Reference, node: usize, key: &str, value: &str) {
    let stamp = cluster.put(node, key, value).unwrap();
    reference.record(key, stamp, Some(value.to_owned()));
}

fn delete(cluster: &mut Cluster, reference: &mut Reference, node: usize, key: &str) {
    let stamp = cluster.delete(node, key).unwrap();
    reference.record(key, stamp, None);
}

fn tombstones(cluster: &Cluster, node: usize) -> usize {
    cluster.node(node).unwrap().map().tombstone_count()
}

#[test]
fn tombstones_are_purged_everywhere_once_stable_without_changing_reads() {
    for seed in [1, 2] {
        let mut cluster = cluster(seed);
        let mut reference = Reference::new();
        let mut monitor = Monitor::new();
        let mut workload = Workload::new(seed, 20, 0.5);
        for _ in 0..10 {
            workload.write(&mut cluster, &mut reference, 6);
            cluster.run_round();
            monitor.check(&cluster, &reference);
        }
        // Deletes of keys everyone holds, so every node has tombstones.
        for k in 0..20 {
            delete(&mut cluster, &mut reference, k % NODES, &format!("k{k}"));
        }
        put(&mut cluster, &mut reference, 3, "k0", "back");
        run_until_converged(&mut cluster, &reference, &mut monitor, 20);
        let before: Vec<u64> = (0..NODES)
            .map(|i| cluster.node(i).unwrap().metrics().tombstones_purged)
            .collect();
        let reads: Vec<_> = (0..NODES).map(|i| reads_of(&cluster, i)).collect();
        let vectors: Vec<_> = (0..NODES)
            .map(|i| cluster.node(i).unwrap().version_vector().clone())
            .collect();
        assert!((0..NODES).all(|i| tombstones(&cluster, i) == 19));

        let mut rounds = 0;
        while (0..NODES).any(|i| tombstones(&cluster, i) > 0) {
            assert!(rounds < 60, "tombstones left after 60 quiet rounds");
            cluster.run_round();
            rounds += 1;
            monitor.check(&cluster, &reference);
            for i in 0..NODES {
                assert_eq!(reads_of(&cluster, i), reads[i], "a purge changed reads");
                let node = cluster.node(i).unwrap();
                assert_eq!(
                    node.version_vector(),
                    &vectors[i],
                    "a purge moved the vector"
                );
            }
        }
        for (i, before) in before.iter().enumerate() {
            let purged = cluster.node(i).unwrap().metrics().tombstones_purged;
            assert!(purged >= before + 19, "node {i} purged {purged}");
        }
        assert_converged_to_reference(&cluster, &reference);
        eprintln!("seed {seed}: all tombstones purged {rounds} rounds after convergence");
    }
}

/// Writes `a` and `b`, deletes `a` while everyone is there, lets it all
/// settle, then takes `away` out and deletes `b`.
fn delete_while_one_is_away(
    cluster: &mut Cluster,
    reference: &mut Reference,
    monitor: &mut Monitor,
    away: usize,
) {
    put(cluster, reference, 0, "a", "old-a");
    put(cluster, reference, 1, "b", "old-b");
    put(cluster, reference, 2, "c", "kept");
    run_until_converged(cluster, reference, monitor, 20);
    delete(cluster, reference, 0, "a");
    // Long enough for snapshots covering the delete of `a` to reach
    // everyone, `away` included.
    run_checked(cluster, reference, monitor, 25);
    assert_eq!(cluster.get(away, "a"), None);
    cluster.set_available(away, false).unwrap();
    delete(cluster, reference, 1, "b");
}

#[test]
fn a_node_away_since_before_a_delete_holds_its_purge_back_until_it_returns() {
    for seed in [3, 4] {
        let away = NODES - 1;
        let mut cluster = cluster(seed);
        let mut reference = Reference::new();
        let mut monitor = Monitor::new();
        delete_while_one_is_away(&mut cluster, &mut reference, &mut monitor, away);
        let b_deleted = reference.winners()["b"].clone();
        // Ten rounds for the delete to reach every node that is there; from
        // then on, each of them holds its tombstone at every round.
        run_checked(&mut cluster, &reference, &mut monitor, 10);
        for _ in 0..70 {
            cluster.run_round();
            monitor.check(&cluster, &reference);
            for i in 0..NODES - 1 {
                let held = cluster.node(i).unwrap().get_entry("b");
                assert_eq!(held, Some(&b_deleted), "node {i} purged b early");
            }
        }
        for i in 0..NODES - 1 {
            let node = cluster.node(i).unwrap();
            // The tombstone the absent node saw is gone; the one it missed
            // is still held.
            assert!(node.get_entry("a").is_none(), "node {i} kept a's tombstone");
            assert_eq!(
                node.get_entry("b"),
                Some(&b_deleted),
                "node {i} purged b early"
            );
            assert_eq!(node.map().tombstone_count(), 1);
            assert_eq!(
                node.liveness(NodeId::new(away as u64)),
                Some(Liveness::Down)
            );
        }
        assert_eq!(cluster.get(away, "b"), Some("old-b"));

        // Back: it learns the delete, and then the tombstone goes everywhere.
        cluster.set_available(away, true).unwrap();
        let mut rounds = 0;
        while (0..NODES).any(|i| tombstones(&cluster, i) > 0) {
            assert!(
                rounds < 60,
                "b's tombstone outlived the return by 60 rounds"
            );
            cluster.run_round();
            rounds += 1;
            monitor.check(&cluster, &reference);
            for i in 0..NODES {
                let b = cluster.get(i, "b");
                assert!(i == away || b.is_none(), "node {i} reads b = {b:?} again");
            }
        }
        assert_converged_to_reference(&cluster, &reference);
        eprintln!("seed {seed}: purged {rounds} rounds after the return");
    }
}

/// Regression for a hole that collecting past an absent member had: a
/// member restarted empty took the returning member's stale state, and with
/// it a value whose delete everyone else had purged. The others' vectors
/// cover that value, so they skip it, and no tombstone was left to beat it:
/// the restarted node read the deleted value forever. Minimal
/// counterexample: 8 nodes, `b` written, node 7 away, `b` deleted, node 3
/// crashed, then restarted as node 7 comes back. Now the delete is kept
/// until node 7 has it, so whatever node 3 takes from node 7 first, the
/// tombstone beats it.
#[test]
fn a_node_restarted_after_an_eviction_does_not_take_a_purged_value_from_the_evicted_node() {
    for seed in 0..40 {
        let away = NODES - 1;
        let mut cluster = cluster(seed);
        let mut reference = Reference::new();
        let mut monitor = Monitor::new();
        put(&mut cluster, &mut reference, 1, "b", "old-b");
        run_until_converged(&mut cluster, &reference, &mut monitor, 20);
        run_checked(&mut cluster, &reference, &mut monitor, 25);
        cluster.set_available(away, false).unwrap();
        delete(&mut cluster, &mut reference, 1, "b");
        run_checked(&mut cluster, &reference, &mut monitor, 100);
        assert!((0..NODES - 1).all(|i| tombstones(&cluster, i) == 1));
        cluster.crash(3).unwrap();
        run_checked(&mut cluster, &reference, &mut monitor, 2);
        cluster.restart(3).unwrap();
        cluster.set_available(away, true).unwrap();
        run_checked(&mut cluster, &reference, &mut monitor, 30);
        for i in 0..NODES {
            assert_eq!(
                cluster.get(i, "b"),
                None,
                "seed {seed}: node {i} reads b again"
            );
        }
        assert_converged_to_reference(&cluster, &reference);
    }
}
