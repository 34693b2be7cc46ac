//! Convergence under faults: 100 nodes take random puts and deletes of 20
//! colliding keys while faults are active: 30 % of the nodes unavailable at a
//! time (a new random set every 3 rounds), crashes with state loss and
//! restarts under a new incarnation, a partition held for 25 rounds, 20 %
//! message loss, duplication, reordering, and clock skew up to the maximum
//! offset; each alone, then all together. Then the faults stop (every node
//! back, healed, restarted, a clean network) and within 40 rounds every live
//! replica must be identical and read exactly the sequential LWW reference.
//!
//! Throughout, after every round, no replica holds a value that was never
//! written, and no replica's entry for a key goes backwards or loses a value
//! (so no deleted key comes back to a replica that saw the delete); at the
//! end, no accepted write is missing unless superseded.
//!
//! Crashes lose state, and with it the writes only the crashed node held.
//! The reference accounts for that exactly: at each crash, every write that
//! no other non-crashed node (available or not) accounts for, in its version
//! vector or with an entry at least as great for the key, is dropped from
//! the reference (`crash_losing_unshared`). A crashed node is restarted no
//! sooner than 3 rounds later, so no message of its lost life is still in
//! flight (reordering delays a message by at most one round).
//!
//! No accepted write may be lost but to a crash.
//!
//! Each scenario runs with the protocol as configured by default and, for
//! its first seed, with every optimisation off (`ClusterConfig::unoptimised`):
//! the base push-pull exchange must pass the same checks.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Monitor, Reference, Workload, crash_losing_unshared, run_until_converged};
use rand::rngs::SmallRng;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use transport_mem::{Cluster, ClusterConfig, Faults};

const NODES: usize = 100;
const FAULT_ROUNDS: u64 = 40;
const WRITES_PER_ROUND: usize = 8;
const CONVERGENCE_ROUNDS: u64 = 40;

#[derive(Clone, Copy, Debug, Default)]
struct Scenario {
    /// 30 % of the nodes unavailable, a new set every 3 rounds.
    unavailable: bool,
    /// Two crashes every 4 rounds, each restarted 3-6 rounds later; the second
    /// victim first makes a write that only it will ever hold.
    crashes: bool,
    /// Two halves cut apart from round 5 to round 30.
    partition: bool,
    /// Message faults while the others are active.
    faults: Faults,
    /// Clock skew up to the maximum offset.
    skew: bool,
    /// Every optimisation of the exchange off.
    unoptimised: bool,
}

const LOSS: Faults = Faults {
    loss: 0.2,
    duplicate: 0.0,
    reorder: 0.0,
};
const DUPLICATION: Faults = Faults {
    loss: 0.0,
    duplicate: 0.3,
    reorder: 0.0,
};
const REORDERING: Faults = Faults {
    loss: 0.0,
    duplicate: 0.0,
    reorder: 0.3,
};
const ALL_MESSAGE_FAULTS: Faults = Faults {
    loss: 0.2,
    duplicate: 0.2,
    reorder: 0.2,
};

/// What a run did, for assertions that the faults really happened.
#[derive(Debug, Default)]
struct Outcome {
    crashes: usize,
    lost_writes: usize,
    convergence_rounds: u64,
}

/// Restarts a crashed node: empty, under a new incarnation.
fn restart(cluster: &mut Cluster, index: usize) {
    cluster.restart(index).unwrap();
    let node = cluster.node(index).unwrap();
    assert!(node.incarnation() >= 1);
    assert!(node.map().is_empty());
}

/// Runs `scenario` with every seed, and with the first seed again with
/// every optimisation off.
fn run_both(scenario: Scenario, seeds: &[u64]) -> Vec<Outcome> {
    let mut outcomes: Vec<Outcome> = seeds.iter().map(|&seed| run(scenario, seed)).collect();
    let base = Scenario {
        unoptimised: true,
        ..scenario
    };
    outcomes.push(run(base, seeds[0]));
    outcomes
}

