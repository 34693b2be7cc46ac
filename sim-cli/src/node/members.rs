//! The membership thread: logs the membership changes the node reports as
//! events (members learned, peers unresponsive, leaving, back up), and every
//! interval hands the transport the address of every member the node
//! knows.
//!
//! The node raises no event when it fills in the address of a member it
//! already knew; the thread notices that when it hands the addresses to the
//! transport, by comparing them with the addresses the events told. A
//! member learned without an address (from its own first message) is
//! logged once a look finds its address, or after [`PENDING_LOOKS`] looks
//! without, or before any change to its liveness, so that one line
//! usually tells both, as it did when the log compared snapshots.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::thread;
use std::time::{Duration, Instant};

use gossip::{Event, EventReceiver, Liveness, Member, NodeHandle};
use lww_crdt::NodeId;
use tracing::{debug, error, info, warn};
use transport_quic::QuicHandle;

use crate::node::checks_log::{self, CheckLog};
use crate::node::{LOG_TARGET, POLL};

/// Looks a member learned without an address waits for it before it is
/// logged without.
const PENDING_LOOKS: u32 = 5;

/// A membership change worth a log line.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Change {
    /// A member the node did not know.
    Known {
        id: NodeId,
        address: String,
        liveness: Liveness,
    },
    /// A peer answered again.
    Up { id: NodeId, was: Liveness },
    /// A peer said it was leaving.
    Left { id: NodeId },
    /// A peer was silent past the retention window (`silent_ms`, if this
    /// node found it so) and expired in `incarnation`.
    Expired {
        id: NodeId,
        incarnation: u32,
        silent_ms: Option<u64>,
    },
    /// A peer refused this node as expired.
    SelfExpired { by: NodeId },
    /// A peer missed enough exchanges to be suspect, or down.
    Unresponsive { id: NodeId, liveness: Liveness },
    /// A known member's address, first told or changed.
    AddressLearned { id: NodeId, address: String },
}

/// What the log has told of each peer: its address and liveness.
#[derive(Debug, Default)]
struct MemberLog {
    known: HashMap<NodeId, (String, Liveness)>,
    /// Members learned without an address and not logged yet, with the
    /// looks that did not find it.
    pending: Vec<(NodeId, u32)>,
}

impl MemberLog {
    /// The log of a node that starts knowing `seeds`, and a change for
    /// each (the node raises no event for the members it starts with).
    fn new(seeds: &[Member]) -> (MemberLog, Vec<Change>) {
        let mut log = MemberLog::default();
        let changes = seeds
            .iter()
            .flat_map(|seed| log.on_event(&Event::MemberJoined(seed.clone())))
            .collect();
        (log, changes)
    }

    /// The changes `event` makes, in order.
    fn on_event(&mut self, event: &Event) -> Vec<Change> {
        let mut changes = Vec::new();
        let change = match event {
            Event::MemberJoined(member) => self.joined(member),
            Event::PeerUp(id) => {
                changes.extend(self.told(*id, None));
                self.set_liveness(*id, Liveness::Alive)
                    .map(|was| Change::Up { id: *id, was })
            }
            Event::PeerLeft(id) => {
                changes.extend(self.told(*id, None));
                self.set_liveness(*id, Liveness::Left)
                    .map(|_| Change::Left { id: *id })
            }
            Event::PeerExpired {
                peer,
                incarnation,
                silent_ms,
            } => {
                changes.extend(self.told(*peer, None));
                self.set_liveness(*peer, Liveness::Expired)
                    .map(|_| Change::Expired {
                        id: *peer,
                        incarnation: *incarnation,
                        silent_ms: *silent_ms,
                    })
            }
            Event::SelfExpired { by } => Some(Change::SelfExpired { by: *by }),
            Event::PeerSuspect(id) => {
                changes.extend(self.told(*id, None));
                self.unresponsive(*id, Liveness::Suspect)
            }
            Event::PeerDown(id) => {
                changes.extend(self.told(*id, None));
                self.unresponsive(*id, Liveness::Down)
            }
            // Not membership: `checks_log` tells these.
            Event::Updated { .. }
            | Event::ClockOffset { .. }
            | Event::OwnClock(_)
            | Event::ClockRefused { .. }
            | Event::SettingsDiffer { .. } => None,
        };
        changes.extend(change);
        changes
    }

