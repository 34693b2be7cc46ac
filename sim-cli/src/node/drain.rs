//! Draining: on the shutdown signal, the node stops taking writes, tells
//! every member it is leaving (unless it keeps a data directory and will be
//! back), and keeps gossiping until what it accepted has reached some
//! peers.

use std::thread;
use std::time::{Duration, Instant};

use gossip::{Liveness, NodeHandle};
use tracing::{info, warn};

use crate::node::LOG_TARGET;

/// Stops taking writes and opens a last exchange with every member, saying
/// it is leaving, then keeps gossiping until the writes this node accepted
/// have reached some peers, or `bound` passes: until `min(fanout, alive
/// peers)` exchanges this node opened complete after the signal. Completing
/// one means the peer's answer arrived after the signal, and the final
/// `Ack` that answer calls for is computed from the map as it is then, so
/// it carries every write accepted before the signal (or the peer already
/// had them, when the digests matched); the transport flushes that `Ack`
/// as it shuts down. With no alive peer there is no one to tell, and it
/// returns at once; when as many exchanges time out as it waits for, the
/// peers are gone or going, and it returns then.
pub(crate) fn drain(handle: &NodeHandle, bound: Duration, leave: bool) {
    let deadline = Instant::now() + bound;
    // Under the node's lock: every write taken is in the map as these
    // counters saw it, so every exchange that completes later carries it.
    // When leaving, the exchanges it opens with every member tell them so;
    // otherwise the next rounds open the exchanges waited for.
    let at_signal = if leave {
        handle.leave().0
    } else {
        handle.start_draining()
    };
    let wanted = handle.with_node(|node| {
        let alive = node
            .peers()
            .iter()
            .filter(|p| p.liveness == Liveness::Alive)
            .count();
        alive.min(node.config().fanout()) as u64
    });
    if wanted == 0 || bound.is_zero() {
        return;
    }
    loop {
        let now = handle.metrics();
        let completed = now.exchanges_completed - at_signal.exchanges_completed;
        if completed >= wanted {
            info!(target: LOG_TARGET,
                exchanges = completed,
                "drained: recent writes reached the peers"
            );
            return;
        }
        let timed_out = now.exchanges_timed_out - at_signal.exchanges_timed_out;
        if timed_out >= wanted {
            warn!(target: LOG_TARGET,
                exchanges = completed,
                timed_out, "peers stopped answering; stopping without waiting longer"
            );
            return;
        }
        if Instant::now() >= deadline {
            warn!(target: LOG_TARGET,
                bound_ms = bound.as_millis() as u64,
                exchanges = completed,
                wanted,
                "drain bound reached before enough exchanges completed"
            );
            return;
        }
        thread::sleep(Duration::from_millis(5));
    }
}
