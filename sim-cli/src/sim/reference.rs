//! The sequential reference: what every replica must read once gossip is
//! done, computed from the log of accepted writes.

use std::collections::BTreeMap;

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

/// Every accepted write, and the reference state they imply.
#[derive(Clone, Debug, Default)]
pub struct Reference {
    writes: Vec<LoggedWrite>,
    /// Per key, the positions of its writes in `writes`.
    by_key: BTreeMap<String, Vec<usize>>,
}

impl Reference {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an accepted write.
    pub fn record(&mut self, key: &str, entry: Entry<String>) {
        self.by_key
            .entry(key.to_owned())
            .or_default()
            .push(self.writes.len());
        self.writes.push(LoggedWrite {
            key: key.to_owned(),
            entry,
            lost: false,
        });
    }

    /// Every write logged, lost ones included.
    pub fn writes(&self) -> &[LoggedWrite] {
        &self.writes
    }

    /// How many writes were lost with crashed nodes.
    pub fn lost(&self) -> usize {
        self.writes.iter().filter(|w| w.lost).count()
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

    /// What every replica must read: the live value of each key whose winner
    /// is not a delete.
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

    fn write(hlc: u64, origin: u64, value: Option<&str>) -> Entry<String> {
        Entry {
            stamp: Stamp::new(Hlc::from_u64(hlc), NodeId::new(origin)),
            value: value.map(str::to_owned),
        }
    }

    #[test]
    fn greatest_surviving_write_wins_and_deletes_hide() {
        let mut reference = Reference::new();
        reference.record("a", write(1, 1, Some("x")));
        reference.record("a", write(3, 2, Some("y")));
        reference.record("b", write(2, 1, Some("z")));
        reference.record("b", write(4, 1, None));
        assert_eq!(
            reference.expected().into_iter().collect::<Vec<_>>(),
            [("a", "y")]
        );
        let lost = reference.lose("a", Some(write(1, 1, None).stamp), write(3, 2, None).stamp);
        assert_eq!(lost, 1);
        assert_eq!(reference.expected().get("a"), Some(&"x"));
        assert_eq!(reference.vector().get(NodeId::new(2)), Hlc::ZERO);
    }
}
