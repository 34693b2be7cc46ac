//! Deltas: the entries a peer lacks, cut to a budget, with the frontier up to
//! which they are complete.

use std::hash::Hash;

use serde::{Deserialize, Serialize};

use crate::encoded_len::{COVERED_ORIGIN_LEN, DELTA_FRAME_LEN};
use crate::map::{ApplyReport, IndexKey, LwwMap};
use crate::{EncodedLen, Entry, Hlc, NodeId, Stamp, VersionVector};

/// How much one delta may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// At most this many entries.
    pub max_entries: usize,
    /// At most this many bytes, by the [`EncodedLen`] bound of each entry and
    /// of each origin in the `covered` frontier.
    pub max_bytes: usize,
    /// When not even the first stamp group the peer lacks fits (an entry
    /// larger than the budget, or more keys sharing one stamp than
    /// `max_entries`), carry that group anyway, over budget
    /// ([`Delta::fits`] says so), rather than nothing: every delta then
    /// makes progress. On in every constructor. Off, a delta never exceeds
    /// the budget, and one that cannot make progress is
    /// [stalled](Delta::is_stalled).
    pub always_progress: bool,
}

impl Budget {
    /// No limit: the delta carries everything the peer lacks.
    pub const UNLIMITED: Budget = Budget {
        max_entries: usize::MAX,
        max_bytes: usize::MAX,
        always_progress: true,
    };

    /// At most `max_entries` entries, any size.
    pub const fn entries(max_entries: usize) -> Self {
        Self {
            max_entries,
            max_bytes: usize::MAX,
            always_progress: true,
        }
    }

    /// At most `max_bytes` bytes encoded (by [`codec`](crate::codec), less
    /// its version byte), any number of entries.
    pub const fn bytes(max_bytes: usize) -> Self {
        Self {
            max_entries: usize::MAX,
            max_bytes,
            always_progress: true,
        }
    }

    /// This budget, never exceeded: a delta that cannot carry the next
    /// stamp group carries nothing and is [stalled](Delta::is_stalled).
    pub const fn strict(self) -> Self {
        Self {
            always_progress: false,
            ..self
        }
    }
}

/// Entries a peer lacks, and how far they are complete.
///
/// `covered[o] = h` promises that the delta holds every entry of the sender
/// stamped by origin `o` above `since[o]` and at or below `h`, where `since`
/// is the frontier the sender computed it from (the peer's vector, or further
/// if it counts on earlier deltas still in flight). A receiver takes origin
/// `o`'s part of it, entries and frontier, only if it holds `since[o]`
/// already: a delta that overtakes the one before it, or follows a lost one,
/// can then neither claim what the receiver lacks nor leave entries beyond
/// the receiver's frontier. Every entry's stamp lies at or below
/// `covered` for its origin: constructors keep that true and deserialization
/// checks it.
///
/// # Trust
///
/// `covered` is believed, not verified: a delta with no entries claiming
/// `covered = {1: s}` makes its receiver skip origin 1's writes up to `s`
/// for good, and a forged entry wins if its stamp is greater. Apply deltas
/// only from authenticated members of the cluster. Decoding checks the
/// shape (entries within `covered`; with [`codec`](crate::codec), lengths
/// that fit the input); [`Replica::apply`](crate::Replica::apply) checks
/// timestamps against the clock's maximum offset.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "DeltaWire<K, V>")]
#[serde(bound(deserialize = "K: Deserialize<'de>, V: Deserialize<'de>"))]
pub struct Delta<K, V> {
    entries: Vec<(K, Entry<V>)>,
    covered: VersionVector,
    since: VersionVector,
    complete: bool,
}

/// The serialized form of a [`Delta`], checked on the way in.
#[derive(Deserialize)]
struct DeltaWire<K, V> {
    entries: Vec<(K, Entry<V>)>,
    covered: VersionVector,
    since: VersionVector,
    complete: bool,
}

