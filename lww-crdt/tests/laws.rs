//! Algebraic laws of `LwwMap` on arbitrary states: the join is commutative,
//! associative and idempotent; a write equals its one-entry delta and deltas
//! apply idempotently; shuffled, duplicated deliveries converge to the
//! sequential model; purging never changes reads; serialization round-trips
//! and rejects deltas with entries beyond their frontier.
//!
//! States are built from tiny colliding generators (see `common`), so equal
//! stamps with different values, tombstones and clashing keys are the norm.

mod common;

use std::collections::BTreeMap;

use common::{
    KEYS, Map, WireDelta, Write, any_budget, any_entry, any_state, any_vector, any_writes, build,
    decode, encode, join, key, reads, reference, reference_reads, show, single, sorted_entries,
    stamp, value,
};
use lww_crdt::{Applied, Budget, Delta, Entry, Hlc, LwwMap, NodeId, Stamp, VersionVector};
use proptest::prelude::*;
use serde::Serialize;

/// Asserts two maps are equal both by `==` and by their serialized bytes.
fn assert_same(left: &Map, right: &Map, what: &str) -> Result<(), TestCaseError> {
    prop_assert!(
        left == right,
        "{what}: maps differ\n left: {}\nright: {}",
        show(left),
        show(right)
    );
    prop_assert_eq!(encode(left), encode(right), "{}: bytes differ", what);
    Ok(())
}

