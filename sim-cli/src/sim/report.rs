//! What a simulation found, as data: printed for humans or as JSON.

use gossip::Metrics;
use serde::Serialize;
use transport_mem::NetworkStats;

use crate::sim::scenario::Scenario;
use crate::sim::timing::TimeReport;

/// The result of one simulation run. Its JSON form is documented in
/// `docs/simulation.md`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SimReport {
    /// The exact command that replays this run.
    pub command: String,
    /// What was run.
    pub scenario: Scenario,
    /// Whether and when the cluster converged.
    pub outcome: Outcome,
    /// Per round, the fraction of live nodes that held every surviving write
    /// at the end of that round.
    pub curve: Vec<f64>,
    /// The writes the workload issued.
    pub writes: WriteStats,
    /// Messages, bytes and entries exchanged.
    pub traffic: TrafficStats,
    /// Faults injected.
    pub faults: FaultStats,
    /// The final comparison of every live replica with the reference.
    pub verification: Verification,
    /// Under staggered timing: the curve sampled within rounds, when every
    /// live node held every write, and per-write spread times.
    pub time: Option<TimeReport>,
}

impl SimReport {
    /// Converged within the budget and verified: exit status 0.
    pub fn success(&self) -> bool {
        self.outcome.converged && self.verification.ok
    }
}

/// Whether and when the cluster converged.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Outcome {
    /// Every live node held every surviving write, with all writes issued and
    /// all faults over, within the round budget.
    pub converged: bool,
    /// Rounds run.
    pub rounds_run: u64,
    /// The round at whose end the cluster converged.
    pub converged_round: Option<u64>,
    /// Rounds from the last write to convergence.
    pub rounds_after_last_write: Option<u64>,
    /// Rounds from the end of the faults to convergence, if there were faults.
    pub rounds_after_faults: Option<u64>,
    /// Convergence in gossip intervals of virtual time (equal to rounds: one
    /// round is one interval in both timing models).
    pub intervals: Option<u64>,
    /// Virtual time to convergence, in seconds.
    pub virtual_seconds: Option<f64>,
}

/// The workload's writes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WriteStats {
    /// Writes accepted by a node (puts and deletes).
    pub accepted: u64,
    /// Of which deletes.
    pub deletes: u64,
    /// Writes that found no running node to take them.
    pub refused: u64,
    /// Accepted writes held only by a node that crashed with state loss.
    pub lost_in_crashes: u64,
    /// Keys with a live value in the reference at the end.
    pub live_keys: u64,
}

/// Messages, bytes and entries.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TrafficStats {
    /// Messages sent, by kind: syn, syn_ack, ack.
    pub messages: KindCounts,
    /// Encoded bytes sent, by kind.
    pub bytes: KindCounts,
    /// Entries sent in deltas.
    pub entries_sent: u64,
    /// Entries received in deltas.
    pub entries_received: u64,
    /// Received entries that changed something.
    pub entries_useful: u64,
    /// Copies received per useful entry (1.0 is perfect).
    pub redundancy: f64,
    /// Exchanges opened, completed and timed out.
    pub exchanges: ExchangeCounts,
    /// Bytes each node sends per round once the cluster has converged and
    /// nothing is left to carry, over a few more rounds run after every
    /// other figure was taken; `None` if it did not converge (or under
    /// `--threads`).
    pub idle_bytes_per_node_per_round: Option<f64>,
}

/// A count per message kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct KindCounts {
    /// Opening messages.
    pub syn: u64,
    /// Answers.
    pub syn_ack: u64,
    /// Closing messages.
    pub ack: u64,
    /// All kinds.
    pub total: u64,
}

/// Exchange outcomes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ExchangeCounts {
    /// Opened.
    pub started: u64,
    /// Answered.
    pub completed: u64,
    /// Unanswered past the timeout.
    pub timed_out: u64,
}

/// Faults injected.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FaultStats {
    /// Times a node was made unavailable by churn.
    pub unavailable_periods: u64,
    /// Crashes (either mode).
    pub crashes: u64,
    /// Nodes refused as expired (silent past `--retention-rounds`) and
    /// restarted empty.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub expired: u64,
    /// Messages dropped by random loss.
    pub messages_lost: u64,
    /// Messages delivered twice.
    pub messages_duplicated: u64,
    /// Messages held back and reordered.
    pub messages_reordered: u64,
    /// Messages dropped at a partition.
    pub messages_partitioned: u64,
    /// Messages dropped because an end was unavailable or crashed.
    pub messages_to_unavailable: u64,
    /// Messages refused by their receiver (undecodable or too far ahead).
    pub messages_rejected: u64,
}

/// The final check of every live replica against the reference.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// Every live replica reads exactly the reference.
    pub ok: bool,
    /// Replicas checked.
    pub nodes_checked: u64,
    /// Keys checked per replica.
    pub keys_checked: u64,
    /// The first disagreement found, if any.
    pub first_divergence: Option<Mismatch>,
}

/// A replica that does not read what the reference says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mismatch {
    /// The key.
    pub key: String,
    /// The node.
    pub node: u64,
    /// What the reference reads.
    pub expected: Option<String>,
    /// What the node reads.
    pub found: Option<String>,
}

/// Builds the report both engines print.
#[allow(clippy::too_many_arguments)]
pub(crate) fn assemble(
    time: Option<TimeReport>,
    s: &Scenario,
    curve: Vec<f64>,
    converged_round: Option<u64>,
    rounds_run: u64,
    writes: WriteStats,
    metrics: &Metrics,
    net: &NetworkStats,
    faults: FaultStats,
    verification: Verification,
) -> SimReport {
    let useful = metrics.entries_received - metrics.entries_redundant;
    let kinds = |counts: [u64; 3]| KindCounts {
        syn: counts[0],
        syn_ack: counts[1],
        ack: counts[2],
        total: counts.iter().sum(),
    };
    let traffic = TrafficStats {
        messages: kinds(metrics.sent.messages),
        bytes: kinds(metrics.sent.bytes),
        entries_sent: metrics.entries_sent,
        entries_received: metrics.entries_received,
        entries_useful: useful,
        redundancy: if useful == 0 {
            0.0
        } else {
            metrics.entries_received as f64 / useful as f64
        },
        exchanges: ExchangeCounts {
            started: metrics.exchanges_started,
            completed: metrics.exchanges_completed,
            timed_out: metrics.exchanges_timed_out,
        },
        idle_bytes_per_node_per_round: None,
    };
    let faults = FaultStats {
        messages_lost: net.lost,
        messages_duplicated: net.duplicated,
        messages_reordered: net.reordered,
        messages_partitioned: net.partitioned,
        messages_to_unavailable: net.unavailable,
        messages_rejected: metrics.messages_rejected,
        ..faults
    };
    let faults_end = s.faults_end();
    let outcome = Outcome {
        converged: converged_round.is_some(),
        rounds_run,
        converged_round,
        rounds_after_last_write: converged_round.map(|r| r.saturating_sub(s.writes_end())),
        rounds_after_faults: converged_round
            .filter(|_| faults_end > 0)
            .map(|r| r.saturating_sub(faults_end)),
        intervals: converged_round,
        virtual_seconds: converged_round.map(|r| (r * s.interval_ms) as f64 / 1000.0),
    };
    SimReport {
        command: s.command(),
        scenario: s.clone(),
        outcome,
        curve,
        writes,
        traffic,
        faults,
        verification,
        time,
    }
}

/// Whether a count is zero: such counts are left out of the JSON report, so
/// that runs without the setting that makes them report as before.
#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde passes a reference"
)]
fn is_zero(count: &u64) -> bool {
    *count == 0
}
