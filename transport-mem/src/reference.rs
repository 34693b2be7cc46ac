//! [`Reference`]: the sequential last-writer-wins model a converged cluster
//! must match, built from the stamps accepted writes returned.
//!
//! For each key, the winner is the greatest entry (stamp, then value, a
//! delete below any value) among every accepted write that was not lost
//! with a crashed node. Every live replica must read exactly the winners
//! that are values, and any entry a replica still holds (tombstones
//! included) must be its key's winner.

use std::collections::{BTreeMap, HashMap};

use lww_crdt::{Entry, Hlc, NodeId, Stamp, VersionVector};

/// One accepted write, as the workload issued it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedWrite {
    /// The key written.
    pub key: String,
    /// The entry: stamp and value (`None` for a delete).
    pub entry: Entry<String>,
    /// Set when the write was held only by a node that crashed with state
    /// loss: no replica can have it, so it leaves the reference.
    pub lost: bool,
}

/// Every accepted write, and the state a converged cluster must hold.
///
/// ```
/// use lww_crdt::{Hlc, NodeId, Stamp};
/// use transport_mem::reference::Reference;
///
/// let stamp = |hlc| Stamp::new(Hlc::from_u64(hlc), NodeId::new(1));
/// let mut reference = Reference::new();
/// reference.record("colour", stamp(1), Some("blue".to_owned()));
/// reference.record("colour", stamp(2), Some("red".to_owned()));
/// reference.record("size", stamp(3), None);
/// assert_eq!(reference.expected().into_iter().collect::<Vec<_>>(), [("colour", "red")]);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Reference {
    writes: Vec<LoggedWrite>,
    /// Per key, the positions of its writes in `writes`.
    by_key: BTreeMap<String, Vec<usize>>,
    /// Every write's position by stamp, lost ones included: what "was
    /// written" means.
    by_stamp: HashMap<Stamp, usize>,
}

impl Reference {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an accepted put (`Some` value) or delete (`None`) of `key`,
    /// with the stamp the write returned.
    ///
    /// # Panics
    /// If a write with `stamp` was recorded before: a node issues each
    /// stamp once, so a repeat means the writer, or the caller's
    /// bookkeeping, is broken, and the model could no longer tell which
    /// write a replica holds.
    pub fn record(&mut self, key: &str, stamp: Stamp, value: Option<String>) {
        let position = self.writes.len();
        let previous = self.by_stamp.insert(stamp, position);
        assert!(previous.is_none(), "stamp {stamp} issued twice (key {key})");
        self.by_key
            .entry(key.to_owned())
            .or_default()
            .push(position);
        self.writes.push(LoggedWrite {
            key: key.to_owned(),
            entry: Entry { stamp, value },
            lost: false,
        });
    }

    /// How many writes were recorded, lost ones included.
    pub fn len(&self) -> usize {
        self.writes.len()
    }

    /// Whether no write was recorded.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// Every write recorded, lost ones included, in the order recorded.
    pub fn writes(&self) -> &[LoggedWrite] {
        &self.writes
    }

    /// How many writes were lost with crashed nodes.
    pub fn lost(&self) -> usize {
        self.writes.iter().filter(|w| w.lost).count()
    }

    /// Whether `entry` for `key` is one of the recorded writes (lost or
    /// not): a replica holding anything else invented it.
    pub fn was_written(&self, key: &str, entry: &Entry<String>) -> bool {
        self.by_stamp.get(&entry.stamp).is_some_and(|&i| {
            let write = &self.writes[i];
            write.key == key && write.entry.value == entry.value
        })
    }

    /// Marks lost the writes to `key` stamped in `(above, up_to]`: those a
    /// crashed node held while no surviving node held them or anything
    /// newer. Returns how many were newly marked.
    pub fn lose(&mut self, key: &str, above: Option<Stamp>, up_to: Stamp) -> usize {
        let Some(positions) = self.by_key.get(key) else {
            return 0;
        };
        let mut marked = 0;
        for &i in positions {
            let write = &mut self.writes[i];
            let stamp = write.entry.stamp;
            if !write.lost && stamp <= up_to && above.is_none_or(|a| stamp > a) {
                write.lost = true;
                marked += 1;
            }
        }
        marked
    }

