//! Version vectors: how far a replica has seen each origin's writes.

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Hlc, NodeId, Stamp};

/// For each origin, the timestamp up to which this replica accounts for that
/// origin's writes.
///
/// `vv[o] = h` claims that every write by `o` stamped at or below `h` is held
/// here, or is superseded by an entry held here, or is superseded by a write
/// this replica does not claim yet (one whose stamp lies above the vector for
/// its own origin), which anti-entropy is still bound to deliver. See
/// `docs/design.md` for why the last clause is needed once deltas are cut at
/// a budget.
///
/// Origins never seen map to [`Hlc::ZERO`]; zero entries are not stored, so
/// equal vectors compare and serialize equal.
///
/// Stored as a vector of `(origin, frontier)` pairs sorted by origin, at
/// exact capacity: 16 bytes per origin. [`get`](Self::get) is a binary
/// search; [`merge`](Self::merge), [`meet`](Self::meet) and
/// [`dominated_by`](Self::dominated_by) walk both vectors once. It serializes
/// as a map from origin to frontier in origin order, and decoding refuses a
/// map whose origins are out of order or repeated, or that holds a zero
/// frontier.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct VersionVector(
    /// Sorted by origin, strictly; every frontier above zero.
    Vec<(NodeId, Hlc)>,
);

impl VersionVector {
    /// An empty vector: nothing seen.
    pub fn new() -> Self {
        Self::default()
    }

    /// Where `origin` is, or would be inserted.
    fn search(&self, origin: NodeId) -> Result<usize, usize> {
        self.0.binary_search_by_key(&origin, |&(o, _)| o)
    }

    /// How far `origin` is accounted for.
    pub fn get(&self, origin: NodeId) -> Hlc {
        match self.search(origin) {
            Ok(at) => self.0[at].1,
            Err(_) => Hlc::ZERO,
        }
    }

    /// Whether the write with `stamp` is accounted for.
    pub fn covers(&self, stamp: Stamp) -> bool {
        stamp.hlc <= self.get(stamp.origin)
    }

    /// Raises `origin` to at least `hlc`; returns whether it moved.
    pub fn advance(&mut self, origin: NodeId, hlc: Hlc) -> bool {
        if hlc == Hlc::ZERO {
            return false;
        }
        match self.search(origin) {
            Ok(at) => {
                let slot = &mut self.0[at].1;
                if hlc > *slot {
                    *slot = hlc;
                    true
                } else {
                    false
                }
            }
            Err(at) => {
                // Amortized growth: appending origins in order, as a writer
                // joining does, must not copy the whole vector each time.
                self.0.insert(at, (origin, hlc));
                true
            }
        }
    }

