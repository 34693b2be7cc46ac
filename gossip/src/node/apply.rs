//! Applying a received delta, and the parts of it held for later (see
//! `pipeline`).

use lww_crdt::NodeId;

use super::{Event, Node};
use crate::message::StoreDelta;

/// What applying one delta (or a held part of one) did.
#[derive(Clone, Copy, Debug, Default)]
struct Applied {
    /// It took some origin's frontier, which may let a held part in.
    advanced: bool,
    /// Part of it was held back.
    held: bool,
}

impl Node {
    /// Applies a delta from `from` that may be applied until `deadline_ms`;
    /// a part that overtook the delta it follows is held until then (see
    /// `pipeline`). Returns whether a part was held.
    pub(super) fn apply(
        &mut self,
        from: NodeId,
        delta: StoreDelta,
        deadline_ms: u64,
        now_ms: u64,
    ) -> bool {
        if delta.is_empty() && delta.covered().is_empty() {
            return false;
        }
        self.metrics.entries_received += delta.len() as u64;
        let applied = self.apply_part(from, delta, deadline_ms);
        if applied.advanced {
            self.apply_held(now_ms);
        }
        applied.held
    }

    /// Applies `delta` and holds back what it left out.
    fn apply_part(&mut self, from: NodeId, delta: StoreDelta, deadline_ms: u64) -> Applied {
        let covered = delta.covered().len();
        let stamps = self.delta_stamps(&delta);
        // Timestamps were checked before anything was applied.
        let Ok((report, rest)) = self.replica.apply_or_defer(delta) else {
            return Applied::default();
        };
        if let Some(stamps) = stamps
            && report.changed() > 0
        {
            self.note_applied(from, stamps);
        }
        self.vector_hash = None;
        self.metrics.entries_redundant += report.unchanged as u64;
        if report.changed() > 0 {
            self.news = true;
            self.events.push_back(Event::Updated { from, report });
        }
        let left_out = rest.as_ref().map_or(0, |rest| rest.covered().len());
        let mut held = false;
        if let Some(rest) = rest {
            let dropped;
            (held, dropped) = self.pipeline.hold(from, rest, deadline_ms);
            self.metrics.entries_redundant += dropped as u64;
        }
        Applied {
            advanced: left_out < covered,
            held,
        }
    }

    /// Applies the held parts that can now be taken, for as long as one
    /// lets in another.
    fn apply_held(&mut self, now_ms: u64) {
        self.expire_held(now_ms);
        let mut progress = true;
        while progress && self.pipeline.holds_any() {
            progress = false;
            for part in self.pipeline.take_held() {
                if part.is_ready(self.replica.version_vector()) {
                    let applied = self.apply_part(part.from, part.delta, part.deadline_ms);
                    progress |= applied.advanced;
                } else {
                    self.pipeline.keep(part);
                }
            }
        }
    }

    /// Drops held parts past their deadline.
    pub(super) fn expire_held(&mut self, now_ms: u64) {
        let dropped = self.pipeline.expire_held(now_ms);
        self.metrics.entries_redundant += dropped as u64;
    }
}