/// [`DeltaWire`] by reference, for the way out: the same fields in the same
/// order, so the same bytes, without copying a single entry.
#[derive(Serialize)]
struct DeltaWireRef<'a, K, V> {
    entries: &'a [(K, Entry<V>)],
    covered: &'a VersionVector,
    since: &'a VersionVector,
    complete: bool,
}

impl<K: Serialize, V: Serialize> Serialize for Delta<K, V> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        DeltaWireRef {
            entries: &self.entries,
            covered: &self.covered,
            since: &self.since,
            complete: self.complete,
        }
        .serialize(serializer)
    }
}

/// Why bytes that decoded as a delta or a map do not make a valid one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidState {
    /// An entry's stamp lies above the frontier claimed for its origin.
    #[error("entry stamped {stamp} lies beyond the frontier {frontier} claimed for its origin")]
    EntryBeyondFrontier {
        /// The entry's stamp.
        stamp: Stamp,
        /// The frontier claimed for the stamp's origin.
        frontier: Hlc,
    },
    /// A map listed one key twice.
    #[error("a key appears twice")]
    DuplicateKey,
    /// An entry is stamped [`Hlc::ZERO`], which no vector can tell apart
    /// from nothing seen.
    #[error("entry stamped {0} at time zero")]
    ZeroStamp(Stamp),
    /// A map's purge frontier runs ahead of its version vector.
    #[error("the purge frontier runs ahead of the version vector")]
    PurgedBeyondVector,
}

impl<K, V> TryFrom<DeltaWire<K, V>> for Delta<K, V> {
    type Error = InvalidState;

    fn try_from(wire: DeltaWire<K, V>) -> Result<Self, Self::Error> {
        check_within(
            wire.entries.iter().map(|(_, entry)| entry.stamp),
            &wire.covered,
        )?;
        Ok(Self {
            entries: wire.entries,
            covered: wire.covered,
            since: wire.since,
            complete: wire.complete,
        })
    }
}

pub(crate) fn check_within(
    stamps: impl IntoIterator<Item = Stamp>,
    frontier: &VersionVector,
) -> Result<(), InvalidState> {
    for stamp in stamps {
        if stamp.hlc == Hlc::ZERO {
            return Err(InvalidState::ZeroStamp(stamp));
        }
        if !frontier.covers(stamp) {
            return Err(InvalidState::EntryBeyondFrontier {
                stamp,
                frontier: frontier.get(stamp.origin),
            });
        }
    }
    Ok(())
}

impl<K, V> Default for Delta<K, V> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            covered: VersionVector::new(),
            since: VersionVector::new(),
            complete: true,
        }
    }
}

/// A delta comes only from [`LwwMap::delta_since`] (or from decoding one):
/// a delta built by hand could claim a frontier its sender does not hold.
/// A one-write delta with an empty `since`, say, claims every earlier write
/// of its origin, and a receiver that took it before the write before it
/// would skip that one for ever.
///
/// ```compile_fail
/// use lww_crdt::{Delta, Entry, Hlc, NodeId, Stamp};
/// let stamp = Stamp::new(Hlc::from_u64(2), NodeId::new(1));
/// let _ = Delta::single("k".to_owned(), Entry::value(stamp, "v".to_owned()));
/// ```
impl<K, V> Delta<K, V> {
    /// The entries, grouped by origin and in ascending stamp order within each.
    pub fn entries(&self) -> &[(K, Entry<V>)] {
        &self.entries
    }

    /// How far the delta is complete, per origin.
    pub fn covered(&self) -> &VersionVector {
        &self.covered
    }

    /// The frontier the delta starts from, on the origins of
    /// [`covered`](Self::covered) (zero where absent): a receiver's frontier
    /// rises to `covered` only where it has reached this.
    pub fn since(&self) -> &VersionVector {
        &self.since
    }

