//! Warnings about refused connections and streams, at most one per kind
//! per [`WARN_EVERY`]: a flood of bad handshakes must not become a flood of
//! log lines. Each warning that does go out says how many of its kind were
//! left out since the last one; every refusal is still counted in
//! [`QuicStats`](crate::QuicStats).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use gossip::lock;

/// The least time between two warnings of one kind.
pub(crate) const WARN_EVERY: Duration = Duration::from_secs(10);

/// The kinds of refusal warned about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A connection refused before or during the TLS handshake.
    Handshake,
    /// A connection closed after the handshake: its hello claims a node id
    /// its certificate does not prove.
    Identity,
    /// A connection closed after the handshake: a certificate on the wrong
    /// protocol, or a missing or malformed hello.
    Role,
    /// A stream reset for a bad header or frame.
    Stream,
}

const KINDS: usize = 4;

/// When each kind last warned, and how many were left out since.
#[derive(Debug, Default)]
pub(crate) struct Warnings {
    kinds: Mutex<[(Option<Instant>, u64); KINDS]>,
}

impl Warnings {
    /// Whether a refusal of `kind` at `now` should be logged; if so, with
    /// how many of its kind were left out before it.
    pub(crate) fn admit(&self, kind: Refusal, now: Instant) -> Option<u64> {
        let mut kinds = lock(&self.kinds);
        let (last, suppressed) = &mut kinds[kind as usize];
        if last.is_some_and(|last| now.duration_since(last) < WARN_EVERY) {
            *suppressed += 1;
            return None;
        }
        *last = Some(now);
        Some(std::mem::take(suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_warning_per_kind_per_period_with_the_count_left_out() {
        let warnings = Warnings::default();
        let start = Instant::now();
        assert_eq!(warnings.admit(Refusal::Handshake, start), Some(0));
        for i in 1..=100 {
            let at = start + Duration::from_millis(i);
            assert_eq!(warnings.admit(Refusal::Handshake, at), None);
        }
        // Another kind is not held back by the first.
        assert_eq!(warnings.admit(Refusal::Stream, start), Some(0));
        assert_eq!(
            warnings.admit(Refusal::Handshake, start + WARN_EVERY),
            Some(100)
        );
        assert_eq!(
            warnings.admit(
                Refusal::Handshake,
                start + WARN_EVERY + Duration::from_secs(1)
            ),
            None
        );
    }
}
