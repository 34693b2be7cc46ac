//! The command line: each subcommand's flags and what it does, in a file of
//! its own. `main.rs` parses the command line into a [`Cli`] and calls the
//! subcommand's `run`, which returns the exit status.
//!
//! - `simulate`, `sweep`, `fuzz`: the simulator (the library's `sim`
//!   room), with progress on stderr and reports on stdout.
//! - `certs`: a cluster CA and certificates.
//! - `node`: one node of a real cluster (the library's `node` room), until
//!   SIGINT or SIGTERM.
//! - `client`: how the client commands reach their nodes; `put`, `delete`,
//!   `get`, `keys`, `status` and `members` send requests (the library's
//!   `client` room), `watch` follows changes, and `converged` polls several
//!   nodes.
//! - `bench`: performance measurements of the real transport.
//! - `output`: every line the binary prints.

pub(crate) mod bench;
pub(crate) mod certs;
pub(crate) mod client;
pub(crate) mod converged;
pub(crate) mod delete;
pub(crate) mod fuzz;
pub(crate) mod get;
pub(crate) mod keys;
pub(crate) mod members;
pub(crate) mod node;
pub(crate) mod output;
pub(crate) mod put;
pub(crate) mod simulate;
pub(crate) mod status;
pub(crate) mod sweep;
pub(crate) mod watch;

use std::io::IsTerminal;
use std::path::Path;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use self::bench::BenchCommand;
use self::certs::CertsArgs;
use self::converged::ConvergedArgs;
use self::fuzz::FuzzArgs;
use self::get::{GetArgs, KeyArgs};
use self::keys::KeysArgs;
use self::node::NodeArgs;
use self::put::PutArgs;
use self::simulate::SimulateArgs;
use self::status::StatusArgs;
use self::sweep::SweepArgs;
use self::watch::WatchArgs;

/// Simulate, run and query a gossip-replicated key-value store.
#[derive(Debug, Parser)]
#[command(name = "sim-cli", version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run one simulated cluster under a workload and faults, and verify it.
    Simulate(SimulateArgs),
    /// Measure rounds to spread one update over cluster sizes, fan-outs and
    /// seeds, beside the push-pull theory.
    Sweep(SweepArgs),
    /// Run random small clusters under random fault mixes; each must
    /// converge and verify once its faults stop (exit status 1 if any does
    /// not, with the command that replays it).
    Fuzz(FuzzArgs),
    /// Make a cluster CA, node certificates and the client certificate.
    Certs(CertsArgs),
    /// Run one node of a real cluster over QUIC until SIGINT or SIGTERM.
    Node(NodeArgs),
    /// Write a value on a node.
    Put(PutArgs),
    /// Read a key on a node (exit status 1 if it is absent).
    Get(GetArgs),
    /// Delete a key on a node.
    Delete(KeyArgs),
    /// List a node's live keys under a prefix, in key order.
    #[command(visible_alias = "list")]
    Keys(KeysArgs),
    /// Follow the changes a node makes under a prefix, as they come: its
    /// own clients' writes and what gossip brings.
    Watch(WatchArgs),
    /// Show a node's members, keys, version vector and counters.
    Status(StatusArgs),
    /// List a node's members: id, address, state, incarnation, failures and
    /// when each was last heard from.
    Members(StatusArgs),
    /// Wait until every given node holds the same map (exit status 1 if
    /// they do not within --timeout-ms).
    Converged(ConvergedArgs),
    /// Performance measurements (not tests).
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// A progress bar on stderr, hidden for JSON output and when stderr is not a
/// terminal.
pub(crate) fn progress_bar(len: u64, json: bool) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {pos}/{len} {elapsed}") {
        bar.set_style(style);
    }
    bar
}

/// A bar of the share of live nodes up to date (position in thousandths),
/// with the round as its message; hidden as [`progress_bar`] is.
pub(crate) fn convergence_bar(json: bool) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(1_000), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} {msg}: {percent}% of live nodes up to date {elapsed}",
    ) {
        bar.set_style(style);
    }
    bar
}

/// Checks, before a long run, that `path` can be written: the run's plot
/// goes there at the end.
///
/// # Errors
/// The file cannot be created or opened for writing.
pub(crate) fn check_writable(path: &Path) -> anyhow::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map(drop)
        .map_err(|e| anyhow::anyhow!("--plot {}: cannot write there ({e})", path.display()))
}

/// Writes a plot to `path`.
///
/// # Errors
/// The file cannot be written.
pub(crate) fn write_plot(path: &Path, svg: String) -> anyhow::Result<()> {
    std::fs::write(path, svg)
        .map_err(|e| anyhow::anyhow!("cannot write plot {}: {e}", path.display()))
}

/// The machine's cores, the default of `--threads`.
pub(crate) fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}