    /// Whether the delta holds everything the sender had for the peer, or was
    /// cut at the budget.
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// How many entries it carries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it carries no entries (it may still advance the frontier).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether it was cut at the budget before carrying anything, entries or
    /// frontier: under a [strict](Budget::strict) budget, the next stamp
    /// group the peer lacks does not fit, and no delta under it will ever
    /// make progress.
    pub fn is_stalled(&self) -> bool {
        !self.complete && self.entries.is_empty() && self.covered.is_empty()
    }

    /// The greatest timestamp it mentions, in an entry or in `covered`: what a
    /// receiver checks against its clock's maximum offset.
    pub fn max_hlc(&self) -> Hlc {
        let entries = self.entries.iter().map(|(_, entry)| entry.stamp.hlc);
        let frontier = self.covered.iter().map(|(_, hlc)| hlc);
        entries.chain(frontier).max().unwrap_or(Hlc::ZERO)
    }
}

impl<K: EncodedLen, V: EncodedLen> Delta<K, V> {
    /// At most how many bytes it takes encoded (by [`codec`](crate::codec),
    /// less its version byte): the bound [`LwwMap::delta_since`] holds to
    /// [`Budget::max_bytes`].
    pub fn encoded_len(&self) -> usize {
        let origins = self.covered.len().max(self.since.len());
        self.entries
            .iter()
            .map(|(key, entry)| entry.encoded_len_with(key))
            .fold(
                DELTA_FRAME_LEN + origins * COVERED_ORIGIN_LEN,
                usize::saturating_add,
            )
    }

    /// Whether it keeps within `budget`: false only for a delta that carries
    /// one stamp group over it so as to make progress
    /// ([`Budget::always_progress`]). A delta carrying nothing, entries or
    /// frontier, fits any budget.
    pub fn fits(&self, budget: &Budget) -> bool {
        let carries_nothing = self.entries.is_empty() && self.covered.is_empty();
        carries_nothing
            || (self.entries.len() <= budget.max_entries && self.encoded_len() <= budget.max_bytes)
    }
}

