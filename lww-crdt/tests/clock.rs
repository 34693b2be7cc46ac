//! The hybrid clock and the offset check: over a physical clock that jumps
//! forwards, backwards or stands still, `now()` is strictly increasing across
//! any mix of `now` and `observe`; a timestamp more than the maximum offset
//! ahead is refused with `TooFarAhead` and changes nothing, and a replica
//! refuses a delta or state carrying one, leaving its map and clock as they
//! were.

mod common;

use common::{Map, WireDelta, decode, encode, key, show, stamp, value};
use lww_crdt::{
    Budget, ClockError, Delta, Entry, Hlc, HybridClock, ManualClock, NodeId, Replica, Stamp,
};
use proptest::prelude::*;

/// One step against a hybrid clock.
#[derive(Clone, Debug)]
enum Step {
    /// Physical time jumps to this many ms.
    Set(u64),
    /// Physical time moves forward a little (or not at all).
    Advance(u64),
    /// A timestamp is issued.
    Now,
    /// A remote timestamp is observed.
    Observe(Hlc),
}

fn logical() -> impl Strategy<Value = u16> {
    prop_oneof![0u16..3, (u16::MAX - 1)..=u16::MAX]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => (0u64..3_000).prop_map(Step::Set),
        2 => (0u64..3).prop_map(Step::Advance),
        5 => Just(Step::Now),
        3 => (0u64..4_000, logical()).prop_map(|(ms, l)| Step::Observe(Hlc::new(ms, l))),
    ]
}

fn max_offset() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), Just(1), Just(500), Just(1_000)]
}

proptest! {
    #[test]
    fn now_strictly_increases_and_far_future_observes_change_nothing(
        start in 0u64..3_000,
        max_offset_ms in max_offset(),
        steps in prop::collection::vec(step(), 0..60),
    ) {
        let physical = ManualClock::new(start);
        let mut clock = HybridClock::with_max_offset(physical.clone(), max_offset_ms);
        let mut local = start;
        // Greatest timestamp issued or successfully observed.
        let mut high = Hlc::ZERO;
        for step in steps {
            match step {
                Step::Set(ms) => {
                    physical.set(ms);
                    local = ms;
                }
                Step::Advance(ms) => {
                    physical.advance(ms);
                    local += ms;
                }
                Step::Now => {
                    let issued = clock.now().expect("far from the end of time");
                    prop_assert!(issued > high, "now() gave {issued} after {high}");
                    prop_assert!(issued >= Hlc::new(local, 0), "{issued} behind physical {local}");
                    prop_assert_eq!(clock.last(), issued);
                    high = issued;
                }
                Step::Observe(remote) => {
                    let before = clock.last();
                    let result = clock.observe(remote);
                    let ahead_ms = remote.physical_ms().saturating_sub(local);
                    if ahead_ms > max_offset_ms {
                        prop_assert_eq!(
                            result,
                            Err(ClockError::TooFarAhead {
                                remote,
                                local_ms: local,
                                ahead_ms,
                                max_offset_ms,
                            })
                        );
                        prop_assert_eq!(clock.last(), before);
                        prop_assert!(clock.check(remote).is_err());
                    } else {
                        prop_assert_eq!(result, Ok(()));
                        high = high.max(remote);
                        prop_assert_eq!(clock.last(), high);
                        prop_assert!(clock.check(remote).is_ok());
                    }
                }
            }
            prop_assert_eq!(clock.last(), high);
        }
    }

    #[test]
    fn replica_refuses_far_future_delta_or_state_and_changes_nothing(
        now_ms in 0u64..2_000,
        writes in prop::collection::vec((key(), prop::option::of(value())), 0..6),
        beyond_ms in 1u64..1_000,
        logical in logical(),
        far_key in key(),
        far_value in prop::option::of(value()),
    ) {
        let time = ManualClock::new(now_ms);
        let mut replica: Replica<String, String, ManualClock> =
            Replica::new(NodeId::new(1), HybridClock::new(time.clone()));
        for (key, value) in writes {
            match value {
                Some(value) => replica.put(key, value).unwrap(),
                None => replica.delete(key).unwrap(),
            };
        }
        let max_offset_ms = replica.clock().max_offset_ms();
        let far = Hlc::new(now_ms + max_offset_ms + beyond_ms, logical);
        let before: Map = replica.map().clone();
        let last = replica.clock().last();
        let unchanged = |replica: &Replica<String, String, ManualClock>| {
            replica.map() == &before
                && encode(replica.map()) == encode(&before)
                && replica.clock().last() == last
        };

        // A one-entry delta stamped too far ahead.
        let entry = Entry { stamp: Stamp::new(far, NodeId::new(2)), value: far_value.clone() };
        let single = common::single(far_key.clone(), entry.clone());
        let result = replica.apply(single);
        prop_assert!(
            matches!(result, Err(ClockError::TooFarAhead { remote, .. }) if remote == far),
            "{:?}", result
        );
        prop_assert!(unchanged(&replica), "{}", show(replica.map()));

        // A delta whose entries are fine but whose frontier runs too far ahead.
        let forged = WireDelta {
            entries: vec![(far_key.clone(), Entry { stamp: stamp(1, 2), value: far_value })],
            covered: [(NodeId::new(2), far)].into_iter().collect(),
            since: Default::default(),
            complete: true,
        };
        let forged: Delta<String, String> = decode(&encode(&forged)).expect("valid delta");
        prop_assert!(replica.apply(forged).is_err());
        prop_assert!(unchanged(&replica), "{}", show(replica.map()));

        // The delta and the whole state of a peer whose clock runs ahead.
        let mut peer: Replica<String, String, ManualClock> = Replica::new(
            NodeId::new(2),
            HybridClock::new(ManualClock::new(far.physical_ms())),
        );
        peer.put(far_key, "v1").unwrap();
        let delta = peer.delta_since(replica.version_vector(), Budget::UNLIMITED);
        prop_assert!(replica.apply(delta).is_err());
        prop_assert!(replica.merge(peer.map()).is_err());
        prop_assert!(unchanged(&replica), "{}", show(replica.map()));

        // Once local time catches up, the same state is accepted and the
        // next write is stamped after it.
        time.set(far.physical_ms() - max_offset_ms);
        prop_assert!(replica.merge(peer.map()).is_ok());
        let next = replica.put("a", "v2").unwrap();
        prop_assert!(next.hlc > peer.version_vector().get(NodeId::new(2)));
    }
}

