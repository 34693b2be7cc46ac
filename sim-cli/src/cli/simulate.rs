//! `sim-cli simulate`: one simulated cluster under a workload and faults,
//! verified against the sequential reference.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use sim::{CrashMode, Scenario, WritePattern};
use transport_mem::Timing;

use crate::cli::{check_writable, convergence_bar, output, write_plot};

/// `sim-cli simulate`.
#[derive(Debug, Args)]
pub(crate) struct SimulateArgs {
    /// Nodes in the cluster.
    #[arg(long, default_value_t = 100)]
    pub(crate) nodes: usize,
    /// Peers each node contacts per round.
    #[arg(long, default_value_t = 3)]
    pub(crate) fanout: usize,
    /// Peers each node contacts in a round that follows one in which it
    /// learned nothing new (default: always --fanout), as `sim-cli node`
    /// does: what it saves and what it costs.
    #[arg(long)]
    pub(crate) idle_fanout: Option<usize>,
    /// Switch off every optimisation of the exchange (hash and `Behind`
    /// digests, deltas in flight, held parts, pulling): the base push-pull
    /// protocol, to see what they buy.
    #[arg(long)]
    pub(crate) unoptimised: bool,
    /// Rounds a node may stay unheard from before the others expire it
    /// (default: never): they collect tombstones without it and refuse it,
    /// and the run restarts it empty, counting what only it held as lost.
    #[arg(long)]
    pub(crate) retention_rounds: Option<u64>,
    /// Writes the workload issues, each on a random node.
    #[arg(long, default_value_t = 1_000)]
    pub(crate) writes: usize,
    /// Distinct keys the writes choose from.
    #[arg(long, default_value_t = 100)]
    pub(crate) keys: usize,
    /// Fraction of writes that are deletes.
    #[arg(long, default_value_t = 0.1, allow_negative_numbers = true)]
    pub(crate) deletes: f64,
    /// How writes are spread over time.
    #[arg(long, value_enum, default_value_t = PatternArg::Burst)]
    pub(crate) write_pattern: PatternArg,
    /// Rounds a steady workload spans.
    #[arg(long, default_value_t = 10)]
    pub(crate) write_rounds: u64,
    /// The most rounds to run before giving up (exit status 1).
    #[arg(long, default_value_t = 200)]
    pub(crate) rounds: u64,
    /// Seed of every random choice: the same seed gives the same run.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Size limit of one gossip message in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub(crate) max_message_bytes: usize,
    #[command(flatten)]
    pub(crate) clock: ClockArgs,
    /// Seed peers each node starts with (default: all); the rest are learned.
    #[arg(long)]
    pub(crate) seed_peers: Option<usize>,
    /// Rounds, from the first, during which unavailability, crashes and
    /// message faults are active.
    #[arg(long, default_value_t = 20)]
    pub(crate) fault_rounds: u64,
    /// Fraction of nodes unavailable at a time (a new random set every
    /// --churn-rounds).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub(crate) unavailable: f64,
    /// Rounds between changes of the unavailable set.
    #[arg(long, default_value_t = 5)]
    pub(crate) churn_rounds: u64,
    /// Probability per node and round of a crash.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub(crate) crash_rate: f64,
    /// What a crash does to the node's state.
    #[arg(long, value_enum, default_value_t = CrashModeArg::Wipe)]
    pub(crate) crash_mode: CrashModeArg,
    /// Rounds a crashed node stays down.
    #[arg(long, default_value_t = 3)]
    pub(crate) crash_downtime: u64,
    /// Split the cluster in two halves from round START until round END.
    #[arg(long, value_name = "START..END", value_parser = parse_range)]
    pub(crate) partition: Option<(u64, u64)>,
    /// Probability that a message is lost.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub(crate) loss: f64,
    /// Probability that a message is delivered twice.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub(crate) duplicate: f64,
    /// Probability that a message is delayed and overtaken.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub(crate) reorder: f64,
    /// Spread of node clock skews in ms (each node off by up to half).
    #[arg(long, default_value_t = 0)]
    pub(crate) clock_skew_ms: u64,
    /// Largest accepted offset of a remote timestamp, in ms.
    #[arg(long, default_value_t = lww_crdt::DEFAULT_MAX_OFFSET_MS)]
    pub(crate) max_clock_offset_ms: u64,
    /// Run one driver thread per node and concurrent client threads on
    /// wall-clock time (rounds last --interval-ms; try --interval-ms 20).
    #[arg(long)]
    pub(crate) threads: bool,
    /// Client threads writing and reading concurrently under --threads.
    #[arg(long, default_value_t = 8)]
    pub(crate) client_threads: usize,
    /// Print one JSON document instead of the human report.
    #[arg(long)]
    pub(crate) json: bool,
    /// Write the per-round convergence curve as an SVG plot.
    #[arg(long, value_name = "FILE.svg")]
    pub(crate) plot: Option<PathBuf>,
}

