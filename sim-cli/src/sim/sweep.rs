//! Sweeps: how fast one update spreads, over cluster sizes, fan-outs and
//! seeds, beside the push-pull theory.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use serde::Serialize;

use crate::sim::error::SimError;
use crate::sim::report::SimReport;
use crate::sim::run::simulate;
use crate::sim::scenario::{Scenario, ScenarioError, WritePattern};

/// What to sweep.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SweepSpec {
    /// Cluster sizes.
    pub nodes: Vec<usize>,
    /// Fan-outs.
    pub fanouts: Vec<usize>,
    /// Runs per (size, fan-out), with seeds `0..seeds`.
    pub seeds: u64,
    /// Everything else about each run; `nodes`, `fanout` and `seed` are
    /// overridden, and the workload is one write.
    pub base: Scenario,
    /// Worker threads; results do not depend on it.
    pub threads: usize,
}

/// Mean and percentiles of one measure over seeds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Arithmetic mean.
    pub mean: f64,
    /// Median (nearest rank).
    pub p50: f64,
    /// 99th percentile (nearest rank).
    pub p99: f64,
}

impl Summary {
    /// The mean and nearest-rank percentiles of `values` (all zero if
    /// there are none).
    pub fn of(mut values: Vec<f64>) -> Summary {
        if values.is_empty() {
            return Summary::default();
        }
        values.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let index = ((p * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1;
            values[index]
        };
        Summary {
            mean: values.iter().sum::<f64>() / values.len() as f64,
            p50: rank(0.50),
            p99: rank(0.99),
        }
    }
}

/// Results for one (size, fan-out).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SweepPoint {
    /// Cluster size.
    pub nodes: usize,
    /// Fan-out.
    pub fanout: usize,
    /// Runs.
    pub runs: u64,
    /// Runs that did not converge within the round budget.
    pub failed: u64,
    /// Rounds until every node held the update; under staggered timing,
    /// gossip intervals of virtual time to the sample at which every node
    /// held it (fractional, see [`TimeReport`](crate::TimeReport)).
    pub rounds: Summary,
    /// Bytes sent per node until then.
    pub bytes_per_node: Summary,
    /// Copies of the update each node received.
    pub copies_per_node: Summary,
    /// The push-pull expectation in rounds.
    pub theory: f64,
}

/// A whole sweep.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SweepReport {
    /// The exact command that replays it.
    pub command: String,
    /// What `rounds` counts: `"rounds"` under lockstep timing, `"intervals"`
    /// (fractional, of virtual time) under staggered timing.
    pub unit: &'static str,
    /// One point per (size, fan-out), sizes outermost.
    pub points: Vec<SweepPoint>,
}

/// Expected rounds for one update to reach all of `n` nodes by push-pull
/// with fan-out `f`: `log_{2f+1} n + log_{f+1} ln n`. For `f = 1` this is
/// the classic `log3 n + log2 ln n` (Karp et al., 2000): the informed set
/// triples per round while it is small, then the uninformed fraction
/// squares per round.
pub fn theory_rounds(n: usize, fanout: usize) -> f64 {
    let n = n as f64;
    if n < 2.0 {
        return 0.0;
    }
    let f = fanout as f64;
    let growth = n.ln() / (2.0 * f + 1.0).ln();
    let ln_n = n.ln();
    let mop_up = if ln_n > 1.0 {
        ln_n.ln() / (f + 1.0).ln()
    } else {
        0.0
    };
    growth + mop_up
}

