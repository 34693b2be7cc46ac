//! What a node checks about its peers besides liveness: how far each peer's
//! clock is from its own, and whether the settings that must agree across a
//! cluster do.
//!
//! Clock offsets are estimated the way NTP does, from each exchange this
//! node opens: the `Syn` went at `sent`, the responder's clock read `peer`
//! when it answered, and the answer came at `received`. Half the round trip
//! bounds the error, so a peer counts as beyond a limit only when it is
//! beyond it by more than that: unequal latencies never make a clock in
//! range look out of it.
//!
//! A node whose clock is beyond the cluster's maximum offset from most of
//! the peers it has measured refuses client writes: its stamps would either
//! be refused by every peer (ahead) or lose to writes made long before
//! (behind). CockroachDB stops such a node for the same reason.

use std::collections::HashMap;

use lww_crdt::NodeId;

use super::Event;

/// One peer's clock, as last measured.
#[derive(Clone, Copy, Debug)]
struct PeerClock {
    /// The peer's clock minus this node's, in ms.
    offset_ms: i64,
    /// Certainly beyond the maximum offset.
    beyond: bool,
    /// Certainly beyond half the maximum offset, and not back within a
    /// quarter of it since: warned about once until then.
    skewed: bool,
}

/// This node's own clock as its peers' clocks show it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClockStatus {
    /// Peers whose offset has been measured.
    pub peers_measured: usize,
    /// Of those, the peers certainly beyond the maximum offset.
    pub peers_beyond: usize,
    /// The median offset (peer minus this node, ms) over the measured peers:
    /// positive when this node's clock is behind.
    pub median_offset_ms: Option<i64>,
    /// Beyond the maximum offset from most measured peers: client writes
    /// are refused until it is back in range.
    pub out_of_range: bool,
}

/// Clock estimates and settings mismatches, per peer.
#[derive(Debug)]
pub(super) struct PeerChecks {
    max_offset_ms: u64,
    clocks: HashMap<NodeId, PeerClock>,
    /// How many of `clocks` are `beyond`.
    beyond: usize,
    out_of_range: bool,
    /// Peers whose `max_message_bytes` differs from this node's, with the
    /// value each declared: reported once per peer and value.
    message_limits: HashMap<NodeId, u32>,
}

impl PeerChecks {
    pub(super) fn new(max_offset_ms: u64) -> Self {
        Self {
            max_offset_ms,
            clocks: HashMap::new(),
            beyond: 0,
            out_of_range: false,
            message_limits: HashMap::new(),
        }
    }

    /// Takes one measurement of `peer`'s clock and says what changed.
    pub(super) fn measure(
        &mut self,
        peer: NodeId,
        sent_ms: u64,
        peer_ms: u64,
        received_ms: u64,
        events: &mut impl Extend<Event>,
    ) {
        let signed = |ms: u64| i128::from(ms);
        // Twice the offset and twice the error bound, in whole ms.
        let offset2 = 2 * signed(peer_ms) - signed(sent_ms) - signed(received_ms);
        let error2 = signed(received_ms.saturating_sub(sent_ms));
        let max2 = 2 * signed(self.max_offset_ms);
        let beyond = offset2.abs() > max2 + error2;
        let offset_ms =
            i64::try_from(offset2 / 2).unwrap_or(if offset2 < 0 { i64::MIN } else { i64::MAX });
        let before = self.clocks.get(&peer).copied();
        let was_skewed = before.is_some_and(|c| c.skewed);
        let skewed = if was_skewed {
            offset2.abs() * 4 > max2
        } else {
            offset2.abs() > max2 / 2 + error2
        };
        if skewed != was_skewed {
            events.extend([Event::ClockOffset {
                peer,
                offset_ms,
                skewed,
            }]);
        }
        if before.is_some_and(|c| c.beyond) {
            self.beyond -= 1;
        }
        if beyond {
            self.beyond += 1;
        }
        self.clocks.insert(
            peer,
            PeerClock {
                offset_ms,
                beyond,
                skewed,
            },
        );
        self.judge_own(events);
    }

    /// Forgets `peer`'s clock: it left.
    pub(super) fn forget(&mut self, peer: NodeId, events: &mut impl Extend<Event>) {
        if let Some(clock) = self.clocks.remove(&peer) {
            if clock.beyond {
                self.beyond -= 1;
            }
            self.judge_own(events);
        }
        self.message_limits.remove(&peer);
    }

    fn judge_own(&mut self, events: &mut impl Extend<Event>) {
        let out_of_range = self.beyond * 2 > self.clocks.len();
        if out_of_range != self.out_of_range {
            self.out_of_range = out_of_range;
            events.extend([Event::OwnClock(self.status())]);
        }
    }

    /// `peer`'s clock minus this node's (ms), as last measured.
    pub(super) fn offset(&self, peer: NodeId) -> Option<i64> {
        self.clocks.get(&peer).map(|c| c.offset_ms)
    }

