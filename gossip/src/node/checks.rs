//! What a node checks about its peers besides liveness: how far each peer's
//! clock is from its own, and whether the settings that must agree across a
//! cluster do. Two members compare their `max_message_bytes` once per life:
//! `Syn`s carry it until the two have found it equal in their current
//! incarnations.
//!
//! Clock offsets are estimated the way NTP does, from exchanges this node
//! opens (at most one per peer every `sample_every_ms`: the `Syn` asks for
//! the responder's clock): the `Syn` went at `sent`, the responder's clock
//! read `peer` when it answered, and the answer came at `received`. Half the round trip
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
    /// When it was measured, in this node's time.
    at_ms: u64,
}

/// What this node knows of one peer besides its liveness.
#[derive(Clone, Copy, Debug, Default)]
struct PeerCheck {
    clock: Option<PeerClock>,
    /// The peer's incarnation in which it found this node's limit equal to
    /// its own (it answered a `Syn` carrying it): this node's `Syn`s to it
    /// leave the limit out while that life lasts.
    knows_ours_in: Option<u32>,
    /// The peer's incarnation in which this node found the peer's limit
    /// equal to its own: its `Syn`s may leave the limit out.
    knows_theirs_in: Option<u32>,
    /// The limit the peer declared where it differs from this node's:
    /// reported once per value.
    differing_limit: Option<u32>,
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

/// Peers measured before a node judges its own clock (or all it knows).
const MIN_MEASURED: usize = 3;

/// Clock estimates and settings agreement, per peer.
#[derive(Debug)]
pub(super) struct PeerChecks {
    max_offset_ms: u64,
    /// How often a peer's clock is measured again (ms).
    sample_every_ms: u64,
    peers: HashMap<NodeId, PeerCheck>,
    /// Peers with a clock measured.
    measured: usize,
    /// Of those, how many are `beyond`.
    beyond: usize,
    out_of_range: bool,
    /// Enough peers were measured, at some point, to judge this node's
    /// clock.
    judged_once: bool,
}

impl PeerChecks {
    pub(super) fn new(max_offset_ms: u64, sample_every_ms: u64) -> Self {
        Self {
            max_offset_ms,
            sample_every_ms,
            peers: HashMap::new(),
            measured: 0,
            beyond: 0,
            out_of_range: false,
            judged_once: false,
        }
    }

    /// Whether an exchange opened with `peer` at `now_ms` should ask for its
    /// clock: never measured, or not for a while. The caller asks only on
    /// one tick in ten, so that the clock costs bytes in a tenth of the
    /// exchanges at most.
    pub(super) fn wants_clock(&self, peer: NodeId, now_ms: u64) -> bool {
        self.peers
            .get(&peer)
            .and_then(|check| check.clock)
            .is_none_or(|clock| now_ms.saturating_sub(clock.at_ms) >= self.sample_every_ms)
    }

    /// Takes one measurement of `peer`'s clock and says what changed.
    pub(super) fn measure(
        &mut self,
        peer: NodeId,
        sent_ms: u64,
        peer_ms: u64,
        received_ms: u64,
        peers: usize,
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
        let check = self.peers.entry(peer).or_default();
        let before = check.clock;
        let was_skewed = before.is_some_and(|c| c.skewed);
        let skewed = if was_skewed {
            offset2.abs() * 4 > max2
        } else {
            offset2.abs() > max2 / 2 + error2
        };
        check.clock = Some(PeerClock {
            offset_ms,
            beyond,
            skewed,
            at_ms: received_ms,
        });
        if skewed != was_skewed {
            events.extend([Event::ClockOffset {
                peer,
                offset_ms,
                skewed,
            }]);
        }
        match before {
            None => self.measured += 1,
            Some(clock) if clock.beyond => self.beyond -= 1,
            Some(_) => {}
        }
        if beyond {
            self.beyond += 1;
        }
        self.judge_own(peers, events);
    }