impl SimulateArgs {
    pub(crate) fn scenario(&self) -> Scenario {
        Scenario {
            nodes: self.nodes,
            fanout: self.fanout,
            writes: self.writes,
            keys: self.keys,
            deletes: self.deletes,
            write_pattern: match self.write_pattern {
                PatternArg::Burst => WritePattern::Burst,
                PatternArg::Steady => WritePattern::Steady,
                PatternArg::EachNode => WritePattern::EachNode,
                PatternArg::Single => WritePattern::Single,
            },
            write_rounds: self.write_rounds,
            rounds: self.rounds,
            seed: self.seed,
            max_message_bytes: self.max_message_bytes,
            interval_ms: self.clock.interval_ms,
            timing: self.clock.timing(),
            seed_peers: self.seed_peers,
            fault_rounds: self.fault_rounds,
            unavailable: self.unavailable,
            churn_rounds: self.churn_rounds,
            crash_rate: self.crash_rate,
            crash_mode: match self.crash_mode {
                CrashModeArg::Wipe => CrashMode::Wipe,
                CrashModeArg::Keep => CrashMode::Keep,
            },
            crash_downtime: self.crash_downtime,
            partition: self.partition,
            loss: self.loss,
            duplicate: self.duplicate,
            reorder: self.reorder,
            clock_skew_ms: self.clock_skew_ms,
            max_clock_offset_ms: self.max_clock_offset_ms,
            threads: self.threads,
            client_threads: self.client_threads,
            idle_fanout: self.idle_fanout,
            unoptimised: self.unoptimised,
            retention_rounds: self.retention_rounds,
        }
        .normalized()
    }
}

/// Parses `START..END` into a pair of rounds.
fn parse_range(text: &str) -> Result<(u64, u64), String> {
    let (start, end) = text
        .split_once("..")
        .ok_or_else(|| format!("expected START..END, got {text:?}"))?;
    let parse = |part: &str| {
        part.trim()
            .parse::<u64>()
            .map_err(|_| format!("{part:?} is not a round number"))
    };
    Ok((parse(start)?, parse(end)?))
}

/// Runs `sim-cli simulate`: exit status 0 when the cluster converged and
/// verified, 1 when it did not.
pub(crate) fn run(args: &SimulateArgs) -> anyhow::Result<ExitCode> {
    let scenario = args.scenario();
    scenario.validate()?;
    if let Some(path) = &args.plot {
        check_writable(path)?;
    }
    // Progress toward convergence: the share of live nodes up to date.
    let progress = convergence_bar(args.json);
    let report = sim::simulate(&scenario, |done, caught_up| {
        progress.set_position((caught_up * 1_000.0) as u64);
        progress.set_message(format!("round {done}"));
    })?;
    progress.finish_and_clear();
    if let Some(path) = &args.plot {
        write_plot(path, output::sim::curve_chart(&report).to_svg())?;
    }
    if args.json {
        output::emit(&output::json(&report));
    } else {
        output::emit(&output::sim::simulate_report(&report));
    }
    Ok(if report.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// How virtual time runs: shared by `simulate` and `sweep`.
#[derive(Debug, Args)]
pub(crate) struct ClockArgs {
    /// Gossip interval in ms of virtual time.
    #[arg(long, default_value_t = 1_000)]
    pub(crate) interval_ms: u64,
    /// When nodes tick within an interval.
    #[arg(long, value_enum, default_value_t = TimingArg::Lockstep)]
    pub(crate) timing: TimingArg,
    /// One-way message latency in ms under --timing staggered.
    #[arg(long, default_value_t = 50)]
    pub(crate) latency_ms: u64,
}

impl ClockArgs {
    pub(crate) fn timing(&self) -> Timing {
        match self.timing {
            TimingArg::Lockstep => Timing::Lockstep,
            TimingArg::Staggered => Timing::Staggered {
                latency_ms: self.latency_ms,
            },
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum PatternArg {
    /// Every write before the first round.
    Burst,
    /// Writes spread over --write-rounds rounds.
    Steady,
    /// Every node writes one key of its own at the same instant
    /// (all-to-all); --writes, --keys and --deletes do not apply.
    EachNode,
    /// One write on one random node (the single-update case); --writes,
    /// --keys and --deletes do not apply.
    Single,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum TimingArg {
    /// Every node ticks at the start of each round; messages arrive at once.
    Lockstep,
    /// Nodes tick at random phases; messages take --latency-ms.
    Staggered,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum CrashModeArg {
    /// A crashed node loses its state and restarts empty.
    Wipe,
    /// A crashed node keeps its state.
    Keep,
}
