//! Shared generators, helpers and a replica simulator for the property tests.
//!
//! Generators are deliberately tiny so that keys, values, node ids and
//! timestamps collide: four keys, three values, three origins, hybrid clock
//! values 0..6.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;

use lww_crdt::{
    Budget, Delta, Entry, Hlc, HybridClock, LwwMap, ManualClock, NodeId, Replica, Stamp,
    VersionVector, encoded_len,
};
use proptest::prelude::*;
use proptest::strategy::Union;

/// The map type every test uses.
pub(crate) type Map = LwwMap<String, String>;
/// The replica type every simulation uses.
pub(crate) type Rep = Replica<String, String, ManualClock>;
/// One logged write: its key and entry.
pub(crate) type Write = (String, Entry<String>);

/// Every key a generator produces.
pub(crate) const KEYS: [&str; 4] = ["a", "b", "c", "d"];
/// Every value a generator produces.
pub(crate) const VALUES: [&str; 3] = ["v1", "v2", "v3"];

/// A stamp from raw parts.
pub(crate) fn stamp(hlc: u64, origin: u64) -> Stamp {
    Stamp::new(Hlc::from_u64(hlc), NodeId::new(origin))
}

/// A key from the four.
pub(crate) fn key() -> impl Strategy<Value = String> {
    prop::sample::select(&KEYS[..]).prop_map(str::to_owned)
}

/// A value from the three.
pub(crate) fn value() -> impl Strategy<Value = String> {
    prop::sample::select(&VALUES[..]).prop_map(str::to_owned)
}

/// A stamp with hlc 1..7 and origin 0..3.
/// Time zero is what a vector holds for an origin it saw nothing of; maps
/// refuse entries stamped with it.
pub(crate) fn any_stamp() -> impl Strategy<Value = Stamp> {
    (1u64..7, 0u64..3).prop_map(|(hlc, origin)| stamp(hlc, origin))
}

/// A write or (half the time) a delete, with an arbitrary colliding stamp.
pub(crate) fn any_entry() -> impl Strategy<Value = Entry<String>> {
    (any_stamp(), prop::option::of(value())).prop_map(|(stamp, value)| Entry { stamp, value })
}

/// A list of arbitrary writes: equal stamps with different values and keys,
/// tombstones, anything.
pub(crate) fn any_writes() -> impl Strategy<Value = Vec<Write>> {
    prop::collection::vec((key(), any_entry()), 0..12)
}

/// A map built by inserting `writes` in order.
pub(crate) fn build(writes: &[Write]) -> Map {
    let mut map = Map::new();
    for (key, entry) in writes {
        map.insert(key.clone(), entry.clone());
    }
    map
}

/// The delta a sender holding only `entry` sends a peer that holds nothing:
/// what a one-write delta is.
pub(crate) fn single(
    key: String,
    entry: lww_crdt::Entry<String>,
) -> lww_crdt::Delta<String, String> {
    build(&[(key, entry)]).delta_since(&VersionVector::new(), lww_crdt::Budget::UNLIMITED)
}

/// An arbitrary state: the map of an arbitrary write list.
pub(crate) fn any_state() -> impl Strategy<Value = Map> {
    any_writes().prop_map(|writes| build(&writes))
}

/// An arbitrary version vector over origins 0..3 and hlc 0..7.
pub(crate) fn any_vector() -> impl Strategy<Value = VersionVector> {
    prop::collection::vec((0u64..3, 0u64..7), 0..4).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(origin, hlc)| (NodeId::new(origin), Hlc::from_u64(hlc)))
            .collect()
    })
}

/// A budget that always lets at least one origin and one entry through, so
/// repeated pulls make progress: 1 or 2 entries, or a few dozen bytes.
pub(crate) fn small_budget() -> impl Strategy<Value = Budget> {
    prop_oneof![
        Just(Budget::entries(1)),
        Just(Budget::entries(2)),
        (MIN_PROGRESS_BYTES..MIN_PROGRESS_BYTES + 80).prop_map(Budget::bytes),
    ]
}

/// Any budget, including ones too small for a single entry.
pub(crate) fn any_budget() -> impl Strategy<Value = Budget> {
    prop_oneof![
        Just(Budget::UNLIMITED),
        (0usize..4).prop_map(Budget::entries),
        (0usize..150).prop_map(Budget::bytes),
    ]
}

