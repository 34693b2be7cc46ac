//! `sim-cli`: simulate the gossip-replicated store, run its nodes, query them.
//!
//! Exit status: 0 when a simulation converged and verified, 1 when it did not
//! converge within its round budget or failed verification, 2 for usage or
//! internal errors.

#![forbid(unsafe_code)]

mod cli;
mod output;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::{Cli, Command, SimulateArgs, SweepArgs};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Simulate(args) => simulate(&args),
        Command::Sweep(args) => sweep(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            output::error(&format!("{err:#}"));
            ExitCode::from(2)
        }
    }
}

fn simulate(args: &SimulateArgs) -> anyhow::Result<ExitCode> {
    let scenario = args.scenario();
    scenario.validate()?;
    let progress = progress_bar(scenario.rounds, args.json);
    let report = sim::simulate(&scenario, |done, _| progress.set_position(done))?;
    progress.finish_and_clear();
    if let Some(path) = &args.plot {
        let svg = output::curve_chart(&report).to_svg();
        std::fs::write(path, svg)
            .map_err(|e| anyhow::anyhow!("cannot write plot {}: {e}", path.display()))?;
    }
    if args.json {
        output::emit(&output::json(&report));
    } else {
        output::emit(&output::simulate_report(&report));
    }
    Ok(if report.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn sweep(args: &SweepArgs) -> anyhow::Result<ExitCode> {
    let spec = args.spec();
    let runs = (spec.nodes.len() * spec.fanouts.len()) as u64 * spec.seeds;
    let progress = progress_bar(runs, args.json);
    let report = sim::sweep(&spec, || progress.inc(1))?;
    progress.finish_and_clear();
    if let Some(path) = &args.plot {
        let svg = output::sweep_chart(&report).to_svg();
        std::fs::write(path, svg)
            .map_err(|e| anyhow::anyhow!("cannot write plot {}: {e}", path.display()))?;
    }
    if args.json {
        output::emit(&output::json(&report));
    } else {
        output::emit(&output::sweep_table(&report));
    }
    let failed = report.points.iter().any(|p| p.failed > 0);
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// A progress bar on stderr, hidden for JSON output and when stderr is not a
/// terminal.
fn progress_bar(len: u64, json: bool) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {pos}/{len} {elapsed}") {
        bar.set_style(style);
    }
    bar
}
