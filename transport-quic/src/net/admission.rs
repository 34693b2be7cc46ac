//! Admission of incoming connections before anyone is authenticated.
//!
//! A handshake costs the node memory and a task until it ends, and anyone
//! can start one. So handshakes do not take connection slots: they take
//! pending-handshake slots, bounded in all and per source IP address, held
//! for at most the handshake timeout, and separate for the addresses of
//! known peers, which strangers cannot take. Under load a source that has
//! not proved its address gets a QUIC Retry, which costs no state, so a
//! flood of spoofed or half-open handshakes holds no slot at all. A
//! connection takes one of the `max_incoming_connections` slots only once
//! its certificate checked out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use gossip::lock;

use crate::config::QuicConfig;

/// What to do with one incoming connection.
pub(super) enum Decision {
    /// Go on with the handshake, holding this slot until it ends.
    Admit(HandshakeSlot),
    /// Answer with a Retry: the source must prove its address first.
    Retry,
    /// Refuse it: the named limit is reached.
    Refuse(&'static str),
}

/// Counts the handshakes under way.
pub(super) struct Admission {
    max_pending: usize,
    max_per_source: usize,
    /// Past this many strangers' handshakes, unproven sources get a Retry.
    retry_above: usize,
    pending: Mutex<Pending>,
}

#[derive(Default)]
struct Pending {
    strangers: usize,
    known: usize,
    per_source: HashMap<IpAddr, usize>,
}

impl Admission {
    pub(super) fn new(config: &QuicConfig) -> Arc<Admission> {
        let max_pending = config.max_pending_handshakes();
        Arc::new(Admission {
            max_pending,
            max_per_source: config.max_pending_handshakes_per_source(),
            retry_above: (max_pending / 4).max(1),
            pending: Mutex::new(Pending::default()),
        })
    }

    /// Decides on a connection from `source`. `known` says whether its
    /// address is a known peer's; `validated`, whether the source already
    /// proved its address (with a Retry token); `may_retry`, whether a
    /// Retry can still be sent.
    pub(super) fn decide(
        self: &Arc<Self>,
        source: IpAddr,
        known: bool,
        validated: bool,
        may_retry: bool,
    ) -> Decision {
        let mut pending = lock(&self.pending);
        if known {
            if pending.known >= self.max_pending {
                return Decision::Refuse("pending handshakes from known peers");
            }
            pending.known += 1;
            return Decision::Admit(HandshakeSlot {
                admission: Arc::clone(self),
                source: None,
            });
        }
        if pending.strangers >= self.retry_above && !validated && may_retry {
            return Decision::Retry;
        }
        let from_source = pending.per_source.get(&source).copied().unwrap_or(0);
        if from_source >= self.max_per_source {
            return Decision::Refuse("pending handshakes from one source address");
        }
        if pending.strangers >= self.max_pending {
            return Decision::Refuse("pending handshakes");
        }
        pending.strangers += 1;
        *pending.per_source.entry(source).or_default() += 1;
        Decision::Admit(HandshakeSlot {
            admission: Arc::clone(self),
            source: Some(source),
        })
    }

    #[cfg(test)]
    fn pending(&self) -> (usize, usize, usize) {
        let pending = lock(&self.pending);
        (pending.strangers, pending.known, pending.per_source.len())
    }
}

/// One pending handshake's slot; dropping it frees the slot.
pub(super) struct HandshakeSlot {
    admission: Arc<Admission>,
    /// The stranger's source address; `None` for a known peer.
    source: Option<IpAddr>,
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        let mut pending = lock(&self.admission.pending);
        let Some(source) = self.source else {
            pending.known -= 1;
            return;
        };
        pending.strangers -= 1;
        if let Some(count) = pending.per_source.get_mut(&source) {
            *count -= 1;
            if *count == 0 {
                pending.per_source.remove(&source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn admission(max: usize, per_source: usize) -> Arc<Admission> {
        let config = QuicConfig::builder()
            .max_pending_handshakes(max)
            .max_pending_handshakes_per_source(per_source)
            .build()
            .unwrap();
        Admission::new(&config)
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    #[test]
    fn under_load_unproven_sources_are_retried_and_proven_ones_admitted() {
        let admission = admission(8, 8);
        let held: Vec<_> = (0..2)
            .map(|n| match admission.decide(ip(n), false, false, true) {
                Decision::Admit(slot) => slot,
                _ => panic!("the first handshakes are admitted"),
            })
            .collect();
        assert!(matches!(
            admission.decide(ip(9), false, false, true),
            Decision::Retry
        ));
        assert!(matches!(
            admission.decide(ip(9), false, true, false),
            Decision::Admit(_)
        ));
        drop(held);
        assert_eq!(admission.pending(), (0, 0, 0));
        assert!(matches!(
            admission.decide(ip(9), false, false, true),
            Decision::Admit(_)
        ));
    }

    #[test]
    fn one_source_cannot_take_every_slot_and_known_peers_keep_their_own() {
        let admission = admission(8, 3);
        let held: Vec<_> = (0..3)
            .filter_map(|_| match admission.decide(ip(1), false, true, false) {
                Decision::Admit(slot) => Some(slot),
                _ => None,
            })
            .collect();
        assert_eq!(held.len(), 3);
        assert!(matches!(
            admission.decide(ip(1), false, true, false),
            Decision::Refuse(_)
        ));
        let others: Vec<_> = (2..7)
            .filter_map(|n| match admission.decide(ip(n), false, true, false) {
                Decision::Admit(slot) => Some(slot),
                _ => None,
            })
            .collect();
        assert_eq!(others.len(), 5, "strangers fill the remaining slots");
        assert!(matches!(
            admission.decide(ip(8), false, true, false),
            Decision::Refuse("pending handshakes")
        ));
        assert!(matches!(
            admission.decide(ip(8), true, false, true),
            Decision::Admit(_)
        ));
        assert_eq!(admission.pending(), (8, 0, 6));
    }
}
