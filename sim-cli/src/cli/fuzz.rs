//! `sim-cli fuzz`: random small clusters under random fault mixes, each of
//! which must converge and verify.

use std::process::ExitCode;

use clap::Args;
use sim::FuzzSpec;

use crate::cli::{available_threads, output, progress_bar};

/// `sim-cli fuzz`.
#[derive(Debug, Args)]
pub(crate) struct FuzzArgs {
    /// Scenarios to draw and run.
    #[arg(long, default_value_t = 1_000)]
    pub(crate) runs: u64,
    /// Seed of the draws: the same seed draws the same scenarios.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Worker threads (default: the machine's cores); results do not depend
    /// on it.
    #[arg(long)]
    pub(crate) threads: Option<usize>,
    /// Print one JSON document instead of the summary.
    #[arg(long)]
    pub(crate) json: bool,
}

impl FuzzArgs {
    pub(crate) fn spec(&self) -> FuzzSpec {
        FuzzSpec {
            runs: self.runs,
            seed: self.seed,
            threads: self.threads.unwrap_or_else(available_threads),
        }
    }
}

/// Runs `sim-cli fuzz`: exit status 1 when a scenario did not converge and
/// verify.
pub(crate) fn run(args: &FuzzArgs) -> anyhow::Result<ExitCode> {
    let spec = args.spec();
    let progress = progress_bar(spec.runs, args.json);
    let report = sim::fuzz(&spec, || progress.inc(1))?;
    progress.finish_and_clear();
    output::emit(&if args.json {
        output::json(&report)
    } else {
        output::sim::fuzz_report(&report)
    });
    Ok(if report.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