proptest! {
    #[test]
    fn merge_is_commutative(a in any_state(), b in any_state()) {
        assert_same(&join(&a, &b), &join(&b, &a), "a ⊔ b vs b ⊔ a")?;
    }

    #[test]
    fn merge_is_associative(a in any_state(), b in any_state(), c in any_state()) {
        assert_same(
            &join(&join(&a, &b), &c),
            &join(&a, &join(&b, &c)),
            "(a ⊔ b) ⊔ c vs a ⊔ (b ⊔ c)",
        )?;
    }

    #[test]
    fn merge_is_idempotent(a in any_state(), b in any_state()) {
        assert_same(&join(&a, &a), &a, "a ⊔ a vs a")?;
        let ab = join(&a, &b);
        assert_same(&join(&ab, &b), &ab, "(a ⊔ b) ⊔ b vs a ⊔ b")?;
    }

    #[test]
    fn merge_holds_the_greatest_entry_per_key_and_the_max_vector(
        a in any_writes(),
        b in any_writes(),
    ) {
        let joined = join(&build(&a), &build(&b));
        let all: Vec<Write> = a.iter().chain(&b).cloned().collect();
        let model: Vec<Write> = reference(&all).into_iter().collect();
        prop_assert_eq!(sorted_entries(&joined), model);
        let mut vv = build(&a).version_vector().clone();
        vv.merge(build(&b).version_vector());
        prop_assert_eq!(joined.version_vector(), &vv);
    }

    #[test]
    fn equal_states_built_in_any_order_serialize_identically(
        writes in any_writes().prop_shuffle(),
        order in any::<prop::sample::Index>(),
    ) {
        let mut rotated = writes.clone();
        if !rotated.is_empty() {
            let by = order.index(rotated.len());
            rotated.rotate_left(by);
        }
        rotated.reverse();
        assert_same(&build(&writes), &build(&rotated), "same writes, other order")?;
    }

    #[test]
    fn write_above_the_vector_equals_applying_its_single_delta(
        s in any_state(),
        key in key(),
        origin in 0u64..3,
        above in 1u64..4,
        value in prop::option::of(value()),
    ) {
        let hlc = s.version_vector().get(NodeId::new(origin)).as_u64() + above;
        let entry = Entry { stamp: stamp(hlc, origin), value };
        let mut written = s.clone();
        let applied = written.insert(key.clone(), entry.clone());
        let mut delivered = s.clone();
        let report = delivered.apply(single(key, entry));
        assert_same(&written, &delivered, "insert vs apply(Delta::single)")?;
        let expected = match applied {
            Applied::Inserted => (1, 0, 0),
            Applied::Replaced => (0, 1, 0),
            Applied::Unchanged => (0, 0, 1),
        };
        prop_assert_eq!((report.inserted, report.replaced, report.unchanged), expected);
    }

    #[test]
    fn applying_a_delta_twice_equals_applying_it_once(
        source in any_state(),
        peer in any_vector(),
        budget in any_budget(),
        target in any_state(),
    ) {
        let delta = source.delta_since(&peer, budget);
        let mut once = target.clone();
        once.apply(delta.clone());
        let mut twice = once.clone();
        let report = twice.apply(delta);
        assert_same(&once, &twice, "apply(d) vs apply(d); apply(d)")?;
        prop_assert_eq!(report.changed(), 0);
    }

    #[test]
    fn applying_a_single_delta_twice_equals_applying_it_once(
        target in any_state(),
        key in key(),
        entry in any_entry(),
    ) {
        let delta = single(key, entry);
        let mut once = target.clone();
        once.apply(delta.clone());
        let mut twice = once.clone();
        twice.apply(delta);
        assert_same(&once, &twice, "apply(single) twice vs once")?;
    }

    #[test]
    fn apply_merges_only_uncovered_entries_and_raises_the_vector_only_where_it_holds_since(
        source in any_state(),
        peer in any_vector(),
        budget in any_budget(),
        target in any_state(),
    ) {
        // Entries the target's vector covers are held there or superseded
        // (or their tombstone was purged): apply must skip them. The
        // frontier rises to `covered`, and only if the target holds the
        // frontier the delta was computed from, for every origin: else
        // nothing changes.
        let delta = source.delta_since(&peer, budget);
        let reached = delta
            .since()
            .iter()
            .all(|(origin, since)| target.version_vector().get(origin) >= since);
        let mut expected = target.clone();
        let mut unreached = 0;
        if reached {
            for (key, entry) in delta.entries() {
                if !target.version_vector().covers(entry.stamp) {
                    expected.insert(key.clone(), entry.clone());
                }
            }
            expected.merge(&LwwMap::try_from_parts(Vec::new(), delta.covered().clone())
                .expect("an empty map fits any vector"));
        } else {
            unreached = delta.len();
        }
        let mut applied = target.clone();
        let report = applied.apply(delta.clone());
        assert_same(&applied, &expected, "apply vs its specification")?;
        prop_assert_eq!(report.unreached, unreached);
        prop_assert_eq!(
            report.inserted + report.replaced + report.unchanged + report.unreached,
            delta.len()
        );
    }

    #[test]
    fn delta_entries_lie_within_covered_and_above_the_peer(
        source in any_state(),
        peer in any_vector(),
        budget in any_budget(),
    ) {
        let delta = source.delta_since(&peer, budget);
        for (key, entry) in delta.entries() {
            prop_assert!(
                delta.covered().covers(entry.stamp),
                "{key}@{} beyond covered {} (source {}, peer {peer})",
                entry.stamp,
                delta.covered(),
                show(&source)
            );
            prop_assert!(!peer.covers(entry.stamp), "{key}@{} already covered", entry.stamp);
            prop_assert_eq!(source.get_entry(key), Some(entry));
        }
        prop_assert!(delta.covered().dominated_by(source.version_vector()));
        if !delta.fits(&budget) {
            // Over budget only to make progress: one origin's first stamp
            // group (or its frontier alone), nothing else.
            prop_assert_eq!(delta.covered().len(), 1);
            if let Some((_, first)) = delta.entries().first() {
                prop_assert!(delta.entries().iter().all(|(_, e)| e.stamp == first.stamp));
            }
        }
        // Strict, it always fits, and says when it cannot make progress.
        let strict = source.delta_since(&peer, budget.strict());
        prop_assert!(strict.fits(&budget));
        prop_assert!(strict.len() <= budget.max_entries);
        if strict.is_stalled() {
            prop_assert!(source.version_vector().ahead_of(&peer).next().is_some());
        }
    }
}

