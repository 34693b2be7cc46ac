//! The scenario fuzzer: random small clusters under random mixes of faults,
//! each of which must converge and verify once its faults stop.
//!
//! Hand-picked fault tests tend to stay under the timeouts they were written
//! around. The fuzzer draws fault durations from a ladder that sits just
//! under, at and past every timeout of the simulated protocol (in rounds: the
//! exchange timeout of 1, down detection at 4 failed exchanges with probes
//! every 10 rounds, the GC period of 10, and far past them), and mixes
//! partitions, unavailability, crashes with and without state loss, loss,
//! duplication, reordering and clock skew over 3 to 30 nodes. Every run is a
//! plain [`Scenario`]: a failure is reported with the `simulate` command that
//! replays it, bit for bit.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use transport_mem::Timing;

use crate::sim::error::SimError;
use crate::sim::scenario::{CrashMode, Scenario, WritePattern};
use crate::sim::sweep::simulate_all;

/// Fault durations in rounds: around and beyond every timeout.
const DURATIONS: [u64; 20] = [
    1, 2, 3, 4, 5, 9, 10, 11, 19, 20, 21, 29, 30, 31, 45, 60, 90, 120, 200, 300,
];

/// Rounds a run may take after its last fault and its last write before it
/// counts as not converged.
pub const HEAL_BUDGET: u64 = 500;

/// What to fuzz.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FuzzSpec {
    /// Scenarios to draw and run.
    pub runs: u64,
    /// Seed of the draws: run `i` is the same scenario for the same seed.
    pub seed: u64,
    /// Worker threads; results do not depend on it.
    pub threads: usize,
}

/// One scenario that did not converge or did not verify.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FuzzFailure {
    /// Its index among the runs.
    pub run: u64,
    /// Whether it converged within its budget.
    pub converged: bool,
    /// Whether every live replica read the reference.
    pub verified: bool,
    /// The command that replays it.
    pub command: String,
}

/// What the fuzzer found.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FuzzReport {
    /// What was run.
    pub spec: FuzzSpec,
    /// Runs that converged and verified.
    pub passed: u64,
    /// Runs that converged.
    pub converged: u64,
    /// The most rounds any run took to converge once its faults had ended
    /// and its last write was issued.
    pub max_rounds_to_heal: u64,
    /// The mean of those rounds over the runs that converged.
    pub mean_rounds_to_heal: f64,
    /// The command of the run that took the longest to heal.
    pub slowest: Option<String>,
    /// Every run that failed.
    pub failures: Vec<FuzzFailure>,
}

