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
//! - `scenario`: [`Scenario`], what to run, and its validation.
//! - `reference`: [`Reference`], the log of accepted writes and the state
//!   they imply.
//! - `engine`: [`simulate`], the run itself: faults, workload, rounds,
//!   verification.
//! - `threaded`: the same runs with a driver thread per node and concurrent
//!   client threads, on wall-clock time.
//! - `report`: [`SimReport`], what a run found.
//! - `fuzz`: [`fuzz`], random small clusters under random fault mixes, each
//!   of which must converge and verify.
//! - `sweep`: [`sweep`], rounds to spread one update over sizes, fan-outs
//!   and seeds, beside [`theory_rounds`].
//! - [`plot`]: line charts as standalone SVG.

#![forbid(unsafe_code)]

mod engine;
mod fuzz;
pub mod plot;
mod reference;
mod report;
mod scenario;
mod sweep;
mod threaded;

pub use engine::{SimError, simulate};
pub use fuzz::{FuzzFailure, FuzzReport, FuzzSpec, HEAL_BUDGET, draw, fuzz};
pub use reference::{LoggedWrite, Reference};
pub use report::{
    ExchangeCounts, FaultStats, KindCounts, Mismatch, Outcome, SimReport, TrafficStats,
    Verification, WriteStats,
};
pub use scenario::{CrashMode, Scenario, ScenarioError, WritePattern};
pub use sweep::{Summary, SweepPoint, SweepReport, SweepSpec, sweep, theory_rounds};