/// The delta's framing, the byte bound of one origin's frontiers (covered
/// and since) and the largest entry the generators make (1-byte key,
/// 2-byte value): the smallest byte budget that always carries one entry.
pub(crate) const MIN_PROGRESS_BYTES: usize = encoded_len::DELTA_FRAME_LEN
    + encoded_len::COVERED_ORIGIN_LEN
    + (1 + encoded_len::MAX_VARINT_LEN)
    + encoded_len::ENTRY_FRAME_LEN
    + (2 + encoded_len::MAX_VARINT_LEN);

/// The wire shape of a `Delta`, unchecked, to forge invalid ones.
#[derive(serde::Serialize)]
pub(crate) struct WireDelta {
    /// The entries, in wire order.
    pub(crate) entries: Vec<Write>,
    /// The claimed frontier.
    pub(crate) covered: VersionVector,
    /// The frontier it claims to start from.
    pub(crate) since: VersionVector,
    /// The claimed completeness.
    pub(crate) complete: bool,
}

/// Bincode bytes of anything serializable.
pub(crate) fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, bincode::config::standard()).expect("encodes")
}

/// Decodes bincode bytes, or the error.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
) -> Result<T, bincode::error::DecodeError> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard()).map(|(value, _)| value)
}

/// Every entry of a map sorted by key, for readable failure messages and
/// order-free comparisons.
pub(crate) fn sorted_entries(map: &Map) -> Vec<Write> {
    let mut entries: Vec<Write> = map
        .entries()
        .map(|(key, entry)| (key.clone(), entry.clone()))
        .collect();
    entries.sort();
    entries
}

/// Live reads of every key the generators use.
pub(crate) fn reads(map: &Map) -> Vec<Option<String>> {
    KEYS.iter().map(|key| map.get(*key).cloned()).collect()
}

/// A readable one-line view of a map.
pub(crate) fn show(map: &Map) -> String {
    let mut out = String::new();
    for (key, entry) in sorted_entries(map) {
        let _ = write!(out, "{key}={:?}@{} ", entry.value, entry.stamp);
    }
    let _ = write!(out, "vv={}", map.version_vector());
    out
}

/// `a ⊔ b`, leaving both untouched.
pub(crate) fn join(a: &Map, b: &Map) -> Map {
    let mut joined = a.clone();
    joined.merge(b);
    joined
}

/// Per key, the greatest of `writes`: the state a sequential model reaches.
pub(crate) fn reference(writes: &[Write]) -> BTreeMap<String, Entry<String>> {
    let mut model: BTreeMap<String, Entry<String>> = BTreeMap::new();
    for (key, entry) in writes {
        match model.get(key) {
            Some(held) if held >= entry => {}
            _ => {
                model.insert(key.clone(), entry.clone());
            }
        }
    }
    model
}

/// The live reads of a reference model, in [`KEYS`] order.
pub(crate) fn reference_reads(model: &BTreeMap<String, Entry<String>>) -> Vec<Option<String>> {
    KEYS.iter()
        .map(|key| model.get(*key).and_then(|entry| entry.value.clone()))
        .collect()
}

/// What a simulated history may contain besides puts, deletes, clock moves,
/// immediate unbudgeted deltas and whole-state merges.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mix {
    /// Deltas computed now and delivered later, possibly more than once.
    pub(crate) stale: bool,
    /// Deltas cut at a small budget.
    pub(crate) budgeted: bool,
    /// Tombstone purges at the meet of all vectors.
    pub(crate) purge: bool,
    /// Deltas computed from where the deltas in flight to their receiver
    /// end, delivered later (implies `stale`). Like budget cuts, a part
    /// left out for starting too far ahead leaves a replica covering writes
    /// superseded by a write it lacks, so only the full invariant holds.
    pub(crate) ahead: bool,
    /// Settled purges (`purge_settled_tombstones`, every replica a writer)
    /// and merges of snapshots taken earlier: safe alongside stale deltas.
    pub(crate) settled: bool,
}

