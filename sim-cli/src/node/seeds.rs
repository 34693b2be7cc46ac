//! Seeds given by address alone (`--peer HOST:PORT`): found by dialing
//! them and reading their id from their certificate.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use gossip::{Member, NodeHandle};
use tracing::{info, warn};
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
