//! The protocol state machine: its state, its public inputs and outputs.
//! See docs/design.md, "A map of the core", for which file holds which rule.

mod ack;
mod apply;
mod changes;
mod checks;
mod collect;
mod errors;
mod exchange;
mod limits;
mod outputs;
mod pipeline;
mod unacked;

pub use changes::Change;
pub use checks::{ClockStatus, MessageLimits};
pub use errors::{MessageError, Quota, WriteError};
pub use outputs::{Event, ExchangeEnd, Transmit};

use outputs::MAX_PENDING_ENDS;

use std::collections::{HashMap, VecDeque};

use lww_crdt::{
    Budget, ClockError, EncodedLen, Entry, HybridClock, LwwMap, ManualClock, NodeId, Replica,
    Stamp, VersionVector,
};
use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::codec;
use crate::config::Config;
use crate::membership::{Liveness, Membership, PeerState, SharedPeers, Transition, mix};
use crate::message::{Member, MemberList, Message, Refusal, StoreDelta, SynFlags};
use crate::metrics::Metrics;

/// The map type a node replicates.
pub type StoreMap = LwwMap<String, String>;

/// The origin id under which a member writes in a given incarnation: the
/// incarnation in the high 32 bits, the member id in the low 32. A member that
/// lost its state takes a new incarnation and so a fresh origin, and can never
/// issue a stamp its earlier life issued, whatever its clock says.
pub fn writer_origin(member: NodeId, incarnation: u32) -> NodeId {
    NodeId::new((u64::from(incarnation) << 32) | (member.get() & u64::from(u32::MAX)))
}

/// The member that writes under `origin`.
pub fn origin_member(origin: NodeId) -> NodeId {
    NodeId::new(origin.get() & u64::from(u32::MAX))
}

/// The bytes a key and its entry hold, for the data quota.
#[expect(clippy::ptr_arg, reason = "a Weigher of String keys takes &String")]
fn data_bytes(key: &String, entry: &lww_crdt::Entry<String>) -> u64 {
    (key.len() + entry.value.as_ref().map_or(0, String::len)) as u64
}

/// The replica a node gossips.
type StoreReplica = Replica<String, String, ManualClock>;

/// The exchanges a node has open, on either side.
#[derive(Debug, Default)]
struct Exchanges {
    /// Exchanges this node opened, by id.
    opened: HashMap<u64, Outstanding>,
    /// Exchanges this node answered and may still get an `Ack` for, by
    /// initiator and id, with their deadlines.
    answered: HashMap<(NodeId, u64), u64>,
    /// The id of the next exchange this node opens.
    next_id: u64,
}

/// This node's life in the cluster, and the lives its peers speak in.
#[derive(Debug)]
struct Lives {
    /// The latest incarnation each peer has spoken as.
    incarnations: HashMap<NodeId, u32>,
    /// Whether writes are taken: from the start, or once a member has been
    /// heard from (see [`Config::join_before_writing`]).
    joined: bool,
    /// Refusing writes before shutting down (see [`Node::start_draining`]).
    draining: bool,
    /// Leaving: every `Syn` says so (see [`Node::leave`]).
    leaving: bool,
    /// The peer that refused this node as expired, if one did.
    expired_by: Option<NodeId>,
}

/// An exchange this node opened.
#[derive(Clone, Copy, Debug)]
struct Outstanding {
    peer: NodeId,
    deadline_ms: u64,
    /// The `SynAck` came and the `Ack` asked for a final `Ack`.
    awaiting_final: bool,
    /// Opened to pull the rest of a cut delta, not at a tick.
    pulled: bool,
    /// This node's vector hash when its `Syn` went.
    syn_hash: u64,
}

/// A node asks for its peers' clocks on one tick in this many, and a peer's
/// again only once this many ticks have passed since it was measured.
const CLOCK_SAMPLE_TICKS: u64 = 10;

