//! Runs a [`Scenario`] on a deterministic in-memory cluster and checks the
//! result against the sequential reference.

use lww_crdt::Stamp;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use transport_mem::reference::Reference;
use transport_mem::{Cluster, ClusterConfig, Faults};

use crate::sim::error::SimError;
use crate::sim::report::{FaultStats, SimReport, Verification, WriteStats, assemble};
use crate::sim::scenario::{CrashMode, Scenario, WritePattern};
use crate::sim::timing::{SAMPLES_PER_INTERVAL, Timeline};
use crate::sim::verify::{Target, Verifier, fraction_caught_up};

/// Separates the workload's random stream from the cluster's.
const WORKLOAD_STREAM: u64 = 0x776f_726b_6c6f_6164;

/// Rounds run after convergence, with nothing to carry, to measure what an
/// idle cluster sends.
pub const IDLE_ROUNDS: u64 = 3;

/// Per-node fault state the engine tracks beside the cluster.
#[derive(Clone, Copy, Debug, Default)]
struct NodeFaults {
    churned: bool,
    /// Round at which a crashed or paused node comes back.
    back_at: Option<u64>,
}

struct Run<'a> {
    scenario: &'a Scenario,
    cluster: Cluster,
    rng: SmallRng,
    reference: Reference,
    /// What every replica must hold, refreshed when `target_stale`.
    target: Target,
    target_stale: bool,
    nodes: Vec<NodeFaults>,
    writes: WriteStats,
    faults: FaultStats,
    issued: usize,
    /// Sub-interval samples and spread times, under staggered timing.
    timeline: Option<Timeline>,
    /// The cluster's time when the run began.
    start_ms: u64,
}

/// Runs a validated `scenario` on a deterministic [`Cluster`], calling
/// `on_round(done, caught_up)` after every round, with the fraction of
/// live nodes holding every write so far.
///
/// # Errors
/// [`SimError`] if the cluster refuses the scenario's settings.
pub(crate) fn simulate_deterministic(
    scenario: &Scenario,
    mut on_round: impl FnMut(u64, f64),
) -> Result<SimReport, SimError> {
    let cluster = Cluster::new(ClusterConfig {
        nodes: scenario.nodes,
        fanout: scenario.fanout,
        tick_interval_ms: scenario.interval_ms,
        max_message_bytes: scenario.max_message_bytes,
        seed: scenario.seed,
        timing: scenario.timing,
        seed_peers: scenario.seed_peers,
        clock_skew_ms: scenario.clock_skew_ms,
        max_clock_offset_ms: scenario.max_clock_offset_ms,
        faults: Faults::NONE,
        idle_fanout: scenario.idle_fanout,
        unoptimised: scenario.unoptimised,
        retention_ms: scenario
            .retention_rounds
            .map(|rounds| rounds.saturating_mul(scenario.interval_ms)),
    })?;
    let mut run = Run {
        scenario,
        cluster,
        rng: SmallRng::seed_from_u64(scenario.seed ^ WORKLOAD_STREAM),
        reference: Reference::new(),
        target: Target::default(),
        target_stale: false,
        nodes: vec![NodeFaults::default(); scenario.nodes],
        writes: WriteStats::default(),
        faults: FaultStats::default(),
        issued: 0,
        timeline: matches!(scenario.timing, transport_mem::Timing::Staggered { .. })
            .then(Timeline::default),
        start_ms: 0,
    };
    run.start_ms = run.cluster.now_ms();
    let faults_end = scenario.faults_end();
    let writes_end = scenario.writes_end();
    let mut curve = Vec::new();
    let mut converged_round = None;
    for round in 0..scenario.rounds {
        run.inject_faults(round)?;
        run.issue_writes(round);
        let mut fraction = run.run_round();
        if run.restart_expired()? {
            fraction = run.fraction_caught_up();
        }
        curve.push(fraction);
        on_round(round + 1, fraction);
        let quiet = round + 1 >= faults_end && round + 1 > writes_end;
        if quiet && fraction >= 1.0 && run.all_running() {
            converged_round = Some(round + 1);
            break;
        }
    }
    Ok(run.report(curve, converged_round))
}

