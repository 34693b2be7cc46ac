//! A deterministic in-memory cluster on virtual time: every node, every
//! message and every fault in one thread, decided by one seed.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use gossip::{
    Config, ConfigError, Event, Member, MessageKind, Metrics, Node, SharedPeers, WriteError,
};
use lww_crdt::{Entry, NodeId, Stamp, VersionVector};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::faults::{Fate, Faults, NetworkStats};

/// Virtual time at which a cluster starts, in ms: far enough from zero that
/// negative clock skew stays positive.
pub const EPOCH_MS: u64 = 1_000_000;

/// When nodes tick within a gossip interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Timing {
    /// Every node ticks at the start of each interval, and messages arrive
    /// at once: the random-phone-call model.
    Lockstep,
    /// Each node ticks at its own random phase within the interval, and
    /// every message takes `latency_ms`: closer to a real deployment.
    Staggered {
        /// One-way message latency.
        latency_ms: u64,
    },
}

/// How to build a [`Cluster`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterConfig {
    /// How many nodes.
    pub nodes: usize,
    /// Peers each node contacts per tick.
    pub fanout: usize,
    /// Gossip interval in ms: one round.
    pub tick_interval_ms: u64,
    /// The size limit of one message.
    pub max_message_bytes: usize,
    /// Seed of every random choice: the network's and each node's.
    pub seed: u64,
    /// When nodes tick and how long messages take.
    pub timing: Timing,
    /// How many seed peers each node starts with (the first nodes, as a
    /// deployment's seed list); `None` for all of them.
    pub seed_peers: Option<usize>,
    /// Each node's clock is off by a random skew in `[-s/2, s/2]` ms.
    pub clock_skew_ms: u64,
    /// The largest offset a node accepts in a remote timestamp.
    pub max_clock_offset_ms: u64,
    /// Message faults.
    pub faults: Faults,
    /// Peers each node contacts in a round that follows one with nothing
    /// new (`gossip::ConfigBuilder::idle_fanout`); `None`: always `fanout`.
    #[serde(default)]
    pub idle_fanout: Option<usize>,
    /// Every optimisation of the exchange off
    /// (`gossip::ConfigBuilder::unoptimised`): the base protocol, which
    /// the optimised one must agree with.
    #[serde(default)]
    pub unoptimised: bool,
    /// How long a member may stay unheard from before it expires
    /// (`gossip::ConfigBuilder::retention_ms`); `None`: never.
    #[serde(default)]
    pub retention_ms: Option<u64>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            nodes: 100,
            fanout: 1,
            tick_interval_ms: 1_000,
            max_message_bytes: 1 << 20,
            seed: 0,
            timing: Timing::Lockstep,
            seed_peers: None,
            clock_skew_ms: 0,
            max_clock_offset_ms: lww_crdt::DEFAULT_MAX_OFFSET_MS,
            faults: Faults::NONE,
            idle_fanout: None,
            unoptimised: false,
            retention_ms: None,
        }
    }
}

/// Why a cluster could not be built or driven. Nothing changed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ClusterError {
    /// A node's gossip configuration is invalid.
    #[error("invalid node configuration: {0}")]
    Config(#[from] ConfigError),
    /// A cluster needs at least one node, and ids must fit 32 bits.
    #[error("node count {0} must be between 1 and 2^32")]
    NodeCount(usize),
    /// A fault probability outside `[0, 1]`.
    #[error("fault probabilities must lie in [0, 1]")]
    FaultProbability,
    /// No node with that index.
    #[error("no node {0}")]
    NoSuchNode(usize),
    /// The node is crashed or unavailable and accepts no writes.
    #[error("node {0} is not running")]
    NotRunning(usize),
    /// The write was refused.
    #[error("write refused: {0}")]
    Write(#[from] WriteError),
}

/// Two live replicas that disagree, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// The first key (in key order) where they differ.
    pub key: String,
    /// One node and its entry for the key.
    pub left: (NodeId, Option<Entry<String>>),
    /// Another node and its entry for the key.
    pub right: (NodeId, Option<Entry<String>>),
}

