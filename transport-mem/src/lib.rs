//! An in-memory network for the gossip protocol, with seeded fault injection,
//! in two modes over one fault model.
//!
//! - [`Cluster`]: deterministic. Every node, message and fault runs in one
//!   thread on virtual time, decided by one seed: the same configuration and
//!   calls give the same run, bit for bit. This is the simulator's engine and
//!   the place to test protocol behaviour under loss, duplication,
//!   reordering, delay, unavailability, crashes with state loss, partitions
//!   and clock skew.
//! - [`MemNetwork`] and [`MemTransport`]: threaded. Each node runs in its own
//!   gossip driver thread over a crossbeam inbox, with real concurrency.
//!
//! The nodes' [`gossip::Event`]s reach the caller in both modes, when asked
//! for: [`Cluster::keep_events`] and [`Cluster::poll_event`], or
//! `gossip::spawn_with_events` for a driver thread.
//!
//! Every message is encoded by the node and decoded by its receiver, so byte
//! counts are honest and codec bugs surface in simulation. It is not a model
//! of a real network's timing beyond fixed latency and random extra delay.
//!
//! # Example
//!
//! ```
//! use transport_mem::{Cluster, ClusterConfig};
//!
//! let mut cluster = Cluster::new(ClusterConfig { nodes: 20, ..ClusterConfig::default() })?;
//! cluster.put(3, "colour", "blue")?;
//! cluster.set_available(7, false)?;
//! cluster.run_rounds(10);
//! assert_eq!(cluster.get(15, "colour"), Some("blue"));
//! assert_eq!(cluster.get(7, "colour"), None); // unreachable, still behind
//! cluster.set_available(7, true)?;
//! cluster.run_rounds(10);
//! assert!(cluster.converged());
//! # Ok::<(), transport_mem::ClusterError>(())
//! ```
//!
//! # Layout
//!
//! - `faults`: [`Faults`], the dice, and [`NetworkStats`].
//! - `cluster`: the deterministic [`Cluster`].
//! - `threaded`: [`MemNetwork`] and [`MemTransport`] for driver threads.
//! - [`reference`](mod@reference): [`reference::Reference`], the sequential
//!   last-writer-wins model of what a converged cluster reads, shared by
//!   this crate's tests and the simulator.

#![forbid(unsafe_code)]

mod cluster;
mod faults;
pub mod reference;
mod threaded;

pub use cluster::{Cluster, ClusterConfig, ClusterError, Divergence, EPOCH_MS, Timing};
pub use faults::{Faults, NetworkStats};
pub use threaded::{MemNetwork, MemTransport};
