//! Replication over well-formed histories: 2-4 replicas with distinct ids
//! share a physical clock that jumps forwards, backwards or stands still,
//! write, delete, and exchange deltas and whole states in random order.
//!
//! Proves that an unbudgeted delta brings a peer exactly to the join, that
//! repeated budgeted deltas get there too with progress at every step, and
//! that the version-vector invariant holds after every step — strictly
//! without budgeted deltas, and up to undelivered superseding writes with
//! them — with tombstone purges at the meet of all vectors in the mix.
//!
//! Stale (delayed, duplicated) deltas are mixed with everything but bare
//! purges at the meet: a delta computed before such a purge and delivered
//! after it can carry a value the purged tombstone had beaten, for a key the
//! receiver no longer remembers, and the meet knows nothing of deltas still
//! in flight (`purge_tombstones` leaves that to its caller). Settled purges
//! (`purge_settled_tombstones`) need no such care: the model-based history
//! mixes them with stale deltas and merges of old snapshots, and checks
//! after every step that no replica holds a value beaten by a write it
//! covers.

mod common;

use common::{Map, Mix, Sim, encode, history, join, reads, reference, reference_reads, show};
use lww_crdt::Budget;
use proptest::prelude::*;

const UNBUDGETED: Mix = Mix {
    stale: true,
    budgeted: false,
    purge: false,
    ahead: false,
    settled: false,
};

/// `b` after applying `a`'s delta for it must equal `b ⊔ a`, by `==` and by
/// bytes.
fn check_delta_completeness(sim: &Sim) -> Result<(), TestCaseError> {
    for a in &sim.replicas {
        for b in &sim.replicas {
            let mut pulled: Map = b.map().clone();
            pulled.apply(a.delta_since(b.version_vector(), Budget::UNLIMITED));
            let joined = join(b.map(), a.map());
            prop_assert!(
                pulled == joined,
                "{} pulling from {}:\n pulled: {}\n joined: {}\n      a: {}",
                b.id(),
                a.id(),
                show(&pulled),
                show(&joined),
                show(a.map())
            );
            prop_assert_eq!(encode(&pulled), encode(&joined));
        }
    }
    Ok(())
}

/// Pulls budgeted deltas from `a` into a copy of `b` until one is complete,
/// asserting each incomplete one moved the vector; the result must equal
/// `b ⊔ a`.
fn check_budgeted_pull(sim: &Sim, budget: Budget) -> Result<(), TestCaseError> {
    for a in &sim.replicas {
        for b in &sim.replicas {
            let mut pulled: Map = b.map().clone();
            let bound = a.map().entry_count() + a.version_vector().len() + 2;
            let mut rounds = 0;
            loop {
                let delta = a.map().delta_since(pulled.version_vector(), budget);
                prop_assert!(delta.len() <= budget.max_entries);
                if budget.max_bytes != usize::MAX {
                    prop_assert!(
                        encode(&delta).len() <= budget.max_bytes,
                        "{} bytes over a budget of {}",
                        encode(&delta).len(),
                        budget.max_bytes
                    );
                }
                let complete = delta.is_complete();
                let before = pulled.version_vector().clone();
                pulled.apply(delta);
                if complete {
                    break;
                }
                prop_assert!(
                    pulled.version_vector() != &before,
                    "an incomplete delta from {} to {} made no progress at {}",
                    a.id(),
                    b.id(),
                    before
                );
                rounds += 1;
                prop_assert!(rounds <= bound, "no end after {} rounds", rounds);
            }
            let rest = a.map().delta_since(pulled.version_vector(), budget);
            prop_assert!(rest.is_complete() && rest.is_empty() && rest.covered().is_empty());
            let joined = join(b.map(), a.map());
            prop_assert!(
                pulled == joined,
                "{} pulling from {} at {:?}:\n pulled: {}\n joined: {}",
                b.id(),
                a.id(),
                budget,
                show(&pulled),
                show(&joined)
            );
            prop_assert_eq!(encode(&pulled), encode(&joined));
        }
    }
    Ok(())
}

/// Runs `ops`, checking the invariant after every step.
fn run_checked(
    sim: &mut Sim,
    ops: &[common::Op],
    allow_undelivered: bool,
) -> Result<(), TestCaseError> {
    for (step, op) in ops.iter().enumerate() {
        sim.run(op);
        if let Err(message) = sim.check_invariant(allow_undelivered) {
            return Err(TestCaseError::fail(format!(
                "after step {step} ({op:?}): {message}"
            )));
        }
    }
    Ok(())
}

