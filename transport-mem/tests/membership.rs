//! Membership: 100 nodes that start knowing only one or two seed peers
//! (`ClusterConfig.seed_peers`, the first nodes, as a deployment's seed
//! list; node 0 starts knowing nobody) learn every member through the
//! member lists exchanges carry, and converge to the LWW reference like a
//! fully introduced cluster.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Monitor, Reference, Workload, assert_converged_to_reference, run_until_converged};
use transport_mem::{Cluster, ClusterConfig};

const NODES: usize = 100;

fn run(seed_peers: usize, seed: u64) {
    let mut cluster = Cluster::new(ClusterConfig {
        nodes: NODES,
        seed,
        seed_peers: Some(seed_peers),
        ..ClusterConfig::default()
    })
    .unwrap();
    for i in 0..NODES {
        let known = cluster.node(i).unwrap().members().len();
        assert!(known <= seed_peers + 1, "node {i} starts knowing {known}");
    }
    let mut reference = Reference::new();
    let mut monitor = Monitor::new();
    let mut workload = Workload::new(seed, 20, 0.3);
    let everyone_known =
        |cluster: &Cluster| (0..NODES).all(|i| cluster.node(i).unwrap().members().len() == NODES);
    let mut known_after = None;
    for round in 1..=40 {
        if round <= 20 {
            workload.write(&mut cluster, &mut reference, 10);
        }
        cluster.run_round();
        monitor.check(&cluster, &reference);
        if known_after.is_none() && everyone_known(&cluster) {
            known_after = Some(round);
        }
        if round >= 20 && known_after.is_some() {
            break;
        }
    }
    let rounds = known_after.expect("members still unknown after 40 rounds");
    let converged = run_until_converged(&mut cluster, &reference, &mut monitor, 40);
    assert_converged_to_reference(&cluster, &reference);
    for i in 0..NODES {
        let node = cluster.node(i).unwrap();
        let members = node.members();
        assert_eq!(members.len(), NODES);
        assert!(
            members
                .iter()
                .enumerate()
                .all(|(j, m)| m.id.get() == j as u64)
        );
        assert_eq!(node.peers().len(), NODES - 1);
    }
    eprintln!(
        "seed peers {seed_peers}, seed {seed}: everyone known after {rounds} rounds, \
         converged {converged} later"
    );
}

#[test]
fn nodes_started_with_one_seed_peer_learn_every_member_and_converge() {
    for seed in [1, 2] {
        run(1, seed);
    }
}

#[test]
fn nodes_started_with_two_seed_peers_learn_every_member_and_converge() {
    run(2, 3);
}