/// One step of a simulated history. Replica indexes are taken modulo the
/// number of replicas.
#[derive(Clone, Debug)]
pub(crate) enum Op {
    /// A write of `value` to `key` at replica `at`.
    Put {
        at: usize,
        key: String,
        value: String,
    },
    /// A delete of `key` at replica `at`.
    Delete { at: usize, key: String },
    /// Physical time jumps to `ms`: forwards, backwards or nowhere.
    Time(u64),
    /// `to` pulls an unbudgeted delta from `from`, at once.
    Pull { from: usize, to: usize },
    /// `to` merges `from`'s whole state.
    Merge { from: usize, to: usize },
    /// `from` computes an unbudgeted delta for `to`, delivered later.
    Send { from: usize, to: usize },
    /// `from` computes a delta for `to` cut at `budget`, delivered later,
    /// counting on every delta in flight to `to` arriving first: it starts
    /// where they end, as a sender with deltas on the wire does.
    SendAhead {
        from: usize,
        to: usize,
        budget: Budget,
    },
    /// Delivers an in-flight delta; `keep` leaves a copy in flight to be
    /// delivered again.
    Deliver { pick: usize, keep: bool },
    /// `to` pulls a delta cut at `budget` from `from`, at once.
    PullBudgeted {
        from: usize,
        to: usize,
        budget: Budget,
    },
    /// Replica `at`, or every replica, purges tombstones at the meet of all
    /// vectors.
    Purge { at: Option<usize> },
    /// Replica `at`, or every replica, purges the tombstones settled at the
    /// meet of all vectors, every replica a writer.
    PurgeSettled { at: Option<usize> },
    /// Keeps a copy of replica `at`'s map, to merge later.
    Snapshot { at: usize },
    /// `to` merges a snapshot kept earlier.
    MergeSnapshot { pick: usize, to: usize },
}

/// A history step drawn from `mix`.
pub(crate) fn op(mix: Mix) -> impl Strategy<Value = Op> {
    let pair = || (0usize..4, 0usize..4);
    let mut choices: Vec<(u32, BoxedStrategy<Op>)> = vec![
        (
            6,
            (0usize..4, key(), value())
                .prop_map(|(at, key, value)| Op::Put { at, key, value })
                .boxed(),
        ),
        (
            3,
            (0usize..4, key())
                .prop_map(|(at, key)| Op::Delete { at, key })
                .boxed(),
        ),
        (2, (0u64..12).prop_map(Op::Time).boxed()),
        (
            3,
            pair().prop_map(|(from, to)| Op::Pull { from, to }).boxed(),
        ),
        (
            1,
            pair().prop_map(|(from, to)| Op::Merge { from, to }).boxed(),
        ),
    ];
    if mix.stale || mix.ahead {
        choices.push((
            2,
            pair().prop_map(|(from, to)| Op::Send { from, to }).boxed(),
        ));
        choices.push((
            2,
            (any::<usize>(), any::<bool>())
                .prop_map(|(pick, keep)| Op::Deliver { pick, keep })
                .boxed(),
        ));
    }
    if mix.ahead {
        choices.push((
            3,
            (pair(), small_budget())
                .prop_map(|((from, to), budget)| Op::SendAhead { from, to, budget })
                .boxed(),
        ));
    }
    if mix.budgeted {
        choices.push((
            4,
            (pair(), small_budget())
                .prop_map(|((from, to), budget)| Op::PullBudgeted { from, to, budget })
                .boxed(),
        ));
    }
    if mix.purge {
        choices.push((
            2,
            prop::option::of(0usize..4)
                .prop_map(|at| Op::Purge { at })
                .boxed(),
        ));
    }
    if mix.settled {
        choices.push((
            3,
            prop::option::of(0usize..4)
                .prop_map(|at| Op::PurgeSettled { at })
                .boxed(),
        ));
        choices.push((1, (0usize..4).prop_map(|at| Op::Snapshot { at }).boxed()));
        choices.push((
            2,
            (any::<usize>(), 0usize..4)
                .prop_map(|(pick, to)| Op::MergeSnapshot { pick, to })
                .boxed(),
        ));
    }
    Union::new_weighted(choices)
}

/// 2 to 4 distinct node ids out of 0..4, in random order.
pub(crate) fn node_ids() -> impl Strategy<Value = Vec<u64>> {
    (Just(vec![0u64, 1, 2, 3]).prop_shuffle(), 2usize..=4).prop_map(|(mut ids, n)| {
        ids.truncate(n);
        ids
    })
}

/// Node ids and a history of up to `max_ops` steps drawn from `mix`.
pub(crate) fn history(mix: Mix, max_ops: usize) -> impl Strategy<Value = (Vec<u64>, Vec<Op>)> {
    (node_ids(), prop::collection::vec(op(mix), 0..max_ops))
}

