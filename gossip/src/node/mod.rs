//! The protocol state machine: its state, its public inputs and outputs.
//! The exchange itself lives in `exchange`, tombstone collection and
//! incarnations in `collect`.

mod changes;
mod checks;
mod collect;
mod exchange;
mod in_flight;
mod unacked;

pub use changes::Change;
pub use checks::{ClockStatus, MessageLimits};

use std::collections::{HashMap, VecDeque};

use lww_crdt::{
    ApplyReport, Budget, ClockError, EncodedLen, Entry, HybridClock, LwwMap, ManualClock, NodeId,
    Replica, Stamp, VersionVector,
};
use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::codec::{self, DecodeError};
use crate::config::Config;
use crate::membership::{Liveness, Membership, PeerState, SharedPeers, Transition, mix};
use crate::message::{Member, MemberList, Message, MessageKind, StoreDelta, SynFlags};
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

/// An encoded message for the transport to carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// The destination member.
    pub to: NodeId,
    /// Its kind: a transport that keeps one stream per exchange opens a
    /// stream for a `Syn` and reuses it for the rest.
    pub kind: MessageKind,
    /// The exchange it belongs to, chosen by the exchange's initiator: with
    /// the two members' ids and [`from_initiator`](Self::from_initiator) it
    /// names the exchange, since both members number their own exchanges.
    pub exchange: u64,
    /// Whether this node opened the exchange (a `Syn` or the initiator's
    /// `Ack`) or answers it.
    pub from_initiator: bool,
    /// The encoded frame.
    pub payload: Vec<u8>,
}

/// Word that this node sends nothing more in one exchange: a transport that
/// carries each exchange on a stream of its own closes its side of that
/// stream now instead of waiting for it to go quiet. A transport without such
/// streams ignores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExchangeEnd {
    /// The other member of the exchange.
    pub peer: NodeId,
    /// The exchange, numbered by its initiator as in [`Transmit::exchange`].
    pub exchange: u64,
    /// Whether this node opened the exchange, as in
    /// [`Transmit::from_initiator`].
    pub from_initiator: bool,
}

/// Ends held for a caller that does not drain them: an end only lets a
/// stream close early, so the oldest go first.
const MAX_PENDING_ENDS: usize = 256;

/// Something the caller may want to know about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A peer answered after being suspect or down.
    PeerUp(NodeId),
    /// A peer missed enough exchanges to be suspected.
    PeerSuspect(NodeId),
    /// A peer missed enough exchanges to be considered down.
    PeerDown(NodeId),
    /// A member was learned through gossip.
    MemberJoined(Member),
    /// A peer said it was leaving: it is no longer contacted or waited for,
    /// until it speaks in a newer incarnation.
    PeerLeft(NodeId),
    /// A peer's clock was measured more than half the maximum offset from
    /// this node's (`skewed`), or back within a quarter of it after that.
    ClockOffset {
        /// The peer.
        peer: NodeId,
        /// Its clock minus this node's (ms).
        offset_ms: i64,
        /// Whether it is now beyond half the maximum offset.
        skewed: bool,
    },
    /// This node's clock went beyond the maximum offset from most measured
    /// peers (client writes are refused from now on), or came back in range.
    OwnClock(ClockStatus),
    /// A message from `from` was refused whole: it carried a stamp more than
    /// the maximum offset ahead of this node's clock
    /// ([`MessageError::Clock`]). Raised for every such message; a caller
    /// that logs it should limit the rate.
    ClockRefused {
        /// The sender.
        from: NodeId,
        /// How far ahead of this node's physical clock its stamp was (ms).
        ahead_ms: u64,
    },
    /// A peer's settings differ from this node's where they must agree: the
    /// two refuse to exchange (reported once per peer and value).
    SettingsDiffer {
        /// The peer.
        peer: NodeId,
        /// The two message limits.
        max_message_bytes: MessageLimits,
    },
    /// A delta from `from` changed the map.
    Updated {
        /// The sender.
        from: NodeId,
        /// What it changed.
        report: ApplyReport,
    },
}

