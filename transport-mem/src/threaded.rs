//! A threaded in-memory network: one crossbeam inbox per node, a
//! [`Transport`] per node for the gossip driver, and the same seeded faults.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, unbounded};
use gossip::{Incoming, Transmit, Transport, TransportError};
use lww_crdt::NodeId;
use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::faults::{Faults, NetworkStats};

struct Shared {
    inboxes: Vec<Sender<Incoming>>,
    available: Vec<AtomicBool>,
    groups: Vec<AtomicU32>,
    dice: Mutex<(SmallRng, Faults, NetworkStats)>,
}

/// The network all [`MemTransport`]s of one cluster share; cloning it gives
/// another control handle.
#[derive(Clone)]
pub struct MemNetwork {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MemNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemNetwork")
            .field("nodes", &self.shared.inboxes.len())
            .finish_non_exhaustive()
    }
}

impl MemNetwork {
    /// A network of `nodes` members with ids `0..nodes`, and their transports
    /// in id order.
    pub fn new(nodes: usize, faults: Faults, seed: u64) -> (MemNetwork, Vec<MemTransport>) {
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..nodes).map(|_| unbounded()).unzip();
        let shared = Arc::new(Shared {
            inboxes: senders,
            available: (0..nodes).map(|_| AtomicBool::new(true)).collect(),
            groups: (0..nodes).map(|_| AtomicU32::new(0)).collect(),
            dice: Mutex::new((
                SmallRng::seed_from_u64(seed),
                faults,
                NetworkStats::default(),
            )),
        });
        let transports = receivers
            .into_iter()
            .enumerate()
            .map(|(index, inbox)| MemTransport {
                id: NodeId::new(index as u64),
                inbox,
                network: MemNetwork {
                    shared: Arc::clone(&shared),
                },
            })
            .collect();
        (MemNetwork { shared }, transports)
    }

    /// Makes a node unreachable, or reachable again: frames to or from it are
    /// dropped meanwhile.
    pub fn set_available(&self, node: NodeId, available: bool) {
        if let Some(flag) = self.shared.available.get(node.get() as usize) {
            flag.store(available, Ordering::Relaxed);
        }
    }

    /// Puts `node` on side `group` of a partition; frames between sides are
    /// dropped. Every node on side 0 is a healed network.
    pub fn set_group(&self, node: NodeId, group: u32) {
        if let Some(slot) = self.shared.groups.get(node.get() as usize) {
            slot.store(group, Ordering::Relaxed);
        }
    }

    /// Changes the message faults from now on; probabilities outside `[0, 1]`
    /// are clamped.
    pub fn set_faults(&self, faults: Faults) {
        let clamp = |p: f64| if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) };
        let mut dice = self.lock();
        dice.1 = Faults {
            loss: clamp(faults.loss),
            duplicate: clamp(faults.duplicate),
            reorder: clamp(faults.reorder),
        };
    }

    /// What the network did so far.
    pub fn stats(&self) -> NetworkStats {
        self.lock().2
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (SmallRng, Faults, NetworkStats)> {
        gossip::lock(&self.shared.dice)
    }

    fn carry(&self, from: NodeId, to: NodeId, payload: Vec<u8>) -> Result<(), TransportError> {
        let shared = &self.shared;
        let inbox = shared
            .inboxes
            .get(to.get() as usize)
            .ok_or(TransportError::UnknownPeer(to))?;
        let up = |id: NodeId| {
            shared
                .available
                .get(id.get() as usize)
                .is_some_and(|flag| flag.load(Ordering::Relaxed))
        };
        let group = |id: NodeId| {
            shared
                .groups
                .get(id.get() as usize)
                .map(|g| g.load(Ordering::Relaxed))
        };
        let copies = {
            let mut dice = self.lock();
            let (rng, faults, stats) = &mut *dice;
            stats.sent += 1;
            stats.sent_bytes += payload.len() as u64;
            if !up(from) || !up(to) {
                stats.unavailable += 1;
                return Ok(());
            }
            if group(from) != group(to) {
                stats.partitioned += 1;
                return Ok(());
            }
            // Reordering needs a clock to hold frames back by; threads
            // reorder frames on their own, so it is not injected here.
            let fate = faults.roll(rng, 0);
            crate::faults::Faults::record(fate, stats);
            if fate.lost {
                return Ok(());
            }
            stats.delivered += u64::from(fate.copies);
            fate.copies
        };
        for _ in 1..copies {
            let _ = inbox.send(Incoming {
                from,
                payload: payload.clone(),
            });
        }
        inbox
            .send(Incoming { from, payload })
            .map_err(|_| TransportError::Closed)
    }
}

/// One node's end of a [`MemNetwork`]: implements [`Transport`] for the
/// gossip driver. Every frame it carries is the encoded bytes the node
/// produced, so byte counts are real.
#[derive(Debug)]
pub struct MemTransport {
    id: NodeId,
    inbox: Receiver<Incoming>,
    network: MemNetwork,
}

impl MemTransport {
    /// The node this transport belongs to.
    pub fn id(&self) -> NodeId {
        self.id
    }
}

impl Transport for MemTransport {
    fn send(&mut self, frame: Transmit) -> Result<(), TransportError> {
        self.network.carry(self.id, frame.to, frame.payload)
    }

    fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Incoming>, TransportError> {
        match self.inbox.recv_timeout(timeout) {
            Ok(incoming) => {
                let up = self
                    .network
                    .shared
                    .available
                    .get(self.id.get() as usize)
                    .is_some_and(|flag| flag.load(Ordering::Relaxed));
                // Frames that reach an unavailable node are lost.
                Ok(up.then_some(incoming))
            }
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(TransportError::Closed),
        }
    }
}