/// One member's protocol state: its replica, its view of the cluster, and
/// the exchanges it has open.
///
/// Sans-IO: it reads no clock, owns no socket or thread, and draws all its
/// randomness from a seeded RNG, so a run is a pure function of its inputs.
///
/// # Call order
///
/// - [`Node::new`] / [`Node::with_state`]: build from a [`Config`] and seed
///   members.
/// - Client commands at any time: [`put`](Node::put),
///   [`delete`](Node::delete), [`get`](Node::get).
/// - [`handle_tick`](Node::handle_tick) when [`poll_timeout`](Node::poll_timeout)
///   says: opens exchanges with `fanout` random peers, expires unanswered ones
///   and now and then purges stable tombstones.
/// - [`handle_message`](Node::handle_message) for every frame the transport
///   delivers.
/// - After any of these, drain [`poll_transmit`](Node::poll_transmit) into the
///   transport, then [`poll_exchange_end`](Node::poll_exchange_end) into
///   [`Transport::end_exchange`](crate::Transport::end_exchange), and
///   [`poll_event`](Node::poll_event) for whoever cares.
/// - Before stopping: [`leave`](Node::leave) (or just
///   [`start_draining`](Node::start_draining)), then keep driving it until
///   its last exchanges complete.
#[derive(Debug)]
pub struct Node {
    config: Config,
    time: ManualClock,
    replica: StoreReplica,
    /// This node's vector hash, until the vector moves.
    vector_hash: Option<u64>,
    members: Membership,
    rng: SmallRng,
    outbox: VecDeque<Transmit>,
    /// Exchanges this node has finished sending in, after their last frame
    /// in `outbox`.
    ended: VecDeque<ExchangeEnd>,
    events: VecDeque<Event>,
    next_tick_ms: Option<u64>,
    ticks: u64,
    /// When each member never heard from was first found so, at a GC
    /// tick: it counts as silent from then.
    known_since: HashMap<NodeId, u64>,
    /// Since when, at every GC tick, this node has heard lately from a
    /// majority of its members (see `expire_silent`).
    majority_since: Option<u64>,
    /// Something new was written, received or learned since the last
    /// tick: the next round uses the full fan-out (see
    /// [`ConfigBuilder::idle_fanout`](crate::ConfigBuilder::idle_fanout)).
    news: bool,
    /// The member list's hash when last looked at, and the node time it
    /// was first seen at (see [`Node::membership_changed_ms`]).
    membership_seen: (u64, Option<u64>),
    exchanges: Exchanges,
    /// What goes to and comes from each peer beyond the base exchange (see
    /// `pipeline`).
    pipeline: pipeline::Pipeline,
    /// Tombstone collection (see `collect`).
    collection: collect::Collection,
    lives: Lives,
    /// Peers' clock offsets and settings (see `checks`).
    checks: checks::PeerChecks,
    metrics: Metrics,
    /// The change log, when kept (see `changes`).
    changes: Option<Vec<changes::Change>>,
    /// Client writes no peer is known to hold yet (see `unacked`).
    unacknowledged: unacked::Unacknowledged,
}

impl Node {
    /// A fresh node with an empty map, knowing `seeds`.
    pub fn new(config: Config, seeds: impl IntoIterator<Item = Member>) -> Self {
        Self::with_state(config, StoreMap::new(), seeds)
    }

    /// A node resuming from `map`, a state saved by this member.
    pub fn with_state(
        config: Config,
        map: StoreMap,
        seeds: impl IntoIterator<Item = Member>,
    ) -> Self {
        let time = ManualClock::new(0);
        let clock = HybridClock::with_max_offset(time.clone(), config.max_clock_offset_ms);
        let origin = writer_origin(config.id, config.incarnation);
        // The node's own saved state (or an empty map): resumed unchecked,
        // since its clock is not set before the first call.
        let mut replica = Replica::resume(origin, clock, map);
        if config.max_data_bytes.is_some() {
            replica.weigh_with(data_bytes);
        }
        let me = Member {
            id: config.id,
            address: config.address.clone(),
        };
        let mut members = Membership::new(
            me,
            config.suspect_after_failures,
            config.down_after_failures,
        );
        for seed in seeds {
            members.add(seed);
        }
        let joined = !config.join_before_writing || config.founder;
        let checks = checks::PeerChecks::new(
            config.max_clock_offset_ms,
            CLOCK_SAMPLE_TICKS * config.tick_interval_ms,
        );
        Self {
            rng: SmallRng::seed_from_u64(config.seed),
            pipeline: pipeline::Pipeline::new(config.optimisations),
            config,
            time,
            replica,
            members,
            outbox: VecDeque::new(),
            ended: VecDeque::new(),
            events: VecDeque::new(),
            next_tick_ms: None,
            ticks: 0,
            news: true,
            membership_seen: (0, None),
            known_since: HashMap::new(),
            majority_since: None,
            exchanges: Exchanges::default(),
            collection: collect::Collection::default(),
            lives: Lives {
                incarnations: HashMap::new(),
                joined,
                draining: false,
                leaving: false,
                expired_by: None,
            },
            checks,
            vector_hash: None,
            metrics: Metrics::default(),
            changes: None,
            unacknowledged: unacked::Unacknowledged::default(),
        }
    }

