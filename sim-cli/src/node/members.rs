//! Membership: finding the seeds given by address alone, and, every
//! interval, handing the transport the address of every member the node
//! knows and logging the changes in its membership.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use gossip::{Liveness, Member, NodeHandle};
use lww_crdt::NodeId;
use tracing::{debug, info, warn};
use transport_quic::QuicHandle;

use crate::node::{LOG_TARGET, POLL};

/// Finds the id of every seed given by address alone, retrying once a
/// second while it does not answer, and hands each found seed to the node
/// and the transport, as if it had been given with its id.
pub(crate) fn find_seeds(
    handle: &NodeHandle,
    quic: &QuicHandle,
    stop: &AtomicBool,
    mut pending: Vec<SocketAddr>,
) {
    let mut told = HashSet::new();
    while !pending.is_empty() && !stop.load(Ordering::Relaxed) {
        pending.retain(|&addr| match quic.discover(addr) {
            Ok(peer) => {
                info!(target: LOG_TARGET, %peer, %addr, "seed found");
                quic.add_peer(peer, addr);
                handle.add_member(Member {
                    id: peer,
                    address: addr.to_string(),
                });
                false
            }
            Err(transport_quic::DiscoverError::Itself) => {
                warn!(target: LOG_TARGET, %addr, "--peer names this node itself; ignored");
                false
            }
            Err(err) => {
                if told.insert(addr) {
                    warn!(target: LOG_TARGET, %addr, error = %err, "seed not found yet; trying again every second");
                }
                true
            }
        });
        let until = Instant::now() + Duration::from_secs(1);
        while !pending.is_empty() && Instant::now() < until && !stop.load(Ordering::Relaxed) {
            thread::sleep(POLL);
        }
    }
}

/// Every interval: gives the transport the addresses of every member the
/// node knows, and logs what changed since the last look (the driver
/// consumes the node's events itself, so they are recovered by comparing
/// states).
pub(crate) fn watch_members(
    handle: &NodeHandle,
    quic: &QuicHandle,
    stop: &AtomicBool,
    interval: Duration,
) {
    let mut seen: HashMap<NodeId, (String, Liveness)> = HashMap::new();
    let mut unusable: HashMap<NodeId, String> = HashMap::new();
    while !stop.load(Ordering::Relaxed) {
        thread::sleep(interval.min(POLL));
        let (members, peers) = handle.with_node(|node| (node.members(), node.peers()));
        for err in quic.sync_members(&members) {
            let (id, text) = match &err {
                transport_quic::AddressError::Empty(id) => (*id, err.to_string()),
                transport_quic::AddressError::Resolve { id, .. } => (*id, err.to_string()),
            };
            if unusable.get(&id) != Some(&text) {
                debug!(target: LOG_TARGET, peer = %id, error = %text, "member address not usable");
                unusable.insert(id, text);
            }
        }
        for peer in peers {
            let id = peer.member.id;
            let now = (peer.member.address.clone(), peer.liveness);
            match seen.get(&id) {
                None => {
                    info!(target: LOG_TARGET, peer = %id, address = %now.0, liveness = ?now.1, "member known")
                }
                Some((_, before)) if *before != now.1 => match now.1 {
                    Liveness::Alive => {
                        info!(target: LOG_TARGET, peer = %id, was = ?before, "peer up")
                    }
                    Liveness::Left => {
                        info!(target: LOG_TARGET, peer = %id, "peer left the cluster")
                    }
                    Liveness::Suspect | Liveness::Down => {
                        warn!(target: LOG_TARGET, peer = %id, liveness = ?now.1, failures = peer.failures, "peer unresponsive");
                    }
                },
                Some((address, _)) if *address != now.0 && !now.0.is_empty() => {
                    info!(target: LOG_TARGET, peer = %id, address = %now.0, "member address learned");
                }
                Some(_) => {}
            }
            seen.insert(id, now);
        }
    }
}
