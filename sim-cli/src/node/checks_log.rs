//! Log lines for what the node checks about its peers besides liveness:
//! settings that differ, clocks that drift, and messages refused for stamps
//! too far ahead. The first two arrive once per change; refusals arrive
//! once per message, so they are logged at most once per peer every
//! [`REFUSAL_LOG_EVERY`], with the count of those left unsaid.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use gossip::Event;
use lww_crdt::NodeId;
use tracing::{error, info, warn};

use crate::node::LOG_TARGET;

/// The least time between two log lines about one peer's refused messages.
pub(crate) const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// A log line to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CheckLine {
    /// A peer's `max_message_bytes` differs: the two do not exchange.
    LimitsDiffer {
        peer: NodeId,
        ours: u32,
        theirs: u32,
    },
    /// A peer's clock is past half the maximum offset, or back.
    PeerClock {
        peer: NodeId,
        offset_ms: i64,
        skewed: bool,
    },
    /// This node's clock is beyond the maximum offset from most peers
    /// (writes refused), or back in range.
    OwnClock {
        out_of_range: bool,
        median_offset_ms: Option<i64>,
        peers_beyond: usize,
        peers_measured: usize,
    },
    /// Messages from a peer refused for stamps too far ahead: `count` since
    /// the last line about it, the latest `ahead_ms` ahead.
    Refused {
        peer: NodeId,
        count: u64,
        ahead_ms: u64,
    },
}

/// When each peer's refusals were last logged, and how many came since.
#[derive(Debug, Default)]
pub(crate) struct CheckLog {
    refusals: HashMap<NodeId, (Option<Instant>, u64)>,
}

impl CheckLog {
    /// The line `event` calls for at `now`, if any.
    pub(crate) fn on_event(&mut self, event: &Event, now: Instant) -> Option<CheckLine> {
        match *event {
            Event::SettingsDiffer {
                peer,
                max_message_bytes,
            } => Some(CheckLine::LimitsDiffer {
                peer,
                ours: max_message_bytes.ours,
                theirs: max_message_bytes.theirs,
            }),
            Event::ClockOffset {
                peer,
                offset_ms,
                skewed,
            } => Some(CheckLine::PeerClock {
                peer,
                offset_ms,
                skewed,
            }),
            Event::OwnClock(status) => Some(CheckLine::OwnClock {
                out_of_range: status.out_of_range,
                median_offset_ms: status.median_offset_ms,
                peers_beyond: status.peers_beyond,
                peers_measured: status.peers_measured,
            }),
            Event::ClockRefused { from, ahead_ms } => {
                let (last, count) = self.refusals.entry(from).or_default();
                *count += 1;
                let due = last.is_none_or(|at| now.duration_since(at) >= REFUSAL_LOG_EVERY);
                if !due {
                    return None;
                }
                *last = Some(now);
                Some(CheckLine::Refused {
                    peer: from,
                    count: std::mem::take(count),
                    ahead_ms,
                })
            }
            _ => None,
        }
    }
}

/// Writes `line`.
pub(crate) fn log(line: &CheckLine) {
    match *line {
        CheckLine::LimitsDiffer { peer, ours, theirs } => warn!(
            target: LOG_TARGET,
            peer = %peer,
            setting = "max_message_bytes",
            ours,
            theirs,
            "a setting that must agree differs: this node and the peer refuse to exchange until it does"
        ),
        CheckLine::PeerClock {
            peer,
            offset_ms,
            skewed: true,
        } => warn!(
            target: LOG_TARGET,
            peer = %peer,
            offset_ms,
            "peer clock offset past half the maximum"
        ),
        CheckLine::PeerClock {
            peer,
            offset_ms,
            skewed: false,
        } => info!(target: LOG_TARGET, peer = %peer, offset_ms, "peer clock offset back in range"),
        CheckLine::OwnClock {
            out_of_range: true,
            median_offset_ms,
            peers_beyond,
            peers_measured,
        } => error!(
            target: LOG_TARGET,
            median_offset_ms = median_offset_ms.unwrap_or_default(),
            peers_beyond,
            peers_measured,
            "this node's clock is beyond the maximum offset from most peers: refusing client writes until it is back in range"
        ),
        CheckLine::OwnClock {
            out_of_range: false,
            median_offset_ms,
            ..
        } => info!(
            target: LOG_TARGET,
            median_offset_ms = median_offset_ms.unwrap_or_default(),
            "this node's clock is back in range: taking client writes again"
        ),
        CheckLine::Refused {
            peer,
            count,
            ahead_ms,
        } => warn!(
            target: LOG_TARGET,
            peer = %peer,
            refused = count,
            ahead_ms,
            "messages refused: stamps too far ahead of this node's clock"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_logged_once_per_peer_and_period_with_the_count_left_unsaid() {
        let mut log = CheckLog::default();
        let start = Instant::now();
        let refused = |from: u64, ahead_ms| Event::ClockRefused {
            from: NodeId::new(from),
            ahead_ms,
        };
        let line = |peer: u64, count, ahead_ms| {
            Some(CheckLine::Refused {
                peer: NodeId::new(peer),
                count,
                ahead_ms,
            })
        };
        assert_eq!(log.on_event(&refused(1, 900), start), line(1, 1, 900));
        for i in 0..99 {
            let at = start + Duration::from_millis(i * 50);
            assert_eq!(log.on_event(&refused(1, 900), at), None);
        }
        // Another peer has a period of its own.
        assert_eq!(log.on_event(&refused(2, 700), start), line(2, 1, 700));
        let later = start + REFUSAL_LOG_EVERY;
        assert_eq!(log.on_event(&refused(1, 950), later), line(1, 100, 950));
        assert_eq!(log.on_event(&refused(1, 950), later), None);
    }

    #[test]
    fn settings_and_clock_changes_are_each_one_line() {
        let mut log = CheckLog::default();
        let now = Instant::now();
        let event = Event::SettingsDiffer {
            peer: NodeId::new(3),
            max_message_bytes: gossip::MessageLimits {
                ours: 1 << 20,
                theirs: 1 << 16,
            },
        };
        assert_eq!(
            log.on_event(&event, now),
            Some(CheckLine::LimitsDiffer {
                peer: NodeId::new(3),
                ours: 1 << 20,
                theirs: 1 << 16
            })
        );
        assert_eq!(log.on_event(&Event::PeerUp(NodeId::new(3)), now), None);
    }
}