/// Writes with distinct stamps (hlc 1..=6, origin 0..3): what a correct
/// cluster produces.
fn unique_writes() -> impl Strategy<Value = Vec<Write>> {
    let stamps = prop::collection::btree_set((1u64..=6, 0u64..3), 1..10);
    stamps.prop_flat_map(|stamps| {
        let n = stamps.len();
        (
            Just(stamps),
            prop::collection::vec((key(), prop::option::of(value())), n),
        )
            .prop_map(|(stamps, payloads)| {
                stamps
                    .into_iter()
                    .zip(payloads)
                    .map(|((hlc, origin), (key, value))| {
                        (
                            key,
                            Entry {
                                stamp: stamp(hlc, origin),
                                value,
                            },
                        )
                    })
                    .collect::<Vec<Write>>()
            })
            .prop_shuffle()
    })
}

/// How one write reaches a map.
#[derive(Clone, Copy, Debug)]
enum Via {
    Insert,
    Single,
    MergeSingleton,
}

fn via() -> impl Strategy<Value = Via> {
    prop_oneof![
        Just(Via::Insert),
        Just(Via::Single),
        Just(Via::MergeSingleton)
    ]
}

/// Delivers `write` to `map` by `via`.
fn deliver(map: &mut Map, (key, entry): &Write, via: Via) {
    match via {
        Via::Insert => {
            map.insert(key.clone(), entry.clone());
        }
        Via::Single => {
            map.apply(single(key.clone(), entry.clone()));
        }
        Via::MergeSingleton => {
            map.merge(&build(&[(key.clone(), entry.clone())]));
        }
    }
}

/// A delivery schedule for `n` writes: every index at least once, plus
/// duplicates, in an order picked by `order`; `extra` adds duplicates.
fn schedule(n: usize, order: &[prop::sample::Index], extra: &[prop::sample::Index]) -> Vec<usize> {
    let mut sequence: Vec<usize> = (0..n).collect();
    sequence.extend(extra.iter().map(|index| index.index(n)));
    // A Fisher-Yates shuffle driven by the generated indexes.
    for (i, pick) in order.iter().enumerate().take(sequence.len()) {
        let j = i + pick.index(sequence.len() - i);
        sequence.swap(i, j);
    }
    sequence
}

/// Rewrites `sequence` so that first deliveries go in stamp order per origin:
/// the first occurrence of each index becomes the next undelivered write of
/// that index's origin, and every later occurrence re-delivers a write of that
/// origin already delivered. FIFO links with re-sends.
fn fifo_per_origin(writes: &[Write], sequence: &[usize]) -> Vec<usize> {
    let mut by_origin: BTreeMap<NodeId, Vec<usize>> = BTreeMap::new();
    for (i, (_, entry)) in writes.iter().enumerate() {
        by_origin.entry(entry.stamp.origin).or_default().push(i);
    }
    for list in by_origin.values_mut() {
        list.sort_by_key(|&i| writes[i].1.stamp);
    }
    let mut first_seen = vec![false; writes.len()];
    let mut dealt: BTreeMap<NodeId, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for &i in sequence {
        let origin = writes[i].1.stamp.origin;
        let list = &by_origin[&origin];
        let cursor = dealt.entry(origin).or_default();
        if !first_seen[i] {
            first_seen[i] = true;
            out.push(list[*cursor]);
            *cursor += 1;
        } else if *cursor > 0 {
            // Re-send one already delivered: the latest, or `i` if it was.
            let resend = if list[..*cursor].contains(&i) {
                i
            } else {
                list[*cursor - 1]
            };
            out.push(resend);
        }
    }
    out
}