    fn joined(&mut self, member: &Member) -> Option<Change> {
        let id = member.id;
        if self.known.contains_key(&id) {
            return self.learn_address(id, &member.address);
        }
        // Members are learned alive.
        let liveness = Liveness::Alive;
        self.known.insert(id, (member.address.clone(), liveness));
        if member.address.is_empty() {
            self.pending.push((id, 0));
            return None;
        }
        Some(Change::Known {
            id,
            address: member.address.clone(),
            liveness,
        })
    }

    /// The `Known` change of `id` if it is pending, with `address` (the
    /// node's now) if given.
    fn told(&mut self, id: NodeId, address: Option<&str>) -> Option<Change> {
        let at = self.pending.iter().position(|&(p, _)| p == id)?;
        self.pending.swap_remove(at);
        let (known, liveness) = self.known.get_mut(&id)?;
        if let Some(address) = address {
            address.clone_into(known);
        }
        Some(Change::Known {
            id,
            address: known.clone(),
            liveness: *liveness,
        })
    }

    /// What the last look missed, from every member the node knows now:
    /// members learned without an address, and addresses learned.
    fn on_members(&mut self, members: &[Member]) -> Vec<Change> {
        for (_, looks) in &mut self.pending {
            *looks += 1;
        }
        members
            .iter()
            .filter_map(|member| {
                let pending = self.pending.iter().find(|&&(p, _)| p == member.id);
                match pending {
                    Some(_) if !member.address.is_empty() => {
                        self.told(member.id, Some(&member.address))
                    }
                    Some(&(_, looks)) if looks >= PENDING_LOOKS => self.told(member.id, None),
                    Some(_) => None,
                    None => self.learn_address(member.id, &member.address),
                }
            })
            .collect()
    }

    fn learn_address(&mut self, id: NodeId, address: &str) -> Option<Change> {
        let (known, _) = self.known.get_mut(&id)?;
        if address.is_empty() || known == address {
            return None;
        }
        address.clone_into(known);
        Some(Change::AddressLearned {
            id,
            address: address.to_owned(),
        })
    }

    fn unresponsive(&mut self, id: NodeId, liveness: Liveness) -> Option<Change> {
        self.set_liveness(id, liveness)?;
        Some(Change::Unresponsive { id, liveness })
    }

    /// Records `liveness`; returns the one before if it differs. A peer
    /// the log never heard of is taken as known now, alive before.
    fn set_liveness(&mut self, id: NodeId, liveness: Liveness) -> Option<Liveness> {
        let (_, now) = self
            .known
            .entry(id)
            .or_insert_with(|| (String::new(), Liveness::Alive));
        let was = std::mem::replace(now, liveness);
        (was != liveness).then_some(was)
    }
}

/// Logs one change, as the daemon always has.
fn log(change: &Change, handle: &NodeHandle) {
    match change {
        Change::Known {
            id,
            address,
            liveness,
        } => {
            info!(target: LOG_TARGET, peer = %id, address = %address, liveness = ?liveness, "member known");
        }
        Change::Up { id, was } => info!(target: LOG_TARGET, peer = %id, was = ?was, "peer up"),
        Change::Left { id } => info!(target: LOG_TARGET, peer = %id, "peer left the cluster"),
        Change::Expired {
            id,
            incarnation,
            silent_ms,
        } => {
            warn!(
                target: LOG_TARGET, peer = %id, incarnation, silent_ms = ?silent_ms,
                "peer expired: silent past the retention window; tombstones are collected without \
                 it and its messages in this incarnation are refused; to rejoin, it must be \
                 started empty"
            );
        }
        Change::SelfExpired { by } => {
            error!(
                target: LOG_TARGET, by = %by,
                "this node expired: a peer did not hear from it for longer than the retention \
                 window, and deletes it may not have seen were collected; it takes no writes and \
                 its gossip is refused; stop it, move its data directory away, and start it \
                 empty to rejoin"
            );
        }
        Change::Unresponsive { id, liveness } => {
            let failures = handle.with_node(|node| {
                node.peers()
                    .into_iter()
                    .find(|p| p.member.id == *id)
                    .map_or(0, |p| p.failures)
            });
            warn!(target: LOG_TARGET, peer = %id, liveness = ?liveness, failures, "peer unresponsive");
        }
        Change::AddressLearned { id, address } => {
            info!(target: LOG_TARGET, peer = %id, address = %address, "member address learned");
        }
    }
}

