//! Deltas always make progress: an entry larger than the budget, or more
//! keys sharing one stamp than the budget's entry count, used to stall a
//! sender for good, with every later write of that origin behind it.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Map, stamp};
use lww_crdt::{Budget, Entry, LwwMap};

/// Pulls from `from` into `to` under `budget` until `to` holds everything,
/// or `limit` pulls pass; returns the pulls taken.
fn pull_until_equal(from: &Map, to: &mut Map, budget: Budget, limit: usize) -> Option<usize> {
    for pulls in 0..limit {
        if to == from {
            return Some(pulls);
        }
        let delta = from.delta_since(to.version_vector(), budget);
        to.apply(delta);
    }
    (to == from).then_some(limit)
}

#[test]
fn an_entry_larger_than_the_budget_travels_and_later_writes_follow() {
    let mut sender = Map::new();
    sender.put("small".into(), "a".into(), stamp(1, 1));
    sender.put("big".into(), "x".repeat(500), stamp(2, 1));
    sender.put("after".into(), "b".into(), stamp(3, 1));
    let budget = Budget::bytes(120);

    // Strict, the big entry never goes, and the delta says it is stuck.
    let mut receiver = LwwMap::new();
    assert_eq!(
        pull_until_equal(&sender, &mut receiver, budget.strict(), 10),
        None
    );
    let stuck = sender.delta_since(receiver.version_vector(), budget.strict());
    assert!(stuck.is_stalled());
    assert_eq!(receiver.get("after"), None);

    // By default it goes alone, over budget, and the rest follows.
    let forced = sender.delta_since(receiver.version_vector(), budget);
    assert!(!forced.fits(&budget));
    assert_eq!(forced.entries().len(), 1);
    assert!(pull_until_equal(&sender, &mut receiver, budget, 10).is_some());
    assert_eq!(receiver.get("after").map(String::as_str), Some("b"));
}

#[test]
fn keys_sharing_one_stamp_travel_under_a_one_entry_budget() {
    let mut sender = Map::new();
    sender.insert("a".into(), Entry::value(stamp(5, 1), "1".into()));
    sender.insert("b".into(), Entry::value(stamp(5, 1), "2".into()));
    sender.insert("c".into(), Entry::value(stamp(6, 1), "3".into()));
    let mut receiver = LwwMap::new();
    assert_eq!(
        pull_until_equal(&sender, &mut receiver, Budget::entries(1).strict(), 10),
        None
    );
    let pulls = pull_until_equal(&sender, &mut receiver, Budget::entries(1), 10);
    assert!(pulls.is_some(), "never caught up");
    assert_eq!(receiver.get("b").map(String::as_str), Some("2"));
}