    /// A fresh node starting from a member list shared with other nodes of
    /// this process (see [`SharedPeers`]).
    pub fn with_shared_peers(config: Config, peers: &SharedPeers) -> Self {
        let mut node = Self::new(config, []);
        node.members.share(peers);
        node
    }

    /// The member id.
    pub fn id(&self) -> NodeId {
        self.config.id
    }

    /// The origin this node's writes carry.
    pub fn origin(&self) -> NodeId {
        self.replica.id()
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The replicated map.
    pub fn map(&self) -> &StoreMap {
        self.replica.map()
    }

    /// This node's version vector.
    pub fn version_vector(&self) -> &VersionVector {
        self.replica.version_vector()
    }

    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Known peers and their liveness.
    pub fn peers(&self) -> Vec<PeerState> {
        let mut peers = self.members.peers();
        for peer in &mut peers {
            peer.incarnation = self.lives.incarnations.get(&peer.member.id).copied();
            peer.clock_offset_ms = self.checks.offset(peer.member.id);
        }
        peers
    }

    /// This node's clock as measured against its peers'.
    pub fn clock_status(&self) -> ClockStatus {
        self.checks.status()
    }

    /// The liveness of `peer`, if known.
    pub fn liveness(&self, peer: NodeId) -> Option<Liveness> {
        self.members
            .contains(peer)
            .then(|| self.members.liveness(peer))
    }

    /// Every member, this node included.
    pub fn members(&self) -> Vec<Member> {
        self.members.members()
    }

    /// The value of `key` here.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.replica.get(key).map(String::as_str)
    }

    /// The entry of `key` here, tombstone included.
    pub fn get_entry(&self, key: &str) -> Option<&Entry<String>> {
        self.replica.get_entry(key)
    }

    /// Writes `value` to `key` at time `now_ms`.
    ///
    /// # Errors
    /// [`WriteError::TooLarge`] if the entry could not travel in one message,
    /// [`WriteError::NotJoined`] before the node has joined,
    /// [`WriteError::Draining`] once it is stopping,
    /// [`WriteError::ClockOutOfRange`] while its clock is.
    pub fn put(&mut self, key: String, value: String, now_ms: u64) -> Result<Stamp, WriteError> {
        self.check_writable(key.encoded_len() + value.encoded_len())?;
        self.check_quota(&key, &value)?;
        self.time.set(now_ms);
        self.vector_hash = None;
        self.news = true;
        let written = self.changes.is_some().then(|| key.clone());
        let stamp = self.replica.put(key, value)?;
        self.unacknowledged.wrote(stamp.hlc);
        if let Some(key) = written {
            self.note_written(&key);
        }
        Ok(stamp)
    }

    /// Deletes `key` at time `now_ms`.
    ///
    /// # Errors
    /// [`WriteError::TooLarge`] if the tombstone could not travel in one
    /// message, [`WriteError::NotJoined`] before the node has joined,
    /// [`WriteError::Draining`] once it is stopping,
    /// [`WriteError::ClockOutOfRange`] while its clock is.
    pub fn delete(&mut self, key: String, now_ms: u64) -> Result<Stamp, WriteError> {
        self.check_writable(key.encoded_len())?;
        self.time.set(now_ms);
        self.vector_hash = None;
        self.news = true;
        let written = self.changes.is_some().then(|| key.clone());
        let stamp = self.replica.delete(key)?;
        self.unacknowledged.wrote(stamp.hlc);
        if let Some(key) = written {
            self.note_written(&key);
        }
        Ok(stamp)
    }

    /// When [`handle_tick`](Self::handle_tick) should next be called: the next
    /// gossip round or the earliest exchange deadline, whichever is first.
    /// `None` before the first call, which starts the rounds: a node has no
    /// timer until then, and a caller starts it by ticking it.
    pub fn poll_timeout(&self) -> Option<u64> {
        let tick = self.next_tick_ms?;
        let deadline = self.exchanges.opened.values().map(|o| o.deadline_ms).min();
        Some(deadline.map_or(tick, |d| d.min(tick)))
    }