/// A node slot: the running node (if not crashed) and its circumstances.
#[derive(Debug)]
struct Slot {
    node: Option<Node>,
    incarnation: u32,
    available: bool,
    phase_ms: u64,
    skew_ms: i64,
    group: u32,
    /// Counters of earlier incarnations, kept across crashes.
    past_metrics: Metrics,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Work {
    Tick {
        node: usize,
    },
    Deliver {
        from: usize,
        to: usize,
        payload: Vec<u8>,
    },
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Scheduled {
    at: u64,
    /// At equal times, ticks and `Syn`s (0) go before answers (1).
    phase: u8,
    seq: u64,
    work: Work,
}

/// A deterministic cluster: N gossip nodes, a faulty network, virtual time.
///
/// The same configuration and the same calls give the same run, bit for bit.
/// Time moves in rounds of one gossip interval ([`run_round`]); within a round,
/// node ticks and message deliveries happen in virtual-time order.
///
/// [`run_round`]: Cluster::run_round
#[derive(Debug)]
pub struct Cluster {
    config: ClusterConfig,
    slots: Vec<Slot>,
    queue: BinaryHeap<Reverse<Scheduled>>,
    seq: u64,
    now_ms: u64,
    rounds: u64,
    rng: SmallRng,
    stats: NetworkStats,
    partitioned: bool,
    /// A digest of every delivery, in order: equal for equal runs.
    trace_hash: u64,
    /// Every node's id, shared by all nodes that start knowing everyone.
    everyone: SharedPeers,
    /// Events raised and not yet polled, with the node that raised them.
    events: VecDeque<(NodeId, Event)>,
    /// How many unread events to keep; 0 keeps none.
    event_capacity: usize,
    /// Events not kept because `event_capacity` were unread.
    events_dropped: u64,
}

impl Cluster {
    /// Builds `config.nodes` nodes with ids `0..nodes`.
    ///
    /// # Errors
    /// [`ClusterError`] if the configuration is invalid.
    pub fn new(config: ClusterConfig) -> Result<Self, ClusterError> {
        if config.nodes == 0 || config.nodes > u32::MAX as usize {
            return Err(ClusterError::NodeCount(config.nodes));
        }
        if !config.faults.is_valid() {
            return Err(ClusterError::FaultProbability);
        }
        let mut rng = SmallRng::seed_from_u64(config.seed);
        let mut slots = Vec::with_capacity(config.nodes);
        for _ in 0..config.nodes {
            let phase_ms = match config.timing {
                Timing::Lockstep => 0,
                Timing::Staggered { .. } => rng.random_range(0..config.tick_interval_ms),
            };
            let half = (config.clock_skew_ms / 2) as i64;
            let skew_ms = if half > 0 {
                rng.random_range(-half..=half)
            } else {
                0
            };
            slots.push(Slot {
                node: None,
                incarnation: 0,
                available: true,
                phase_ms,
                skew_ms,
                group: 0,
                past_metrics: Metrics::default(),
            });
        }
        let mut cluster = Self {
            config,
            slots,
            queue: BinaryHeap::new(),
            seq: 0,
            now_ms: EPOCH_MS,
            rounds: 0,
            rng,
            stats: NetworkStats::default(),
            partitioned: false,
            trace_hash: 0,
            everyone: SharedPeers::default(),
            events: VecDeque::new(),
            event_capacity: 0,
            events_dropped: 0,
        };
        if cluster.config.seed_peers.is_none() {
            cluster.everyone =
                SharedPeers::new((0..cluster.slots.len()).map(|i| NodeId::new(i as u64)));
        }
        for index in 0..cluster.slots.len() {
            let node = cluster.build_node(index)?;
            cluster.slots[index].node = Some(node);
        }
        Ok(cluster)
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// How many node slots.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the cluster has no nodes (never: [`Cluster::new`] refuses).
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Virtual time now, in ms.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Rounds run so far.
    pub fn rounds(&self) -> u64 {
        self.rounds
    }

    /// The node at `index`, unless crashed.
    pub fn node(&self, index: usize) -> Option<&Node> {
        self.slots.get(index).and_then(|slot| slot.node.as_ref())
    }

    /// Whether the node at `index` is running and reachable.
    pub fn is_running(&self, index: usize) -> bool {
        self.slots
            .get(index)
            .is_some_and(|slot| slot.available && slot.node.is_some())
    }

    /// Writes `value` to `key` on node `index`.
    ///
    /// # Errors
    /// [`ClusterError`] if there is no such running node or the write is
    /// refused.
    pub fn put(&mut self, index: usize, key: &str, value: &str) -> Result<Stamp, ClusterError> {
        let now = self.node_time(index)?;
        let node = self.running_node(index)?;
        Ok(node.put(key.to_owned(), value.to_owned(), now)?)
    }

    /// Deletes `key` on node `index`.
    ///
    /// # Errors
    /// As for [`put`](Self::put).
    pub fn delete(&mut self, index: usize, key: &str) -> Result<Stamp, ClusterError> {
        let now = self.node_time(index)?;
        let node = self.running_node(index)?;
        Ok(node.delete(key.to_owned(), now)?)
    }

    /// The value of `key` on node `index`, if it is running and has one.
    pub fn get(&self, index: usize, key: &str) -> Option<&str> {
        self.node(index).and_then(|node| node.get(key))
    }

    /// Makes node `index` unreachable (it keeps its state and stops ticking),
    /// or reachable again.
    pub fn set_available(&mut self, index: usize, available: bool) -> Result<(), ClusterError> {
        let slot = self
            .slots
            .get_mut(index)
            .ok_or(ClusterError::NoSuchNode(index))?;
        if available && !slot.available {
            if let Some(node) = slot.node.as_mut() {
                // Answers to its exchanges were lost while it was away.
                node.forget_exchanges();
            }
        }
        slot.available = available;
        Ok(())
    }

    /// Crashes node `index`, losing its state; it stays down until
    /// [`restart`](Self::restart).
    pub fn crash(&mut self, index: usize) -> Result<(), ClusterError> {
        let slot = self
            .slots
            .get_mut(index)
            .ok_or(ClusterError::NoSuchNode(index))?;
        if let Some(node) = slot.node.take() {
            slot.past_metrics.accumulate(node.metrics());
        }
        Ok(())
    }

    /// Restarts a crashed node `index` empty, under a new incarnation so its
    /// new writes never reuse a stamp of its earlier life.
    pub fn restart(&mut self, index: usize) -> Result<(), ClusterError> {
        let slot = self
            .slots
            .get_mut(index)
            .ok_or(ClusterError::NoSuchNode(index))?;
        if slot.node.is_some() {
            return Ok(());
        }
        slot.incarnation += 1;
        let node = self.build_node(index)?;
        self.slots[index].node = Some(node);
        Ok(())
    }

    /// Whether node `index` is crashed.
    pub fn is_crashed(&self, index: usize) -> bool {
        self.slots
            .get(index)
            .is_some_and(|slot| slot.node.is_none())
    }

    /// Splits the cluster: `group_of(index)` names each node's side; messages
    /// between sides are dropped until [`heal`](Self::heal).
    pub fn partition(&mut self, group_of: impl Fn(usize) -> u32) {
        for (index, slot) in self.slots.iter_mut().enumerate() {
            slot.group = group_of(index);
        }
        self.partitioned = true;
    }

    /// Ends a partition.
    pub fn heal(&mut self) {
        for slot in &mut self.slots {
            slot.group = 0;
        }
        self.partitioned = false;
    }

    /// Changes the message faults from now on.
    ///
    /// # Errors
    /// [`ClusterError::FaultProbability`] if a probability is outside `[0, 1]`.
    pub fn set_faults(&mut self, faults: Faults) -> Result<(), ClusterError> {
        if !faults.is_valid() {
            return Err(ClusterError::FaultProbability);
        }
        self.config.faults = faults;
        Ok(())
    }

    /// Runs one gossip interval: every running node ticks once, and every
    /// message due before the interval ends is delivered.
    pub fn run_round(&mut self) {
        self.run_round_sampled(1, |_, _| {});
    }

    /// [`run_round`](Self::run_round), stopping `samples` times at even
    /// steps through the interval (the last at its end) to call
    /// `sample(cluster, at_ms)` with everything before `at_ms` done: for
    /// measuring within a round. Runs exactly what `run_round` runs.
    pub fn run_round_sampled(&mut self, samples: u64, mut sample: impl FnMut(&Cluster, u64)) {
        let start = self.now_ms;
        let interval = self.config.tick_interval_ms;
        let end = start + interval;
        self.schedule_round(start);
        let samples = samples.max(1);
        for step in 1..=samples {
            let at = start + interval * step / samples;
            self.run_until(at);
            if step == samples {
                self.now_ms = end;
                self.rounds += 1;
            }
            sample(self, at);
        }
    }

    /// Schedules the ticks of a round starting at `start`.
    fn schedule_round(&mut self, start: u64) {
        let lockstep = self.config.timing == Timing::Lockstep;
        if lockstep {
            // Ticks are chained: each node's `Syn`s are delivered (and
            // answered) before the next node ticks, so they never pile up.
            // Answering a `Syn` changes no map, and every answer waits in a
            // later phase until all nodes have ticked, so each exchange
            // sees the state at the start of the round, as in the model.
            self.schedule(start, Work::Tick { node: 0 });
        } else {
            for index in 0..self.slots.len() {
                let at = start + self.slots[index].phase_ms;
                self.schedule(at, Work::Tick { node: index });
            }
        }
    }

    /// Runs every tick and delivery scheduled before `end`, in order.
    fn run_until(&mut self, end: u64) {
        let lockstep = self.config.timing == Timing::Lockstep;
        while let Some(Reverse(next)) = self.queue.peek() {
            if next.at >= end {
                break;
            }
            let Some(Reverse(Scheduled { at, work, .. })) = self.queue.pop() else {
                break;
            };
            match work {
                Work::Tick { node } => {
                    self.tick(node, at);
                    if lockstep && node + 1 < self.slots.len() {
                        self.schedule(at, Work::Tick { node: node + 1 });
                    }
                }
                Work::Deliver { from, to, payload } => self.deliver(from, to, &payload, at),
            }
        }
    }

    /// Runs `rounds` rounds.
    pub fn run_rounds(&mut self, rounds: u64) {
        for _ in 0..rounds {
            self.run_round();
        }
    }

    /// Indexes of nodes that are not crashed (available or not).
    pub fn live_nodes(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.slots.len()).filter(|&i| self.slots[i].node.is_some())
    }

    /// The first disagreement between live replicas, by key order, or `None`
    /// if they all hold the same entries.
    pub fn divergence(&self) -> Option<Divergence> {
        let mut live = self.live_nodes();
        let first = live.next()?;
        let reference = self.node(first)?.map();
        for other in live {
            let map = self.node(other)?.map();
            if map == reference {
                continue;
            }
            let mut keys: Vec<&String> = reference
                .entries()
                .map(|(k, _)| k)
                .chain(map.entries().map(|(k, _)| k))
                .collect();
            keys.sort_unstable();
            keys.dedup();
            for key in keys {
                // Reads are what users see; tombstones differing in presence
                // only (one purged) are not a disagreement.
                let left = reference
                    .get_entry(key.as_str())
                    .filter(|e| !e.is_tombstone());
                let right = map.get_entry(key.as_str()).filter(|e| !e.is_tombstone());
                if left != right {
                    return Some(Divergence {
                        key: key.clone(),
                        left: (NodeId::new(first as u64), left.cloned()),
                        right: (NodeId::new(other as u64), right.cloned()),
                    });
                }
            }
        }
        None
    }

    /// Whether every live replica reads the same.
    pub fn converged(&self) -> bool {
        self.divergence().is_none()
    }

    /// Whether node `index` accounts for everything in `target`: its version
    /// vector dominates it.
    pub fn has_caught_up(&self, index: usize, target: &VersionVector) -> bool {
        self.node(index)
            .is_some_and(|node| target.dominated_by(node.version_vector()))
    }

    /// Cluster-wide counters, crashed incarnations included.
    pub fn metrics(&self) -> Metrics {
        let mut total = Metrics::default();
        for slot in &self.slots {
            total.accumulate(&slot.past_metrics);
            if let Some(node) = &slot.node {
                total.accumulate(node.metrics());
            }
        }
        total
    }

    /// What the network did.
    pub fn network_stats(&self) -> NetworkStats {
        self.stats
    }

    /// A hash of every delivery so far (time, sender, receiver, bytes): two
    /// runs with equal traces hashed equal.
    pub fn trace_hash(&self) -> u64 {
        self.trace_hash
    }

    /// Keeps the [`Event`]s nodes raise from now on, up to `capacity`
    /// unread ones, for [`poll_event`](Self::poll_event); an event that
    /// finds `capacity` waiting is dropped and counted in
    /// [`events_dropped`](Self::events_dropped). A cluster starts with
    /// capacity 0: events are discarded uncounted. Keeping events changes
    /// nothing else about the run.
    pub fn keep_events(&mut self, capacity: usize) {
        self.event_capacity = capacity;
        while self.events.len() > capacity {
            self.events.pop_back();
            self.events_dropped += 1;
        }
    }

    /// The oldest event kept and not yet polled, with the member that
    /// raised it.
    pub fn poll_event(&mut self) -> Option<(NodeId, Event)> {
        self.events.pop_front()
    }

    /// Events dropped since [`keep_events`](Self::keep_events) because its
    /// capacity was full.
    pub fn events_dropped(&self) -> u64 {
        self.events_dropped
    }

    fn build_node(&mut self, index: usize) -> Result<Node, ClusterError> {
        let id = NodeId::new(index as u64);
        let incarnation = self.slots[index].incarnation;
        // A shared seed list, as deployments have: the first `count` nodes.
        // Random seeds per node could leave the cluster split in components
        // that never meet.
        let seeds: Vec<Member> = (0..self.config.seed_peers.unwrap_or(0).min(self.slots.len()))
            .filter(|&i| i != index)
            .map(|i| Member {
                id: NodeId::new(i as u64),
                address: String::new(),
            })
            .collect();
        let interval = self.config.tick_interval_ms;
        let mut builder = Config::for_interval(id, interval, interval);
        if self.config.unoptimised {
            builder = builder.unoptimised();
        }
        let config = builder
            .incarnation(incarnation)
            .fanout(self.config.fanout)
            .idle_fanout(self.config.idle_fanout)
            .retention_ms(self.config.retention_ms)
            .max_message_bytes(self.config.max_message_bytes)
            .max_clock_offset_ms(self.config.max_clock_offset_ms)
            .join_before_writing(self.config.seed_peers.is_some())
            // A node with no seed to join founds the cluster.
            .founder(seeds.is_empty())
            .seed(self.rng.random())
            .build()?;
        if self.config.seed_peers.is_none() {
            return Ok(Node::with_shared_peers(config, &self.everyone));
        }
        Ok(Node::new(config, seeds))
    }

    fn node_time(&self, index: usize) -> Result<u64, ClusterError> {
        let slot = self
            .slots
            .get(index)
            .ok_or(ClusterError::NoSuchNode(index))?;
        Ok(self.now_ms.saturating_add_signed(slot.skew_ms))
    }

    fn running_node(&mut self, index: usize) -> Result<&mut Node, ClusterError> {
        let slot = self
            .slots
            .get_mut(index)
            .ok_or(ClusterError::NoSuchNode(index))?;
        if !slot.available {
            return Err(ClusterError::NotRunning(index));
        }
        slot.node.as_mut().ok_or(ClusterError::NotRunning(index))
    }

    fn schedule(&mut self, at: u64, work: Work) {
        self.schedule_in(at, 0, work);
    }

    fn schedule_in(&mut self, at: u64, phase: u8, work: Work) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled {
            at,
            phase,
            seq: self.seq,
            work,
        }));
    }

    fn tick(&mut self, index: usize, at: u64) {
        let slot = &mut self.slots[index];
        if !slot.available {
            return;
        }
        let local = at.saturating_add_signed(slot.skew_ms);
        let Some(node) = slot.node.as_mut() else {
            return;
        };
        node.handle_tick(local);
        self.flush(index, at);
    }

    fn deliver(&mut self, from: usize, to: usize, payload: &[u8], at: u64) {
        if !self.reachable(from, to) {
            self.stats.unavailable += 1;
            return;
        }
        self.stats.delivered += 1;
        self.trace_hash = trace_mix(self.trace_hash, at, from, to, payload);
        let slot = &mut self.slots[to];
        let local = at.saturating_add_signed(slot.skew_ms);
        if let Some(node) = slot.node.as_mut() {
            // A refused frame changes nothing; the node counts it.
            let _ = node.handle_message(NodeId::new(from as u64), payload, local);
        }
        self.flush(to, at);
    }

    /// Hands everything node `index` wants to send to the network.
    fn flush(&mut self, index: usize, at: u64) {
        let Some(node) = self.slots[index].node.as_mut() else {
            return;
        };
        let mut outgoing = Vec::new();
        while let Some(transmit) = node.poll_transmit() {
            outgoing.push(transmit);
        }
        // Frames here travel one by one, with no stream to close.
        while node.poll_exchange_end().is_some() {}
        while let Some(event) = node.poll_event() {
            if self.events.len() < self.event_capacity {
                self.events.push_back((node.id(), event));
            } else if self.event_capacity > 0 {
                self.events_dropped += 1;
            }
        }
        for transmit in outgoing {
            let to = transmit.to.get() as usize;
            let phase = u8::from(transmit.kind != MessageKind::Syn);
            self.send(index, to, transmit.payload, at, phase);
        }
    }

    fn send(&mut self, from: usize, to: usize, payload: Vec<u8>, at: u64, phase: u8) {
        self.stats.sent += 1;
        self.stats.sent_bytes += payload.len() as u64;
        if to >= self.slots.len() {
            self.stats.unavailable += 1;
            return;
        }
        if self.partitioned && self.slots[from].group != self.slots[to].group {
            self.stats.partitioned += 1;
            return;
        }
        let fate: Fate = self
            .config
            .faults
            .roll(&mut self.rng, self.config.tick_interval_ms);
        Faults::record(fate, &mut self.stats);
        if fate.lost {
            return;
        }
        let latency = match self.config.timing {
            Timing::Lockstep => 0,
            Timing::Staggered { latency_ms } => latency_ms,
        };
        let deliver_at = at + latency + fate.extra_delay_ms;
        if fate.copies > 1 {
            self.schedule_in(
                deliver_at + 1,
                phase,
                Work::Deliver {
                    from,
                    to,
                    payload: payload.clone(),
                },
            );
        }
        self.schedule_in(deliver_at, phase, Work::Deliver { from, to, payload });
    }

    fn reachable(&self, from: usize, to: usize) -> bool {
        let ok = |i: usize| self.slots[i].available && self.slots[i].node.is_some();
        ok(from) && ok(to) && (!self.partitioned || self.slots[from].group == self.slots[to].group)
    }
}

