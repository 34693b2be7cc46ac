//! Convergence without faults: 100 nodes take a few hundred random puts and
//! deletes of 20 colliding keys, spread over rounds, on random nodes. Once
//! the writes stop, every replica reads exactly the sequential
//! last-writer-wins reference (per key, the accepted write with the
//! greatest stamp), and at every round no replica holds a value that was
//! never written or goes back on an entry. The same holds with every
//! optimisation of the exchange off (`ClusterConfig::unoptimised`).

mod common;

use common::{Monitor, Reference, Workload, assert_converged_to_reference, run_until_converged};
use transport_mem::{Cluster, ClusterConfig};

#[test]
fn hundred_nodes_converge_to_the_lww_reference_under_random_puts_and_deletes() {
    for (seed, unoptimised) in [(1, false), (2, false), (1, true)] {
        let mut cluster = Cluster::new(ClusterConfig {
            nodes: 100,
            seed,
            unoptimised,
            ..ClusterConfig::default()
        })
        .unwrap();
        let mut reference = Reference::new();
        let mut monitor = Monitor::new();
        let mut workload = Workload::new(seed ^ 0xfeed, 20, 0.3);
        // 300 writes over 30 rounds, 10 per round.
        for _ in 0..30 {
            workload.write(&mut cluster, &mut reference, 10);
            cluster.run_round();
            monitor.check(&cluster, &reference);
        }
        assert_eq!(reference.len(), 300);
        let rounds = run_until_converged(&mut cluster, &reference, &mut monitor, 40);
        assert_converged_to_reference(&cluster, &reference);
        eprintln!(
            "seed {seed}, unoptimised {unoptimised}: converged {rounds} rounds after the last write"
        );
    }
}
