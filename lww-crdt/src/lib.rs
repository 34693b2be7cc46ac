//! A last-write-wins map CRDT: every replica accepts writes, replicas exchange
//! only what the other lacks, and all of them end up with the same map.
//!
//! Each write is stamped with a hybrid-logical-clock timestamp and the id of
//! the node that made it; per key, the greatest stamp wins. Merging two maps is
//! a join: commutative, associative and idempotent, so replicas converge
//! whatever order, duplication or grouping their exchanges take. A version
//! vector per replica says how far it has seen each origin's writes, so a
//! peer can be sent a [`Delta`] of exactly what it lacks, cut to a budget.
//!
//! The crate is pure data: no I/O, no threads, no clock reads except through
//! the [`PhysicalClock`] you give it. It is not a network protocol; the
//! `gossip` crate of this workspace builds one on top.
//!
//! # Example
//!
//! Two replicas write concurrently, then each pulls what it lacks from the
//! other:
//!
//! ```
//! use lww_crdt::{codec, Budget, HybridClock, ManualClock, NodeId, Replica};
//!
//! let time = ManualClock::new(1_000);
//! let mut alice: Replica<String, String, _> =
//!     Replica::new(NodeId::new(1), HybridClock::new(time.clone()));
//! let mut bob: Replica<String, String, _> =
//!     Replica::new(NodeId::new(2), HybridClock::new(time.clone()));
//!
//! alice.put("colour", "red")?;
//! alice.put("size", "L")?;
//! time.advance(5);
//! bob.put("colour", "blue")?; // later, so it wins
//! bob.delete("size")?;        // later too: the key is gone everywhere
//!
//! // Each side sends only what the other's version vector says it lacks,
//! // encoded with the crate's codec (bounded, checked decoding).
//! let to_bob = codec::encode(&alice.delta_since(bob.version_vector(), Budget::UNLIMITED))?;
//! let to_alice = codec::encode(&bob.delta_since(alice.version_vector(), Budget::UNLIMITED))?;
//! bob.apply(codec::decode(&to_bob)?)?;
//! alice.apply(codec::decode(&to_alice)?)?;
//!
//! assert_eq!(alice.get("colour").map(String::as_str), Some("blue"));
//! assert_eq!(alice.get("size"), None);
//! assert_eq!(alice.map(), bob.map());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What a caller guarantees
//!
//! - **Ids.** Each [`Replica`] writes under an id no other replica uses,
//!   and never writes again under an id it used before unless it resumes
//!   that id's saved state ([`Replica::resume`]).
//! - **Peers are trusted.** A delta's `covered` frontier is believed: a
//!   delta claiming `covered = {1: s}` with no entries makes the receiver
//!   skip origin 1's writes up to `s` for good. Accept deltas and states
//!   only from authenticated members. What decoding checks: entries lie
//!   within the frontier claimed for their origin, a map lists no key
//!   twice, and (with [`codec`]) lengths fit the input. What a replica
//!   checks: no timestamp runs further ahead of local time than the
//!   clock's maximum offset.
//! - **Tombstones** are purged only below a frontier every member has
//!   reached ([`LwwMap::purge_tombstones`] says exactly what that takes).
//!
//! # Layout
//!
//! - [`id`](NodeId) and `clock`: node ids, [`Hlc`] timestamps and the
//!   [`HybridClock`] that issues them over an injectable [`PhysicalClock`].
//! - `entry`: [`Stamp`] and [`Entry`], the totally ordered unit of state.
//! - `version_vector`: [`VersionVector`], per-origin frontiers.
//! - `map`: [`LwwMap`], storage with a per-origin index, writes, reads, the
//!   join and tombstone purging.
//! - `delta`: [`Delta`] and [`Budget`]: what a peer lacks, and applying it.
//! - [`encoded_len`]: upper bounds on encoded sizes, by which deltas are cut
//!   to a budget without encoding them: [`EncodedLen`] for keys and values,
//!   and the constants for stamps, entries, vectors and deltas.
//! - `replica`: [`Replica`], a map with an id and a clock.
//! - `serde_impl`: canonical, validated serialization of a map.
//! - [`codec`]: a safe binary encoding (bincode with allocations bounded by
//!   the input's length) for maps, deltas and vectors. Any other decoder of
//!   these types needs a size limit of its own.
//!
//! `docs/design.md` in the repository explains the ordering, the clock, the
//! vectors and why each merge law holds.

#![forbid(unsafe_code)]

mod clock;
pub mod codec;
mod delta;
pub mod encoded_len;
mod entry;
mod id;
mod map;
mod replica;
mod serde_impl;
mod version_vector;

pub use clock::{
    ClockError, DEFAULT_MAX_OFFSET_MS, Hlc, HybridClock, ManualClock, PhysicalClock, SystemClock,
};
pub use delta::{Budget, Delta, InvalidState};
pub use encoded_len::{DELTA_FRAME_LEN, EncodedLen};
pub use entry::{Entry, Stamp};
pub use id::NodeId;
pub use map::{Applied, ApplyReport, LwwMap, Weigher};
pub use replica::Replica;
pub use version_vector::VersionVector;

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