    pub(super) fn out_of_range(&self) -> bool {
        self.out_of_range
    }

    pub(super) fn status(&self) -> ClockStatus {
        let mut offsets: Vec<i64> = self.clocks.values().map(|c| c.offset_ms).collect();
        offsets.sort_unstable();
        ClockStatus {
            peers_measured: offsets.len(),
            peers_beyond: self.beyond,
            median_offset_ms: offsets.get(offsets.len() / 2).copied(),
            out_of_range: self.out_of_range,
        }
    }

    /// Notes that `peer` declared `theirs` as its message limit where this
    /// node's is `ours`; says so the first time for each value.
    pub(super) fn limits_differ(
        &mut self,
        peer: NodeId,
        ours: u32,
        theirs: u32,
        events: &mut impl Extend<Event>,
    ) {
        if self.message_limits.insert(peer, theirs) != Some(theirs) {
            events.extend([Event::SettingsDiffer {
                peer,
                max_message_bytes: MessageLimits { ours, theirs },
            }]);
        }
    }

    /// Notes that `peer`'s message limit matches: a later mismatch is
    /// reported again.
    pub(super) fn limits_agree(&mut self, peer: NodeId) {
        if !self.message_limits.is_empty() {
            self.message_limits.remove(&peer);
        }
    }
}

/// Two members' `max_message_bytes`, when they differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageLimits {
    /// This node's.
    pub ours: u32,
    /// The peer's.
    pub theirs: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> NodeId {
        NodeId::new(n)
    }

    #[test]
    fn an_exact_offset_at_the_limit_is_in_range_and_one_past_it_is_not() {
        let mut checks = PeerChecks::new(500);
        let mut events = Vec::new();
        // Sent at 1,000, answered at peer time 1,510, back at 1,020: the
        // peer is 500 ms ahead, give or take 10.
        checks.measure(id(1), 1_000, 1_510, 1_020, &mut events);
        assert_eq!(checks.offset(id(1)), Some(500));
        assert!(!checks.out_of_range());
        // 510 ms ahead with 10 ms of error: maybe in range.
        checks.measure(id(1), 1_000, 1_520, 1_020, &mut events);
        assert!(!checks.out_of_range());
        checks.measure(id(1), 1_000, 1_521, 1_020, &mut events);
        assert!(checks.out_of_range(), "one peer measured, beyond: most");
        assert!(events.contains(&Event::OwnClock(checks.status())));
    }

    #[test]
    fn out_of_range_needs_most_measured_peers_and_recovers() {
        let mut checks = PeerChecks::new(500);
        let mut events = Vec::new();
        for peer in 1..=4 {
            checks.measure(id(peer), 0, 0, 0, &mut events);
        }
        checks.measure(id(1), 0, 2_000, 0, &mut events);
        checks.measure(id(2), 0, 2_000, 0, &mut events);
        assert!(!checks.out_of_range(), "two of four is not most");
        checks.measure(id(3), 0, 2_000, 0, &mut events);
        assert!(checks.out_of_range());
        assert_eq!(checks.status().peers_beyond, 3);
        assert_eq!(checks.status().median_offset_ms, Some(2_000));
        checks.forget(id(3), &mut events);
        let status = checks.status();
        assert_eq!((status.peers_beyond, status.peers_measured), (2, 3));
        assert!(checks.out_of_range(), "two of the three left is most");
        checks.measure(id(1), 0, 10, 0, &mut events);
        assert!(!checks.out_of_range());
        let own: Vec<bool> = events
            .iter()
            .filter_map(|e| match e {
                Event::OwnClock(status) => Some(status.out_of_range),
                _ => None,
            })
            .collect();
        assert_eq!(own, [true, false]);
    }

    #[test]
    fn a_skewed_peer_is_warned_about_once_until_it_is_well_back() {
        let mut checks = PeerChecks::new(500);
        let mut events = Vec::new();
        for offset in [100, 300, 400, 260, 200, 120, 300] {
            checks.measure(id(1), 0, offset, 0, &mut events);
        }
        let warnings: Vec<(i64, bool)> = events
            .iter()
            .filter_map(|e| match e {
                Event::ClockOffset {
                    offset_ms, skewed, ..
                } => Some((*offset_ms, *skewed)),
                _ => None,
            })
            .collect();
        assert_eq!(warnings, [(300, true), (120, false), (300, true)]);
    }

    #[test]
    fn a_limit_mismatch_is_reported_once_per_value() {
        let mut checks = PeerChecks::new(500);
        let mut events = Vec::new();
        checks.limits_differ(id(1), 1_000, 2_000, &mut events);
        checks.limits_differ(id(1), 1_000, 2_000, &mut events);
        checks.limits_differ(id(1), 1_000, 3_000, &mut events);
        checks.limits_agree(id(1));
        checks.limits_differ(id(1), 1_000, 3_000, &mut events);
        assert_eq!(events.len(), 3);
    }
}