proptest! {
    #[test]
    fn shuffled_duplicated_deliveries_converge_to_the_sequential_model(
        writes in unique_writes(),
        plans in prop::collection::vec(
            (
                prop::collection::vec(any::<prop::sample::Index>(), 20),
                prop::collection::vec(any::<prop::sample::Index>(), 0..8),
                prop::collection::vec(via(), 20),
                any::<bool>(),
            ),
            3,
        ),
    ) {
        let model = reference(&writes);
        let model_entries: Vec<Write> = model.clone().into_iter().collect();
        let model_vv: VersionVector = writes
            .iter()
            .map(|(_, entry)| (entry.stamp.origin, entry.stamp.hlc))
            .collect();
        let mut maps = Vec::new();
        for (order, extra, vias, fifo) in &plans {
            let mut sequence = schedule(writes.len(), order, extra);
            if *fifo {
                sequence = fifo_per_origin(&writes, &sequence);
            }
            let mut map = Map::new();
            for (step, &i) in sequence.iter().enumerate() {
                let mut how = vias[step % vias.len()];
                // A one-entry delta claims its origin's earlier writes are
                // delivered: out of FIFO order, deliver those otherwise.
                if matches!(how, Via::Single)
                    && !*fifo
                    && map.version_vector().covers(writes[i].1.stamp)
                {
                    how = Via::Insert;
                }
                deliver(&mut map, &writes[i], how);
            }
            prop_assert_eq!(sorted_entries(&map), model_entries.clone(), "{}", show(&map));
            prop_assert_eq!(map.version_vector(), &model_vv);
            prop_assert_eq!(reads(&map), reference_reads(&model));
            maps.push(map);
        }
        for map in &maps[1..] {
            assert_same(&maps[0], map, "two delivery orders")?;
        }
    }

    #[test]
    fn purge_keeps_reads_and_vector_and_drops_only_covered_tombstones(
        state in any_state(),
        frontier in any_vector(),
        later in prop::collection::vec((key(), any_entry()), 0..4),
    ) {
        let mut purged = state.clone();
        let dropped = purged.purge_tombstones(&frontier);
        prop_assert_eq!(reads(&purged), reads(&state));
        prop_assert_eq!(purged.version_vector(), state.version_vector());
        let kept = sorted_entries(&purged);
        for write in sorted_entries(&state) {
            let (_, entry) = &write;
            let covered_tombstone = entry.is_tombstone() && frontier.covers(entry.stamp);
            if kept.contains(&write) {
                // A tombstone stamped at Hlc::ZERO is covered by every
                // frontier; keeping one is harmless, so only tombstones
                // above zero must go.
                prop_assert!(
                    !covered_tombstone || entry.stamp.hlc == Hlc::ZERO,
                    "covered tombstone {:?} kept", write
                );
            } else {
                prop_assert!(covered_tombstone, "{:?} dropped", write);
            }
        }
        prop_assert!(kept.iter().all(|(key, entry)| state.get_entry(key) == Some(entry)));
        prop_assert_eq!(dropped, state.entry_count() - kept.len());
        prop_assert_eq!(purged.len(), state.len());
        prop_assert_eq!(purged.tombstone_count(), state.tombstone_count() - dropped);
        // The purged map behaves exactly like one built from what is left:
        // its indexes survived the slot moves.
        let mut rebuilt = LwwMap::try_from_parts(kept, state.version_vector().clone())
            .expect("a map's own entries lie within its vector");
        // Nothing left to drop; it takes the same purge frontier.
        prop_assert_eq!(rebuilt.purge_tombstones(&frontier), 0);
        assert_same(&purged, &rebuilt, "purged vs rebuilt")?;
        let nothing = VersionVector::new();
        let mut shipped = purged.delta_since(&nothing, Budget::UNLIMITED).entries().to_vec();
        let mut expected = rebuilt.delta_since(&nothing, Budget::UNLIMITED).entries().to_vec();
        shipped.sort();
        expected.sort();
        prop_assert_eq!(shipped, expected);
        for (key, entry) in later {
            purged.insert(key.clone(), entry.clone());
            rebuilt.insert(key, entry);
        }
        assert_same(&purged, &rebuilt, "purged vs rebuilt after more writes")?;
        prop_assert_eq!(purged.purge_tombstones(&frontier), rebuilt.purge_tombstones(&frontier));
        assert_same(&purged, &rebuilt, "purged vs rebuilt after a second purge")?;
        for key in KEYS {
            prop_assert_eq!(purged.get_entry(key), rebuilt.get_entry(key));
        }
    }

    #[test]
    fn map_serde_round_trip_preserves_state_and_bytes(state in any_state()) {
        let bytes = encode(&state);
        let back: Map = decode(&bytes).expect("a map's own bytes decode");
        assert_same(&back, &state, "decode(encode(map)) vs map")?;
        prop_assert_eq!(encode(&back), bytes);
    }

    #[test]
    fn delta_serde_round_trip_preserves_the_delta(
        source in any_state(),
        peer in any_vector(),
        budget in any_budget(),
    ) {
        let delta = source.delta_since(&peer, budget);
        let bytes = encode(&delta);
        let back: Result<Delta<String, String>, _> = decode(&bytes);
        prop_assert!(back.is_ok(), "{:?} does not decode: {:?}", delta, back);
        prop_assert_eq!(back.ok(), Some(delta));
    }

    #[test]
    fn decoding_a_delta_with_an_entry_beyond_covered_fails(
        covered in any_vector(),
        good in prop::collection::vec((key(), any_entry()), 0..3),
        bad_key in key(),
        bad_origin in 0u64..3,
        beyond in 1u64..4,
        bad_value in prop::option::of(value()),
        position in any::<prop::sample::Index>(),
        complete in any::<bool>(),
    ) {
        let bad_hlc = covered.get(NodeId::new(bad_origin)).as_u64() + beyond;
        let bad = Entry { stamp: stamp(bad_hlc, bad_origin), value: bad_value };
        let mut entries = good;
        let at = position.index(entries.len() + 1);
        entries.insert(at, (bad_key, bad));
        let bytes = encode(&WireDelta { entries, covered, since: VersionVector::new(), complete });
        let decoded: Result<Delta<String, String>, _> = decode(&bytes);
        prop_assert!(decoded.is_err(), "decoded {:?}", decoded);
    }

    #[test]
    fn decoding_a_delta_within_covered_succeeds(
        entries in prop::collection::vec((key(), any_entry()), 0..4),
        extra in any_vector(),
        complete in any::<bool>(),
    ) {
        let mut covered: VersionVector = entries
            .iter()
            .map(|(_, entry)| (entry.stamp.origin, entry.stamp.hlc))
            .collect();
        covered.merge(&extra);
        let bytes = encode(&WireDelta { entries: entries.clone(), covered: covered.clone(), since: VersionVector::new(), complete });
        let decoded: Delta<String, String> = decode(&bytes).expect("a valid delta decodes");
        prop_assert_eq!(decoded.entries(), &entries[..]);
        prop_assert_eq!(decoded.covered(), &covered);
        prop_assert_eq!(decoded.is_complete(), complete);
    }

    #[test]
    fn decoding_a_map_with_an_entry_beyond_its_vector_or_a_repeated_key_fails(
        state in any_state(),
        bad_key in key(),
        bad_origin in 0u64..3,
        beyond in 1u64..4,
    ) {
        let vv = state.version_vector().clone();
        let mut entries = sorted_entries(&state);
        let bad_hlc = vv.get(NodeId::new(bad_origin)).as_u64() + beyond;
        let beyond_entry = Entry::tombstone(stamp(bad_hlc, bad_origin));
        let mut too_far = entries.clone();
        too_far.retain(|(key, _)| *key != bad_key);
        too_far.push((bad_key, beyond_entry));
        let bytes = encode(&WireMap {
            entries: too_far,
            version_vector: vv.clone(),
            purged: VersionVector::new(),
        });
        prop_assert!(decode::<Map>(&bytes).is_err());
        if let Some(first) = entries.first().cloned() {
            entries.push(first);
            let bytes = encode(&WireMap {
                entries,
                version_vector: vv,
                purged: VersionVector::new(),
            });
            prop_assert!(decode::<Map>(&bytes).is_err());
        }
    }

    #[test]
    fn decoding_truncated_or_corrupted_bytes_never_panics(
        state in any_state(),
        peer in any_vector(),
        cut in any::<prop::sample::Index>(),
        flip in any::<(prop::sample::Index, u8)>(),
    ) {
        let delta = state.delta_since(&peer, Budget::UNLIMITED);
        for bytes in [encode(&state), encode(&delta)] {
            // A length prefix corrupted to something huge must meet a limit,
            // as it would on any real link, not an allocation abort.
            let truncated = &bytes[..cut.index(bytes.len())];
            let _ = decode_limited::<Map>(truncated);
            let _ = decode_limited::<Delta<String, String>>(truncated);
            let mut corrupted = bytes.clone();
            let at = flip.0.index(corrupted.len());
            corrupted[at] ^= flip.1;
            let _ = decode_limited::<Map>(&corrupted);
            let _ = decode_limited::<Delta<String, String>>(&corrupted);
        }
    }
}

