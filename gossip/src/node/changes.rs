//! The change log a node keeps for a caller that holds a durable copy of
//! its map: every entry a write or a delta put in the map, and every
//! tombstone collection dropped, in the order they happened.

use lww_crdt::{Entry, NodeId, Stamp};

use super::{Node, StoreDelta};

/// One change to a node's map, as [`Node::take_changes`] hands it out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// `key` now holds `entry`: a value, or a tombstone when its value is
    /// `None`. From a client write or from a peer's delta.
    Wrote {
        /// The key.
        key: String,
        /// Its entry now.
        entry: Entry<String>,
        /// The peer whose delta brought it; `None` for a client write on
        /// this node.
        from: Option<NodeId>,
    },
    /// Tombstone collection dropped `key`'s tombstone.
    Collected {
        /// The key.
        key: String,
    },
}

impl Node {
    /// Keeps a log of every change to the map from now on, for
    /// [`take_changes`](Self::take_changes): a caller that keeps a durable
    /// copy of the map writes each change there. Off by default, since it
    /// copies every entry that changes.
    pub fn record_changes(&mut self) {
        self.changes.get_or_insert_with(Vec::new);
    }

    /// Stops the log [`record_changes`](Self::record_changes) started, and
    /// drops what it held.
    pub fn stop_recording_changes(&mut self) {
        self.changes = None;
    }

    /// Whether the node logs its changes.
    pub fn is_recording_changes(&self) -> bool {
        self.changes.is_some()
    }

    /// The changes made since the last call, oldest first; empty unless
    /// [`record_changes`](Self::record_changes) was called. The version
    /// vector after them is [`version_vector`](Self::version_vector).
    pub fn take_changes(&mut self) -> Vec<Change> {
        self.changes
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Logs the entry `key` holds now.
    pub(super) fn note_written(&mut self, key: &str) {
        let Some(changes) = self.changes.as_mut() else {
            return;
        };
        if let Some(entry) = self.replica.get_entry(key) {
            changes.push(Change::Wrote {
                key: key.to_owned(),
                entry: entry.clone(),
                from: None,
            });
        }
    }

    /// The keys and stamps of `delta`'s entries the map does not hold yet,
    /// if changes are logged: after applying it, those whose stamps the map
    /// holds are the ones it changed. An entry held already (a duplicate
    /// delivery, or the same write from two peers) is left out, so that a
    /// watcher hears of each change once.
    pub(super) fn delta_stamps(&self, delta: &StoreDelta) -> Option<Vec<(String, Stamp)>> {
        self.changes.as_ref()?;
        Some(
            delta
                .entries()
                .iter()
                .filter(|(key, entry)| {
                    self.replica
                        .get_entry(key)
                        .is_none_or(|held| held.stamp != entry.stamp)
                })
                .map(|(key, entry)| (key.clone(), entry.stamp))
                .collect(),
        )
    }

    /// Logs the entries of a delta that the map took: those it now holds
    /// with the delta's stamps, and did not before.
    pub(super) fn note_applied(&mut self, from: NodeId, stamps: Vec<(String, Stamp)>) {
        let Some(changes) = self.changes.as_mut() else {
            return;
        };
        for (key, stamp) in stamps {
            if let Some(entry) = self.replica.get_entry(&key)
                && entry.stamp == stamp
            {
                changes.push(Change::Wrote {
                    key,
                    entry: entry.clone(),
                    from: Some(from),
                });
            }
        }
    }

    /// Logs the keys tombstone collection dropped.
    pub(super) fn note_collected(&mut self, keys: Vec<String>) {
        if let Some(changes) = self.changes.as_mut() {
            changes.extend(keys.into_iter().map(|key| Change::Collected { key }));
        }
    }
}