impl Run<'_> {
    fn inject_faults(&mut self, round: u64) -> Result<(), SimError> {
        let s = self.scenario;
        let end = s.faults_end();
        if round == 0 {
            self.cluster.set_faults(Faults {
                loss: s.loss,
                duplicate: s.duplicate,
                reorder: s.reorder,
            })?;
        }
        if round >= end {
            if round == end {
                self.end_faults()?;
            }
            return Ok(());
        }
        if let Some((start, heal)) = s.partition {
            let half = s.nodes / 2;
            if round == start {
                self.cluster.partition(|i| u32::from(i >= half));
            }
            if round == heal {
                self.cluster.heal();
            }
        }
        let churning = s.unavailable > 0.0 && round < s.fault_rounds;
        if churning && round % s.churn_rounds == 0 {
            for node in &mut self.nodes {
                node.churned = false;
            }
            let count = (s.unavailable * s.nodes as f64).round() as usize;
            let mut chosen = 0;
            while chosen < count.min(s.nodes) {
                let pick = self.rng.random_range(0..s.nodes);
                if !self.nodes[pick].churned {
                    self.nodes[pick].churned = true;
                    self.faults.unavailable_periods += 1;
                    chosen += 1;
                }
            }
        }
        for index in 0..s.nodes {
            if self.nodes[index].back_at.is_some_and(|at| at <= round) {
                self.bring_back(index)?;
            }
        }
        if s.crash_rate > 0.0 && round < s.fault_rounds {
            for index in 0..s.nodes {
                let up = self.nodes[index].back_at.is_none();
                if up && self.rng.random_bool(s.crash_rate) {
                    self.crash(index, round)?;
                }
            }
        }
        self.sync_availability()
    }

    fn crash(&mut self, index: usize, round: u64) -> Result<(), SimError> {
        self.faults.crashes += 1;
        self.nodes[index].back_at = Some(round + self.scenario.crash_downtime);
        if self.scenario.crash_mode == CrashMode::Wipe {
            self.record_losses(index);
            self.cluster.crash(index)?;
        }
        Ok(())
    }

    /// Restarts empty, as an operator would, every node a peer refused as
    /// expired, losing what only it held; returns whether there was one.
    fn restart_expired(&mut self) -> Result<bool, SimError> {
        let expired: Vec<usize> = self
            .cluster
            .live_nodes()
            .filter(|&i| {
                self.cluster
                    .node(i)
                    .is_some_and(|n| n.expired_by().is_some())
            })
            .collect();
        for &index in &expired {
            self.faults.expired += 1;
            self.record_losses(index);
            self.cluster.crash(index)?;
            self.cluster.restart(index)?;
        }
        Ok(!expired.is_empty())
    }

    fn bring_back(&mut self, index: usize) -> Result<(), SimError> {
        self.nodes[index].back_at = None;
        if self.cluster.is_crashed(index) {
            self.cluster.restart(index)?;
        }
        Ok(())
    }

    fn end_faults(&mut self) -> Result<(), SimError> {
        self.cluster.set_faults(Faults::NONE)?;
        self.cluster.heal();
        for index in 0..self.scenario.nodes {
            self.nodes[index].churned = false;
            if self.nodes[index].back_at.is_some() {
                self.bring_back(index)?;
            }
        }
        self.sync_availability()
    }

    fn sync_availability(&mut self) -> Result<(), SimError> {
        for index in 0..self.scenario.nodes {
            let node = self.nodes[index];
            let available = !node.churned && node.back_at.is_none();
            self.cluster.set_available(index, available)?;
        }
        Ok(())
    }

    /// Marks lost the writes that node `index` alone holds: for each of its
    /// keys, those newer than anything any other surviving node holds.
    fn record_losses(&mut self, index: usize) {
        let Some(node) = self.cluster.node(index) else {
            return;
        };
        let others: Vec<usize> = self.cluster.live_nodes().filter(|&i| i != index).collect();
        let mut lost = 0;
        for (key, entry) in node.map().entries() {
            let best_elsewhere: Option<Stamp> = others
                .iter()
                .filter_map(|&i| self.cluster.node(i)?.get_entry(key))
                .map(|e| e.stamp)
                .max();
            lost += self.reference.lose(key, best_elsewhere, entry.stamp);
            if let Some(timeline) = self.timeline.as_mut() {
                timeline.lose(key, best_elsewhere, entry.stamp);
            }
        }
        if lost > 0 {
            self.writes.lost_in_crashes += lost as u64;
            self.target_stale = true;
        }
    }

    /// Runs one round; returns the fraction of live nodes up to date at
    /// its end. Under staggered timing, samples the round as it goes.
    fn run_round(&mut self) -> f64 {
        if self.timeline.is_none() {
            self.cluster.run_round();
            return self.fraction_caught_up();
        }
        self.refresh_target();
        let Some(timeline) = self.timeline.as_mut() else {
            return 0.0;
        };
        let (target, start) = (&self.target, self.start_ms);
        let mut last = 0.0;
        self.cluster
            .run_round_sampled(SAMPLES_PER_INTERVAL, |cluster, at| {
                last = caught_up(cluster, target);
                timeline.sample(cluster, at, at - start, last);
            });
        last
    }

    fn issue_writes(&mut self, round: u64) {
        let s = self.scenario;
        match s.write_pattern {
            WritePattern::EachNode if round == 0 => {
                for index in 0..s.nodes {
                    self.issue_at(index, format!("n{index}"), false);
                }
                return;
            }
            WritePattern::Single if round == 0 => {
                let index = self.rng.random_range(0..s.nodes);
                self.issue_at(index, "k0".to_owned(), false);
                return;
            }
            WritePattern::EachNode | WritePattern::Single => return,
            WritePattern::Burst | WritePattern::Steady => {}
        }
        let due = match s.write_pattern {
            WritePattern::Burst if round == 0 => s.writes,
            WritePattern::Burst | WritePattern::EachNode | WritePattern::Single => 0,
            WritePattern::Steady => {
                let until =
                    ((round + 1).min(s.write_rounds) as usize * s.writes) / s.write_rounds as usize;
                until.saturating_sub(self.issued)
            }
        };
        for _ in 0..due {
            self.issue_one();
        }
    }

    fn issue_one(&mut self) {
        let s = self.scenario;
        let n = s.nodes;
        let key = format!("k{}", self.rng.random_range(0..s.keys));
        let delete = self.rng.random_bool(s.deletes);
        let start = self.rng.random_range(0..n);
        let Some(index) = (0..n)
            .map(|offset| (start + offset) % n)
            .find(|&i| self.cluster.is_running(i))
        else {
            self.issued += 1;
            self.writes.refused += 1;
            return;
        };
        self.issue_at(index, key, delete);
    }

    /// Writes (or deletes) `key` on node `index`, if it is running.
    fn issue_at(&mut self, index: usize, key: String, delete: bool) {
        let value = format!("v{}", self.issued);
        self.issued += 1;
        if !self.cluster.is_running(index) {
            self.writes.refused += 1;
            return;
        }
        let written = if delete {
            self.cluster.delete(index, &key)
        } else {
            self.cluster.put(index, &key, &value)
        };
        let Ok(stamp) = written else {
            self.writes.refused += 1;
            return;
        };
        if let Some(timeline) = self.timeline.as_mut() {
            timeline.wrote(&key, stamp, self.cluster.now_ms());
        }
        self.reference
            .record(&key, stamp, (!delete).then_some(value));
        self.writes.accepted += 1;
        self.writes.deletes += u64::from(delete);
        self.target_stale = true;
    }

    /// The fraction of live nodes that hold every surviving write.
    fn fraction_caught_up(&mut self) -> f64 {
        self.refresh_target();
        caught_up(&self.cluster, &self.target)
    }

    /// Recomputes what every replica must hold, if writes or losses
    /// changed it.
    fn refresh_target(&mut self) {
        if self.target_stale {
            self.target = Target::of(&self.reference);
            self.target_stale = false;
        }
    }

    fn all_running(&self) -> bool {
        (0..self.scenario.nodes).all(|i| self.cluster.is_running(i))
    }

    fn verify(&self) -> Verification {
        let mut verifier = Verifier::new(&self.reference);
        for index in self.cluster.live_nodes() {
            if let Some(node) = self.cluster.node(index) {
                verifier.check(index, node);
            }
        }
        verifier.finish()
    }

    fn report(mut self, curve: Vec<f64>, converged_round: Option<u64>) -> SimReport {
        let verification = self.verify();
        let mut writes = self.writes.clone();
        writes.live_keys = self.reference.expected().len() as u64;
        let time = self
            .timeline
            .take()
            .map(|timeline| timeline.report(self.scenario.interval_ms, converged_round.is_some()));
        let mut report = assemble(
            time,
            self.scenario,
            curve,
            converged_round,
            self.cluster.rounds(),
            writes,
            &self.cluster.metrics(),
            &self.cluster.network_stats(),
            self.faults.clone(),
            verification,
        );
        if converged_round.is_some() {
            report.traffic.idle_bytes_per_node_per_round = Some(self.idle_bytes());
        }
        report
    }

    /// Bytes each node sends per round once nothing is left to carry,
    /// averaged over [`IDLE_ROUNDS`] more rounds: run after everything else
    /// was measured, so it changes no other figure.
    fn idle_bytes(&mut self) -> f64 {
        let before = self.cluster.metrics().sent.bytes.iter().sum::<u64>();
        self.cluster.run_rounds(IDLE_ROUNDS);
        let after = self.cluster.metrics().sent.bytes.iter().sum::<u64>();
        let nodes = self.cluster.live_nodes().count().max(1) as f64;
        after.saturating_sub(before) as f64 / nodes / IDLE_ROUNDS as f64
    }
}

/// The fraction of the cluster's live nodes that hold every surviving
/// write.
fn caught_up(cluster: &Cluster, target: &Target) -> f64 {
    fraction_caught_up(
        cluster
            .live_nodes()
            .map(|i| cluster.node(i).is_some_and(|node| target.reached_by(node))),
    )
}
