//! `sim-cli bench`: measurements of the real transport, not tests.
//!
//! - `catch_up`: a fresh node catching up a large map from one peer over
//!   loopback QUIC, beside raw quinn moving the same number of bytes on one
//!   stream between the same certificates, in the same run.
//! - `spread`: how long a write takes to be readable on every node of a
//!   running cluster.
//! - `members`: how long until every node of a starting cluster lists
//!   every member.
//! - `storage`: the embedded storage engines a durable node could use, on
//!   its workload.
//! - `durable`: what a data directory costs a node (client writes per sync
//!   mode, catch-up, reopening, disk, rejoining), against memory only.

pub(crate) mod catch_up;
pub(crate) mod durable;
pub(crate) mod members;
pub(crate) mod spread;
pub(crate) mod storage;

use std::process::ExitCode;

use clap::Subcommand;

use self::catch_up::CatchUpArgs;
use self::durable::DurableArgs;
use self::members::MembersArgs;
use self::spread::SpreadArgs;
use self::storage::StorageArgs;

/// `sim-cli bench ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// A fresh node catching up a large map from one peer over loopback
    /// QUIC, against raw quinn moving the same bytes on one stream.
    CatchUp(CatchUpArgs),
    /// How long writes take to be visible on every given node (run where
    /// every node is reachable).
    Spread(SpreadArgs),
    /// How long until every given node lists as many members as nodes are
    /// given (exit status 1 if some node does not within --timeout-ms).
    Members(MembersArgs),
    /// fjall against redb on a node's storage workload: acknowledged
    /// writes from concurrent clients, a large delta, reopening.
    Storage(StorageArgs),
    /// What a data directory costs a node, against memory only: client
    /// writes per --sync mode, catch-up, reopening, disk and rejoining.
    Durable(DurableArgs),
}

/// Runs `sim-cli bench ...`.
///
/// # Errors
/// As the measurement's own `run`.
pub(crate) fn run(command: &BenchCommand) -> anyhow::Result<ExitCode> {
    match command {
        BenchCommand::CatchUp(args) => catch_up::run(args),
        BenchCommand::Spread(args) => spread::run(args),
        BenchCommand::Members(args) => members::run(args),
        BenchCommand::Storage(args) => storage::run(args),
        BenchCommand::Durable(args) => durable::run(args),
    }
}

/// The median of unsorted values.
pub(crate) fn median_of(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    median(&sorted)
}

/// The median of sorted values.
pub(crate) fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&[1.0, 2.0, 9.0]), 2.0);
        assert_eq!(median(&[1.0, 3.0]), 2.0);
        assert_eq!(median_of(&[9.0, 1.0, 2.0]), 2.0);
    }
}