/// Why a received message was refused. The node's state is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// The bytes are not a valid message.
    #[error("undecodable message from {from}: {source}")]
    Decode {
        /// The claimed sender.
        from: NodeId,
        /// What was wrong.
        source: DecodeError,
    },
    /// The message carries a timestamp too far ahead of local time.
    #[error("message from {from} refused: {source}")]
    Clock {
        /// The sender.
        from: NodeId,
        /// The offending timestamp.
        source: ClockError,
    },
    /// A message claiming to come from this node itself.
    #[error("message claims to come from this node ({0})")]
    FromSelf(NodeId),
}

/// What a node's quotas count ([`WriteError::StoreFull`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quota {
    /// Live keys ([`ConfigBuilder::max_keys`](crate::ConfigBuilder::max_keys)).
    Keys,
    /// Bytes of keys and values ([`ConfigBuilder::max_data_bytes`](
    /// crate::ConfigBuilder::max_data_bytes)).
    DataBytes,
}

impl std::fmt::Display for Quota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Quota::Keys => "keys",
            Quota::DataBytes => "bytes of data",
        })
    }
}

/// The bytes a key and its entry hold, for the data quota.
#[expect(clippy::ptr_arg, reason = "a Weigher of String keys takes &String")]
fn data_bytes(key: &String, entry: &lww_crdt::Entry<String>) -> u64 {
    (key.len() + entry.value.as_ref().map_or(0, String::len)) as u64
}

/// Why a client write was refused. Nothing was written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// The entry could not fit a message alongside a digest.
    #[error("key and value take up to {len} bytes; at most {max} fit a gossip message")]
    TooLarge {
        /// The entry's encoded bound.
        len: usize,
        /// The largest accepted.
        max: usize,
    },
    /// The node joins through seeds ([`ConfigBuilder::join_before_writing`](
    /// crate::ConfigBuilder::join_before_writing)) and no member has answered
    /// it yet (the rest of the cluster may not know it exists), or it has
    /// not yet measured its clock against enough peers to judge it.
    #[error(
        "this node has not joined the cluster yet: no member has been heard from, or its clock \
         is not yet measured against theirs"
    )]
    NotJoined,
    /// The node holds as much as its quota allows: the write would add a
    /// key past [`Config::max_keys`](crate::Config::max_keys) or bytes past
    /// [`Config::max_data_bytes`](crate::Config::max_data_bytes). Deletes
    /// still go through.
    #[error("this node is full: it holds {held} {quota}, its quota is {max}")]
    StoreFull {
        /// What is full.
        quota: Quota,
        /// How much the node holds.
        held: u64,
        /// The quota.
        max: u64,
    },
    /// The node is shutting down ([`Node::start_draining`]): a write taken
    /// now might not reach any peer before it stops.
    #[error("this node is shutting down and takes no more writes")]
    Draining,
    /// This node's clock is beyond the maximum offset from most of the peers
    /// it measured ([`Node::clock_status`]): its stamps would be refused by
    /// its peers, or lose to writes made long before.
    #[error(
        "this node's clock is more than {max_offset_ms} ms off from {peers_beyond} of the \
         {peers_measured} peers it measured (median offset {median_offset_ms} ms); writes \
         are refused until it is back in range"
    )]
    ClockOutOfRange {
        /// Peers measured beyond the maximum offset.
        peers_beyond: usize,
        /// Peers measured.
        peers_measured: usize,
        /// The median offset (peer minus this node, ms).
        median_offset_ms: i64,
        /// The maximum offset.
        max_offset_ms: u64,
    },
    /// The write is in this node's map, but its durable copy could not be
    /// written ([`Persist`](crate::Persist)): it was not acknowledged as
    /// durable, and the node stops.
    #[error(transparent)]
    Storage(#[from] crate::PersistError),
    /// The node's clock holds the largest timestamp and cannot stamp a
    /// write after it (its state holds a stamp near the end of time): no
    /// write is taken rather than one reusing a stamp.
    #[error(
        "this node's clock has reached the largest timestamp ({last}); no write can be stamped after it"
    )]
    ClockExhausted {
        /// The clock's last timestamp.
        last: lww_crdt::Hlc,
    },
}

