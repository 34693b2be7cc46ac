//! Who the node knows, how they are doing, and whom to contact next.
//!
//! Kept compact because a simulation holds thousands of nodes that each know
//! thousands of members: a sorted list of ids, plus addresses and health only
//! for the members that have them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use lww_crdt::NodeId;
use rand::Rng;
use rand::rngs::SmallRng;
use serde::{Deserialize, Serialize};

use crate::hash::splitmix_finish;
use crate::message::{Departure, Member};

/// How a peer is doing, judged by exchanges with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Liveness {
    /// Answering; contacted as often as any peer.
    Alive,
    /// A few exchanges in a row failed; contacted only by rare probes.
    Suspect,
    /// Many exchanges in a row failed; contacted only by rare probes, for as
    /// long as it stays down: a partition of any length heals once a probe
    /// gets through.
    Down,
    /// It said it was leaving: no longer contacted and no longer holding
    /// tombstone collection back, until it speaks in a newer incarnation.
    Left,
    /// Not heard from for longer than the retention window
    /// ([`ConfigBuilder::retention_ms`](crate::ConfigBuilder::retention_ms)):
    /// tombstone collection went on without it, so it may lack deletes
    /// whose tombstones are gone. Its messages are refused in that
    /// incarnation; it is welcome back, empty, in a newer one.
    Expired,
}

/// A peer as this node sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerState {
    /// Its id and address.
    pub member: Member,
    /// Its liveness.
    pub liveness: Liveness,
    /// Failed exchanges since it last answered.
    pub failures: u32,
    /// When it was last heard from, in node time (ms).
    pub last_heard_ms: Option<u64>,
    /// The latest incarnation it has spoken as, if it has spoken.
    pub incarnation: Option<u32>,
    /// Its clock minus this node's (ms), as last measured in an exchange
    /// this node opened.
    pub clock_offset_ms: Option<i64>,
}

/// A liveness change worth telling the caller about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transition {
    Up,
    Suspect,
    Down,
}

#[derive(Clone, Copy, Debug)]
struct Health {
    liveness: Liveness,
    failures: u32,
    last_heard_ms: Option<u64>,
    /// The newest incarnation it has spoken in or left in; while it is
    /// Left, the one it left in.
    incarnation: Option<u32>,
}

const HEALTHY: Health = Health {
    liveness: Liveness::Alive,
    failures: 0,
    last_heard_ms: None,
    incarnation: None,
};

/// The member list and each peer's liveness.
#[derive(Clone, Debug)]
pub(crate) struct Membership {
    me: Member,
    /// Member ids, sorted; may include this node's own (see
    /// [`SharedPeers`]). Shared with other nodes until this one learns a
    /// member they lack.
    ids: Arc<Vec<NodeId>>,
    /// Addresses of the peers that have one.
    addresses: HashMap<NodeId, String>,
    /// The peers whose address is the one they stated themselves; any
    /// other address was heard from a third member.
    stated: HashSet<NodeId>,
    /// Health of the peers heard from or failed at least once; the rest are
    /// alive and never heard from.
    health: HashMap<NodeId, Health>,
    hash: u64,
    suspect_after: u32,
    down_after: u32,
}

impl Membership {
    pub(crate) fn new(me: Member, suspect_after: u32, down_after: u32) -> Self {
        let hash = member_hash(me.id, &me.address);
        Self {
            me,
            ids: Arc::new(Vec::new()),
            addresses: HashMap::new(),
            stated: HashSet::new(),
            health: HashMap::new(),
            hash,
            suspect_after,
            down_after,
        }
    }

    /// Order-independent hash of every member, this node included, and of
    /// which of them left, in which incarnation.
    pub(crate) fn hash(&self) -> u64 {
        self.hash
    }