    /// Marks lost every surviving write for which `lost(key, entry)` holds.
    /// Returns how many were newly marked.
    pub fn lose_where(&mut self, lost: impl Fn(&str, &Entry<String>) -> bool) -> usize {
        let mut marked = 0;
        for write in &mut self.writes {
            if !write.lost && lost(&write.key, &write.entry) {
                write.lost = true;
                marked += 1;
            }
        }
        marked
    }

    /// The winning surviving entry of every key (tombstones included), by
    /// key.
    pub fn winners(&self) -> BTreeMap<&str, &Entry<String>> {
        let mut winners: BTreeMap<&str, &Entry<String>> = BTreeMap::new();
        for write in self.writes.iter().filter(|w| !w.lost) {
            let slot = winners.entry(write.key.as_str()).or_insert(&write.entry);
            if write.entry > **slot {
                *slot = &write.entry;
            }
        }
        winners
    }

    /// What every live replica must read: the live value of each key whose
    /// winner is not a delete.
    pub fn expected(&self) -> BTreeMap<&str, &str> {
        self.winners()
            .into_iter()
            .filter_map(|(key, entry)| entry.value.as_deref().map(|value| (key, value)))
            .collect()
    }

    /// The version vector of the surviving writes: a replica whose vector
    /// dominates it accounts for every one of them.
    pub fn vector(&self) -> VersionVector {
        let mut max: BTreeMap<NodeId, Hlc> = BTreeMap::new();
        for write in self.writes.iter().filter(|w| !w.lost) {
            let stamp = write.entry.stamp;
            let slot = max.entry(stamp.origin).or_insert(stamp.hlc);
            *slot = (*slot).max(stamp.hlc);
        }
        max.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(hlc: u64, origin: u64) -> Stamp {
        Stamp::new(Hlc::from_u64(hlc), NodeId::new(origin))
    }

    #[test]
    fn greatest_surviving_write_wins_and_deletes_hide() {
        let mut reference = Reference::new();
        reference.record("a", stamp(1, 1), Some("x".to_owned()));
        reference.record("a", stamp(3, 2), Some("y".to_owned()));
        reference.record("b", stamp(2, 1), Some("z".to_owned()));
        reference.record("b", stamp(4, 1), None);
        assert_eq!(
            reference.expected().into_iter().collect::<Vec<_>>(),
            [("a", "y")]
        );
        let lost = reference.lose("a", Some(stamp(1, 1)), stamp(3, 2));
        assert_eq!(lost, 1);
        assert_eq!(reference.expected().get("a"), Some(&"x"));
        assert_eq!(reference.vector().get(NodeId::new(2)), Hlc::ZERO);
        assert_eq!(reference.lost(), 1);
    }

    #[test]
    fn was_written_knows_every_write_lost_or_not() {
        let mut reference = Reference::new();
        reference.record("a", stamp(1, 1), Some("x".to_owned()));
        reference.record("a", stamp(2, 1), None);
        assert_eq!(reference.lose_where(|_, entry| entry.is_tombstone()), 1);
        let entry = |hlc, value: Option<&str>| Entry {
            stamp: stamp(hlc, 1),
            value: value.map(str::to_owned),
        };
        assert!(reference.was_written("a", &entry(1, Some("x"))));
        assert!(reference.was_written("a", &entry(2, None)));
        assert!(!reference.was_written("a", &entry(1, Some("y"))));
        assert!(!reference.was_written("b", &entry(1, Some("x"))));
        assert!(!reference.was_written("a", &entry(3, None)));
    }

    #[test]
    #[should_panic(expected = "issued twice")]
    fn a_stamp_recorded_twice_is_refused() {
        let mut reference = Reference::new();
        reference.record("a", stamp(1, 1), Some("x".to_owned()));
        reference.record("b", stamp(1, 1), Some("y".to_owned()));
    }
}