/// Replicas with distinct ids sharing one physical clock, and the log of
/// every write any of them made.
pub(crate) struct Sim {
    /// The physical time every replica reads.
    pub(crate) time: ManualClock,
    /// The replicas.
    pub(crate) replicas: Vec<Rep>,
    /// Every write made, in order.
    pub(crate) log: Vec<Write>,
    /// The join of every purge frontier applied anywhere.
    pub(crate) purged: VersionVector,
    /// Deltas computed but not delivered yet, with their receiver.
    pub(crate) in_flight: Vec<(usize, Delta<String, String>)>,
    /// Maps copied earlier, to merge later.
    pub(crate) snapshots: Vec<Map>,
}

impl Sim {
    /// Fresh replicas with ids `ids`, physical time at 0.
    pub(crate) fn new(ids: &[u64]) -> Self {
        let time = ManualClock::new(0);
        let replicas = ids
            .iter()
            .map(|&id| Replica::new(NodeId::new(id), HybridClock::new(time.clone())))
            .collect();
        Self {
            time,
            replicas,
            log: Vec::new(),
            purged: VersionVector::new(),
            in_flight: Vec::new(),
            snapshots: Vec::new(),
        }
    }

    /// The meet of every replica's vector: what all of them account for.
    pub(crate) fn stable(&self) -> VersionVector {
        VersionVector::meet(self.replicas.iter().map(Rep::version_vector))
    }

    /// Runs one step.
    pub(crate) fn run(&mut self, op: &Op) {
        let n = self.replicas.len();
        match op {
            Op::Put { at, key, value } => {
                let stamp = self.replicas[at % n]
                    .put(key.clone(), value.clone())
                    .expect("far from the end of time");
                self.log
                    .push((key.clone(), Entry::value(stamp, value.clone())));
            }
            Op::Delete { at, key } => {
                let stamp = self.replicas[at % n]
                    .delete(key.clone())
                    .expect("far from the end of time");
                self.log.push((key.clone(), Entry::tombstone(stamp)));
            }
            Op::Time(ms) => self.time.set(*ms),
            Op::Pull { from, to } => {
                self.pull(from % n, to % n, Budget::UNLIMITED);
            }
            Op::Merge { from, to } => {
                let other = self.replicas[from % n].map().clone();
                self.replicas[to % n]
                    .merge(&other)
                    .expect("simulated clocks stay within the maximum offset");
            }
            Op::Send { from, to } => {
                let to = to % n;
                let delta = self.replicas[from % n]
                    .delta_since(self.replicas[to].version_vector(), Budget::UNLIMITED);
                self.in_flight.push((to, delta));
            }
            Op::SendAhead { from, to, budget } => {
                let to = to % n;
                let mut ahead = self.replicas[to].version_vector().clone();
                for (_, delta) in self.in_flight.iter().filter(|(r, _)| *r == to) {
                    ahead.merge(delta.covered());
                }
                let delta = self.replicas[from % n].delta_since(&ahead, *budget);
                self.in_flight.push((to, delta));
            }
            Op::Deliver { pick, keep } => {
                if self.in_flight.is_empty() {
                    return;
                }
                let index = pick % self.in_flight.len();
                let (to, delta) = if *keep {
                    self.in_flight[index].clone()
                } else {
                    self.in_flight.swap_remove(index)
                };
                let (_, deferred) = self.replicas[to]
                    .apply_or_defer(delta)
                    .expect("simulated clocks stay within the maximum offset");
                // What it could not take yet stays in flight, as a receiver
                // holding it until the delta it overtook arrives.
                self.in_flight.extend(deferred.map(|rest| (to, rest)));
            }
            Op::PullBudgeted { from, to, budget } => {
                self.pull(from % n, to % n, *budget);
            }
            Op::Purge { at } => {
                let stable = self.stable();
                self.purged.merge(&stable);
                match at {
                    Some(at) => {
                        self.replicas[at % n].purge_tombstones(&stable);
                    }
                    None => {
                        for replica in &mut self.replicas {
                            replica.purge_tombstones(&stable);
                        }
                    }
                }
            }
            Op::PurgeSettled { at } => {
                let stable = self.stable();
                let writers: Vec<NodeId> = self.replicas.iter().map(Rep::id).collect();
                // The model of a settled cut: every frontier capped at the
                // oldest writer's.
                let settled = writers
                    .iter()
                    .map(|&w| stable.get(w))
                    .min()
                    .unwrap_or_default();
                let cut: VersionVector = stable
                    .iter()
                    .map(|(origin, hlc)| (origin, hlc.min(settled)))
                    .collect();
                self.purged.merge(&cut);
                let targets: Vec<usize> = match at {
                    Some(at) => vec![at % n],
                    None => (0..n).collect(),
                };
                for target in targets {
                    self.replicas[target]
                        .purge_settled_tombstones(&stable, writers.iter().copied());
                }
            }
            Op::Snapshot { at } => {
                let copy = self.replicas[at % n].map().clone();
                self.snapshots.push(copy);
            }
            Op::MergeSnapshot { pick, to } => {
                if self.snapshots.is_empty() {
                    return;
                }
                let snapshot = self.snapshots[pick % self.snapshots.len()].clone();
                self.replicas[to % n]
                    .merge(&snapshot)
                    .expect("simulated clocks stay within the maximum offset");
            }
        }
    }