    /// Peer ids, sorted; this node excluded.
    pub(crate) fn ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        let me = self.me.id;
        self.ids.iter().copied().filter(move |&id| id != me)
    }

    /// How many peers, this node excluded.
    pub(crate) fn peer_count(&self) -> usize {
        self.ids.len() - usize::from(self.ids.binary_search(&self.me.id).is_ok())
    }

    pub(crate) fn contains(&self, id: NodeId) -> bool {
        id != self.me.id && self.ids.binary_search(&id).is_ok()
    }

    /// Starts from a member list shared with other nodes of this process.
    pub(crate) fn share(&mut self, shared: &SharedPeers) {
        let me = self.me.id;
        let own = member_hash(me, &self.me.address);
        // The shared hash counts this node with no address if listed.
        let listed = shared.ids.binary_search(&me).is_ok();
        self.hash = shared.hash ^ own ^ if listed { member_hash(me, "") } else { 0 };
        self.ids = Arc::clone(&shared.ids);
        self.addresses.clear();
        self.stated.clear();
        self.health.clear();
    }

    pub(crate) fn peer(&self, id: NodeId) -> Option<PeerState> {
        if !self.contains(id) {
            return None;
        }
        let health = self.health.get(&id).copied().unwrap_or(HEALTHY);
        Some(PeerState {
            member: Member {
                id,
                address: self.addresses.get(&id).cloned().unwrap_or_default(),
            },
            liveness: health.liveness,
            failures: health.failures,
            last_heard_ms: health.last_heard_ms,
            incarnation: None,
            clock_offset_ms: None,
        })
    }

    pub(crate) fn peers(&self) -> Vec<PeerState> {
        self.ids().filter_map(|id| self.peer(id)).collect()
    }

    pub(crate) fn liveness(&self, id: NodeId) -> Liveness {
        self.health.get(&id).map_or(Liveness::Alive, |h| h.liveness)
    }

    /// Every member, this node included, in id order.
    pub(crate) fn members(&self) -> Vec<Member> {
        let mut members: Vec<Member> = self
            .ids()
            .map(|id| Member {
                id,
                address: self.addresses.get(&id).cloned().unwrap_or_default(),
            })
            .collect();
        let at = members.partition_point(|m| m.id < self.me.id);
        members.insert(at, self.me.clone());
        members
    }

    /// Learns a member from what the member itself said: its address, if
    /// it gave one, replaces whatever address was heard from others (any
    /// member could have planted that one), and a later statement replaces
    /// it again (the member moved). Returns whether the member was new.
    pub(crate) fn state(&mut self, member: Member) -> bool {
        if member.id == self.me.id {
            return false;
        }
        if member.address.is_empty() || !self.contains(member.id) {
            let new = self.add(member.clone());
            if !member.address.is_empty() {
                self.stated.insert(member.id);
            }
            return new;
        }
        let old = self.addresses.get(&member.id).map_or("", String::as_str);
        if old != member.address {
            self.hash ^= member_hash(member.id, old) ^ member_hash(member.id, &member.address);
            self.addresses.insert(member.id, member.address);
        }
        self.stated.insert(member.id);
        false
    }

    /// Whether `id`'s address is the one it stated itself.
    #[cfg(test)]
    pub(crate) fn address_is_stated(&self, id: NodeId) -> bool {
        self.stated.contains(&id)
    }

    /// Learns a member heard of from a third member or from outside the
    /// protocol; returns whether it was new. A known member's address is
    /// filled in if it had none, and never replaced: only the member itself
    /// can change it ([`state`](Self::state)).
    pub(crate) fn add(&mut self, member: Member) -> bool {
        if member.id == self.me.id {
            return false;
        }
        match self.ids.binary_search(&member.id) {
            Ok(_) => {
                if !member.address.is_empty() && !self.addresses.contains_key(&member.id) {
                    self.hash ^=
                        member_hash(member.id, "") ^ member_hash(member.id, &member.address);
                    self.addresses.insert(member.id, member.address);
                }
                false
            }
            Err(at) => {
                self.hash ^= member_hash(member.id, &member.address);
                Arc::make_mut(&mut self.ids).insert(at, member.id);
                if !member.address.is_empty() {
                    self.addresses.insert(member.id, member.address);
                }
                true
            }
        }
    }

    /// Records that `id` spoke, in `incarnation`; returns `Up` if it was not
    /// alive. A member that left stays Left for what its leaving life still
    /// sends, and comes back only in a newer incarnation.
    pub(crate) fn heard_from(
        &mut self,
        id: NodeId,
        incarnation: u32,
        now_ms: u64,
    ) -> Option<Transition> {
        if !self.contains(id) {
            return None;
        }
        let health = self.health.entry(id).or_insert(HEALTHY);
        health.last_heard_ms = Some(now_ms);
        let known = health.incarnation;
        if matches!(health.liveness, Liveness::Left | Liveness::Expired)
            && known.is_some_and(|gone| incarnation <= gone)
        {
            return None;
        }
        health.incarnation = Some(known.map_or(incarnation, |k| k.max(incarnation)));
        health.failures = 0;
        let was = std::mem::replace(&mut health.liveness, Liveness::Alive);
        if let Some(gone) = gone_hash(was, id, known.unwrap_or_default()) {
            self.hash ^= gone;
        }
        (was != Liveness::Alive).then_some(Transition::Up)
    }

    /// Marks `id` Left in `incarnation`, from its own notice or from a
    /// member list; returns whether it was not Left before. Nothing changes
    /// for a departure older than an incarnation `id` has spoken in since,
    /// nor for an expiry of the same life.
    pub(crate) fn leave(&mut self, id: NodeId, incarnation: u32) -> bool {
        self.mark_gone(id, incarnation, Liveness::Left)
            .is_some_and(|was| was != Liveness::Left)
    }

    /// The members that left or expired, in id order, and the incarnations
    /// they did so in.
    pub(crate) fn departures(&self) -> Vec<Departure> {
        let mut left: Vec<Departure> = self
            .health
            .iter()
            .filter(|(_, h)| matches!(h.liveness, Liveness::Left | Liveness::Expired))
            .map(|(&id, h)| Departure {
                id,
                incarnation: h.incarnation.unwrap_or_default(),
                expired: h.liveness == Liveness::Expired,
            })
            .collect();
        left.sort_unstable();
        left
    }

    /// Marks `id` Expired in `incarnation`; returns whether it was not
    /// before. Nothing changes for an incarnation older than one `id` has
    /// spoken in since. An expiry overrides a departure of the same life.
    pub(crate) fn expire(&mut self, id: NodeId, incarnation: u32) -> bool {
        self.mark_gone(id, incarnation, Liveness::Expired).is_some()
    }

    /// Marks `id` gone (`Left` or `Expired`) in `incarnation`; returns its
    /// liveness before, or `None` if nothing changed: the incarnation is
    /// older than one `id` has spoken in, or that life is already as gone
    /// (expired, or left when leaving).
    fn mark_gone(&mut self, id: NodeId, incarnation: u32, gone: Liveness) -> Option<Liveness> {
        if !self.contains(id) {
            return None;
        }
        let health = self.health.entry(id).or_insert(HEALTHY);
        let known = health.incarnation;
        let settled = match gone {
            Liveness::Left => matches!(health.liveness, Liveness::Left | Liveness::Expired),
            _ => health.liveness == Liveness::Expired,
        };
        if known.is_some_and(|k| k > incarnation || (settled && k == incarnation)) {
            return None;
        }
        if let Some(before) = gone_hash(health.liveness, id, known.unwrap_or_default()) {
            self.hash ^= before;
        }
        let was = std::mem::replace(&mut health.liveness, gone);
        health.incarnation = Some(incarnation);
        health.failures = 0;
        self.hash ^= gone_hash(gone, id, incarnation).unwrap_or_default();
        Some(was)
    }

    /// How many members, neither left nor expired, were heard from at or
    /// after `since_ms`, and how many such members there are.
    pub(crate) fn heard_since(&self, since_ms: u64) -> (usize, usize) {
        let mut heard = 0;
        let mut counted = 0;
        for id in self.ids().filter(|&id| id != self.me.id) {
            let health = self.health.get(&id).copied().unwrap_or(HEALTHY);
            if matches!(health.liveness, Liveness::Left | Liveness::Expired) {
                continue;
            }
            counted += 1;
            if health.last_heard_ms.is_some_and(|at| at >= since_ms) {
                heard += 1;
            }
        }
        (heard, counted)
    }

    /// The latest time at or after which this member (at `now_ms`) and
    /// members it last heard from make a majority of the members it
    /// counts (neither left nor expired), itself included; `None` if no
    /// majority has been heard since this node started.
    pub(crate) fn majority_heard_ms(&self, now_ms: u64) -> Option<u64> {
        let mut heard: Vec<Option<u64>> = vec![Some(now_ms)];
        for id in self.ids().filter(|&id| id != self.me.id) {
            let health = self.health.get(&id).copied().unwrap_or(HEALTHY);
            if !matches!(health.liveness, Liveness::Left | Liveness::Expired) {
                heard.push(health.last_heard_ms);
            }
        }
        // Latest first; never heard (`None`) sorts last.
        heard.sort_unstable_by(|a, b| b.cmp(a));
        heard[heard.len() / 2]
    }

    /// Whether `id` expired in `incarnation` or a later one.
    pub(crate) fn is_expired(&self, id: NodeId, incarnation: u32) -> bool {
        self.health.get(&id).is_some_and(|h| {
            h.liveness == Liveness::Expired && h.incarnation.is_some_and(|gone| incarnation <= gone)
        })
    }

    /// The members, neither left nor expired, last heard from (or, if
    /// never, known since `known_since(id)`) before `cutoff_ms`, with the
    /// incarnation they were last heard in and when; in id order.
    pub(crate) fn silent_since(
        &self,
        cutoff_ms: u64,
        mut known_since: impl FnMut(NodeId) -> u64,
    ) -> Vec<(NodeId, u32, u64)> {
        let mut silent: Vec<(NodeId, u32, u64)> = self
            .ids()
            .filter(|&id| id != self.me.id)
            .filter_map(|id| {
                let health = self.health.get(&id).copied().unwrap_or(HEALTHY);
                let heard = health.last_heard_ms.unwrap_or_else(|| known_since(id));
                (!matches!(health.liveness, Liveness::Left | Liveness::Expired)
                    && heard < cutoff_ms)
                    .then(|| (id, health.incarnation.unwrap_or_default(), heard))
            })
            .collect();
        silent.sort_unstable();
        silent
    }

    /// Records a failed exchange with `id`; returns the transition it
    /// caused.
    pub(crate) fn failed(&mut self, id: NodeId) -> Option<Transition> {
        if !self.contains(id) {
            return None;
        }
        let health = self.health.entry(id).or_insert(HEALTHY);
        if matches!(health.liveness, Liveness::Left | Liveness::Expired) {
            // Gone on purpose or for good: nothing to count.
            return None;
        }
        health.failures = health.failures.saturating_add(1);
        let next = if health.failures >= self.down_after {
            Liveness::Down
        } else if health.failures >= self.suspect_after {
            Liveness::Suspect
        } else {
            Liveness::Alive
        };
        let was = std::mem::replace(&mut health.liveness, next);
        match (was, next) {
            (Liveness::Alive, Liveness::Suspect) => Some(Transition::Suspect),
            (_, Liveness::Down) if was != Liveness::Down => Some(Transition::Down),
            _ => None,
        }
    }

    /// Up to `count` distinct alive peers for which `eligible` holds, chosen
    /// uniformly at random. Samples positions first, so a tick costs the
    /// fan-out rather than the cluster size while most peers are eligible.
    pub(crate) fn choose_alive(
        &self,
        rng: &mut SmallRng,
        count: usize,
        eligible: impl Fn(NodeId) -> bool,
    ) -> Vec<NodeId> {
        let me = self.me.id;
        let ok = |id: NodeId| id != me && self.liveness(id) == Liveness::Alive && eligible(id);
        let mut chosen: Vec<NodeId> = Vec::with_capacity(count);
        let len = self.ids.len();
        if len == 0 {
            return chosen;
        }
        for _ in 0..count.saturating_mul(4) {
            if chosen.len() == count {
                return chosen;
            }
            let id = self.ids[rng.random_range(0..len)];
            if ok(id) && !chosen.contains(&id) {
                chosen.push(id);
            }
        }
        // Few eligible peers: fall back to an exact draw among them.
        let mut rest: Vec<NodeId> = self
            .ids()
            .filter(|&id| ok(id) && !chosen.contains(&id))
            .collect();
        while chosen.len() < count && !rest.is_empty() {
            let pick = rng.random_range(0..rest.len());
            chosen.push(rest.swap_remove(pick));
        }
        chosen
    }

    /// One random peer that is suspect or down, for a probe.
    pub(crate) fn choose_unresponsive(
        &self,
        rng: &mut SmallRng,
        eligible: impl Fn(NodeId) -> bool,
    ) -> Option<NodeId> {
        let mut candidates: Vec<NodeId> = self
            .health
            .iter()
            .filter(|(id, h)| {
                matches!(h.liveness, Liveness::Suspect | Liveness::Down) && eligible(**id)
            })
            .map(|(&id, _)| id)
            .collect();
        // The health map's order is arbitrary; sort so the draw is seeded.
        candidates.sort_unstable();
        (!candidates.is_empty()).then(|| candidates[rng.random_range(0..candidates.len())])
    }
}

