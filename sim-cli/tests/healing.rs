//! A simulated cluster heals after faults of any length and any mix: every
//! run below must converge and read exactly what the sequential reference
//! says once its faults stop. The fixed scenarios are faults that once split
//! a cluster for good; the fuzzed ones are drawn at random (`sim-cli fuzz`
//! runs thousands).

use sim::{FuzzSpec, Scenario, WritePattern, draw, fuzz, simulate};

/// Runs `scenario` and checks it converged and verified.
fn converges(scenario: &Scenario) -> sim::SimReport {
    let report = simulate(scenario, |_, _| {}).expect("valid scenario");
    assert!(
        report.outcome.converged,
        "not converged: {}",
        report.command
    );
    assert!(
        report.verification.ok,
        "wrong reads {:?}: {}",
        report.verification.first_divergence, report.command
    );
    report
}

/// Runs `scenario`, checks it converged and verified, and returns the rounds
/// from the end of its faults and writes to convergence.
fn heals(scenario: &Scenario) -> u64 {
    let report = converges(scenario);
    let quiet = scenario.faults_end().max(scenario.writes_end());
    report
        .outcome
        .converged_round
        .expect("converged")
        .saturating_sub(quiet)
}

/// A partition of `rounds` rounds from round 5, with writes on both sides
/// all along it.
fn long_partition(nodes: usize, rounds: u64, seed: u64) -> Scenario {
    Scenario {
        nodes,
        fanout: 2.min(nodes - 1),
        writes: 300,
        keys: 20,
        deletes: 0.3,
        write_pattern: WritePattern::Steady,
        write_rounds: 5 + rounds,
        rounds: 5 + rounds + 200,
        seed,
        partition: Some((5, 5 + rounds)),
        ..Scenario::default()
    }
}

/// 90 rounds is three times the 30-round eviction that used to split such a
/// cluster; 300 is ten. Healing is bounded by the probe period (a down peer
/// is probed every 10 ticks) plus ordinary dissemination: at most 15 rounds
/// over every size and seed here.
#[test]
fn a_partition_of_many_eviction_times_heals_at_3_10_and_100_nodes() {
    for nodes in [3, 10, 100] {
        for (rounds, seed) in [(90, 1), (300, 2)] {
            let heal = heals(&long_partition(nodes, rounds, seed));
            assert!(
                heal <= 15,
                "{nodes} nodes, {rounds}-round partition: healed in {heal} rounds"
            );
        }
    }
}

/// Nodes with durable state (`CrashMode::Keep`: a crash loses nothing, as
/// for a node restarted on its data directory) crashing on both sides of a
/// partition of thirty GC periods, with deletes on both sides: nothing is
/// lost from either side and no delete is undone, and no write is counted
/// lost with a crashed node.
#[test]
fn durable_nodes_crashing_through_a_partition_of_thirty_gc_periods_lose_nothing() {
    for (nodes, seed) in [(5, 11), (20, 12)] {
        let scenario = Scenario {
            crash_rate: 0.02,
            crash_mode: sim::CrashMode::Keep,
            crash_downtime: 40,
            fault_rounds: 305,
            ..long_partition(nodes, 300, seed)
        };
        let report = converges(&scenario);
        assert_eq!(report.writes.lost_in_crashes, 0, "{}", report.command);
        assert!(report.writes.deletes > 0, "{}", report.command);
        assert!(heals(&scenario) <= 40, "{}", report.command);
    }
}

/// The first report of the split: three nodes, node 2 cut off for a
/// thousand rounds while writes go on. NOT CONVERGED before members were
/// kept for good.
#[test]
fn three_nodes_cut_for_a_thousand_rounds() {
    heals(&Scenario {
        nodes: 3,
        fanout: 2,
        writes: 100,
        write_pattern: WritePattern::Steady,
        write_rounds: 600,
        rounds: 3_000,
        partition: Some((3, 1_000)),
        ..Scenario::default()
    });
}

