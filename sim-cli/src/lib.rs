//! The simulator behind `sim-cli`: runs the gossip protocol on a
//! deterministic in-memory cluster under a workload and faults, and checks
//! every replica against a sequential last-write-wins reference.
//!
//! It is a library so the same runs can be scripted or tested; the `sim-cli`
//! binary adds the command line, human and JSON output, and plots.
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
//! - `sim`: the simulator: [`Scenario`], [`simulate`] and its two engines,
//!   [`SimReport`], [`fuzz`], [`sweep`] and [`plot`]. Its items are
//!   re-exported here.
//! - [`node`]: one member of a real cluster over QUIC, run until a shutdown
//!   future completes: what `sim-cli node` runs.
//! - [`client`]: the client protocol ([`client::proto`]) and
//!   [`client::Client`], which speaks it to a node.

#![forbid(unsafe_code)]

pub mod client;
pub mod node;
mod sim;

pub use sim::plot;
pub use sim::{
    CrashMode, ExchangeCounts, FaultStats, FuzzFailure, FuzzReport, FuzzSpec, HEAL_BUDGET,
    KindCounts, LoggedWrite, Mismatch, Outcome, Reference, Scenario, ScenarioError, SimError,
    SimReport, Summary, SweepPoint, SweepReport, SweepSpec, TrafficStats, Verification,
    WritePattern, WriteStats, draw, fuzz, simulate, sweep, theory_rounds,
};
