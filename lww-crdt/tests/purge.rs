//! Purged deletes stay deleted: a late delta or an old snapshot cannot
//! bring back a value a purged tombstone had beaten, when the purge keeps
//! to its documented rule.

#![allow(clippy::unwrap_used)]

mod common;

use lww_crdt::{Budget, HybridClock, LwwMap, ManualClock, NodeId, Replica, VersionVector};

type Rep = Replica<String, String, ManualClock>;

fn replica(id: u64, time: &ManualClock) -> Rep {
    Replica::new(NodeId::new(id), HybridClock::new(time.clone()))
}

fn meet(replicas: &[&Rep]) -> VersionVector {
    VersionVector::meet(replicas.iter().map(|r| r.version_vector()))
}

fn pull(from: &Rep, to: &mut Rep) {
    let delta = from.delta_since(to.version_vector(), Budget::UNLIMITED);
    to.apply(delta).unwrap();
}

/// o writes k = v; d deletes k later, without seeing v. A delta from o to
/// r carrying v is delayed. r gets d's delete, o and d sync, and every
/// replica purges at the meet of all vectors: then the late delta brought
/// v back at r, for good. The settled purge waits until every writer has
/// moved past the delete, so the tombstone is still there when v lands.
#[test]
fn a_delayed_delta_cannot_bring_back_a_delete_purged_once_settled() {
    let time = ManualClock::new(1_000);
    let (mut o, mut d, mut r) = (replica(1, &time), replica(2, &time), replica(3, &time));
    o.put("k", "v").unwrap();
    let late = o.delta_since(r.version_vector(), Budget::UNLIMITED);
    time.advance(10);
    d.delete("k").unwrap();
    pull(&d, &mut r);
    pull(&d, &mut o);
    pull(&o, &mut d);
    // Every member holds the delete, and the meet covers it.
    let stable = meet(&[&o, &d, &r]);
    let writers = [o.id(), d.id(), r.id()];
    for replica in [&mut o, &mut d, &mut r] {
        replica.purge_settled_tombstones(&stable, writers);
    }
    // A purge at the bare meet drops the tombstone, and the late delta
    // brings v back: what purge_tombstones' rule forbids.
    let mut bare = r.map().clone();
    assert_eq!(bare.purge_tombstones(&stable), 1);
    bare.apply(late.clone());
    assert_eq!(bare.get("k").map(String::as_str), Some("v"));
    // Origin 3 never wrote: nothing is settled, the tombstones stay.
    assert!(r.get_entry("k").is_some_and(|e| e.is_tombstone()));
    r.apply(late).unwrap();
    assert_eq!(r.get("k"), None, "the late delta brought the value back");

    // Once every writer has moved past the delete and every member has
    // seen it, the tombstone goes, and the late delta is still refused.
    time.advance(10);
    for replica in [&mut o, &mut d, &mut r] {
        replica
            .put("other", replica.id().get().to_string())
            .unwrap();
    }
    for _ in 0..2 {
        pull(&o, &mut d);
        pull(&d, &mut r);
        pull(&r, &mut o);
    }
    let stable = meet(&[&o, &d, &r]);
    for replica in [&mut o, &mut d, &mut r] {
        assert_eq!(replica.purge_settled_tombstones(&stable, writers), 1);
        assert_eq!(replica.get_entry("k"), None);
    }
    // o's write of v, as a sender that held only it would send it.
    let mut late_again = LwwMap::new();
    let first_write = lww_crdt::Stamp::new(lww_crdt::Hlc::new(1_000, 0), NodeId::new(1));
    late_again.put("k".to_owned(), "v".to_owned(), first_write);
    r.apply(late_again.delta_since(&VersionVector::new(), Budget::UNLIMITED))
        .unwrap();
    assert_eq!(r.get("k"), None);
}

/// A snapshot taken before a purge holds the value the purged tombstone
/// beat: merging it back used to restore the value, for good.
#[test]
fn merging_a_snapshot_from_before_a_purge_does_not_bring_the_value_back() {
    let time = ManualClock::new(1_000);
    let (mut a, mut b) = (replica(1, &time), replica(2, &time));
    a.put("k", "v").unwrap();
    pull(&a, &mut b);
    let snapshot = b.map().clone();
    time.advance(10);
    b.delete("k").unwrap();
    pull(&b, &mut a);
    let stable = meet(&[&a, &b]);
    assert_eq!(a.purge_tombstones(&stable), 1);
    assert_eq!(b.purge_tombstones(&stable), 1);
    let report = a.merge(&snapshot).unwrap();
    assert_eq!(report.purged, 1);
    assert_eq!(a.get("k"), None, "the snapshot brought the value back");
    // A key the purge never touched still merges in.
    let mut fresh = snapshot.clone();
    fresh.put(
        "new".to_owned(),
        "n".to_owned(),
        lww_crdt::Stamp::new(lww_crdt::Hlc::new(1_100, 0), NodeId::new(9)),
    );
    a.merge(&fresh).unwrap();
    assert_eq!(a.get("new").map(String::as_str), Some("n"));
    // The frontier survives encoding.
    let bytes = lww_crdt::codec::encode(a.map()).unwrap();
    let decoded: LwwMap<String, String> = lww_crdt::codec::decode(&bytes).unwrap();
    assert_eq!(decoded.purged_frontier(), a.map().purged_frontier());
}