/// Runs the sweep, calling `on_run()` after each run.
///
/// # Errors
/// [`SimError`] if a generated scenario is invalid (for example a fan-out
/// not below a cluster size).
pub fn sweep(spec: &SweepSpec, on_run: impl Fn() + Sync) -> Result<SweepReport, SimError> {
    if spec.seeds == 0 {
        return Err(ScenarioError::Zero("seeds").into());
    }
    let mut jobs: Vec<Scenario> = Vec::new();
    for &nodes in &spec.nodes {
        for &fanout in &spec.fanouts {
            for seed in 0..spec.seeds {
                let scenario = Scenario {
                    nodes,
                    fanout,
                    seed,
                    writes: 1,
                    keys: 1,
                    deletes: 0.0,
                    write_pattern: WritePattern::Burst,
                    ..spec.base.clone()
                };
                scenario.validate()?;
                jobs.push(scenario);
            }
        }
    }
    let results = simulate_all(&jobs, spec.threads, on_run);
    let mut points = Vec::new();
    let mut results = results.into_iter();
    for &nodes in &spec.nodes {
        for &fanout in &spec.fanouts {
            let mut rounds = Vec::new();
            let mut bytes = Vec::new();
            let mut copies = Vec::new();
            let mut failed = 0;
            for _ in 0..spec.seeds {
                let report = match results.next() {
                    Some(Ok(report)) => report,
                    Some(Err(err)) => return Err(err),
                    None => continue,
                };
                let taken = match &report.time {
                    Some(time) => time.converged_intervals,
                    None => report.outcome.converged_round.map(|r| r as f64),
                };
                match taken {
                    Some(r) => rounds.push(r),
                    None => failed += 1,
                }
                let others = nodes.saturating_sub(1).max(1) as f64;
                bytes.push(report.traffic.bytes.total as f64 / nodes as f64);
                copies.push(report.traffic.entries_received as f64 / others);
            }
            points.push(SweepPoint {
                nodes,
                fanout,
                runs: spec.seeds,
                failed,
                rounds: Summary::of(rounds),
                bytes_per_node: Summary::of(bytes),
                copies_per_node: Summary::of(copies),
                theory: theory_rounds(nodes, fanout),
            });
        }
    }
    let unit = match spec.base.timing {
        transport_mem::Timing::Lockstep => "rounds",
        transport_mem::Timing::Staggered { .. } => "intervals",
    };
    Ok(SweepReport {
        command: command(spec),
        unit,
        points,
    })
}

fn command(spec: &SweepSpec) -> String {
    let list = |v: &[usize]| {
        v.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut cmd = format!(
        "sim-cli sweep --nodes {} --fanout {} --seeds {} --rounds {} --interval-ms {}",
        list(&spec.nodes),
        list(&spec.fanouts),
        spec.seeds,
        spec.base.rounds,
        spec.base.interval_ms
    );
    if let transport_mem::Timing::Staggered { latency_ms } = spec.base.timing {
        cmd.push_str(&format!(" --timing staggered --latency-ms {latency_ms}"));
    }
    cmd
}

/// Runs every scenario on `threads` workers; the results come back in the
/// scenarios' order, whatever the thread count.
pub(crate) fn simulate_all(
    jobs: &[Scenario],
    threads: usize,
    on_run: impl Fn() + Sync,
) -> Vec<Result<SimReport, SimError>> {
    // Workers take jobs in order from a shared counter; each result lands in
    // its job's slot.
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<SimReport, SimError>>>> =
        Mutex::new((0..jobs.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else {
                        return;
                    };
                    let result = simulate(job, |_, _| {});
                    if let Ok(mut slots) = results.lock() {
                        slots[i] = Some(result);
                    }
                    on_run();
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_else(PoisonError::into_inner);
    results.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn theory_matches_the_classic_push_pull_figures() {
        // log3 n + log2 ln n: 6.4 rounds at 100 nodes, 9.1 at 1,000.
        assert!((theory_rounds(100, 1) - 6.39).abs() < 0.01);
        assert!((theory_rounds(1_000, 1) - 9.08).abs() < 0.01);
        assert!(theory_rounds(100, 3) < theory_rounds(100, 1));
        assert_eq!(theory_rounds(1, 1), 0.0);
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let s = Summary::of((1..=100).map(f64::from).collect());
        assert_eq!((s.mean, s.p50, s.p99), (50.5, 50.0, 99.0));
    }
}