/// After a full unbudgeted exchange every replica reads what the sequential
/// model of all logged writes reads, and all vectors are equal.
fn check_convergence(sim: &mut Sim) -> Result<(), TestCaseError> {
    sim.sync_all();
    let expected = reference_reads(&reference(&sim.log));
    let vv = sim.replicas[0].version_vector().clone();
    for replica in &sim.replicas {
        prop_assert_eq!(
            reads(replica.map()),
            expected.clone(),
            "replica {} after full sync: {}",
            replica.id(),
            show(replica.map())
        );
        prop_assert_eq!(replica.version_vector(), &vv);
    }
    Ok(())
}

proptest! {
    #[test]
    fn unbudgeted_delta_brings_a_peer_to_the_join((ids, ops) in history(UNBUDGETED, 40)) {
        let mut sim = Sim::new(&ids);
        for op in &ops {
            sim.run(op);
            check_delta_completeness(&sim)?;
        }
    }

    #[test]
    fn budgeted_deltas_reach_the_join_with_progress_every_round(
        (ids, ops) in history(UNBUDGETED, 40),
        bytes in common::MIN_PROGRESS_BYTES..common::MIN_PROGRESS_BYTES + 60,
    ) {
        let mut sim = Sim::new(&ids);
        for op in &ops {
            sim.run(op);
        }
        for budget in [Budget::entries(1), Budget::entries(2), Budget::bytes(bytes)] {
            check_budgeted_pull(&sim, budget)?;
        }
    }

    #[test]
    fn strict_vector_invariant_holds_without_budgeted_deltas(
        (ids, ops) in history(Mix { stale: false, budgeted: false, purge: true, ahead: false, settled: false }, 60),
    ) {
        let mut sim = Sim::new(&ids);
        run_checked(&mut sim, &ops, false)?;
        check_convergence(&mut sim)?;
        prop_assert!(sim.check_invariant(false).is_ok());
    }

    #[test]
    fn strict_vector_invariant_holds_with_stale_duplicated_deltas(
        (ids, ops) in history(Mix { stale: true, budgeted: false, purge: false, ahead: false, settled: false }, 40),
    ) {
        let mut sim = Sim::new(&ids);
        run_checked(&mut sim, &ops, false)?;
        check_convergence(&mut sim)?;
    }

    #[test]
    fn vector_invariant_holds_with_budgeted_deltas_and_purges(
        (ids, ops) in history(Mix { stale: false, budgeted: true, purge: true, ahead: false, settled: false }, 60),
    ) {
        let mut sim = Sim::new(&ids);
        run_checked(&mut sim, &ops, true)?;
        check_convergence(&mut sim)?;
        // Once everything is delivered the strict form holds again.
        prop_assert!(sim.check_invariant(false).is_ok(), "{:?}", sim.check_invariant(false));
    }

    #[test]
    fn vector_invariant_holds_with_deltas_sent_ahead_lost_and_reordered(
        (ids, ops) in history(Mix { stale: true, budgeted: true, purge: false, ahead: true, settled: false }, 60),
    ) {
        // Deltas computed past those still in flight arrive before them,
        // after them, twice or never: no replica may claim a write it lacks.
        let mut sim = Sim::new(&ids);
        run_checked(&mut sim, &ops, true)?;
        check_convergence(&mut sim)?;
        prop_assert!(sim.check_invariant(false).is_ok(), "{:?}", sim.check_invariant(false));
    }
}

proptest! {
    #[test]
    fn settled_purges_are_safe_alongside_late_deltas_and_old_snapshots(
        (ids, ops) in history(
            Mix { stale: true, budgeted: false, purge: false, ahead: false, settled: true },
            80,
        ),
    ) {
        let mut sim = Sim::new(&ids);
        run_checked(&mut sim, &ops, false)?;
        // Messages stop: what is in flight lands, then everyone syncs.
        sim.deliver_all();
        prop_assert!(sim.check_invariant(false).is_ok(), "{:?}", sim.check_invariant(false));
        check_convergence(&mut sim)?;
    }
}

proptest! {
    #[test]
    fn settled_purges_are_safe_alongside_budgeted_deltas_sent_ahead_and_reordered(
        (ids, ops) in history(
            Mix { stale: true, budgeted: true, purge: false, ahead: true, settled: true },
            80,
        ),
    ) {
        let mut sim = Sim::new(&ids);
        run_checked(&mut sim, &ops, true)?;
        sim.deliver_all();
        check_convergence(&mut sim)?;
        prop_assert!(sim.check_invariant(false).is_ok(), "{:?}", sim.check_invariant(false));
    }
}
