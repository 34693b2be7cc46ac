//! Version vectors: how far a replica has seen each origin's writes.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

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
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VersionVector(BTreeMap<NodeId, Hlc>);

impl VersionVector {
    /// An empty vector: nothing seen.
    pub fn new() -> Self {
        Self::default()
    }

    /// How far `origin` is accounted for.
    pub fn get(&self, origin: NodeId) -> Hlc {
        self.0.get(&origin).copied().unwrap_or(Hlc::ZERO)
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
        let slot = self.0.entry(origin).or_insert(Hlc::ZERO);
        if hlc > *slot {
            *slot = hlc;
            true
        } else {
            false
        }
    }

    /// Pointwise maximum with `other`.
    pub fn merge(&mut self, other: &VersionVector) {
        for (&origin, &hlc) in &other.0 {
            self.advance(origin, hlc);
        }
    }

    /// Pointwise minimum over `vectors`: what all of them account for. The
    /// meet of no vectors is empty.
    pub fn meet<'a>(vectors: impl IntoIterator<Item = &'a VersionVector>) -> VersionVector {
        let mut vectors = vectors.into_iter();
        let Some(first) = vectors.next() else {
            return VersionVector::new();
        };
        let mut meet = first.clone();
        for vector in vectors {
            meet.0.retain(|origin, hlc| {
                *hlc = (*hlc).min(vector.get(*origin));
                *hlc > Hlc::ZERO
            });
        }
        meet
    }

    /// Whether every origin here is at or below `other`.
    pub fn dominated_by(&self, other: &VersionVector) -> bool {
        self.0
            .iter()
            .all(|(&origin, &hlc)| hlc <= other.get(origin))
    }

    /// The origins and their frontiers, in origin order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (NodeId, Hlc)> + '_ {
        self.0.iter().map(|(&origin, &hlc)| (origin, hlc))
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

impl FromIterator<(NodeId, Hlc)> for VersionVector {
    fn from_iter<I: IntoIterator<Item = (NodeId, Hlc)>>(iter: I) -> Self {
        let mut vector = VersionVector::new();
        for (origin, hlc) in iter {
            vector.advance(origin, hlc);
        }
        vector
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

    #[test]
    fn zero_is_never_stored() {
        let mut a = VersionVector::new();
        assert!(!a.advance(NodeId::new(4), Hlc::ZERO));
        assert!(a.is_empty());
        assert_eq!(a, vv(&[(4, 0)]));
    }
}