    /// Advances time: expires unanswered exchanges and, when a gossip round is
    /// due, opens exchanges with up to `fanout` alive peers.
    pub fn handle_tick(&mut self, now_ms: u64) {
        self.time.set(now_ms);
        self.expire(now_ms);
        if self.next_tick_ms.is_some_and(|next| now_ms < next) {
            return;
        }
        self.next_tick_ms = Some(now_ms + self.config.tick_interval_ms);
        self.ticks += 1;
        let busy: Vec<NodeId> = self.exchanges.opened.values().map(|o| o.peer).collect();
        let fanout = match self.config.idle_fanout {
            Some(idle) if !self.news => idle.min(self.config.fanout),
            _ => self.config.fanout,
        };
        self.news = false;
        let mut targets = self
            .members
            .choose_alive(&mut self.rng, fanout, |id| !busy.contains(&id));
        if self.ticks % u64::from(self.config.probe_every_ticks) == 0 {
            let probe = self
                .members
                .choose_unresponsive(&mut self.rng, |id| !busy.contains(&id));
            targets.extend(probe);
        }
        for peer in targets {
            self.open_exchange(peer, now_ms, false);
        }
        if self.ticks % u64::from(self.config.gc_every_ticks) == 0 {
            self.expire_silent(now_ms);
            self.collect_garbage();
        }
        self.note_membership();
    }

    /// The latest time (node time, ms) at or after which this node heard
    /// from a majority of the members it counts, itself included: how
    /// recently it was in touch with its cluster. A node whose last touch
    /// lies further back than the retention window
    /// ([`ConfigBuilder::retention_ms`](crate::ConfigBuilder::retention_ms))
    /// may have been expired by the others, and must not come back as it
    /// was. `None` until a majority is heard.
    pub fn majority_heard_ms(&self) -> Option<u64> {
        self.members.majority_heard_ms(self.time.now_ms())
    }

    /// When this node's member list last changed, in node time (ms): a
    /// member, an address, a departure or an expiry learned, or a seed
    /// added, as of the tick or message that showed it (a member added by
    /// [`add_member`](Node::add_member) counts from the next one); `None`
    /// before the first tick. A cluster has formed, as this node sees it,
    /// once it lists every member; this says when that happened, which a
    /// client asking later cannot tell.
    pub fn membership_changed_ms(&self) -> Option<u64> {
        self.membership_seen.1
    }

    fn note_membership(&mut self) {
        let hash = self.members.hash();
        if self.membership_seen.0 != hash || self.membership_seen.1.is_none() {
            self.membership_seen = (hash, Some(self.time.now_ms()));
        }
    }

    /// Handles one frame from `from`.
    ///
    /// # Errors
    /// [`MessageError`] if the frame claims to come from this node itself, is
    /// undecodable, or carries timestamps too far ahead. Nothing changes then
    /// but the node's time, which moves to `now_ms` as with any call (the
    /// timestamp check needs it), and the count of refused messages.
    pub fn handle_message(
        &mut self,
        from: NodeId,
        payload: &[u8],
        now_ms: u64,
    ) -> Result<(), MessageError> {
        if from == self.config.id {
            self.metrics.messages_rejected += 1;
            return Err(MessageError::FromSelf(from));
        }
        let message = match codec::decode(payload, self.config.max_message_bytes) {
            Ok(message) => message,
            Err(source) => {
                self.metrics.messages_rejected += 1;
                return Err(MessageError::Decode { from, source });
            }
        };
        self.time.set(now_ms);
        if let Err(source) = self.check_timestamps(&message) {
            self.metrics.messages_rejected += 1;
            if let ClockError::TooFarAhead { ahead_ms, .. } = source {
                self.events
                    .push_back(Event::ClockRefused { from, ahead_ms });
            }
            return Err(MessageError::Clock { from, source });
        }
        let incarnation = message.incarnation();
        if self.members.is_expired(from, incarnation) {
            self.metrics.messages_rejected += 1;
            if let Message::Syn(syn) = &message {
                self.refuse(from, syn, Refusal::Expired, now_ms);
            }
            return Err(MessageError::Expired { from, incarnation });
        }
        self.metrics.received.record(message.kind(), payload.len());
        self.note_sender(from, &message, now_ms);
        let leaving =
            matches!(&message, Message::Syn(syn) if syn.flags.contains(SynFlags::LEAVING));
        match message {
            Message::Syn(syn) => self.on_syn(from, syn, now_ms),
            Message::SynAck(syn_ack) => self.on_syn_ack(from, syn_ack, now_ms),
            Message::Ack(ack) => self.on_ack(from, ack, now_ms),
        }
        // Answered as any `Syn`: its exchange carries what the leaver holds.
        if leaving && self.members.leave(from, incarnation) {
            self.peer_left(from);
        }
        self.note_membership();
        Ok(())
    }

