//! What can go wrong on the wire, and the dice that decide it.

use rand::Rng;
use rand::rngs::SmallRng;
use serde::{Deserialize, Serialize};

/// Message-level faults, each an independent probability per message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Faults {
    /// Probability that a message is dropped.
    pub loss: f64,
    /// Probability that a message is delivered twice.
    pub duplicate: f64,
    /// Probability that a message is held back by a random extra delay of up
    /// to one gossip interval, so later messages overtake it.
    pub reorder: f64,
}

impl Faults {
    /// No faults.
    pub const NONE: Faults = Faults {
        loss: 0.0,
        duplicate: 0.0,
        reorder: 0.0,
    };

    /// Whether every probability lies in `[0, 1]`.
    pub fn is_valid(&self) -> bool {
        [self.loss, self.duplicate, self.reorder]
            .iter()
            .all(|p| (0.0..=1.0).contains(p))
    }
}

/// What the network did to the messages handed to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkStats {
    /// Messages handed to the network.
    pub sent: u64,
    /// Bytes handed to the network.
    pub sent_bytes: u64,
    /// Copies delivered to a node.
    pub delivered: u64,
    /// Messages dropped by random loss.
    pub lost: u64,
    /// Extra copies made by duplication.
    pub duplicated: u64,
    /// Messages held back to be reordered.
    pub reordered: u64,
    /// Messages dropped because sender and receiver were on different sides
    /// of a partition.
    pub partitioned: u64,
    /// Messages dropped because the sender or receiver was unavailable or
    /// crashed.
    pub unavailable: u64,
}

/// The fate of one message, decided once when it is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fate {
    pub(crate) lost: bool,
    pub(crate) copies: u8,
    pub(crate) extra_delay_ms: u64,
}

impl Faults {
    pub(crate) fn roll(&self, rng: &mut SmallRng, max_extra_delay_ms: u64) -> Fate {
        // Always draw the same number of values so one fault's setting does
        // not shift the dice of the others.
        let lost = rng.random_bool(self.loss);
        let duplicate = rng.random_bool(self.duplicate);
        let reorder = rng.random_bool(self.reorder);
        let delay = rng.random_range(0..=max_extra_delay_ms);
        Fate {
            lost,
            copies: if duplicate { 2 } else { 1 },
            extra_delay_ms: if reorder { delay } else { 0 },
        }
    }

    pub(crate) fn record(fate: Fate, stats: &mut NetworkStats) {
        if fate.lost {
            stats.lost += 1;
            return;
        }
        if fate.copies > 1 {
            stats.duplicated += 1;
        }
        if fate.extra_delay_ms > 0 {
            stats.reordered += 1;
        }
    }
}