/// Decodes with a 4 KiB allocation limit, so that a corrupted length prefix
/// fails instead of aborting on an impossible allocation.
fn decode_limited<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
) -> Result<T, bincode::error::DecodeError> {
    let config = bincode::config::standard().with_limit::<4096>();
    bincode::serde::decode_from_slice(bytes, config).map(|(value, _)| value)
}

/// The wire shape of an `LwwMap`, unchecked, to forge invalid ones.
#[derive(Serialize)]
struct WireMap {
    entries: Vec<Write>,
    version_vector: VersionVector,
    purged: VersionVector,
}

#[test]
fn forged_delta_shape_matches_the_real_encoding() {
    // Guards the forgery above: a real delta and its hand-built twin encode
    // to the same bytes.
    let entry = Entry::value(stamp(3, 1), "v1".to_owned());
    let real = single("a".to_owned(), entry.clone());
    let twin = WireDelta {
        entries: vec![("a".to_owned(), entry)],
        covered: [(NodeId::new(1), Hlc::from_u64(3))].into_iter().collect(),
        since: VersionVector::new(),
        complete: true,
    };
    assert_eq!(encode(&real), encode(&twin));
    let map = build(&[("a".to_owned(), Entry::tombstone(Stamp::default()))]);
    let twin = WireMap {
        entries: sorted_entries(&map),
        version_vector: map.version_vector().clone(),
        purged: VersionVector::new(),
    };
    assert_eq!(encode(&map), encode(&twin));
}