    /// Notes that `from` spoke, in the incarnation `message` carries: it is
    /// a member, it is up, and this node may have joined through it.
    fn note_sender(&mut self, from: NodeId, message: &Message, now_ms: u64) {
        let incarnation = message.incarnation();
        self.note_incarnation(from, incarnation);
        // A member that refuses to exchange with this node, or that this
        // node refuses, would never carry its writes.
        if !self.limits_differ(message) {
            self.lives.joined = true;
        }
        let sender = Member {
            id: from,
            address: String::new(),
        };
        if self.members.add(sender.clone()) {
            self.events.push_back(Event::MemberJoined(sender));
        }
        if let Some(Transition::Up) = self.members.heard_from(from, incarnation, now_ms) {
            self.events.push_back(Event::PeerUp(from));
        }
    }

    /// The next frame to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop_front()
    }

    /// The next exchange this node has finished sending in, if any. Drain it
    /// after [`poll_transmit`](Self::poll_transmit): each end follows the
    /// exchange's last frame.
    pub fn poll_exchange_end(&mut self) -> Option<ExchangeEnd> {
        self.ended.pop_front()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Drops every open exchange without counting it against the peer: for a
    /// node coming back from being cut off, whose answers were lost with it.
    pub fn forget_exchanges(&mut self) {
        self.end_open_exchanges();
        self.exchanges.opened.clear();
        self.exchanges.answered.clear();
        self.pipeline.forget_exchanges();
    }

    /// The incarnation this node writes in.
    pub fn incarnation(&self) -> u32 {
        self.config.incarnation
    }

    /// Learns `member` from outside the protocol, as a seed found after the
    /// start; returns whether it was new. A known member's address is filled
    /// in if it had none.
    pub fn add_member(&mut self, member: Member) -> bool {
        let new = self.members.add(member.clone());
        if new {
            self.events.push_back(Event::MemberJoined(member));
        }
        new
    }

    /// The peer that refused this node as expired, if one did
    /// ([`Event::SelfExpired`]): it takes no writes, and must be started
    /// empty, in a new incarnation, to rejoin.
    pub fn expired_by(&self) -> Option<NodeId> {
        self.lives.expired_by
    }

    /// Whether writes are taken yet: see [`Config::join_before_writing`].
    /// A node that joins through seeds has joined once a member has been
    /// heard from and its own clock has been measured against enough peers
    /// to judge it (three, or all it knows): a node whose clock is wrong
    /// learns it before it takes a write.
    pub fn is_joined(&self) -> bool {
        self.lives.joined && self.clock_judged()
    }

    fn clock_judged(&self) -> bool {
        !self.config.join_before_writing || self.config.founder || self.checks.judged_once()
    }

    /// Refuses every write from now on ([`WriteError::Draining`]), while
    /// gossip goes on: a node about to stop gossips what it holds to its
    /// peers first, and a write it took meanwhile might be left out.
    pub fn start_draining(&mut self) {
        self.lives.draining = true;
    }

    /// Whether [`start_draining`](Self::start_draining) was called.
    pub fn is_draining(&self) -> bool {
        self.lives.draining
    }

    /// Leaves the cluster at `now_ms`: refuses writes from now on (as
    /// [`start_draining`](Self::start_draining)) and opens an exchange with
    /// every member that has not left, each `Syn` saying this node is
    /// leaving. Each exchange carries what this node holds that the peer
    /// lacks, and tells the peer to stop contacting it and waiting for it.
    /// Returns how many exchanges it opened. Keep driving the node until
    /// they complete (or time out), then stop it.
    pub fn leave(&mut self, now_ms: u64) -> usize {
        self.time.set(now_ms);
        self.lives.draining = true;
        self.lives.leaving = true;
        let peers: Vec<NodeId> = self
            .members
            .ids()
            .filter(|&id| {
                !matches!(
                    self.members.liveness(id),
                    Liveness::Left | Liveness::Expired
                )
            })
            .collect();
        peers
            .into_iter()
            .filter(|&peer| self.open_exchange(peer, now_ms, false))
            .count()
    }

    fn check_writable(&self, entry_len: usize) -> Result<(), WriteError> {
        if let Some(by) = self.lives.expired_by {
            return Err(WriteError::Expired { by });
        }
        if self.lives.draining {
            return Err(WriteError::Draining);
        }
        if !self.is_joined() {
            return Err(WriteError::NotJoined);
        }
        if self.checks.out_of_range() {
            let status = self.checks.status();
            return Err(WriteError::ClockOutOfRange {
                peers_beyond: status.peers_beyond,
                peers_measured: status.peers_measured,
                median_offset_ms: status.median_offset_ms.unwrap_or_default(),
                max_offset_ms: self.config.max_clock_offset_ms,
            });
        }
        let max = self.config.max_message_bytes / 2;
        let len = entry_len + lww_crdt::encoded_len::ENTRY_FRAME_LEN;
        if len > max {
            return Err(WriteError::TooLarge { len, max });
        }
        Ok(())
    }

    /// Whether the quotas leave room for writing `value` to `key`.
    fn check_quota(&self, key: &str, value: &str) -> Result<(), WriteError> {
        if self.config.max_keys.is_none() && self.config.max_data_bytes.is_none() {
            return Ok(());
        }
        let map = self.replica.map();
        let held = map.get_entry(key);
        if let Some(max) = self.config.max_keys {
            let keys = map.len() as u64;
            let adds_a_key = held.is_none_or(|entry| entry.is_tombstone());
            if adds_a_key && keys >= max {
                return Err(WriteError::StoreFull {
                    quota: Quota::Keys,
                    held: keys,
                    max,
                });
            }
        }
        if let (Some(max), Some(bytes)) = (self.config.max_data_bytes, map.weight()) {
            let before = held.map_or(0, |entry| {
                (key.len() + entry.value.as_ref().map_or(0, String::len)) as u64
            });
            let after = (key.len() + value.len()) as u64;
            if after > before && bytes - before + after > max {
                return Err(WriteError::StoreFull {
                    quota: Quota::DataBytes,
                    held: bytes,
                    max,
                });
            }
        }
        Ok(())
    }

    fn check_timestamps(&self, message: &Message) -> Result<(), ClockError> {
        let clock = self.replica.clock();
        match message {
            Message::Syn(_) => Ok(()),
            Message::SynAck(syn_ack) => clock.check(syn_ack.delta.max_hlc()),
            Message::Ack(ack) => clock.check(ack.delta.max_hlc()),
        }
    }

    /// Learns the member list `from` sent: its own entry is what it states
    /// about itself, the rest is hearsay.
    fn learn_members(&mut self, from: NodeId, list: Option<MemberList>) {
        let Some(list) = list else { return };
        for member in list.members {
            if member.id != from {
                self.add_member(member);
            } else if self.members.state(member.clone()) {
                self.events.push_back(Event::MemberJoined(member));
            }
        }
        for departure in list.left {
            if departure.expired {
                if departure.id == self.config.id
                    && departure.incarnation >= self.config.incarnation
                {
                    self.note_expired_by(from);
                } else if self.members.expire(departure.id, departure.incarnation) {
                    self.peer_expired(departure.id, departure.incarnation, None);
                }
            } else if self.members.leave(departure.id, departure.incarnation) {
                self.peer_left(departure.id);
            }
        }
    }

    /// Expires the members not heard from for longer than the retention
    /// window, counted from when this node first found them unheard for
    /// those never heard; but only once this node has, at every GC tick of
    /// a whole window, heard within the last half window from more than
    /// half the members it counts (itself included). A node that was
    /// paused or cut off finds most of its peers silent: it is the one that
    /// was away, and must not be the one that decides. The halves of an
    /// even partition expire nobody, before or after the heal: the window
    /// starts again when a majority is heard again, and by its end the
    /// other half has been heard.
    fn expire_silent(&mut self, now_ms: u64) {
        let Some(retention_ms) = self.config.retention_ms else {
            return;
        };
        let Some(cutoff_ms) = now_ms.checked_sub(retention_ms) else {
            return;
        };
        let known_since = &mut self.known_since;
        let silent = self
            .members
            .silent_since(cutoff_ms, |id| *known_since.entry(id).or_insert(now_ms));
        // Heard from lately: within the last half window. A member merely
        // not yet silent for the whole window may be just as unreachable.
        let recent_ms = now_ms.saturating_sub(retention_ms / 2);
        let (heard, counted) = self.members.heard_since(recent_ms);
        // This node and those it heard, against all it counts with itself.
        if 2 * (heard + 1) <= counted + 1 {
            self.majority_since = None;
            return;
        }
        let since = *self.majority_since.get_or_insert(now_ms);
        if silent.is_empty() || now_ms - since < retention_ms {
            return;
        }
        for (peer, incarnation, heard_ms) in silent {
            if self.members.expire(peer, incarnation) {
                self.peer_expired(peer, incarnation, Some(now_ms.saturating_sub(heard_ms)));
            }
        }
    }

    /// Tells the caller `peer` expired, and forgets what was on its way to
    /// and from it.
    fn peer_expired(&mut self, peer: NodeId, incarnation: u32, silent_ms: Option<u64>) {
        self.events.push_back(Event::PeerExpired {
            peer,
            incarnation,
            silent_ms,
        });
        self.pipeline.forget_peer(peer);
        let peers = self.members.peer_count();
        self.checks.forget(peer, peers, &mut self.events);
    }

    /// Notes that `by` refused this node as expired: it takes no more
    /// writes, and says so once.
    pub(super) fn note_expired_by(&mut self, by: NodeId) {
        if self.lives.expired_by.is_none() {
            self.lives.expired_by = Some(by);
            self.events.push_back(Event::SelfExpired { by });
        }
    }

    /// What this node's member list is, as exchanges carry it.
    fn member_list(&self) -> MemberList {
        MemberList {
            members: self.members.members(),
            left: self.members.departures(),
        }
    }

    /// Tells the caller `peer` left, and stops checking it.
    fn peer_left(&mut self, peer: NodeId) {
        self.events.push_back(Event::PeerLeft(peer));
        let peers = self.members.peer_count();
        self.checks.forget(peer, peers, &mut self.events);
    }

    /// Room for a delta in a message that also carries `reserve` bytes of
    /// digest, vector or member list. Strict: a delta over it could not be
    /// sent. A write that cannot fit half a message is refused, so a delta
    /// stalls only while the reserve takes the other half.
    fn delta_budget(&self, reserve: usize) -> Budget {
        Budget::bytes(
            self.config
                .max_message_bytes
                .saturating_sub(codec::MESSAGE_OVERHEAD + reserve),
        )
        .strict()
    }

    /// This node's `max_message_bytes`, as `Syn`s carry it.
    fn message_limit(&self) -> u32 {
        u32::try_from(self.config.max_message_bytes).unwrap_or(u32::MAX)
    }

    fn vector_hash(&mut self) -> u64 {
        if let Some(hash) = self.vector_hash {
            return hash;
        }
        let hash = vector_hash(self.replica.version_vector());
        self.vector_hash = Some(hash);
        hash
    }

    /// Records that this node sends nothing more in `exchange` with `peer`.
    fn end_exchange(&mut self, peer: NodeId, exchange: u64, from_initiator: bool) {
        if self.ended.len() == MAX_PENDING_ENDS {
            self.ended.pop_front();
        }
        self.ended.push_back(ExchangeEnd {
            peer,
            exchange,
            from_initiator,
        });
    }

    /// Encodes and queues `message`; returns whether it fit.
    fn send(&mut self, to: NodeId, message: &Message) -> bool {
        match codec::encode(message, self.config.max_message_bytes) {
            Ok(payload) => {
                self.metrics.sent.record(message.kind(), payload.len());
                self.outbox.push_back(Transmit {
                    to,
                    kind: message.kind(),
                    exchange: message.exchange(),
                    from_initiator: message.from_initiator(),
                    payload,
                });
                true
            }
            Err(_) => {
                self.metrics.messages_oversize += 1;
                false
            }
        }
    }
}

/// A stable hash of a version vector, the same on every build and platform.
pub fn vector_hash(vector: &VersionVector) -> u64 {
    vector
        .iter()
        .fold(mix(vector.len() as u64), |hash, (origin, hlc)| {
            mix(mix(hash ^ origin.get()) ^ hlc.as_u64())
        })
}