/// A member list that many nodes of one process start from, shared until a
/// node learns a member it lacks: a simulation of 10,000 nodes that all know
/// each other holds one list, not 10,000. It may include the nodes' own ids.
#[derive(Clone, Debug, Default)]
pub struct SharedPeers {
    ids: Arc<Vec<NodeId>>,
    hash: u64,
}

impl SharedPeers {
    /// Members with these ids and no addresses.
    pub fn new(ids: impl IntoIterator<Item = NodeId>) -> Self {
        let mut ids: Vec<NodeId> = ids.into_iter().collect();
        ids.sort_unstable();
        ids.dedup();
        let hash = ids.iter().fold(0, |hash, &id| hash ^ member_hash(id, ""));
        Self {
            ids: Arc::new(ids),
            hash,
        }
    }

    /// How many members.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// A stable 64-bit hash of a member, the same on every build and platform.
fn member_hash(id: NodeId, address: &str) -> u64 {
    let mut hash = mix(id.get());
    for byte in address.bytes() {
        hash = mix(hash ^ u64::from(byte));
    }
    hash
}

/// A stable 64-bit hash of a departure, apart from every member hash.
fn departure_hash(id: NodeId, incarnation: u32) -> u64 {
    mix(mix(id.get() ^ 0x6c65_6674) ^ u64::from(incarnation))
}

/// What an expiry adds to the member hash: unlike a departure's, so that
/// two lists that differ only in why a member is gone differ.
fn expiry_hash(id: NodeId, incarnation: u32) -> u64 {
    mix(mix(id.get() ^ 0x6578_7069_7265) ^ u64::from(incarnation))
}

/// What a member in state `liveness` adds to the member hash, if it is gone.
fn gone_hash(liveness: Liveness, id: NodeId, incarnation: u32) -> Option<u64> {
    match liveness {
        Liveness::Left => Some(departure_hash(id, incarnation)),
        Liveness::Expired => Some(expiry_hash(id, incarnation)),
        _ => None,
    }
}

/// One SplitMix64 step: the golden-ratio increment, then
/// [`splitmix_finish`], so that zero does not map to zero.
pub(crate) fn mix(x: u64) -> u64 {
    splitmix_finish(x.wrapping_add(0x9e37_79b9_7f4a_7c15))
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn member(id: u64) -> Member {
        Member {
            id: NodeId::new(id),
            address: String::new(),
        }
    }

    #[test]
    fn hash_is_order_independent() {
        let mut a = Membership::new(member(0), 2, 4);
        let mut b = Membership::new(member(0), 2, 4);
        for id in [1, 2, 3] {
            a.add(member(id));
        }
        for id in [3, 1, 2, 1] {
            b.add(member(id));
        }
        assert_eq!(a.hash(), b.hash());
        assert_eq!(a.members(), b.members());
        assert_eq!(a.members().len(), 4);
    }

    #[test]
    fn a_shared_list_hashes_and_lists_like_one_built_by_hand() {
        let shared = SharedPeers::new((0..5).map(NodeId::new));
        let mut a = Membership::new(member(2), 2, 4);
        a.share(&shared);
        let mut b = Membership::new(member(2), 2, 4);
        for id in [0, 1, 3, 4] {
            b.add(member(id));
        }
        assert_eq!(a.hash(), b.hash());
        assert_eq!(a.members(), b.members());
        assert!(!a.contains(NodeId::new(2)));
        assert_eq!(a.ids().count(), 4);
        let mut rng = SmallRng::seed_from_u64(3);
        for _ in 0..50 {
            assert!(
                !a.choose_alive(&mut rng, 4, |_| true)
                    .contains(&NodeId::new(2))
            );
        }
        assert!(a.add(member(9)));
        assert_eq!(shared.len(), 5, "learning must not change the shared list");
    }

    #[test]
    fn an_address_a_member_states_beats_one_heard_from_others() {
        let mut a = Membership::new(member(0), 2, 4);
        let at = |address: &str| Member {
            id: NodeId::new(1),
            address: address.into(),
        };
        assert!(a.add(at("10.6.6.6:7000")));
        assert!(!a.add(at("10.0.0.1:7000")), "hearsay never replaces");
        assert_eq!(a.members()[1].address, "10.6.6.6:7000");
        assert!(!a.address_is_stated(NodeId::new(1)));
        assert!(!a.state(at("10.0.0.1:7000")));
        assert_eq!(a.members()[1].address, "10.0.0.1:7000");
        assert!(a.address_is_stated(NodeId::new(1)));
        assert!(!a.add(at("10.6.6.6:7000")), "nor a planted one later");
        assert_eq!(a.members()[1].address, "10.0.0.1:7000");
        let mut b = Membership::new(member(0), 2, 4);
        b.add(at("10.0.0.1:7000"));
        assert_eq!(a.hash(), b.hash());
        assert!(!a.state(at("10.0.0.2:7000")), "a member may move");
        assert_eq!(a.members()[1].address, "10.0.0.2:7000");
    }

    #[test]
    fn learning_an_address_changes_the_hash_once() {
        let mut a = Membership::new(member(0), 2, 4);
        a.add(member(1));
        let before = a.hash();
        let addressed = Member {
            id: NodeId::new(1),
            address: "10.0.0.1:7000".into(),
        };
        assert!(!a.add(addressed.clone()));
        assert_ne!(a.hash(), before);
        let mut b = Membership::new(member(0), 2, 4);
        b.add(addressed);
        assert_eq!(a.hash(), b.hash());
    }

    #[test]
    fn a_majority_is_heard_as_of_its_oldest_voice() {
        let mut m = Membership::new(member(0), 2, 3);
        assert_eq!(
            m.majority_heard_ms(100),
            Some(100),
            "alone, it is its own majority"
        );
        for id in 1..=4 {
            m.add(member(id));
        }
        // Five members: this one and two more make a majority.
        assert_eq!(m.majority_heard_ms(100), None, "nobody heard yet");
        m.heard_from(NodeId::new(1), 0, 40);
        assert_eq!(m.majority_heard_ms(100), None);
        m.heard_from(NodeId::new(2), 0, 70);
        assert_eq!(m.majority_heard_ms(100), Some(40));
        m.heard_from(NodeId::new(3), 0, 90);
        assert_eq!(m.majority_heard_ms(100), Some(70));
        // A member that left no longer counts: four, so three are needed.
        assert!(m.leave(NodeId::new(4), 0));
        assert_eq!(m.majority_heard_ms(100), Some(70));
        // Three left (this one, 1 heard at 40, 3 at 90): two are needed.
        assert!(m.leave(NodeId::new(2), 0));
        assert_eq!(m.majority_heard_ms(100), Some(90));
    }

    #[test]
    fn failures_suspect_then_down_and_an_answer_revives() {
        let mut m = Membership::new(member(0), 2, 3);
        m.add(member(1));
        assert_eq!(m.failed(NodeId::new(1)), None);
        assert_eq!(m.failed(NodeId::new(1)), Some(Transition::Suspect));
        assert_eq!(m.failed(NodeId::new(1)), Some(Transition::Down));
        assert_eq!(m.failed(NodeId::new(1)), None);
        let mut rng = SmallRng::seed_from_u64(1);
        assert!(m.choose_alive(&mut rng, 3, |_| true).is_empty());
        assert_eq!(
            m.choose_unresponsive(&mut rng, |_| true),
            Some(NodeId::new(1))
        );
        assert_eq!(m.heard_from(NodeId::new(1), 0, 5), Some(Transition::Up));
        assert_eq!(m.choose_alive(&mut rng, 3, |_| true), vec![NodeId::new(1)]);
    }

    #[test]
    fn a_peer_down_for_any_number_of_failures_is_still_probed() {
        let mut m = Membership::new(member(0), 2, 3);
        m.add(member(1));
        for _ in 0..10_000 {
            m.failed(NodeId::new(1));
        }
        assert_eq!(m.liveness(NodeId::new(1)), Liveness::Down);
        let mut rng = SmallRng::seed_from_u64(1);
        assert_eq!(
            m.choose_unresponsive(&mut rng, |_| true),
            Some(NodeId::new(1))
        );
        assert_eq!(m.heard_from(NodeId::new(1), 0, 60), Some(Transition::Up));
    }

    #[test]
    fn a_member_that_left_is_not_contacted_until_a_newer_life_speaks() {
        let mut m = Membership::new(member(0), 2, 3);
        m.add(member(1));
        assert!(m.leave(NodeId::new(1), 4));
        assert!(!m.leave(NodeId::new(1), 4));
        assert_eq!(m.liveness(NodeId::new(1)), Liveness::Left);
        assert_eq!(m.failed(NodeId::new(1)), None);
        let mut rng = SmallRng::seed_from_u64(1);
        assert!(m.choose_alive(&mut rng, 3, |_| true).is_empty());
        assert_eq!(m.choose_unresponsive(&mut rng, |_| true), None);
        // What its leaving life still sends does not bring it back.
        assert_eq!(m.heard_from(NodeId::new(1), 4, 10), None);
        assert_eq!(m.liveness(NodeId::new(1)), Liveness::Left);
        assert_eq!(m.heard_from(NodeId::new(1), 5, 20), Some(Transition::Up));
        assert_eq!(m.liveness(NodeId::new(1)), Liveness::Alive);
    }

    #[test]
    fn chooses_distinct_peers() {
        let mut m = Membership::new(member(0), 2, 4);
        for id in 1..=5 {
            m.add(member(id));
        }
        let mut rng = SmallRng::seed_from_u64(7);
        for _ in 0..100 {
            let mut chosen = m.choose_alive(&mut rng, 5, |_| true);
            chosen.sort();
            chosen.dedup();
            assert_eq!(chosen.len(), 5);
        }
    }
}