    /// The origins where this vector is ahead of `other`, in origin order,
    /// as `(origin, other's frontier, this frontier)`: one walk over both
    /// vectors, no lookups.
    pub fn ahead_of<'a>(
        &'a self,
        other: &'a VersionVector,
    ) -> impl Iterator<Item = (NodeId, Hlc, Hlc)> + 'a {
        let mut theirs = other.0.iter().peekable();
        self.0.iter().filter_map(move |&(origin, ours)| {
            while theirs.next_if(|&&(o, _)| o < origin).is_some() {}
            let behind = theirs
                .next_if(|&&(o, _)| o == origin)
                .map_or(Hlc::ZERO, |&(_, hlc)| hlc);
            (ours > behind).then_some((origin, behind, ours))
        })
    }

    /// Pointwise maximum with `other`.
    pub fn merge(&mut self, other: &VersionVector) {
        // First walk: raise the origins both hold, in place, and count those
        // only `other` holds. Most merges stop here, allocating nothing.
        let mut missing = 0usize;
        let mut i = 0;
        for &(origin, hlc) in &other.0 {
            i = seek(&self.0, i, origin);
            match self.0.get_mut(i) {
                Some((o, h)) if *o == origin => {
                    if hlc > *h {
                        *h = hlc;
                    }
                    i += 1;
                }
                _ => missing += 1,
            }
        }
        if missing == 0 {
            return;
        }
        // Second walk: interleave the missing origins into a vector of exact
        // size. The shared ones already hold the maximum.
        let mut merged = Vec::with_capacity(self.0.len() + missing);
        let mut ours = self.0.iter().copied().peekable();
        for &(origin, hlc) in &other.0 {
            while let Some(&(o, h)) = ours.peek() {
                if o > origin {
                    break;
                }
                merged.push((o, h));
                ours.next();
            }
            if merged.last().is_none_or(|&(o, _)| o != origin) {
                merged.push((origin, hlc));
            }
        }
        merged.extend(ours);
        debug_assert_eq!(merged.len(), merged.capacity());
        self.0 = merged;
    }

    /// Pointwise minimum over `vectors`: what all of them account for. The
    /// meet of no vectors is empty.
    pub fn meet<'a>(vectors: impl IntoIterator<Item = &'a VersionVector>) -> VersionVector {
        let mut vectors = vectors.into_iter();
        let Some(first) = vectors.next() else {
            return VersionVector::new();
        };
        let mut meet = first.0.clone();
        for vector in vectors {
            let mut j = 0;
            meet.retain_mut(|(origin, hlc)| {
                j = seek(&vector.0, j, *origin);
                match vector.0.get(j) {
                    Some(&(o, h)) if o == *origin => {
                        *hlc = (*hlc).min(h);
                        true
                    }
                    _ => false,
                }
            });
        }
        meet.shrink_to_fit();
        VersionVector(meet)
    }

    /// Whether every origin here is at or below `other`.
    pub fn dominated_by(&self, other: &VersionVector) -> bool {
        // Every frontier here is above zero, so each origin must be in
        // `other` too.
        if self.0.len() > other.0.len() {
            return false;
        }
        let mut j = 0;
        self.0.iter().all(|&(origin, hlc)| {
            j = seek(&other.0, j, origin);
            other
                .0
                .get(j)
                .is_some_and(|&(o, h)| o == origin && hlc <= h)
        })
    }

    /// The origins and their frontiers, in origin order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (NodeId, Hlc)> + '_ {
        self.0.iter().copied()
    }

    /// How many origins have a frontier above zero.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether nothing has been seen.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The first position at or after `from` whose origin is not below `origin`,
/// found by galloping: walking one sorted vector along another costs
/// O(log gap) per step, so linear when they are alike in size and
/// logarithmic when one is much smaller.
fn seek(pairs: &[(NodeId, Hlc)], from: usize, origin: NodeId) -> usize {
    let rest = &pairs[from.min(pairs.len())..];
    if rest.first().is_none_or(|&(o, _)| o >= origin) {
        return from.min(pairs.len());
    }
    // `rest[low]` is below `origin`; the answer lies in `low + 1..=high`.
    let (mut low, mut high) = (0, 1);
    while high < rest.len() && rest[high].0 < origin {
        low = high;
        high *= 2;
    }
    let high = high.min(rest.len());
    let within = rest[low + 1..high].partition_point(|&(o, _)| o < origin);
    from + low + 1 + within
}

impl FromIterator<(NodeId, Hlc)> for VersionVector {
    /// The pointwise maximum of the pairs; zero frontiers are dropped.
    fn from_iter<I: IntoIterator<Item = (NodeId, Hlc)>>(iter: I) -> Self {
        let mut pairs: Vec<(NodeId, Hlc)> = iter
            .into_iter()
            .filter(|&(_, hlc)| hlc > Hlc::ZERO)
            .collect();
        // By origin, and the greatest frontier first within one, so that
        // keeping the first of each run keeps the maximum.
        pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        pairs.dedup_by_key(|&mut (origin, _)| origin);
        pairs.shrink_to_fit();
        VersionVector(pairs)
    }
}

impl Serialize for VersionVector {
    /// A map from origin to frontier, in origin order: the encoding a
    /// `BTreeMap<NodeId, Hlc>` has.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(origin, hlc)| (origin, hlc)))
    }
}

impl<'de> Deserialize<'de> for VersionVector {
    /// Accepts only the canonical form: origins strictly ascending, every
    /// frontier above zero.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(VectorVisitor)
    }
}

struct VectorVisitor;

/// The most pairs reserved up front from a length the input claims: a
/// corrupted length must not allocate more than the input could hold.
const MAX_PREALLOCATED: usize = 4096;

