//! The library behind `sim-cli`: the simulator, one node of a real
//! cluster, and the client that talks to a node.
//!
//! - The simulator runs the gossip protocol on a deterministic in-memory
//!   cluster under a workload and faults, and checks every replica against a
//!   sequential last-write-wins reference ([`simulate`]; its items are at
//!   the crate root).
//! - [`node::run`] runs a member of a real cluster over QUIC until a
//!   shutdown future completes, so tests can start nodes in-process.
//! - [`client::Client`] sends a node requests in the client protocol.
//!
//! It is a library so the same runs can be scripted or tested; the
//! `sim-cli` binary adds the command line, human and JSON output, plots,
//! and signals as the node's shutdown.
//!
//! # Example
//!
//! ```
//! use sim::{Scenario, simulate};
//!
//! let scenario = Scenario { nodes: 30, writes: 200, loss: 0.2, ..Scenario::default() };
//! let report = simulate(&scenario, |_, _| {})?;
//! assert!(report.success());
//! assert!(report.faults.messages_lost > 0);
//! # Ok::<(), sim::SimError>(())
//! ```
//!
//! # Layout
//!
//! - `sim/`, the simulator, re-exported here:
//!   - `scenario`: [`Scenario`], what to run, and its validation;
//!   - [`Reference`], the log of accepted writes and the state they
//!     imply, is `transport_mem::reference`'s;
//!   - `run`: [`simulate`], which hands a scenario to one of two engines:
//!     `engine`, deterministic on virtual time, or `threaded`, a driver
//!     thread per node and concurrent clients on wall-clock time;
//!   - `verify`: which replicas have caught up and whether each reads
//!     exactly the reference, the same for both engines;
//!   - `report`: [`SimReport`], what a run found; `error`: [`SimError`];
//!   - `timing`: [`TimeReport`], time within rounds under staggered
//!     timing; `memory`: the memory a run needs, checked before it runs;
//!   - `fuzz`: [`fuzz`], random small clusters under random fault mixes;
//!   - `sweep`: [`sweep`], rounds to spread one update, beside
//!     [`theory_rounds`];
//!   - [`plot`]: line charts as standalone SVG.
//! - [`node`]: [`node::run`] and [`node::NodeConfig`] (`mod.rs`,
//!   `config.rs`), serving clients (`serve.rs`), the membership log fed by
//!   the node's events (`members.rs`), seeds given by address
//!   (`seeds.rs`), draining on shutdown (`drain.rs`), the audit log of
//!   client writes (`audit.rs`), the `--revoked` deny-list and its reloads
//!   (`revocation.rs`), [`node::NodeError`] (`error.rs`).
//! - [`client`]: [`client::Client`], [`client::Target`] and
//!   [`client::Credentials`] (`mod.rs`), [`client::ClientError`]
//!   (`error.rs`), and the protocol they speak ([`client::proto`]).
//!
//! The binary's own code is in `main.rs`, which parses the command line
//! and dispatches, and `cli/`: one file per subcommand (its flags and
//! `run`), `cli/bench/` for the measurements, and `cli/output/`, through
//! which every line it prints goes.

#![forbid(unsafe_code)]

pub mod client;
pub mod node;
mod sim;

pub use sim::plot;
pub use sim::{
    CrashMode, ExchangeCounts, FaultStats, FuzzFailure, FuzzReport, FuzzSpec, HEAL_BUDGET,
    IDLE_ROUNDS, KindCounts, LoggedWrite, Mismatch, Outcome, Reference, SAMPLES_PER_INTERVAL,
    Scenario, ScenarioError, SimError, SimReport, SpreadStats, Summary, SweepPoint, SweepReport,
    SweepSpec, TimeReport, TrafficStats, Verification, WritePattern, WriteStats, draw, fuzz,
    human_bytes, simulate, sweep, theory_rounds,
};

/// Seconds since 1970 as a UTC date and time, `2025-06-01 12:00:00 UTC`, as
/// certificate dates are shown; out of the calendar's range, the seconds
/// themselves.
pub fn utc_date(unix_secs: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix_secs) {
        Ok(at) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second()
        ),
        Err(_) => format!("{unix_secs} s since 1970"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_read_as_utc() {
        assert_eq!(super::utc_date(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(super::utc_date(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(
            super::utc_date(i64::MAX),
            format!("{} s since 1970", i64::MAX)
        );
    }
}
