//! Time within rounds under staggered timing, and the workloads other
//! gossip systems are measured with: deterministic per seed, consistent
//! with the round counts, and refused where they cannot apply.

#![allow(clippy::unwrap_used)]

use sim::{SAMPLES_PER_INTERVAL, Scenario, SimReport, WritePattern, simulate};
use transport_mem::Timing;

fn staggered(nodes: usize, pattern: WritePattern, seed: u64) -> Scenario {
    Scenario {
        nodes,
        write_pattern: pattern,
        timing: Timing::Staggered { latency_ms: 50 },
        seed,
        ..Scenario::default()
    }
    .normalized()
}

fn run(scenario: &Scenario) -> SimReport {
    simulate(scenario, |_, _| {}).unwrap()
}

#[test]
fn staggered_times_are_deterministic_and_consistent_with_the_rounds() {
    for (seed, pattern) in [
        (1, WritePattern::Burst),
        (2, WritePattern::Single),
        (3, WritePattern::EachNode),
        (4, WritePattern::Steady),
    ] {
        let scenario = staggered(60, pattern, seed);
        let report = run(&scenario);
        assert_eq!(report, run(&scenario), "seed {seed} replayed differently");
        let time = report.time.as_ref().expect("staggered runs report time");
        let round = report.outcome.converged_round.expect("converges");
        let interval = scenario.interval_ms;
        // Sampled 20 times per round, the last sample at the round's end.
        assert_eq!(time.sample_ms, interval / SAMPLES_PER_INTERVAL);
        assert_eq!(
            time.curve.len() as u64,
            report.outcome.rounds_run * SAMPLES_PER_INTERVAL
        );
        for (i, &(ms, fraction)) in time.curve.iter().enumerate() {
            assert_eq!(ms, (i as u64 + 1) * time.sample_ms);
            if (i as u64 + 1) % SAMPLES_PER_INTERVAL == 0 {
                let end_of_round = (i as u64 + 1) / SAMPLES_PER_INTERVAL - 1;
                assert_eq!(fraction, report.curve[end_of_round as usize]);
            }
        }
        // Every live node held every write within the round that converged.
        let converged = time.converged_ms.unwrap();
        assert!(
            converged <= round * interval,
            "{converged} ms, round {round}"
        );
        if scenario.writes_end() == 0 {
            assert!(
                converged > (round - 1) * interval,
                "{converged} ms, round {round}"
            );
        }
        let intervals = time.converged_intervals.unwrap();
        assert!((intervals - converged as f64 / interval as f64).abs() < 1e-9);
        // Spread times: ordered, and none past the convergence.
        let spread = &time.spread;
        assert_eq!(spread.writes, report.writes.accepted);
        assert_eq!(spread.unspread, 0);
        let (p50, p99, max) = (
            spread.p50_ms.unwrap(),
            spread.p99_ms.unwrap(),
            spread.max_ms.unwrap(),
        );
        assert!(p50 <= p99 && p99 <= max && max <= converged, "{spread:?}");
        assert!(report.traffic.idle_bytes_per_node_per_round.is_some());
    }
}

#[test]
fn lockstep_runs_keep_whole_rounds() {
    let report = run(&Scenario::default());
    assert!(report.time.is_none());
    assert_eq!(report.outcome.intervals, report.outcome.converged_round);
}

#[test]
fn the_workloads_write_what_they_say() {
    let each = run(&staggered(40, WritePattern::EachNode, 5));
    assert_eq!(each.writes.accepted, 40);
    assert_eq!(each.writes.live_keys, 40);
    assert_eq!(each.writes.deletes, 0);
    let single = run(&staggered(40, WritePattern::Single, 5));
    assert_eq!(single.writes.accepted, 1);
    assert_eq!(single.writes.live_keys, 1);
    // The replay command names the pattern, and replays it.
    assert!(each.command.contains("--write-pattern each-node"));
}
