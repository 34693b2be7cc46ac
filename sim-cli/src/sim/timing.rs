//! Time within rounds, under staggered timing: the convergence curve
//! sampled [`SAMPLES_PER_INTERVAL`] times per interval, the moment every
//! live node held every write, and how long each write took to reach every
//! live node.

use std::collections::{BTreeMap, VecDeque};

use lww_crdt::{Hlc, NodeId, Stamp, VersionVector};
use serde::Serialize;
use transport_mem::Cluster;

/// Samples per gossip interval under staggered timing.
pub const SAMPLES_PER_INTERVAL: u64 = 20;

/// Sub-interval figures of a staggered run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TimeReport {
    /// Virtual ms between two samples.
    pub sample_ms: u64,
    /// Virtual ms from the start of the run to the sample from which every
    /// live node held every write until the run ended; `None` if the run
    /// did not converge.
    pub converged_ms: Option<u64>,
    /// The same in gossip intervals.
    pub converged_intervals: Option<f64>,
    /// How long writes took to reach every live node.
    pub spread: SpreadStats,
    /// `(ms since the start, fraction of live nodes up to date)`, one point
    /// per sample.
    pub curve: Vec<(u64, f64)>,
}

/// Spread times of the writes, from each write to the first sample at which
/// every live node accounted for it: its vector covered it, or it held the
/// write or a newer entry for its key (or, once every live node read what
/// the reference reads, it could no longer tell).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SpreadStats {
    /// Writes that reached every live node.
    pub writes: u64,
    /// Writes that never did before the run ended (writes lost with a
    /// crashed node are not counted at all).
    pub unspread: u64,
    /// Median spread time, ms (nearest rank).
    pub p50_ms: Option<u64>,
    /// 99th percentile, ms (nearest rank).
    pub p99_ms: Option<u64>,
    /// The slowest, ms.
    pub max_ms: Option<u64>,
}

/// Checks of pending writes against every live node's entry for their key
/// that one sample may make; past it, only vectors are compared, and a run
/// with many writes in flight stays fast.
const KEY_CHECK_BUDGET: usize = 200_000;

/// A write not yet everywhere.
#[derive(Debug)]
struct Pending {
    hlc: Hlc,
    made_at: u64,
    key: String,
}

/// Tracks the writes not yet everywhere and the samples taken.
#[derive(Debug, Default)]
pub(crate) struct Timeline {
    /// Per origin, the writes not yet everywhere, in stamp order.
    pending: BTreeMap<NodeId, VecDeque<Pending>>,
    spread_ms: Vec<u64>,
    curve: Vec<(u64, f64)>,
}

impl Timeline {
    /// Notes a write of `key` stamped `stamp` at cluster time `at`.
    pub(crate) fn wrote(&mut self, key: &str, stamp: Stamp, at: u64) {
        self.pending
            .entry(stamp.origin)
            .or_default()
            .push_back(Pending {
                hlc: stamp.hlc,
                made_at: at,
                key: key.to_owned(),
            });
    }

    /// Forgets the writes of `key` that a crash lost: stamped above `above`
    /// (the best any survivor holds) and at most `up_to`.
    pub(crate) fn lose(&mut self, key: &str, above: Option<Stamp>, up_to: Stamp) {
        for (&origin, writes) in &mut self.pending {
            writes.retain(|w| {
                let stamp = Stamp::new(w.hlc, origin);
                !(w.key == key && stamp <= up_to && above.is_none_or(|a| stamp > a))
            });
        }
        self.pending.retain(|_, writes| !writes.is_empty());
    }

    /// Takes a sample at cluster time `at` (`since` ms into the run):
    /// `fraction` of live nodes up to date, and the writes every live node
    /// now accounts for.
    pub(crate) fn sample(&mut self, cluster: &Cluster, at: u64, since: u64, fraction: f64) {
        self.curve.push((since, fraction));
        if self.pending.is_empty() {
            return;
        }
        let vectors: Vec<&VersionVector> = cluster
            .live_nodes()
            .filter_map(|i| cluster.node(i))
            .map(|node| node.version_vector())
            .collect();
        if vectors.is_empty() {
            return;
        }
        let everywhere = VersionVector::meet(vectors);
        let spread = &mut self.spread_ms;
        self.pending.retain(|&origin, writes| {
            let frontier = everywhere.get(origin);
            while writes.front().is_some_and(|w| w.hlc <= frontier) {
                if let Some(w) = writes.pop_front() {
                    spread.push(at.saturating_sub(w.made_at));
                }
            }
            !writes.is_empty()
        });
        let left: usize = self.pending.values().map(VecDeque::len).sum();
        let live = cluster.live_nodes().count();
        // Every live node reads the reference: whatever is left is held or
        // beaten everywhere.
        let settled_all = fraction >= 1.0;
        if !settled_all && left.saturating_mul(live) > KEY_CHECK_BUDGET {
            return;
        }
        self.pending.retain(|&origin, writes| {
            writes.retain(|w| {
                let stamp = Stamp::new(w.hlc, origin);
                let everywhere = settled_all
                    || cluster.live_nodes().all(|i| {
                        cluster
                            .node(i)
                            .and_then(|node| node.get_entry(&w.key))
                            .is_some_and(|entry| entry.stamp >= stamp)
                    });
                if everywhere {
                    spread.push(at.saturating_sub(w.made_at));
                }
                !everywhere
            });
            !writes.is_empty()
        });
    }

    /// The figures, for a run of `interval_ms` intervals that converged
    /// (or not).
    pub(crate) fn report(mut self, interval_ms: u64, converged: bool) -> TimeReport {
        let converged_ms = converged
            .then(|| {
                let stretch = self
                    .curve
                    .iter()
                    .rev()
                    .take_while(|&&(_, fraction)| fraction >= 1.0)
                    .last();
                stretch.map(|&(since, _)| since)
            })
            .flatten();
        self.spread_ms.sort_unstable();
        let rank = |q: f64| -> Option<u64> {
            let n = self.spread_ms.len();
            (n > 0).then(|| self.spread_ms[((q * n as f64).ceil() as usize).clamp(1, n) - 1])
        };
        let spread = SpreadStats {
            writes: self.spread_ms.len() as u64,
            unspread: self.pending.values().map(|w| w.len() as u64).sum(),
            p50_ms: rank(0.5),
            p99_ms: rank(0.99),
            max_ms: self.spread_ms.last().copied(),
        };
        TimeReport {
            sample_ms: interval_ms / SAMPLES_PER_INTERVAL,
            converged_ms,
            converged_intervals: converged_ms.map(|ms| ms as f64 / interval_ms as f64),
            spread,
            curve: self.curve,
        }
    }
}