/// A 120-round partition and no other fault: two nodes stayed apart for
/// good.
#[test]
fn four_nodes_seed_789000() {
    heals(&Scenario {
        nodes: 4,
        fanout: 2,
        writes: 400,
        keys: 5,
        write_pattern: WritePattern::Steady,
        write_rounds: 150,
        rounds: 2_000,
        seed: 789_000,
        partition: Some((20, 140)),
        fault_rounds: 60,
        ..Scenario::default()
    });
}

/// Found by the fuzzer (seed 0, run 106): with 400 ms one-way latency, an
/// initiator's `Ack` asking for a final `Ack` got its answer 1,600 ms after
/// its `Syn`, past the 1,000 ms exchange timeout counted from the `Syn`.
/// The entries only that final `Ack` carried never arrived: node 2's last
/// writes stayed on node 2 for good. The initiator now waits a whole
/// timeout from its `Ack`.
#[test]
fn fuzz_0_106_final_acks_on_a_slow_link() {
    heals(&Scenario {
        nodes: 3,
        fanout: 2,
        writes: 181,
        keys: 3,
        deletes: 0.0,
        write_pattern: WritePattern::Steady,
        write_rounds: 90,
        rounds: 590,
        seed: 15_461_969_583_448_421_182,
        timing: transport_mem::Timing::Staggered { latency_ms: 400 },
        seed_peers: Some(1),
        fault_rounds: 45,
        partition: Some((17, 18)),
        duplicate: 0.3,
        clock_skew_ms: 250,
        ..Scenario::default()
    });
}

/// Fuzz seed 2, run 861: the seeds (nodes 0 to 2) cut off from the rest from
/// round 0, so nodes 3 to 5 had met no one when they wrote; nodes 0 to 2,
/// unaware of them, collected deletes those writes should lose to, and the
/// writes came back after the heal. Writes now wait until a member has been
/// heard from.
#[test]
fn fuzz_2_861_writes_before_anyone_knows_the_writer() {
    heals(&draw(2, 861));
}

/// Fuzz seed 5, run 236: the only seed unavailable from the start for 200
/// rounds, then another 30 % of the nodes for 100: a node that had met no
/// one wrote, and was unknown to everyone when the others collected.
#[test]
fn fuzz_5_236_the_only_seed_away_from_the_start() {
    heals(&draw(5, 236));
}

/// Fuzz seed 6, run 615: three nodes, one seed, crashes with state loss,
/// 50 % loss: the seed restarted empty, knowing no one, and collected its
/// own deletes at once. A node that knows no other member collects nothing.
#[test]
fn fuzz_6_615_a_seed_restarted_empty_collects_nothing_alone() {
    heals(&draw(6, 615));
}

/// Fuzz seed 5, run 34: 20 nodes on 400 ms links with loss, reordering and
/// crashes with state loss. A delta taken for some origins and held for
/// others claimed a write superseded by the held part; the crash lost that
/// part and the write with it, on two nodes for good. Deltas are taken or
/// held whole.
#[test]
fn fuzz_5_34_a_delta_taken_in_part() {
    heals(&draw(5, 34));
}

/// Fuzz seed 8, run 237, not fixed: the only seed restarts empty during a
/// partition and founds a cluster again; another node restarted empty joins
/// through it, and the two collect deletes the other side never saw. Telling
/// a restart from a first start needs state kept across restarts.
#[test]
#[ignore = "known: a seed restarted empty founds a cluster of its own (docs/design.md, Tombstone collection)"]
fn fuzz_8_237_a_seed_restarted_empty_in_a_partition() {
    heals(&draw(8, 237));
}

/// A few hundred random scenarios; `sim-cli fuzz --runs 10000` runs more.
#[test]
fn three_hundred_fuzzed_scenarios_converge_and_verify() {
    let report = fuzz(
        &FuzzSpec {
            runs: 300,
            seed: 0,
            threads: 2,
        },
        || {},
    )
    .expect("valid draws");
    let failed: Vec<&str> = report.failures.iter().map(|f| f.command.as_str()).collect();
    assert!(failed.is_empty(), "failed runs:\n{}", failed.join("\n"));
    assert_eq!(report.passed, 300);
}
