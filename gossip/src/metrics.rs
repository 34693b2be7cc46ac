//! Counters a node keeps about its own gossip.

use serde::{Deserialize, Serialize};

use crate::message::MessageKind;

/// Message and byte counts for one direction, by message kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traffic {
    /// Messages, indexed by [`MessageKind::index`].
    pub messages: [u64; 3],
    /// Encoded bytes, indexed by [`MessageKind::index`].
    pub bytes: [u64; 3],
}

impl Traffic {
    pub(crate) fn record(&mut self, kind: MessageKind, bytes: usize) {
        self.messages[kind.index()] += 1;
        self.bytes[kind.index()] += bytes as u64;
    }

    /// Messages of every kind.
    pub fn total_messages(&self) -> u64 {
        self.messages.iter().sum()
    }

    /// Bytes of every kind.
    pub fn total_bytes(&self) -> u64 {
        self.bytes.iter().sum()
    }
}

/// What a node has done, since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metrics {
    /// Exchanges this node opened.
    pub exchanges_started: u64,
    /// Exchanges opened at once, not at a tick, to fetch the rest of a delta
    /// that was cut to the message budget (counted in `exchanges_started`
    /// too).
    pub exchanges_pulled: u64,
    /// Opened exchanges that got their answer.
    pub exchanges_completed: u64,
    /// Opened exchanges that went unanswered past the timeout.
    pub exchanges_timed_out: u64,
    /// Messages and bytes sent.
    pub sent: Traffic,
    /// Messages and bytes received and decoded.
    pub received: Traffic,
    /// Entries sent in deltas.
    pub entries_sent: u64,
    /// Entries received in deltas.
    pub entries_received: u64,
    /// Received entries that changed nothing: already known, or older than
    /// what was held.
    pub entries_redundant: u64,
    /// Messages refused: claiming to come from this node itself,
    /// undecodable, or carrying timestamps too far ahead.
    pub messages_rejected: u64,
    /// Messages dropped because they would not fit the size limit.
    pub messages_oversize: u64,
    /// Tombstones purged once stable.
    pub tombstones_purged: u64,
    /// Answers that arrived after their exchange was over, and were dropped
    /// unapplied.
    pub messages_late: u64,
}

impl Metrics {
    /// Adds another node's counters to these, for cluster totals.
    pub fn accumulate(&mut self, other: &Metrics) {
        self.exchanges_started += other.exchanges_started;
        self.exchanges_pulled += other.exchanges_pulled;
        self.exchanges_completed += other.exchanges_completed;
        self.exchanges_timed_out += other.exchanges_timed_out;
        for i in 0..3 {
            self.sent.messages[i] += other.sent.messages[i];
            self.sent.bytes[i] += other.sent.bytes[i];
            self.received.messages[i] += other.received.messages[i];
            self.received.bytes[i] += other.received.bytes[i];
        }
        self.entries_sent += other.entries_sent;
        self.entries_received += other.entries_received;
        self.entries_redundant += other.entries_redundant;
        self.messages_rejected += other.messages_rejected;
        self.messages_oversize += other.messages_oversize;
        self.tombstones_purged += other.tombstones_purged;
        self.messages_late += other.messages_late;
    }
}