#[test]
fn regression_budget_cut_never_splits_entries_sharing_a_stamp() {
    // Two keys carrying one stamp (possible in any map built by hand, or with
    // two nodes sharing an id): a cut between them used to leave the first
    // in the delta with `covered` stopping below its stamp, a delta that its
    // own decoder rejects.
    let map = build(&[
        ("a".to_owned(), Entry::tombstone(stamp(2, 2))),
        ("b".to_owned(), Entry::tombstone(stamp(2, 2))),
        ("c".to_owned(), Entry::tombstone(stamp(2, 0))),
    ]);
    for budget in [Budget::entries(1), Budget::entries(2)] {
        let delta = map.delta_since(&VersionVector::new(), budget);
        for (key, entry) in delta.entries() {
            assert!(
                delta.covered().covers(entry.stamp),
                "{key}@{} beyond {}",
                entry.stamp,
                delta.covered()
            );
        }
        let back: Delta<String, String> = decode(&encode(&delta)).unwrap();
        assert_eq!(back, delta);
    }
    // With room for the whole group, pulling still reaches the source.
    let mut pulled = Map::new();
    for _ in 0..4 {
        pulled.apply(map.delta_since(pulled.version_vector(), Budget::entries(2)));
    }
    assert_eq!(pulled, map);
}