/// What the membership thread watches and feeds.
#[derive(Clone, Copy)]
pub(crate) struct Watch<'a> {
    pub(crate) handle: &'a NodeHandle,
    pub(crate) quic: &'a QuicHandle,
    pub(crate) events: &'a EventReceiver,
    /// The members the node started knowing.
    pub(crate) seeds: &'a [Member],
    pub(crate) stop: &'a AtomicBool,
    pub(crate) interval: Duration,
    /// The data directory, where the members are saved for the next start.
    pub(crate) store: Option<&'a crate::node::store::Store>,
}

/// Until `stop`: logs the membership changes `events` report as they come
/// (the node started knowing `seeds`), and every interval (at most
/// [`POLL`]) gives the transport the addresses of every member the node
/// knows, and saves them in the data directory when they changed, with
/// when the node last heard from a majority of them (at most once a
/// second) and, if a peer refuses it as expired, that refusal.
pub(crate) fn watch_members(watch: &Watch<'_>) {
    let Watch {
        handle,
        quic,
        events,
        seeds,
        stop,
        interval,
        store,
    } = *watch;
    let mut saved: Vec<Member> = Vec::new();
    let mut in_touch_saved = 0;
    let (mut members, changes) = MemberLog::new(seeds);
    for change in &changes {
        log(change, handle);
    }
    let mut checks = CheckLog::default();
    let mut unusable: HashMap<NodeId, String> = HashMap::new();
    let mut dropped = 0;
    let period = interval.min(POLL);
    let mut next_sync = Instant::now() + period;
    // False once the driver has ended: no event will come.
    let mut open = true;
    while !stop.load(Ordering::Relaxed) {
        let wait = next_sync.saturating_duration_since(Instant::now());
        if open {
            match events.recv_timeout(wait) {
                Ok(event) => {
                    if let (Event::SelfExpired { by }, Some(store)) = (&event, store) {
                        // Its values may undo deletes collected without it:
                        // no start may serve them again.
                        if let Err(err) = store.record_expired(*by) {
                            error!(target: LOG_TARGET, error = %err, "the expiry could not be saved");
                        }
                    }
                    for change in members.on_event(&event) {
                        log(&change, handle);
                    }
                    if let Some(line) = checks.on_event(&event, Instant::now()) {
                        checks_log::log(&line);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => open = false,
            }
        } else {
            thread::sleep(wait);
        }
        if Instant::now() < next_sync {
            continue;
        }
        next_sync = Instant::now() + period;
        let known = handle.with_node(gossip::Node::members);
        for err in quic.sync_members(&known) {
            let (id, text) = match &err {
                transport_quic::AddressError::Empty(id) => (*id, err.to_string()),
                transport_quic::AddressError::Resolve { id, .. } => (*id, err.to_string()),
            };
            if unusable.get(&id) != Some(&text) {
                debug!(target: LOG_TARGET, peer = %id, error = %text, "member address not usable");
                unusable.insert(id, text);
            }
        }
        for change in members.on_members(&known) {
            log(&change, handle);
        }
        if let Some(store) = store
            && known != saved
        {
            // For the next start, which joins through them.
            match store.record_members(&known, handle.with_node(gossip::Node::id)) {
                Ok(()) => saved = known,
                Err(err) => {
                    warn!(target: LOG_TARGET, error = %err, "the members could not be saved");
                }
            }
        }
        if let Some(store) = store {
            let in_touch = handle.with_node(gossip::Node::majority_heard_ms);
            // Once a second is plenty against a window of days.
            if let Some(at) = in_touch.filter(|&at| at >= in_touch_saved + 1_000) {
                match store.record_in_touch(at) {
                    Ok(()) => in_touch_saved = at,
                    Err(err) => {
                        warn!(target: LOG_TARGET, error = %err, "the time of the last contact could not be saved");
                    }
                }
            }
        }
        if events.dropped() > dropped {
            dropped = events.dropped();
            warn!(target: LOG_TARGET, dropped, "node events dropped: the membership log may have missed changes");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> NodeId {
        NodeId::new(n)
    }

    fn member(n: u64, address: &str) -> Member {
        Member {
            id: id(n),
            address: address.to_owned(),
        }
    }

    fn known(n: u64, address: &str) -> Change {
        Change::Known {
            id: id(n),
            address: address.to_owned(),
            liveness: Liveness::Alive,
        }
    }

    #[test]
    fn seeds_and_members_learned_are_logged_once() {
        let (mut log, changes) = MemberLog::new(&[member(1, "a:1")]);
        assert_eq!(changes, [known(1, "a:1")]);
        assert_eq!(
            log.on_event(&Event::MemberJoined(member(2, "b:2"))),
            [known(2, "b:2")]
        );
        assert_eq!(log.on_event(&Event::MemberJoined(member(1, "a:1"))), []);
        // A known member's address is filled in or changed: told at the
        // next look.
        let now = [member(0, "me:0"), member(1, "a:1"), member(2, "b:3")];
        assert_eq!(
            log.on_members(&now),
            [Change::AddressLearned {
                id: id(2),
                address: "b:3".into()
            }]
        );
        assert!(log.on_members(&now).is_empty());
        // Members the events have not told of yet wait for them.
        assert!(log.on_members(&[member(3, "c:3")]).is_empty());
    }

    #[test]
    fn a_member_learned_without_an_address_is_told_with_the_next_look() {
        let (mut log, _) = MemberLog::new(&[]);
        assert_eq!(log.on_event(&Event::MemberJoined(member(2, ""))), []);
        assert!(log.on_members(&[member(2, "")]).is_empty());
        assert_eq!(log.on_members(&[member(2, "b:2")]), [known(2, "b:2")]);
        assert!(log.on_members(&[member(2, "b:2")]).is_empty());
        // Still without one after some looks: told without it, then
        // learned.
        assert_eq!(log.on_event(&Event::MemberJoined(member(3, ""))), []);
        for _ in 1..PENDING_LOOKS {
            assert!(log.on_members(&[member(3, "")]).is_empty());
        }
        assert_eq!(log.on_members(&[member(3, "")]), [known(3, "")]);
        assert_eq!(
            log.on_members(&[member(3, "c:3")]),
            [Change::AddressLearned {
                id: id(3),
                address: "c:3".into()
            }]
        );
        // A liveness change before the look tells it first.
        assert_eq!(log.on_event(&Event::MemberJoined(member(4, ""))), []);
        assert_eq!(
            log.on_event(&Event::PeerSuspect(id(4))),
            [
                known(4, ""),
                Change::Unresponsive {
                    id: id(4),
                    liveness: Liveness::Suspect
                }
            ]
        );
        assert!(log.on_members(&[member(4, "")]).is_empty());
    }

    #[test]
    fn liveness_changes_are_logged_with_what_came_before() {
        let (mut log, _) = MemberLog::new(&[member(1, "a:1")]);
        let one = id(1);
        assert_eq!(
            log.on_event(&Event::PeerSuspect(one)),
            [Change::Unresponsive {
                id: one,
                liveness: Liveness::Suspect
            }]
        );
        assert_eq!(
            log.on_event(&Event::PeerDown(one)),
            [Change::Unresponsive {
                id: one,
                liveness: Liveness::Down
            }]
        );
        assert_eq!(
            log.on_event(&Event::PeerUp(one)),
            [Change::Up {
                id: one,
                was: Liveness::Down
            }]
        );
        assert_eq!(
            log.on_event(&Event::PeerLeft(one)),
            [Change::Left { id: one }]
        );
        assert_eq!(log.on_event(&Event::PeerLeft(one)), []);
        assert_eq!(
            log.on_event(&Event::PeerUp(one)),
            [Change::Up {
                id: one,
                was: Liveness::Left
            }]
        );
        assert_eq!(log.on_event(&Event::PeerUp(one)), []);
    }
}