impl<K, V> LwwMap<K, V>
where
    K: Hash + Eq + Clone + EncodedLen,
    V: Ord + Clone + EncodedLen,
{
    /// The entries a peer whose vector is `peer` lacks, cut at `budget`.
    ///
    /// `peer` may run ahead of what the peer holds, when the caller counts on
    /// deltas still on their way to it: the delta's [`since`](Delta::since)
    /// records it, and the peer takes each origin's part only where it
    /// holds `peer` already.
    ///
    /// Origins go in order of how far the peer lags behind them (in clock
    /// time), the furthest first, ties by origin id; within an origin, entries
    /// go in ascending stamp order. The cut falls between entries, never
    /// inside one, and `covered` stops just below the first entry left out.
    /// The cost is that of the entries returned plus one step per origin in
    /// this map's vector, whatever the map's size.
    ///
    /// If the peer lacks anything, the delta makes progress: when not even
    /// the first stamp group of the most lagging origin fits, it carries
    /// that group alone, over budget ([`Delta::fits`]), unless the budget is
    /// [strict](Budget::strict).
    pub fn delta_since(&self, peer: &VersionVector, budget: Budget) -> Delta<K, V> {
        let mut lagging: Vec<(u64, NodeId, Hlc, Hlc)> = self
            .version_vector
            .ahead_of(peer)
            .map(|(origin, theirs, ours)| (ours.as_u64() - theirs.as_u64(), origin, theirs, ours))
            .collect();
        lagging.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let first_lagging = lagging.first().copied();
        let lagging_origins = lagging.len();

        let mut delta = Delta::default();
        let mut covered_pairs: Vec<(NodeId, Hlc)> = Vec::new();
        let mut since_pairs: Vec<(NodeId, Hlc)> = Vec::new();
        let mut bytes = DELTA_FRAME_LEN;
        'origins: for (_, origin, theirs, ours) in lagging {
            bytes = bytes.saturating_add(COVERED_ORIGIN_LEN);
            if bytes > budget.max_bytes {
                delta.complete = false;
                break;
            }
            let Some(after_theirs) = theirs.successor() else {
                continue;
            };
            if let Some(rank) = self.rank(origin) {
                let from = IndexKey::first(rank, after_theirs);
                let to = IndexKey::last(rank, ours);
                for key in self.by_origin.range(from..=to) {
                    let (hlc, index) = (key.hlc(), key.position());
                    let slot = &self.slots[index as usize];
                    let cost = slot.entry.encoded_len_with(&slot.key);
                    if delta.entries.len() >= budget.max_entries
                        || bytes.saturating_add(cost) > budget.max_bytes
                    {
                        // `covered` stops below `hlc`, so entries already
                        // taken at that same stamp (only in maps holding
                        // equal stamps) must wait for the next delta too.
                        while delta
                            .entries
                            .last()
                            .is_some_and(|(_, taken)| taken.stamp == Stamp::new(hlc, origin))
                        {
                            delta.entries.pop();
                        }
                        // `hlc` is above `theirs`, so it has a predecessor.
                        let covered = hlc.predecessor().unwrap_or(Hlc::ZERO).min(ours);
                        if covered > theirs {
                            covered_pairs.push((origin, covered));
                            since_pairs.push((origin, theirs));
                        }
                        delta.complete = false;
                        break 'origins;
                    }
                    bytes += cost;
                    delta.entries.push((slot.key.clone(), slot.entry.clone()));
                }
            }
            covered_pairs.push((origin, ours));
            since_pairs.push((origin, theirs));
        }
        if delta.entries.is_empty() && covered_pairs.is_empty() && budget.always_progress {
            if let Some((_, origin, theirs, ours)) = first_lagging {
                return self.first_group(origin, theirs, ours, lagging_origins);
            }
        }
        // Collected in lag order; sorted by origin once, at the end.
        delta.covered = covered_pairs.into_iter().collect();
        delta.since = since_pairs.into_iter().collect();
        delta
    }

    /// The delta carrying only `origin`'s first stamp group above `theirs`
    /// (or, if it holds none up to `ours`, its frontier alone), whatever its
    /// size: the progress a delta makes when nothing fits its budget.
    fn first_group(&self, origin: NodeId, theirs: Hlc, ours: Hlc, origins: usize) -> Delta<K, V> {
        let mut delta = Delta::default();
        let mut covered = ours;
        if let (Some(rank), Some(after_theirs)) = (self.rank(origin), theirs.successor()) {
            let from = IndexKey::first(rank, after_theirs);
            let to = IndexKey::last(rank, ours);
            let mut group = self.by_origin.range(from..=to).peekable();
            if let Some(first) = group.peek().map(|key| key.hlc()) {
                covered = first;
                for key in group.take_while(|key| key.hlc() == first) {
                    let slot = &self.slots[key.position() as usize];
                    delta.entries.push((slot.key.clone(), slot.entry.clone()));
                }
            }
        }
        delta.complete = origins == 1 && covered == ours;
        delta.covered = [(origin, covered)].into_iter().collect();
        delta.since = [(origin, theirs)].into_iter().collect();
        delta
    }
}

