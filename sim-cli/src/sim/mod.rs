//! The simulator: runs the gossip protocol on an in-memory cluster under a
//! workload and faults, and checks every replica against a sequential
//! last-write-wins reference.
//!
//! - `scenario`: [`Scenario`], what to run, and its validation.
//! - [`Reference`], the log of accepted writes and the state they imply,
//!   is `transport_mem::reference`'s, re-exported.
//! - `run`: [`simulate`], which checks a scenario and hands it to one of
//!   the two engines:
//!   - `engine`: the deterministic one, on virtual time: faults, workload,
//!     rounds, verification;
//!   - `threaded`: a driver thread per node and concurrent client threads,
//!     on wall-clock time.
//! - `verify`: how both engines judge a run against the reference: which
//!   live replicas have caught up, and whether each reads exactly what it
//!   implies.
//! - `report`: [`SimReport`], what a run found, and how both engines
//!   assemble it.
//! - `error`: [`SimError`], why a run could not start.
//! - `fuzz`: [`fuzz`], random small clusters under random fault mixes, each
//!   of which must converge and verify.
//! - `sweep`: [`sweep`], rounds to spread one update over sizes, fan-outs
//!   and seeds, beside [`theory_rounds`].
//! - [`plot`]: line charts as standalone SVG.
//!
//! Imports point one way: `run` -> `engine`, `threaded` -> `verify`,
//! `report`, `scenario`, `error`; `sweep` and `fuzz` -> `run`.

mod engine;
mod error;
mod fuzz;
mod memory;
pub mod plot;
mod report;
mod run;
mod scenario;
mod sweep;
mod threaded;
mod timing;
mod verify;

pub use engine::IDLE_ROUNDS;
pub use error::SimError;
pub use fuzz::{FuzzFailure, FuzzReport, FuzzSpec, HEAL_BUDGET, draw, fuzz};
pub use memory::human as human_bytes;
pub use report::{
    ExchangeCounts, FaultStats, KindCounts, Mismatch, Outcome, SimReport, TrafficStats,
    Verification, WriteStats,
};
pub use run::simulate;
pub use scenario::{CrashMode, Scenario, ScenarioError, WritePattern};
pub use sweep::{Summary, SweepPoint, SweepReport, SweepSpec, sweep, theory_rounds};
pub use timing::{SAMPLES_PER_INTERVAL, SpreadStats, TimeReport};
pub use transport_mem::reference::{LoggedWrite, Reference};