    /// Forgets `peer`: it left. `peers` is how many this node knows.
    pub(super) fn forget(&mut self, peer: NodeId, peers: usize, events: &mut impl Extend<Event>) {
        let Some(check) = self.peers.remove(&peer) else {
            return;
        };
        if let Some(clock) = check.clock {
            self.measured -= 1;
            if clock.beyond {
                self.beyond -= 1;
            }
            self.judge_own(peers, events);
        }
    }

    /// Judges this node's clock: out of range when beyond the maximum offset
    /// from most measured peers, once at least three are measured (or all
    /// of `peers`, if fewer): the first peer measured could be the one whose
    /// clock is wrong.
    fn judge_own(&mut self, peers: usize, events: &mut impl Extend<Event>) {
        let can_judge = self.measured >= peers.min(MIN_MEASURED);
        self.judged_once |= can_judge;
        let out_of_range = can_judge && self.beyond * 2 > self.measured;
        if out_of_range != self.out_of_range {
            self.out_of_range = out_of_range;
            events.extend([Event::OwnClock(self.status())]);
        }
    }

    /// `peer`'s clock minus this node's (ms), as last measured.
    pub(super) fn offset(&self, peer: NodeId) -> Option<i64> {
        self.peers
            .get(&peer)
            .and_then(|check| check.clock)
            .map(|clock| clock.offset_ms)
    }

    pub(super) fn out_of_range(&self) -> bool {
        self.out_of_range
    }

    /// Whether enough peers were ever measured at once to judge this
    /// node's clock.
    pub(super) fn judged_once(&self) -> bool {
        self.judged_once
    }

    pub(super) fn status(&self) -> ClockStatus {
        let mut offsets: Vec<i64> = self
            .peers
            .values()
            .filter_map(|check| check.clock.map(|clock| clock.offset_ms))
            .collect();
        offsets.sort_unstable();
        ClockStatus {
            peers_measured: offsets.len(),
            peers_beyond: self.beyond,
            median_offset_ms: offsets.get(offsets.len() / 2).copied(),
            out_of_range: self.out_of_range,
        }
    }

    /// Whether `peer`, in `incarnation`, has found this node's limit equal
    /// to its own.
    pub(super) fn peer_knows_our_limit(&self, peer: NodeId, incarnation: Option<u32>) -> bool {
        incarnation.is_some_and(|incarnation| {
            self.peers
                .get(&peer)
                .is_some_and(|check| check.knows_ours_in == Some(incarnation))
        })
    }

    /// Whether this node has found `peer`'s limit, in `incarnation`, equal
    /// to its own.
    pub(super) fn knows_their_limit(&self, peer: NodeId, incarnation: u32) -> bool {
        self.peers
            .get(&peer)
            .is_some_and(|check| check.knows_theirs_in == Some(incarnation))
    }

    /// Notes that `peer`'s limit, declared in `incarnation`, equals this
    /// node's.
    pub(super) fn their_limit_matches(&mut self, peer: NodeId, incarnation: u32) {
        let check = self.peers.entry(peer).or_default();
        check.knows_theirs_in = Some(incarnation);
        check.differing_limit = None;
    }

    /// Notes that `peer`, in `incarnation`, answered a `Syn` without
    /// refusing it: it holds this node's limit equal to its own, and so this
    /// node holds the peer's equal too.
    pub(super) fn our_limit_taken(&mut self, peer: NodeId, incarnation: u32) {
        let check = self.peers.entry(peer).or_default();
        check.knows_ours_in = Some(incarnation);
        check.knows_theirs_in = Some(incarnation);
        check.differing_limit = None;
    }