impl<K, V> LwwMap<K, V>
where
    K: Hash + Eq + Clone,
    V: Ord + Clone,
{
    /// Applies a delta from a peer: merges its entries and raises the vector
    /// to its `covered` frontier, no further. If this map has not reached
    /// the delta's [`since`](Delta::since) frontier for some origin, the
    /// whole delta is left out: taking that origin's part would claim the
    /// entries in between, and taking only the other origins' parts would
    /// claim writes that the left-out part supersedes (a delta carries only
    /// winning entries, so a write superseded by another origin's entry is
    /// covered by its frontier but not carried).
    ///
    /// Entries this map's vector already covers are skipped: they are held
    /// here or superseded, and re-accepting one whose tombstone was purged
    /// would bring a deleted value back. An entry this map's vector does not
    /// cover is taken, even for a key whose tombstone it purged: that is
    /// why [`purge_tombstones`](LwwMap::purge_tombstones) asks its caller
    /// that no write a purged tombstone beats is still in flight (or use
    /// [`purge_settled_tombstones`](LwwMap::purge_settled_tombstones)).
    ///
    /// The delta's `covered` frontier is trusted (see [`Delta`]): take
    /// deltas only from authenticated members. Timestamps are not checked
    /// here; [`Replica::apply`](crate::Replica::apply) checks them against
    /// the clock.
    pub fn apply(&mut self, delta: Delta<K, V>) -> ApplyReport {
        self.apply_or_defer(delta).0
    }

    /// [`apply`](Self::apply), handing the delta back whole if it was left
    /// out: applied once this map has reached its `since` (after the delta
    /// it overtook), it does what it would have done on time.
    pub fn apply_or_defer(&mut self, delta: Delta<K, V>) -> (ApplyReport, Option<Delta<K, V>>) {
        let unreached = delta
            .since
            .iter()
            .any(|(origin, since)| self.version_vector.get(origin) < since);
        if unreached {
            let report = ApplyReport {
                unreached: delta.len(),
                ..ApplyReport::default()
            };
            return (report, Some(delta));
        }
        let mut report = ApplyReport::default();
        for (key, entry) in delta.entries {
            if self.version_vector.covers(entry.stamp) {
                report.unchanged += 1;
            } else {
                report.record(self.upsert(key, entry));
            }
        }
        self.version_vector.merge(&delta.covered);
        (report, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(hlc: u64, origin: u64) -> Stamp {
        Stamp::new(Hlc::from_u64(hlc), NodeId::new(origin))
    }

    fn writes(list: &[(&str, u64, u64)]) -> LwwMap<String, String> {
        let mut map = LwwMap::new();
        for &(key, hlc, origin) in list {
            map.put(key.into(), format!("{key}{hlc}"), stamp(hlc, origin));
        }
        map
    }

    #[test]
    fn most_lagging_origin_first_ascending_within() {
        let a = writes(&[("x", 1, 1), ("y", 2, 1), ("z", 10, 2), ("w", 11, 2)]);
        let peer: VersionVector = [(NodeId::new(2), Hlc::from_u64(10))].into_iter().collect();
        let delta = a.delta_since(&peer, Budget::UNLIMITED);
        let keys: Vec<&str> = delta.entries().iter().map(|(k, _)| k.as_str()).collect();
        // Origin 1 lags by 2, origin 2 by 1.
        assert_eq!(keys, ["x", "y", "w"]);
        assert!(delta.is_complete());
        assert_eq!(delta.covered(), a.version_vector());
    }

    #[test]
    fn cut_stops_covered_below_first_left_out() {
        let a = writes(&[("x", 1, 1), ("y", 2, 1), ("z", 3, 1)]);
        let delta = a.delta_since(&VersionVector::new(), Budget::entries(2));
        assert_eq!(delta.len(), 2);
        assert!(!delta.is_complete());
        assert_eq!(delta.covered().get(NodeId::new(1)), Hlc::from_u64(2));
        let mut b = LwwMap::new();
        b.apply(delta);
        let rest = a.delta_since(b.version_vector(), Budget::entries(2));
        assert_eq!(rest.len(), 1);
        b.apply(rest);
        assert_eq!(a, b);
    }

    #[test]
    fn byte_budget_never_splits_an_entry() {
        let a = writes(&[("x", 1, 1), ("y", 2, 1)]);
        let one = Entry::value(stamp(1, 1), "x1".to_owned()).encoded_len_with(&"x".to_owned());
        let delta = a.delta_since(
            &VersionVector::new(),
            Budget::bytes(DELTA_FRAME_LEN + COVERED_ORIGIN_LEN + one + 1),
        );
        assert_eq!(delta.len(), 1);
        let too_small = Budget::bytes(DELTA_FRAME_LEN + COVERED_ORIGIN_LEN - 1);
        let none = a.delta_since(&VersionVector::new(), too_small.strict());
        assert!(none.is_empty() && none.covered().is_empty() && none.is_stalled());
        // Not strict, the first entry goes anyway, over budget.
        let forced = a.delta_since(&VersionVector::new(), too_small);
        assert_eq!(forced.len(), 1);
        assert!(!forced.fits(&too_small) && !forced.is_stalled());
    }

    /// Found by the gossip scenario fuzzer (a run with 400 ms links, loss,
    /// reordering and crashes): `x` by origin 1 is superseded by `x` by
    /// origin 2, so a delta covers origin 1 past it without carrying it.
    /// When origin 2's part was left out (its `since` not reached) and
    /// origin 1's taken, the receiver claimed origin 1's write while holding
    /// neither it nor what superseded it; the writer of the superseding
    /// entry then crashed with it, and the receiver never read `x` again.
    #[test]
    fn a_delta_left_out_for_one_origin_claims_nothing_for_the_others() {
        let sender = writes(&[("x", 5, 1), ("x", 10, 2), ("y", 3, 2)]);
        // Computed past origin 2's `y`, as if an earlier delta carried it.
        let peer: VersionVector = [(NodeId::new(2), Hlc::from_u64(3))].into_iter().collect();
        let delta = sender.delta_since(&peer, Budget::UNLIMITED);
        assert_eq!(delta.covered().get(NodeId::new(1)), Hlc::from_u64(5));
        let mut receiver = LwwMap::new();
        let (report, held) = receiver.apply_or_defer(delta.clone());
        assert_eq!(held, Some(delta), "handed back whole");
        assert_eq!(report.unreached, 1);
        assert!(receiver.version_vector().is_empty(), "claimed origin 1's x");
        // Without the superseding entry, origin 1's own x still gets in.
        let mut only_first = LwwMap::new();
        only_first.put("x".to_owned(), "x5".to_owned(), stamp(5, 1));
        receiver.apply(only_first.delta_since(&VersionVector::new(), Budget::UNLIMITED));
        assert_eq!(receiver.get("x").map(String::as_str), Some("x5"));
    }

    #[test]
    fn a_delta_ahead_of_the_receiver_is_left_out_until_it_catches_up() {
        let a = writes(&[("x", 1, 1), ("y", 2, 1), ("z", 3, 1)]);
        let first = a.delta_since(&VersionVector::new(), Budget::entries(2));
        // The sender counts on `first` arriving and goes on from its end.
        let second = a.delta_since(first.covered(), Budget::UNLIMITED);
        assert_eq!(second.since(), first.covered());
        let mut b = LwwMap::new();
        let report = b.apply(second.clone());
        assert_eq!((report.inserted, report.unreached), (0, 1));
        assert!(b.version_vector().is_empty(), "must not claim x and y");
        assert_eq!(b.entry_count(), 0);
        // Handed back, it applies once `first` has.
        let (_, deferred) = b.apply_or_defer(second.clone());
        let deferred = deferred.expect("left out");
        assert_eq!(deferred, second);
        let (_, again) = b.apply_or_defer(deferred.clone());
        assert!(again.is_some(), "still unreached");
        b.apply(first.clone());
        let (report, none) = b.apply_or_defer(deferred);
        assert!(none.is_none());
        assert_eq!(report.inserted, 1);
        assert_eq!(a, b);
        let mut b = LwwMap::new();
        b.apply(first);
        assert_eq!(b.version_vector().get(NodeId::new(1)), Hlc::from_u64(2));
        b.apply(second);
        assert_eq!(a, b);
    }

    #[test]
    fn decoding_rejects_entries_beyond_covered() {
        let wire = DeltaWire {
            entries: vec![("k".to_owned(), Entry::value(stamp(5, 1), "v".to_owned()))],
            covered: [(NodeId::new(1), Hlc::from_u64(4))].into_iter().collect(),
            since: VersionVector::new(),
            complete: true,
        };
        let err = Delta::try_from(wire).unwrap_err();
        assert!(matches!(err, InvalidState::EntryBeyondFrontier { .. }));
    }
}
