//! Stamps and the entries they order.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Hlc, NodeId};

/// The identity and position of one write: its timestamp and the node that
/// issued it. Stamps order by timestamp, then by node id.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Stamp {
    /// When the write happened, on its origin's hybrid clock.
    pub hlc: Hlc,
    /// The node that issued the write.
    pub origin: NodeId,
}

impl Stamp {
    /// A stamp for a write by `origin` at `hlc`.
    pub const fn new(hlc: Hlc, origin: NodeId) -> Self {
        Self { hlc, origin }
    }
}

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.hlc, self.origin)
    }
}

/// The state of one key: the stamp of the winning write and its value, or
/// `None` for a delete (a tombstone).
///
/// Entries are totally ordered: by stamp, then by value with a tombstone below
/// every value. The value tie-break only matters for inputs where two writes
/// share a stamp, which a correct cluster never produces; it keeps merge
/// deterministic for them too.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entry<V> {
    /// The winning write's stamp.
    pub stamp: Stamp,
    /// The written value; `None` if the write was a delete.
    pub value: Option<V>,
}

impl<V> Entry<V> {
    /// A write of `value`.
    pub const fn value(stamp: Stamp, value: V) -> Self {
        Self {
            stamp,
            value: Some(value),
        }
    }

    /// A delete.
    pub const fn tombstone(stamp: Stamp) -> Self {
        Self { stamp, value: None }
    }

    /// Whether this entry records a delete.
    pub const fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }
}

impl<V: Ord> PartialOrd for Entry<V> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<V: Ord> Ord for Entry<V> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.stamp
            .cmp(&other.stamp)
            .then_with(|| self.value.cmp(&other.value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(hlc: u64, origin: u64) -> Stamp {
        Stamp::new(Hlc::from_u64(hlc), NodeId::new(origin))
    }

    #[test]
    fn orders_by_hlc_then_origin_then_value() {
        assert!(stamp(1, 9) < stamp(2, 0));
        assert!(stamp(2, 0) < stamp(2, 1));
        let low = Entry::value(stamp(2, 1), "a");
        let high = Entry::value(stamp(2, 1), "b");
        let tomb = Entry::tombstone(stamp(2, 1));
        assert!(tomb < low && low < high);
        assert!(high < Entry::tombstone(stamp(3, 0)));
    }
}