    /// `peer` asked for this node's limit again: the next `Syn` carries it.
    pub(super) fn limit_unknown_to(&mut self, peer: NodeId) {
        if let Some(check) = self.peers.get_mut(&peer) {
            check.knows_ours_in = None;
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
        let check = self.peers.entry(peer).or_default();
        check.knows_ours_in = None;
        check.knows_theirs_in = None;
        if check.differing_limit.replace(theirs) != Some(theirs) {
            events.extend([Event::SettingsDiffer {
                peer,
                max_message_bytes: MessageLimits { ours, theirs },
            }]);
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
        let mut checks = PeerChecks::new(500, 1_000);
        let mut events = Vec::new();
        // Sent at 1,000, answered at peer time 1,510, back at 1,020: the
        // peer is 500 ms ahead, give or take 10.
        checks.measure(id(1), 1_000, 1_510, 1_020, 1, &mut events);
        assert_eq!(checks.offset(id(1)), Some(500));
        assert!(!checks.out_of_range());
        // 510 ms ahead with 10 ms of error: maybe in range.
        checks.measure(id(1), 1_000, 1_520, 1_020, 1, &mut events);
        assert!(!checks.out_of_range());
        checks.measure(id(1), 1_000, 1_521, 1_020, 1, &mut events);
        assert!(checks.out_of_range(), "the one peer known, beyond: most");
        assert!(events.contains(&Event::OwnClock(checks.status())));
    }

    #[test]
    fn the_first_peers_measured_are_not_enough_to_judge() {
        let mut checks = PeerChecks::new(500, 1_000);
        let mut events = Vec::new();
        checks.measure(id(1), 0, 2_000, 0, 10, &mut events);
        checks.measure(id(2), 0, 2_000, 0, 10, &mut events);
        assert!(!checks.out_of_range(), "two of ten peers measured");
        checks.measure(id(3), 0, 0, 0, 10, &mut events);
        assert!(checks.out_of_range(), "two of the three measured");
    }

    #[test]
    fn out_of_range_needs_most_measured_peers_and_recovers() {
        let mut checks = PeerChecks::new(500, 1_000);
        let mut events = Vec::new();
        for peer in 1..=4 {
            checks.measure(id(peer), 0, 0, 0, 4, &mut events);
        }
        checks.measure(id(1), 0, 2_000, 0, 4, &mut events);
        checks.measure(id(2), 0, 2_000, 0, 4, &mut events);
        assert!(!checks.out_of_range(), "two of four is not most");
        checks.measure(id(3), 0, 2_000, 0, 4, &mut events);
        assert!(checks.out_of_range());
        assert_eq!(checks.status().peers_beyond, 3);
        assert_eq!(checks.status().median_offset_ms, Some(2_000));
        checks.forget(id(3), 4, &mut events);
        let status = checks.status();
        assert_eq!((status.peers_beyond, status.peers_measured), (2, 3));
        assert!(checks.out_of_range(), "two of the three left is most");
        checks.measure(id(1), 0, 10, 0, 4, &mut events);
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
        let mut checks = PeerChecks::new(500, 1_000);
        let mut events = Vec::new();
        for offset in [100, 300, 400, 260, 200, 120, 300] {
            checks.measure(id(1), 0, offset, 0, 4, &mut events);
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
    fn a_limit_mismatch_is_reported_once_per_value_and_agreement_lasts_one_life() {
        let mut checks = PeerChecks::new(500, 1_000);
        let mut events = Vec::new();
        checks.limits_differ(id(1), 1_000, 2_000, &mut events);
        checks.limits_differ(id(1), 1_000, 2_000, &mut events);
        checks.limits_differ(id(1), 1_000, 3_000, &mut events);
        assert!(!checks.peer_knows_our_limit(id(1), Some(0)));
        checks.their_limit_matches(id(1), 7);
        assert!(checks.knows_their_limit(id(1), 7));
        assert!(
            !checks.peer_knows_our_limit(id(1), Some(7)),
            "knowing the peer's is not the peer knowing ours"
        );
        checks.our_limit_taken(id(1), 7);
        assert!(checks.peer_knows_our_limit(id(1), Some(7)));
        assert!(
            !checks.peer_knows_our_limit(id(1), Some(8)),
            "a new life checks again"
        );
        checks.limits_differ(id(1), 1_000, 3_000, &mut events);
        assert!(!checks.peer_knows_our_limit(id(1), Some(7)));
        assert!(!checks.knows_their_limit(id(1), 7));
        assert_eq!(events.len(), 3);
    }
}