fn trace_mix(hash: u64, at: u64, from: usize, to: usize, payload: &[u8]) -> u64 {
    let mut h = hash ^ at.rotate_left(17) ^ (from as u64).rotate_left(33) ^ (to as u64);
    for chunk in payload.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        h = (h ^ u64::from_le_bytes(word))
            .wrapping_mul(0x100_0000_01b3)
            .rotate_left(29);
    }
    h
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Every gossip setting of a simulated node, spelled out: the
    /// simulator's outputs depend on each, so any change to how they are
    /// derived must keep them (the seeds are drawn from the cluster's).
    #[test]
    fn nodes_get_these_gossip_settings() {
        for seed_peers in [None, Some(1)] {
            let cluster = Cluster::new(ClusterConfig {
                nodes: 4,
                fanout: 2,
                tick_interval_ms: 250,
                max_message_bytes: 4_096,
                max_clock_offset_ms: 700,
                seed_peers,
                ..ClusterConfig::default()
            })
            .unwrap();
            for index in 0..4 {
                let config = cluster.node(index).unwrap().config();
                let expected = Config::builder(NodeId::new(index as u64))
                    .incarnation(0)
                    .fanout(2)
                    .tick_interval_ms(250)
                    .exchange_timeout_ms(250)
                    .max_message_bytes(4_096)
                    .max_clock_offset_ms(700)
                    .pull_depth(3)
                    .liveness_thresholds(2, 4)
                    .probe_every_ticks(10)
                    .gc_every_ticks(10)
                    .join_before_writing(seed_peers.is_some())
                    // With one seed, node 0 has none to join: it founds.
                    .founder(seed_peers.is_none() || index == 0)
                    .seed(config.seed())
                    .build()
                    .unwrap();
                assert_eq!(config, &expected, "node {index}");
            }
        }
    }
}