#[test]
fn a_replica_resumed_from_a_map_writes_after_every_stamp_it_holds() {
    // A peer's clock ran ahead within the allowed offset; this node saved
    // the state and restarted before its own clock caught up.
    let mut saved: Map = Map::new();
    saved.put(
        "colour".to_owned(),
        "theirs".to_owned(),
        Stamp::new(Hlc::new(1_300, 0), NodeId::new(2)),
    );
    let mut resumed: Replica<String, String, ManualClock> = Replica::resume(
        NodeId::new(1),
        HybridClock::new(ManualClock::new(1_000)),
        saved.clone(),
    );
    let stamp = resumed.put("colour", "mine").unwrap();
    assert!(stamp.hlc > Hlc::new(1_300, 0), "{stamp}");
    assert_eq!(resumed.get("colour").map(String::as_str), Some("mine"));
    // Checked, the same map is within the offset and starts a replica too.
    let mut checked: Replica<String, String, ManualClock> = Replica::with_map(
        NodeId::new(3),
        HybridClock::new(ManualClock::new(1_000)),
        saved,
    )
    .unwrap();
    assert!(checked.put("colour", "mine").unwrap().hlc > Hlc::new(1_300, 0));
}

/// A map holding a stamp at the end of time, from a peer's snapshot or a
/// decoded file, used to saturate the clock: two puts in a row then got
/// equal stamps, and the second silently lost the value tie-break.
#[test]
fn a_far_future_map_is_refused_and_an_exhausted_clock_refuses_writes() {
    let mut poisoned: Map = Map::new();
    poisoned.put(
        "k".to_owned(),
        "old".to_owned(),
        Stamp::new(Hlc::MAX, NodeId::new(2)),
    );
    let refused = Replica::<String, String, ManualClock>::with_map(
        NodeId::new(1),
        HybridClock::new(ManualClock::new(1_000)),
        poisoned.clone(),
    );
    assert!(matches!(
        refused.map(|_| ()),
        Err(ClockError::TooFarAhead { remote, .. }) if remote == Hlc::MAX
    ));

    // Resumed unchecked (a node's own saved state), the clock cannot move
    // past it: writes are refused, never stamped twice alike.
    let mut resumed: Replica<String, String, ManualClock> = Replica::resume(
        NodeId::new(1),
        HybridClock::new(ManualClock::new(1_000)),
        poisoned,
    );
    assert_eq!(
        resumed.put("a", "1"),
        Err(ClockError::Exhausted { last: Hlc::MAX })
    );
    assert_eq!(
        resumed.delete("a"),
        Err(ClockError::Exhausted { last: Hlc::MAX })
    );
    assert_eq!(resumed.get("a"), None, "a refused write changed the map");

    // One below the end: exactly one more write, then refusals.
    let mut last_one: Map = Map::new();
    last_one.put(
        "k".to_owned(),
        "old".to_owned(),
        Stamp::new(Hlc::MAX.predecessor().unwrap(), NodeId::new(2)),
    );
    let mut replica: Replica<String, String, ManualClock> = Replica::resume(
        NodeId::new(1),
        HybridClock::new(ManualClock::new(1_000)),
        last_one,
    );
    assert_eq!(replica.put("k", "new").unwrap().hlc, Hlc::MAX);
    assert!(replica.put("k", "newer").is_err());
    assert_eq!(replica.get("k").map(String::as_str), Some("new"));
}
