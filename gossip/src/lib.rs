//! Push-pull anti-entropy for the `lww-crdt` map, as a sans-IO state machine.
//!
//! A [`Node`] holds one replica and gossips it: every tick it opens an
//! exchange with a few random peers, and each exchange sends each side only
//! the entries the other lacks, judged by version vectors. It reads no clock,
//! owns no socket and spawns no thread: the caller feeds it time and frames and
//! carries its output, so the same code runs in a deterministic simulation, in
//! threads over in-memory channels and over QUIC. It is not a transport; see
//! the [`Transport`] trait and the `transport-mem` and `transport-quic`
//! crates.
//!
//! # Example
//!
//! Two nodes, with frames carried by hand:
//!
//! ```
//! use gossip::{Config, Member, Node};
//! use lww_crdt::NodeId;
//!
//! let member = |id| Member { id: NodeId::new(id), address: String::new() };
//! let mut a = Node::new(Config::builder(NodeId::new(1)).build()?, [member(2)]);
//! let mut b = Node::new(Config::builder(NodeId::new(2)).build()?, [member(1)]);
//!
//! a.put("greeting".into(), "hello".into(), 1_000)?;
//! a.handle_tick(1_000); // opens an exchange with b
//! // Carry frames until both sides fall quiet.
//! loop {
//!     let mut quiet = true;
//!     while let Some(t) = a.poll_transmit() {
//!         b.handle_message(a.id(), &t.payload, 1_001)?;
//!         quiet = false;
//!     }
//!     while let Some(t) = b.poll_transmit() {
//!         a.handle_message(b.id(), &t.payload, 1_001)?;
//!         quiet = false;
//!     }
//!     if quiet {
//!         break;
//!     }
//! }
//! assert_eq!(b.get("greeting"), Some("hello"));
//! assert_eq!(a.map(), b.map());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The exchange
//!
//! 1. `Syn`: the initiator's digest: a hash of its version vector when it
//!    believes the peer holds the same one, the whole vector otherwise.
//! 2. `SynAck`: the entries the initiator lacks and the responder's digest;
//!    when the hashes match, just the hash, and the exchange ends here.
//! 3. `Ack`: the entries the responder lacks, sent even empty after a
//!    `SynAck` that was more than a matching hash, so that the responder
//!    knows the exchange is over. If the `Syn` carried a hash that did not
//!    match, the `SynAck` asks for the vector and the `Ack` carries it; the
//!    responder then answers with one more `Ack`.
//!
//! Every message fits `max_message_bytes`: deltas are cut to the room left,
//! between entries, and the next exchange resumes where the cut fell.
//!
//! # Features
//!
//! - `internals` (off by default): makes the messages of an exchange
//!   (`Message`, `Syn`, `SynAck`, `Ack` and what they carry) and the
//!   `codec` module's `encode` and `decode` over them public. The wire
//!   format is no stable API: a caller drives a [`Node`] with frames it
//!   does not read. The feature is for tests and fuzzers that craft or
//!   read frames, such as this crate's own and those of `transport-quic`.
//!
//! # Layout
//!
//! - `config`: [`Config`], its presets ([`Config::for_interval`]) and its
//!   validation.
//! - `message`: the messages of an exchange.
//! - `codec`: the wire format, the only module naming the serializer, and
//!   its size bounds, by which a node cuts deltas to fit its messages.
//! - `membership`: members, liveness and peer selection.
//! - `node`: the [`Node`] state machine, one rule per file: the exchange,
//!   the final `Ack`s, the per-peer delta pipeline (hash digests, deltas in
//!   flight, held parts, pulling; each can be switched off with
//!   [`Optimisations`]), applying deltas, message limits, tombstone
//!   collection, clock checks. docs/design.md, "A map of the core", maps
//!   the files and the order of calls.
//! - `metrics`: per-node counters.
//! - `transport`: the [`Transport`] trait.
//! - `persist`: the [`Persist`] trait, for a durable copy of the map.
//! - `driver`: runs a node over a transport on its own thread, and hands
//!   its events to the caller.
//! - `hash`: [`splitmix_finish`], the mixing step of every stable hash
//!   (membership, version vectors, the daemon's content hash).
//! - `lock`: [`lock`], a mutex lock that outlives a panicking holder, for
//!   every crate that shares state between threads.

#![forbid(unsafe_code)]

#[cfg(feature = "internals")]
pub mod codec;
#[cfg(not(feature = "internals"))]
// Its frame functions and their error are public with `internals` only.
#[allow(unreachable_pub)]
mod codec;
mod config;
mod driver;
mod hash;
mod lock;
mod membership;
// The messages are public with `internals` only.
#[cfg_attr(not(feature = "internals"), allow(unreachable_pub))]
mod message;
mod metrics;
mod node;
mod persist;
mod transport;

pub use codec::DecodeError;
pub use config::{
    Config, ConfigBuilder, ConfigError, HARD_MAX_MESSAGE_BYTES, MAX_PULL_DEPTH,
    MIN_MAX_MESSAGE_BYTES, Optimisations,
};
pub use driver::{
    ChangeSink, Driver, EventReceiver, NodeHandle, Output, spawn, spawn_driver, spawn_with_events,
};
pub use hash::splitmix_finish;
pub use lock::lock;
pub use membership::{Liveness, PeerState, SharedPeers};
#[cfg(feature = "internals")]
pub use message::{
    Ack, Departure, Digest, MemberList, Message, Refusal, StoreDelta, Syn, SynAck, SynFlags,
};
pub use message::{Member, MessageKind};
pub use metrics::{Metrics, Traffic};
pub use node::{
    Change, ClockStatus, Event, ExchangeEnd, MessageError, MessageLimits, Node, Quota, StoreMap,
    Transmit, WriteError, origin_member, vector_hash, writer_origin,
};
pub use persist::{Persist, PersistError};
pub use transport::{Incoming, Transport, TransportError};