impl<'de> Visitor<'de> for VectorVisitor {
    type Value = VersionVector;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map from origin to a non-zero frontier, origins ascending")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let mut pairs: Vec<(NodeId, Hlc)> =
            Vec::with_capacity(access.size_hint().unwrap_or(0).min(MAX_PREALLOCATED));
        while let Some((origin, hlc)) = access.next_entry::<NodeId, Hlc>()? {
            if hlc == Hlc::ZERO {
                return Err(de::Error::custom(format_args!(
                    "origin {origin} has a zero frontier, which a version vector never stores"
                )));
            }
            match pairs.last() {
                Some(&(previous, _)) if previous >= origin => {
                    return Err(de::Error::custom(format_args!(
                        "origin {origin} follows origin {previous}: origins must be strictly \
                         ascending"
                    )));
                }
                _ => {}
            }
            pairs.push((origin, hlc));
        }
        pairs.shrink_to_fit();
        Ok(VersionVector(pairs))
    }
}

impl fmt::Display for VersionVector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (origin, hlc)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{origin}: {hlc}")?;
        }
        f.write_str("}")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn vv(pairs: &[(u64, u64)]) -> VersionVector {
        pairs
            .iter()
            .map(|&(o, h)| (NodeId::new(o), Hlc::from_u64(h)))
            .collect()
    }

    #[test]
    fn merge_is_pointwise_max_and_meet_pointwise_min() {
        let mut a = vv(&[(1, 5), (2, 3)]);
        let b = vv(&[(2, 7), (3, 1)]);
        a.merge(&b);
        assert_eq!(a, vv(&[(1, 5), (2, 7), (3, 1)]));
        assert_eq!(VersionVector::meet([&a, &b]), vv(&[(2, 7), (3, 1)]));
        assert_eq!(VersionVector::meet([&vv(&[(1, 5)]), &b]), vv(&[]));
    }

    /// The representation this type replaced, as a model.
    type Model = BTreeMap<NodeId, Hlc>;

    fn model_of(pairs: &[(u64, u64)]) -> Model {
        let mut model = Model::new();
        for &(o, h) in pairs {
            if h > 0 {
                let slot = model.entry(NodeId::new(o)).or_insert(Hlc::ZERO);
                *slot = (*slot).max(Hlc::from_u64(h));
            }
        }
        model
    }

    fn same(vector: &VersionVector, model: &Model) -> bool {
        vector.iter().eq(model.iter().map(|(&o, &h)| (o, h)))
    }

    /// Pairs over a wide and a narrow origin range, so that walks meet both
    /// long gaps (galloping) and dense runs.
    fn any_pairs() -> impl Strategy<Value = Vec<(u64, u64)>> {
        prop_oneof![
            prop::collection::vec((0u64..8, 0u64..4), 0..12),
            prop::collection::vec((0u64..400, 0u64..4), 0..80),
        ]
    }

    proptest! {
        #[test]
        fn agrees_with_the_btree_map_model(
            a in any_pairs(),
            b in any_pairs(),
            c in any_pairs(),
            probes in prop::collection::vec(0u64..400, 0..20),
        ) {
            let (ma, mb, mc) = (model_of(&a), model_of(&b), model_of(&c));
            let (va, vb, vc) = (vv(&a), vv(&b), vv(&c));
            prop_assert!(same(&va, &ma));
            prop_assert_eq!(va.0.capacity(), va.len());

            // advance, one pair at a time, in input order.
            let mut advanced = VersionVector::new();
            let mut model = Model::new();
            for &(o, h) in &a {
                let (origin, hlc) = (NodeId::new(o), Hlc::from_u64(h));
                let before = model.get(&origin).copied().unwrap_or(Hlc::ZERO);
                if hlc > before {
                    model.insert(origin, hlc);
                }
                prop_assert_eq!(advanced.advance(origin, hlc), hlc > before);
            }
            prop_assert!(same(&advanced, &model));
            prop_assert_eq!(&advanced, &va);

            for o in probes.iter().copied().chain(a.iter().map(|&(o, _)| o)) {
                let origin = NodeId::new(o);
                prop_assert_eq!(
                    va.get(origin),
                    ma.get(&origin).copied().unwrap_or(Hlc::ZERO)
                );
            }

            let mut merged = va.clone();
            merged.merge(&vb);
            let mut merged_model = ma.clone();
            for (&o, &h) in &mb {
                let slot = merged_model.entry(o).or_insert(Hlc::ZERO);
                *slot = (*slot).max(h);
            }
            prop_assert!(same(&merged, &merged_model));
            prop_assert_eq!(merged.0.capacity(), merged.len());

            let meet = VersionVector::meet([&va, &vb, &vc]);
            let meet_model: Model = ma
                .iter()
                .filter_map(|(o, &h)| {
                    let low = h.min(*mb.get(o)?).min(*mc.get(o)?);
                    (low > Hlc::ZERO).then_some((*o, low))
                })
                .collect();
            prop_assert!(same(&meet, &meet_model));

            let pairs = [
                ((&va, &ma), (&vb, &mb)),
                ((&vb, &mb), (&va, &ma)),
                ((&meet, &meet_model), (&vc, &mc)),
                ((&va, &ma), (&merged, &merged_model)),
                ((&merged, &merged_model), (&va, &ma)),
            ];
            for ((x, mx), (y, my)) in pairs {
                let dominated = mx
                    .iter()
                    .all(|(o, &h)| h <= my.get(o).copied().unwrap_or(Hlc::ZERO));
                prop_assert_eq!(x.dominated_by(y), dominated);
            }
            prop_assert!(meet.dominated_by(&va) && va.dominated_by(&merged));
        }

        #[test]
        fn encodes_as_the_btree_map_did_and_round_trips(pairs in any_pairs()) {
            let vector = vv(&pairs);
            let bytes = encode(&vector);
            prop_assert_eq!(&bytes, &encode(&model_of(&pairs)));
            prop_assert_eq!(decode(&bytes).ok(), Some(vector));
        }

        #[test]
        fn decoding_refuses_every_non_canonical_map(
            pairs in prop::collection::vec((0u64..6, 0u64..3), 0..6),
        ) {
            let raw: Vec<(NodeId, Hlc)> = pairs
                .iter()
                .map(|&(o, h)| (NodeId::new(o), Hlc::from_u64(h)))
                .collect();
            let canonical = raw.windows(2).all(|w| w[0].0 < w[1].0)
                && raw.iter().all(|&(_, h)| h > Hlc::ZERO);
            // A sequence of pairs encodes in bincode as a map does.
            let decoded = decode(&encode(&raw));
            prop_assert_eq!(decoded.is_ok(), canonical);
            if let Ok(vector) = decoded {
                prop_assert!(vector.iter().eq(raw.iter().copied()));
            }
        }
    }

    fn encode<T: Serialize>(value: &T) -> Vec<u8> {
        bincode::serde::encode_to_vec(value, bincode::config::standard()).expect("encodes")
    }

    fn decode(bytes: &[u8]) -> Result<VersionVector, bincode::error::DecodeError> {
        bincode::serde::decode_from_slice(bytes, bincode::config::standard()).map(|(v, _)| v)
    }

    #[test]
    fn decoding_a_huge_claimed_length_fails_without_a_huge_allocation() {
        // A map length of u64::MAX followed by nothing.
        let bytes = encode(&u64::MAX);
        assert!(decode(&bytes).is_err());
    }

    #[test]
    fn seek_finds_the_first_origin_not_below() {
        let pairs: Vec<(NodeId, Hlc)> = (0..100u64)
            .map(|o| (NodeId::new(3 * o), Hlc::from_u64(1)))
            .collect();
        for from in 0..=pairs.len() {
            for target in 0..310u64 {
                let expected =
                    from + pairs[from..].partition_point(|&(o, _)| o < NodeId::new(target));
                assert_eq!(seek(&pairs, from, NodeId::new(target)), expected);
            }
        }
    }

    #[test]
    fn ahead_of_walks_both_vectors() {
        let a = vv(&[(1, 5), (2, 3), (4, 9), (7, 1)]);
        let b = vv(&[(0, 8), (2, 3), (4, 10), (5, 2)]);
        let ahead: Vec<(u64, u64, u64)> = a
            .ahead_of(&b)
            .map(|(o, theirs, ours)| (o.get(), theirs.as_u64(), ours.as_u64()))
            .collect();
        assert_eq!(ahead, [(1, 0, 5), (7, 0, 1)]);
        assert_eq!(b.ahead_of(&a).count(), 3);
    }

    #[test]
    fn zero_is_never_stored() {
        let mut a = VersionVector::new();
        assert!(!a.advance(NodeId::new(4), Hlc::ZERO));
        assert!(a.is_empty());
        assert_eq!(a, vv(&[(4, 0)]));
    }
}