    /// Delivers every delta still in flight, each once, until none is left
    /// or none can be taken.
    pub(crate) fn deliver_all(&mut self) {
        for _ in 0..4 {
            let pending = std::mem::take(&mut self.in_flight);
            if pending.is_empty() {
                return;
            }
            for (to, delta) in pending {
                let (_, deferred) = self.replicas[to]
                    .apply_or_defer(delta)
                    .expect("simulated clocks stay within the maximum offset");
                self.in_flight.extend(deferred.map(|rest| (to, rest)));
            }
        }
    }

    /// `to` pulls one delta cut at `budget` from `from`.
    pub(crate) fn pull(&mut self, from: usize, to: usize, budget: Budget) {
        let delta = self.replicas[from].delta_since(self.replicas[to].version_vector(), budget);
        self.replicas[to]
            .apply(delta)
            .expect("simulated clocks stay within the maximum offset");
    }

    /// Unbudgeted pulls between every ordered pair, twice over: afterwards
    /// every replica has everything any of them had.
    pub(crate) fn sync_all(&mut self) {
        let n = self.replicas.len();
        for _ in 0..2 {
            for from in 0..n {
                for to in 0..n {
                    self.pull(from, to, Budget::UNLIMITED);
                }
            }
        }
    }

    /// Checks the version-vector invariant at every replica: each logged
    /// write its vector covers is held (or beaten by the entry held), or
    /// beaten by a purged tombstone, or — with `allow_undelivered`, for
    /// histories with budgeted deltas — beaten by a logged write the vector
    /// does not cover yet. Also checks that every held entry was logged.
    pub(crate) fn check_invariant(&self, allow_undelivered: bool) -> Result<(), String> {
        for (r, replica) in self.replicas.iter().enumerate() {
            let map = replica.map();
            let vv = map.version_vector();
            for (key, entry) in map.entries() {
                if !self.log.iter().any(|(k, e)| k == key && e == entry) {
                    return Err(format!(
                        "replica {r} holds {key}={entry:?} that nobody wrote: {}",
                        show(map)
                    ));
                }
                // Strictly, nothing it holds is beaten by a write it
                // covers: a resurrected value would be.
                if !allow_undelivered
                    && let Some((_, beaten_by)) = self
                        .log
                        .iter()
                        .find(|(k, w)| k == key && w > entry && vv.covers(w.stamp))
                {
                    return Err(format!(
                        "replica {r} holds {key}={entry:?} though it covers the later \
                         {beaten_by:?}: {}",
                        show(map)
                    ));
                }
            }
            for (key, write) in &self.log {
                if !vv.covers(write.stamp) {
                    continue;
                }
                if map.get_entry(key).is_some_and(|held| held >= write) {
                    continue;
                }
                let same_key = || self.log.iter().filter(move |(k, _)| k == key);
                if same_key()
                    .any(|(_, f)| f >= write && f.is_tombstone() && self.purged.covers(f.stamp))
                {
                    continue;
                }
                if allow_undelivered && same_key().any(|(_, f)| f > write && !vv.covers(f.stamp)) {
                    continue;
                }
                return Err(format!(
                    "replica {r} (id {}) covers {key}={:?}@{} but neither holds it nor \
                     lost it to a purged tombstone{}: {}",
                    replica.id(),
                    write.value,
                    write.stamp,
                    if allow_undelivered {
                        " or an undelivered write"
                    } else {
                        ""
                    },
                    show(map)
                ));
            }
        }
        Ok(())
    }
}