impl From<lww_crdt::ClockError> for WriteError {
    fn from(err: lww_crdt::ClockError) -> Self {
        match err {
            lww_crdt::ClockError::Exhausted { last } => WriteError::ClockExhausted { last },
            // A write observes no remote stamp; should it be refused for
            // one, the clock is as good as used up.
            lww_crdt::ClockError::TooFarAhead { remote, .. } => {
                WriteError::ClockExhausted { last: remote }
            }
        }
    }
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

/// What applying one delta (or a held part of one) did.
#[derive(Clone, Copy, Debug, Default)]
struct Applied {
    /// It took some origin's frontier, which may let a held part in.
    advanced: bool,
    /// Part of it was held back.
    deferred: bool,
}

/// Snapshots of its own vector a node keeps for tombstone collection.
const GC_SNAPSHOTS: usize = 4;

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
    replica: Replica<String, String, ManualClock>,
    members: Membership,
    rng: SmallRng,
    outbox: VecDeque<Transmit>,
    /// Exchanges this node has finished sending in, after their last frame
    /// in `outbox`.
    ended: VecDeque<ExchangeEnd>,
    events: VecDeque<Event>,
    /// Exchanges this node opened, by id.
    outstanding: HashMap<u64, Outstanding>,
    /// Exchanges this node answered and may still get an `Ack` for, by
    /// initiator and id, with their deadlines.
    answered: HashMap<(NodeId, u64), u64>,
    next_exchange: u64,
    next_tick_ms: Option<u64>,
    ticks: u64,
    /// The vector hash each peer last reported.
    known_hashes: HashMap<NodeId, u64>,
    /// Per peer, the deltas sent to it that may still land (see
    /// `in_flight`).
    in_flight: HashMap<NodeId, Vec<in_flight::InFlight>>,
    /// Parts of received deltas that overtook the delta they follow, held
    /// until it lands or their deadline passes (see `in_flight`).
    deferred: Vec<in_flight::Deferred>,
    /// Snapshots of this node's own vector, one per GC period, oldest
    /// first, with the period they were taken in.
    snapshots: VecDeque<(u64, VersionVector)>,
    /// Per peer, the newest snapshot period its vector is known to dominate.
    reached: HashMap<NodeId, u64>,
    /// The snapshot period found stable at the previous collection: only a
    /// snapshot stable for a whole GC period is purged below.
    stable_before: Option<u64>,
    /// The latest incarnation each peer has spoken as.
    incarnations: HashMap<NodeId, u32>,
    /// Whether writes are taken: from the start, or once a member has been
    /// heard from (see [`Config::join_before_writing`]).
    joined: bool,
    /// Refusing writes before shutting down (see [`Node::start_draining`]).
    draining: bool,
    /// Leaving: every `Syn` says so (see [`Node::leave`]).
    leaving: bool,
    /// Peers' clock offsets and settings (see `checks`).
    checks: checks::PeerChecks,
    vector_hash: Option<u64>,
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
            config,
            time,
            replica,
            members,
            outbox: VecDeque::new(),
            ended: VecDeque::new(),
            events: VecDeque::new(),
            outstanding: HashMap::new(),
            answered: HashMap::new(),
            next_exchange: 0,
            next_tick_ms: None,
            ticks: 0,
            known_hashes: HashMap::new(),
            in_flight: HashMap::new(),
            deferred: Vec::new(),
            snapshots: VecDeque::new(),
            reached: HashMap::new(),
            stable_before: None,
            incarnations: HashMap::new(),
            joined,
            draining: false,
            leaving: false,
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
            peer.incarnation = self.incarnations.get(&peer.member.id).copied();
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
    pub fn poll_timeout(&self) -> u64 {
        let deadline = self.outstanding.values().map(|o| o.deadline_ms).min();
        let tick = self.next_tick_ms.unwrap_or(0);
        deadline.map_or(tick, |d| d.min(tick))
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
        let busy: Vec<NodeId> = self.outstanding.values().map(|o| o.peer).collect();
        let mut targets = self
            .members
            .choose_alive(&mut self.rng, self.config.fanout, |id| !busy.contains(&id));
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
            self.collect_garbage();
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
        self.metrics.received.record(message.kind(), payload.len());
        let incarnation = message.incarnation();
        self.note_incarnation(from, incarnation);
        // A member that refuses to exchange with this node, or that this
        // node refuses, would never carry its writes.
        if !self.limits_differ(&message) {
            self.joined = true;
        }
        if self.members.add(Member {
            id: from,
            address: String::new(),
        }) {
            self.events.push_back(Event::MemberJoined(Member {
                id: from,
                address: String::new(),
            }));
        }
        if let Some(Transition::Up) = self.members.heard_from(from, incarnation, now_ms) {
            self.events.push_back(Event::PeerUp(from));
        }
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
        Ok(())
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
        self.outstanding.clear();
        self.answered.clear();
        self.in_flight.clear();
        self.deferred.clear();
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

    /// Whether writes are taken yet: see [`Config::join_before_writing`].
    /// A node that joins through seeds has joined once a member has been
    /// heard from and its own clock has been measured against enough peers
    /// to judge it (three, or all it knows): a node whose clock is wrong
    /// learns it before it takes a write.
    pub fn is_joined(&self) -> bool {
        self.joined && self.clock_judged()
    }

    fn clock_judged(&self) -> bool {
        !self.config.join_before_writing || self.config.founder || self.checks.judged_once()
    }

    /// Refuses every write from now on ([`WriteError::Draining`]), while
    /// gossip goes on: a node about to stop gossips what it holds to its
    /// peers first, and a write it took meanwhile might be left out.
    pub fn start_draining(&mut self) {
        self.draining = true;
    }

    /// Whether [`start_draining`](Self::start_draining) was called.
    pub fn is_draining(&self) -> bool {
        self.draining
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
        self.draining = true;
        self.leaving = true;
        let peers: Vec<NodeId> = self
            .members
            .ids()
            .filter(|&id| self.members.liveness(id) != Liveness::Left)
            .collect();
        peers
            .into_iter()
            .filter(|&peer| self.open_exchange(peer, now_ms, false))
            .count()
    }

    fn check_writable(&self, entry_len: usize) -> Result<(), WriteError> {
        if self.draining {
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

    /// Applies a delta from `from` that may be applied until `deadline_ms`;
    /// a part that overtook the delta it follows is held until then (see
    /// `in_flight`). Returns whether a part was held.
    fn apply(&mut self, from: NodeId, delta: StoreDelta, deadline_ms: u64, now_ms: u64) -> bool {
        if delta.is_empty() && delta.covered().is_empty() {
            return false;
        }
        self.metrics.entries_received += delta.len() as u64;
        let applied = self.apply_part(from, delta, deadline_ms);
        if applied.advanced {
            self.apply_deferred(now_ms);
        }
        applied.deferred
    }

    /// Applies `delta` and holds back what it left out.
    fn apply_part(&mut self, from: NodeId, delta: StoreDelta, deadline_ms: u64) -> Applied {
        let covered = delta.covered().len();
        let stamps = self.delta_stamps(&delta);
        // Timestamps were checked before anything was applied.
        let Ok((report, rest)) = self.replica.apply_or_defer(delta) else {
            return Applied::default();
        };
        if let Some(stamps) = stamps
            && report.changed() > 0
        {
            self.note_applied(from, stamps);
        }
        self.vector_hash = None;
        self.metrics.entries_redundant += report.unchanged as u64;
        if report.changed() > 0 {
            self.events.push_back(Event::Updated { from, report });
        }
        let left_out = rest.as_ref().map_or(0, |rest| rest.covered().len());
        let deferred = rest.is_some();
        if let Some(rest) = rest {
            self.defer(from, rest, deadline_ms);
        }
        Applied {
            advanced: left_out < covered,
            deferred,
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
            if self.members.leave(departure.id, departure.incarnation) {
                self.peer_left(departure.id);
            }
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