impl FuzzReport {
    /// Whether every run converged and verified.
    pub fn success(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Scenario `run` of the draws seeded by `seed`.
pub fn draw(seed: u64, run: u64) -> Scenario {
    let mut rng = SmallRng::seed_from_u64(seed ^ run.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let duration = |rng: &mut SmallRng| DURATIONS[rng.random_range(0..DURATIONS.len())];
    let nodes = if rng.random_bool(0.5) {
        rng.random_range(3..=6)
    } else {
        rng.random_range(7..=30)
    };
    let writes = rng.random_range(10..=400);
    let mut s = Scenario {
        nodes,
        fanout: rng.random_range(1..=nodes.min(4) - 1),
        writes,
        keys: [1, 3, 5, 20, 100][rng.random_range(0..5)],
        deletes: [0.0, 0.1, 0.3, 0.5][rng.random_range(0..4)],
        write_pattern: if rng.random_bool(0.8) {
            WritePattern::Steady
        } else {
            WritePattern::Burst
        },
        write_rounds: duration(&mut rng),
        seed: rng.random(),
        timing: if rng.random_bool(0.5) {
            Timing::Lockstep
        } else {
            Timing::Staggered {
                latency_ms: [5, 50, 400][rng.random_range(0..3)],
            }
        },
        seed_peers: rng
            .random_bool(0.3)
            .then(|| rng.random_range(1..=3.min(nodes - 1))),
        fault_rounds: duration(&mut rng),
        churn_rounds: duration(&mut rng),
        crash_downtime: duration(&mut rng),
        ..Scenario::default()
    };
    let mut any = false;
    while !any {
        if rng.random_bool(0.4) {
            let start = rng.random_range(0..=30);
            s.partition = Some((start, start + duration(&mut rng)));
            any = true;
        }
        if rng.random_bool(0.3) {
            s.unavailable = [0.1, 0.3, 0.5][rng.random_range(0..3)];
            any = true;
        }
        if rng.random_bool(0.3) {
            s.crash_rate = [0.01, 0.03, 0.1][rng.random_range(0..3)];
            s.crash_mode = if rng.random_bool(0.5) {
                CrashMode::Wipe
            } else {
                CrashMode::Keep
            };
            any = true;
        }
        if rng.random_bool(0.4) {
            s.loss = [0.05, 0.2, 0.5][rng.random_range(0..3)];
            any = true;
        }
        if rng.random_bool(0.3) {
            s.duplicate = [0.1, 0.3][rng.random_range(0..2)];
            any = true;
        }
        if rng.random_bool(0.3) {
            s.reorder = [0.1, 0.3][rng.random_range(0..2)];
            any = true;
        }
        if rng.random_bool(0.3) {
            s.clock_skew_ms = [100, 250, 500][rng.random_range(0..3)];
        }
    }
    // Small messages cut deltas; a vector must still fit one, and every
    // crash with state loss adds a writer.
    s.max_message_bytes = if s.crash_rate > 0.0 && s.crash_mode == CrashMode::Wipe {
        1 << 20
    } else {
        [4 << 10, 64 << 10, 1 << 20][rng.random_range(0..3)]
    };
    s.rounds = s.faults_end().max(s.writes_end()) + HEAL_BUDGET;
    s
}

/// Draws and runs `spec.runs` scenarios, calling `on_run` after each.
///
/// # Errors
/// [`SimError`] if a drawn scenario is invalid: a bug in [`draw`].
pub fn fuzz(spec: &FuzzSpec, on_run: impl Fn() + Sync) -> Result<FuzzReport, SimError> {
    let jobs: Vec<Scenario> = (0..spec.runs).map(|run| draw(spec.seed, run)).collect();
    for job in &jobs {
        job.validate()?;
    }
    let mut report = FuzzReport {
        spec: spec.clone(),
        passed: 0,
        converged: 0,
        max_rounds_to_heal: 0,
        mean_rounds_to_heal: 0.0,
        slowest: None,
        failures: Vec::new(),
    };
    let mut total_after = 0;
    for (run, result) in (0..).zip(simulate_all(&jobs, spec.threads, on_run)) {
        let result = result?;
        if result.success() {
            report.passed += 1;
        } else {
            report.failures.push(FuzzFailure {
                run,
                converged: result.outcome.converged,
                verified: result.verification.ok,
                command: result.command.clone(),
            });
        }
        let quiet = result
            .scenario
            .faults_end()
            .max(result.scenario.writes_end());
        if let Some(after) = result
            .outcome
            .converged_round
            .map(|r| r.saturating_sub(quiet))
        {
            report.converged += 1;
            total_after += after;
            if after > report.max_rounds_to_heal || report.slowest.is_none() {
                report.max_rounds_to_heal = after;
                report.slowest = Some(result.command);
            }
        }
    }
    if report.converged > 0 {
        report.mean_rounds_to_heal = total_after as f64 / report.converged as f64;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_valid_and_repeat_for_a_seed() {
        for run in 0..2_000 {
            let scenario = draw(7, run);
            assert_eq!(scenario.validate(), Ok(()), "run {run}: {scenario:?}");
            assert!(scenario.has_faults());
            assert_eq!(draw(7, run), scenario);
        }
        assert_ne!(draw(7, 0), draw(8, 0));
    }

    #[test]
    fn draws_reach_past_every_timeout() {
        let longest = (0..500)
            .filter_map(|run| draw(1, run).partition)
            .map(|(start, end)| end - start)
            .max();
        assert_eq!(longest, Some(300));
    }
}
