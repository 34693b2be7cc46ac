//! [`SimError`]: why a simulation could not run, whichever engine ran it.

use transport_mem::ClusterError;

use crate::sim::scenario::ScenarioError;

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The scenario is invalid.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// The cluster refused the configuration or a command.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}
