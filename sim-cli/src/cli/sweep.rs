//! `sim-cli sweep`: rounds to spread one update over cluster sizes,
//! fan-outs and seeds, beside the push-pull theory.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use sim::{Scenario, SweepSpec};

use crate::cli::simulate::ClockArgs;
use crate::cli::{available_threads, check_writable, output, progress_bar, write_plot};

/// `sim-cli sweep`.
#[derive(Debug, Args)]
pub(crate) struct SweepArgs {
    /// Cluster sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000")]
    pub(crate) nodes: Vec<usize>,
    /// Fan-outs, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,3")]
    pub(crate) fanout: Vec<usize>,
    /// Runs per (size, fan-out), with seeds 0..SEEDS.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) seeds: u64,
    /// The most rounds one run may take.
    #[arg(long, default_value_t = 200)]
    pub(crate) rounds: u64,
    #[command(flatten)]
    pub(crate) clock: ClockArgs,
    /// Worker threads running seeds in parallel (default: the machine's
    /// cores); results do not depend on it.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) workers: Option<u64>,
    /// Print one JSON document instead of the table.
    #[arg(long)]
    pub(crate) json: bool,
    /// Write rounds against cluster size as an SVG plot.
    #[arg(long, value_name = "FILE.svg")]
    pub(crate) plot: Option<PathBuf>,
}

impl SweepArgs {
    pub(crate) fn spec(&self) -> SweepSpec {
        let threads = self
            .workers
            .map_or_else(available_threads, |workers| workers as usize);
        SweepSpec {
            nodes: self.nodes.clone(),
            fanouts: self.fanout.clone(),
            seeds: self.seeds,
            base: Scenario {
                rounds: self.rounds,
                interval_ms: self.clock.interval_ms,
                timing: self.clock.timing(),
                ..Scenario::default()
            },
            threads,
        }
    }
}

/// Runs `sim-cli sweep`: exit status 1 when a run did not spread the update
/// within its round budget.
pub(crate) fn run(args: &SweepArgs) -> anyhow::Result<ExitCode> {
    let spec = args.spec();
    if let Some(path) = &args.plot {
        check_writable(path)?;
    }
    let runs = (spec.nodes.len() * spec.fanouts.len()) as u64 * spec.seeds;
    let progress = progress_bar(runs, args.json);
    let report = sim::sweep(&spec, || progress.inc(1))?;
    progress.finish_and_clear();
    if let Some(path) = &args.plot {
        write_plot(path, output::sim::sweep_chart(&report).to_svg())?;
    }
    if args.json {
        output::emit(&output::json(&report));
    } else {
        output::emit(&output::sim::sweep_table(&report));
    }
    let failed = report.points.iter().any(|p| p.failed > 0);
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
