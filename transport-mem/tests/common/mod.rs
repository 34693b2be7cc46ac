//! Shared by the cluster tests: a seeded random workload of puts and deletes
//! on random running nodes, recorded in the sequential reference
//! (`transport_mem::reference`), an invariant monitor run after every round,
//! and the convergence check against the reference.
//!
//! The reference is the whole specification of a converged cluster: for each
//! key, the greatest entry (stamp, then value, a delete below any value)
//! among every accepted write that was not lost with a crashed node. Every
//! live replica must read exactly its live values, and any entry a replica
//! still holds (tombstones included) must be that key's winner.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};

use lww_crdt::Entry;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use transport_mem::Cluster;
pub(crate) use transport_mem::reference::Reference;

/// The live reads of node `index`, in key order.
pub(crate) fn reads_of(cluster: &Cluster, index: usize) -> BTreeMap<String, String> {
    cluster
        .node(index)
        .expect("a live node")
        .map()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// A seeded workload: puts and deletes of a few colliding keys on random
/// running nodes, each recorded in the reference with the stamp it got.
#[derive(Debug)]
pub(crate) struct Workload {
    rng: SmallRng,
    keys: usize,
    delete_ratio: f64,
    written: u64,
}

impl Workload {
    pub(crate) fn new(seed: u64, keys: usize, delete_ratio: f64) -> Self {
        Self {
            rng: SmallRng::seed_from_u64(seed),
            keys,
            delete_ratio,
            written: 0,
        }
    }

    /// `count` writes on random running nodes that take writes (see
    /// `Config::join_before_writing`); returns how many were made (none if
    /// no node takes them).
    pub(crate) fn write(
        &mut self,
        cluster: &mut Cluster,
        reference: &mut Reference,
        count: usize,
    ) -> usize {
        let running: Vec<usize> = (0..cluster.len())
            .filter(|&i| cluster.is_running(i) && cluster.node(i).is_some_and(|n| n.is_joined()))
            .collect();
        if running.is_empty() {
            return 0;
        }
        for _ in 0..count {
            let node = running[self.rng.random_range(0..running.len())];
            self.write_on(cluster, reference, node);
        }
        count
    }

    /// A put of a fresh value to `key` on node `node`, which must be running.
    pub(crate) fn put_on(
        &mut self,
        cluster: &mut Cluster,
        reference: &mut Reference,
        node: usize,
        key: &str,
    ) {
        self.written += 1;
        let value = format!("v{}@{node}", self.written);
        let stamp = cluster
            .put(node, key, &value)
            .expect("put on a running node");
        reference.record(key, stamp, Some(value));
    }

    /// One random write on node `node`, which must be running.
    pub(crate) fn write_on(
        &mut self,
        cluster: &mut Cluster,
        reference: &mut Reference,
        node: usize,
    ) {
        let key = format!("k{}", self.rng.random_range(0..self.keys));
        self.written += 1;
        if self.rng.random_bool(self.delete_ratio) {
            let stamp = cluster
                .delete(node, &key)
                .expect("delete on a running node");
            reference.record(&key, stamp, None);
        } else {
            let value = format!("v{}@{node}", self.written);
            let stamp = cluster
                .put(node, &key, &value)
                .expect("put on a running node");
            reference.record(&key, stamp, Some(value));
        }
    }
}

/// Checks, after every round, what must hold at every moment, not only at
/// the end: no replica holds an entry that was never written, and a
/// replica's entry for a key never goes below the greatest entry it ever
/// held for it (a purged tombstone included), and only a tombstone may
/// disappear (a purge). So a deleted key never comes back to a replica that
/// saw the delete, even after the tombstone is purged, and no replica ever
/// loses a value it held. A node that restarts or rejoins (a new
/// incarnation) starts over empty.
/// Per key, the greatest entry a node ever held.
type Floors = HashMap<String, Entry<String>>;

#[derive(Debug, Default)]
pub(crate) struct Monitor {
    /// Per node: its incarnation and, per key, the greatest entry it held.
    floors: Vec<Option<(u32, Floors)>>,
    pub(crate) checks: u64,
}

impl Monitor {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn check(&mut self, cluster: &Cluster, reference: &Reference) {
        self.floors.resize_with(cluster.len(), || None);
        for index in 0..cluster.len() {
            let Some(node) = cluster.node(index) else {
                self.floors[index] = None;
                continue;
            };
            let fresh = !matches!(
                &self.floors[index],
                Some((incarnation, _)) if *incarnation == node.incarnation()
            );
            if fresh {
                self.floors[index] = Some((node.incarnation(), HashMap::new()));
            }
            let Some((_, floors)) = self.floors[index].as_mut() else {
                unreachable!("set just above");
            };
            let map = node.map();
            for (key, entry) in map.entries() {
                assert!(
                    reference.was_written(key, entry),
                    "round {}: node {index} holds {key} = {entry:?}, which was never written",
                    cluster.rounds()
                );
                match floors.get_mut(key) {
                    Some(floor) => {
                        assert!(
                            *entry >= *floor,
                            "round {}: node {index} went back on {key}: {floor:?} -> {entry:?}",
                            cluster.rounds()
                        );
                        floor.clone_from(entry);
                    }
                    None => {
                        floors.insert(key.clone(), entry.clone());
                    }
                }
            }
            for (key, floor) in floors.iter() {
                assert!(
                    floor.is_tombstone() || map.get_entry(key.as_str()).is_some(),
                    "round {}: node {index} lost {key} = {floor:?}",
                    cluster.rounds()
                );
            }
        }
        self.checks += 1;
    }
}

/// Runs `rounds` rounds, checking the monitor after each.
pub(crate) fn run_checked(
    cluster: &mut Cluster,
    reference: &Reference,
    monitor: &mut Monitor,
    rounds: u64,
) {
    for _ in 0..rounds {
        cluster.run_round();
        monitor.check(cluster, reference);
    }
}

/// Whether every live node reads exactly the reference.
pub(crate) fn matches_reference(cluster: &Cluster, expected: &BTreeMap<&str, &str>) -> bool {
    cluster.live_nodes().all(|index| {
        let map = cluster.node(index).expect("a live node").map();
        map.len() == expected.len()
            && expected
                .iter()
                .all(|(k, v)| map.get(*k).is_some_and(|held| held == v))
    })
}

/// Runs rounds, checking the monitor after each, until every live replica
/// reads the reference or `max_rounds` have run; returns the rounds run.
pub(crate) fn run_until_converged(
    cluster: &mut Cluster,
    reference: &Reference,
    monitor: &mut Monitor,
    max_rounds: u64,
) -> u64 {
    let expected = reference.expected();
    for round in 0..=max_rounds {
        if cluster.divergence().is_none() && matches_reference(cluster, &expected) {
            return round;
        }
        if round == max_rounds {
            break;
        }
        cluster.run_round();
        monitor.check(cluster, reference);
    }
    assert_converged_to_reference(cluster, reference);
    max_rounds
}

/// The final check: every live replica identical, reading exactly the
/// reference, and every entry it still holds (tombstones included) is its
/// key's winning write.
pub(crate) fn assert_converged_to_reference(cluster: &Cluster, reference: &Reference) {
    if let Some(divergence) = cluster.divergence() {
        panic!(
            "after {} rounds, live replicas disagree: {divergence:?}",
            cluster.rounds()
        );
    }
    let winners = reference.winners();
    let expected = reference.expected();
    let mut live = 0;
    for index in cluster.live_nodes() {
        live += 1;
        let reads = reads_of(cluster, index);
        let reads: BTreeMap<&str, &str> = reads
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if reads != expected {
            let missing: Vec<_> = expected
                .iter()
                .filter(|(k, v)| reads.get(*k) != Some(v))
                .collect();
            let extra: Vec<_> = reads
                .iter()
                .filter(|(k, v)| expected.get(*k) != Some(v))
                .collect();
            panic!(
                "after {} rounds node {index} differs from the reference: \
                 expected but not read {missing:?}, read but not expected {extra:?}",
                cluster.rounds()
            );
        }
        let node = cluster.node(index).expect("a live node");
        for (key, entry) in node.map().entries() {
            assert_eq!(
                winners.get(key.as_str()).copied(),
                Some(entry),
                "node {index} holds a superseded entry for {key}"
            );
        }
    }
    assert!(live > 0, "no live node left to check");
}

/// Crashes node `index` with state loss and marks lost, in the reference,
/// the writes it alone held: those no other non-crashed node (available or
/// not) accounts for in its version vector or beats with an entry at least
/// as great for the key. Returns how many were lost.
///
/// Only sound while no message of the crashed node's life can still arrive:
/// restart it at least two rounds later, past any reordering delay.
pub(crate) fn crash_losing_unshared(
    cluster: &mut Cluster,
    reference: &mut Reference,
    index: usize,
) -> usize {
    let others: Vec<usize> = cluster.live_nodes().filter(|&i| i != index).collect();
    let lost = reference.lose_where(|key, entry| {
        !others.iter().any(|&other| {
            let node = cluster.node(other).expect("a live node");
            node.version_vector().covers(entry.stamp)
                || node.get_entry(key).is_some_and(|held| held >= entry)
        })
    });
    cluster.crash(index).expect("crash an existing node");
    lost
}
