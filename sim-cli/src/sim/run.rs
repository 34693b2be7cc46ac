//! [`simulate`]: checks a scenario and runs it on the engine it asks for,
//! the deterministic one (`engine`) or the threaded one (`threaded`).

use crate::sim::engine::simulate_deterministic;
use crate::sim::error::SimError;
use crate::sim::report::SimReport;
use crate::sim::scenario::Scenario;
use crate::sim::threaded::simulate_threaded;

/// Runs `scenario`, calling `on_round(done, caught_up)` after every round:
/// the rounds run, and the fraction of live nodes that hold every write so
/// far (1.0 once they all do).
///
/// # Errors
/// [`SimError`] if the scenario is invalid.
pub fn simulate(
    scenario: &Scenario,
    on_round: impl FnMut(u64, f64),
) -> Result<SimReport, SimError> {
    scenario.validate()?;
    if scenario.threads {
        return simulate_threaded(scenario, on_round);
    }
    simulate_deterministic(scenario, on_round)
}