fn run(scenario: Scenario, seed: u64) -> Outcome {
    let max_offset = lww_crdt::DEFAULT_MAX_OFFSET_MS;
    let mut cluster = Cluster::new(ClusterConfig {
        nodes: NODES,
        seed,
        faults: scenario.faults,
        clock_skew_ms: if scenario.skew { max_offset } else { 0 },
        max_clock_offset_ms: max_offset,
        unoptimised: scenario.unoptimised,
        ..ClusterConfig::default()
    })
    .unwrap();
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x5eed);
    let mut workload = Workload::new(seed ^ 0xfeed, 20, 0.3);
    let mut reference = Reference::new();
    let mut monitor = Monitor::new();
    let mut outcome = Outcome::default();
    // Crashed nodes and the round each may restart at.
    let mut crashed: Vec<(usize, u64)> = Vec::new();
    let mut away: Vec<usize> = Vec::new();

    for round in 0..FAULT_ROUNDS {
        if scenario.unavailable && round % 3 == 0 {
            for &i in &away {
                cluster.set_available(i, true).unwrap();
            }
            away = sample(&mut rng, NODES, NODES * 3 / 10).into_vec();
            for &i in &away {
                cluster.set_available(i, false).unwrap();
            }
        }
        if scenario.crashes {
            let due: Vec<usize> = crashed
                .iter()
                .filter(|&&(_, at)| at <= round)
                .map(|&(i, _)| i)
                .collect();
            for i in due {
                restart(&mut cluster, i);
                crashed.retain(|&(c, _)| c != i);
            }
            if round % 4 == 1 {
                for nth in 0..2 {
                    let victim = rng.random_range(0..NODES);
                    if cluster.is_crashed(victim) {
                        continue;
                    }
                    if nth == 1 && cluster.is_running(victim) {
                        // A write the victim makes and crashes with before
                        // any exchange: only it ever held it. A key of its
                        // own, so that no later write hides whether it was
                        // lost, and one it shares, so the loss can uncover
                        // an older value.
                        let key = format!("only-{round}");
                        workload.put_on(&mut cluster, &mut reference, victim, &key);
                        workload.write_on(&mut cluster, &mut reference, victim);
                    }
                    outcome.lost_writes +=
                        crash_losing_unshared(&mut cluster, &mut reference, victim);
                    outcome.crashes += 1;
                    crashed.push((victim, round + rng.random_range(3..=6)));
                }
            }
        }
        if scenario.partition {
            if round == 5 {
                cluster.partition(|i| (i % 2) as u32);
            }
            if round == 30 {
                assert!(
                    cluster.divergence().is_some(),
                    "the two sides should differ before the heal"
                );
                cluster.heal();
            }
        }
        workload.write(&mut cluster, &mut reference, WRITES_PER_ROUND);
        cluster.run_round();
        monitor.check(&cluster, &reference);
    }

    // Stop every fault: a clean network, every node back. Crashed nodes
    // wait out their 3 rounds before restarting.
    cluster.set_faults(Faults::NONE).unwrap();
    cluster.heal();
    for i in away {
        cluster.set_available(i, true).unwrap();
    }
    while !crashed.is_empty() {
        cluster.run_round();
        monitor.check(&cluster, &reference);
        let round = cluster.rounds();
        crashed.retain(|&(i, at)| {
            if at <= round {
                restart(&mut cluster, i);
                false
            } else {
                true
            }
        });
    }
    let stats = cluster.network_stats();
    if scenario.faults.loss > 0.0 {
        assert!(stats.lost > 0, "{stats:?}");
    }
    if scenario.faults.duplicate > 0.0 {
        assert!(stats.duplicated > 0, "{stats:?}");
    }
    if scenario.faults.reorder > 0.0 {
        assert!(stats.reordered > 0, "{stats:?}");
    }
    if scenario.partition {
        assert!(stats.partitioned > 0, "{stats:?}");
    }
    if scenario.unavailable || scenario.crashes {
        assert!(stats.unavailable > 0, "{stats:?}");
    }
    outcome.convergence_rounds =
        run_until_converged(&mut cluster, &reference, &mut monitor, CONVERGENCE_ROUNDS);
    let metrics = cluster.metrics();
    // Not even skew at the maximum offset gets a message refused.
    assert_eq!(metrics.messages_rejected, 0);
    eprintln!(
        "{scenario:?} seed {seed}: {outcome:?}, {} writes",
        reference.len()
    );
    outcome
}

#[test]
fn converges_with_30_percent_of_nodes_unavailable_at_a_time() {
    run_both(
        Scenario {
            unavailable: true,
            ..Scenario::default()
        },
        &[11, 12],
    );
}

#[test]
fn converges_after_crashes_with_state_loss_losing_only_unshared_writes() {
    for outcome in run_both(
        Scenario {
            crashes: true,
            ..Scenario::default()
        },
        &[21, 22],
    ) {
        assert!(outcome.crashes >= 10, "{outcome:?}");
        assert!(outcome.lost_writes >= 2, "{outcome:?}");
    }
}

#[test]
fn converges_after_a_partition_held_for_25_rounds_heals() {
    run_both(
        Scenario {
            partition: true,
            ..Scenario::default()
        },
        &[31, 32],
    );
}

#[test]
fn converges_with_20_percent_message_loss() {
    run_both(
        Scenario {
            faults: LOSS,
            ..Scenario::default()
        },
        &[41, 42],
    );
}

#[test]
fn converges_with_duplicated_messages() {
    run_both(
        Scenario {
            faults: DUPLICATION,
            ..Scenario::default()
        },
        &[51, 52],
    );
}

#[test]
fn converges_with_reordered_messages() {
    run_both(
        Scenario {
            faults: REORDERING,
            ..Scenario::default()
        },
        &[61, 62],
    );
}

#[test]
fn converges_with_clock_skew_up_to_the_max_offset() {
    run_both(
        Scenario {
            skew: true,
            ..Scenario::default()
        },
        &[71, 72],
    );
}

#[test]
fn converges_under_every_fault_at_once() {
    for outcome in run_both(
        Scenario {
            unavailable: true,
            crashes: true,
            partition: true,
            faults: ALL_MESSAGE_FAULTS,
            skew: true,
            unoptimised: false,
        },
        &[81, 82, 83],
    ) {
        assert!(outcome.crashes >= 10, "{outcome:?}");
        assert!(outcome.lost_writes >= 2, "{outcome:?}");
    }
}
