//! What a node refuses, and that a refusal changes nothing.
//!
//! - A delta carrying a timestamp more than `max_clock_offset_ms` ahead of
//!   the receiver's time (in a `SynAck` or an `Ack`) is refused with
//!   `MessageError::Clock`: map, version vector, members and the open
//!   exchange stay as they were. A timestamp exactly at the limit is taken.
//! - A frame claiming to come from the node itself is refused with
//!   `MessageError::FromSelf`.
//! - A write too large to travel in one message is refused with
//!   `WriteError::TooLarge`, and nothing is written; so is every write to a
//!   node that started draining before it stops (`WriteError::Draining`).

#![allow(clippy::unwrap_used)]

mod common;

use common::member;
use gossip::{
    Ack, Config, Digest, Event, Message, MessageError, Node, Quota, StoreDelta, Syn, SynAck,
    WriteError, codec, writer_origin,
};
use lww_crdt::{ClockError, Entry, Hlc, NodeId, Stamp};

const NOW: u64 = 10_000_000;
const MAX_OFFSET: u64 = 500;
const MAX: usize = 1 << 20;

fn node() -> Node {
    let config = Config::builder(NodeId::new(0))
        .fanout(1)
        .max_clock_offset_ms(MAX_OFFSET)
        .build()
        .unwrap();
    let mut node = Node::new(config, [member(1)]);
    node.put("mine".into(), "0".into(), NOW - 100).unwrap();
    node
}

/// A one-entry delta written by node 1 at physical time `ms`.
fn delta_at(key: &str, ms: u64) -> StoreDelta {
    let stamp = Stamp::new(Hlc::new(ms, 0), writer_origin(NodeId::new(1), 0));
    let mut map = gossip::StoreMap::new();
    map.insert(key.to_owned(), Entry::value(stamp, format!("at-{ms}")));
    map.delta_since(&lww_crdt::VersionVector::new(), lww_crdt::Budget::UNLIMITED)
}

fn syn_ack(exchange: u64, delta: StoreDelta) -> Vec<u8> {
    let message = Message::SynAck(SynAck {
        exchange,
        incarnation: 0,
        delta,
        digest: Digest::Hash(0),
        wants_vector: false,
        members: None,
        members_hash: 0,
        time_ms: None,
        refusal: None,
    });
    codec::encode(&message, MAX).unwrap()
}

type Snapshot = (
    gossip::StoreMap,
    lww_crdt::VersionVector,
    Vec<gossip::Member>,
);

fn snapshot(node: &Node) -> Snapshot {
    (
        node.map().clone(),
        node.version_vector().clone(),
        node.members(),
    )
}

#[test]
fn a_far_future_timestamp_in_a_syn_ack_is_refused_and_changes_nothing() {
    let mut a = node();
    a.handle_tick(NOW);
    let exchange = a.poll_transmit().expect("a Syn").exchange;
    let before = snapshot(&a);
    let rejected = a.metrics().messages_rejected;

    let far = syn_ack(exchange, delta_at("far", NOW + MAX_OFFSET + 1));
    let result = a.handle_message(NodeId::new(1), &far, NOW);
    assert!(
        matches!(
            result,
            Err(MessageError::Clock {
                source: ClockError::TooFarAhead { ahead_ms: 501, .. },
                ..
            })
        ),
        "{result:?}"
    );
    assert_eq!(snapshot(&a), before);
    assert_eq!(a.metrics().messages_rejected, rejected + 1);
    assert_eq!(a.metrics().exchanges_completed, 0);
    assert!(a.poll_transmit().is_none());
    // The caller is told, to log it.
    let refused: Vec<Event> = std::iter::from_fn(|| a.poll_event())
        .filter(|event| matches!(event, Event::ClockRefused { .. }))
        .collect();
    assert_eq!(
        refused,
        [Event::ClockRefused {
            from: NodeId::new(1),
            ahead_ms: 501
        }]
    );

    // The exchange is still open, and a timestamp right at the limit is
    // taken.
    let edge = syn_ack(exchange, delta_at("edge", NOW + MAX_OFFSET));
    a.handle_message(NodeId::new(1), &edge, NOW).unwrap();
    assert_eq!(a.get("edge"), Some("at-10000500"));
    assert_eq!(a.get("far"), None);
    assert_eq!(a.metrics().exchanges_completed, 1);
}

#[test]
fn a_far_future_timestamp_in_an_ack_is_refused_and_changes_nothing() {
    let mut a = node();
    // Node 1 opens an exchange; node 0 answers and waits for the Ack.
    let syn = Message::Syn(Syn {
        exchange: 7,
        incarnation: 0,
        flags: Default::default(),
        digest: Digest::Full(Default::default()),
        members_hash: 0,
        max_message_bytes: Some(MAX as u32),
    });
    a.handle_message(NodeId::new(1), &codec::encode(&syn, MAX).unwrap(), NOW)
        .unwrap();
    assert!(a.poll_transmit().is_some());
    let ack = |delta| {
        let message = Message::Ack(Ack {
            exchange: 7,
            incarnation: 0,
            from_initiator: true,
            delta,
            vector: None,
            members: None,
        });
        codec::encode(&message, MAX).unwrap()
    };
    let before = snapshot(&a);
    let result = a.handle_message(NodeId::new(1), &ack(delta_at("far", NOW + 60_000)), NOW);
    assert!(
        matches!(result, Err(MessageError::Clock { .. })),
        "{result:?}"
    );
    assert_eq!(snapshot(&a), before);

    a.handle_message(NodeId::new(1), &ack(delta_at("near", NOW + 10)), NOW)
        .unwrap();
    assert_eq!(a.get("near"), Some("at-10000010"));
}

#[test]
fn a_far_future_timestamp_is_refused_even_for_an_exchange_that_is_not_open() {
    let mut a = node();
    let before = snapshot(&a);
    let far = syn_ack(99, delta_at("far", u64::MAX >> 16));
    let result = a.handle_message(NodeId::new(1), &far, NOW);
    assert!(
        matches!(result, Err(MessageError::Clock { .. })),
        "{result:?}"
    );
    assert_eq!(snapshot(&a), before);
    // A write made after the refusal is stamped by local time, not by the
    // refused timestamp.
    let stamp = a.put("after".into(), "x".into(), NOW).unwrap();
    assert!(stamp.hlc.physical_ms() <= NOW);
}

#[test]
fn a_frame_claiming_to_come_from_the_node_itself_is_refused() {
    let mut a = node();
    let before = snapshot(&a);
    let frame = syn_ack(0, delta_at("self", NOW));
    let result = a.handle_message(NodeId::new(0), &frame, NOW);
    assert!(matches!(result, Err(MessageError::FromSelf(id)) if id == NodeId::new(0)));
    assert_eq!(snapshot(&a), before);
}

#[test]
fn a_write_too_large_for_a_message_is_refused_and_writes_nothing() {
    let config = Config::builder(NodeId::new(0))
        .max_message_bytes(1_024)
        .build()
        .unwrap();
    let mut a = Node::new(config, [member(1)]);
    let big = "x".repeat(1_024);
    assert!(matches!(
        a.put("k".into(), big.clone(), NOW),
        Err(WriteError::TooLarge { .. })
    ));
    assert!(matches!(
        a.delete(big, NOW),
        Err(WriteError::TooLarge { .. })
    ));
    assert!(a.map().is_empty());
    assert!(a.version_vector().is_empty());
    // Something that fits goes through and travels.
    a.put("k".into(), "x".repeat(400), NOW).unwrap();
}

#[test]
fn a_draining_node_refuses_writes_and_changes_nothing() {
    let mut node = node();
    let before = node.map().clone();
    node.start_draining();
    assert!(node.is_draining());
    assert_eq!(
        node.put("k".into(), "v".into(), NOW),
        Err(WriteError::Draining)
    );
    assert_eq!(node.delete("mine".into(), NOW), Err(WriteError::Draining));
    assert_eq!(node.map(), &before);
    assert_eq!(node.get("mine"), Some("0"));
}

/// A node resumed from a saved state holding a stamp at the end of time
/// refuses writes rather than stamping two alike.
#[test]
fn a_node_whose_clock_is_used_up_refuses_writes() {
    let mut saved = gossip::StoreMap::new();
    saved.put(
        "k".to_owned(),
        "old".to_owned(),
        Stamp::new(Hlc::MAX, NodeId::new(1)),
    );
    let config = Config::builder(NodeId::new(0)).build().unwrap();
    let mut node = Node::with_state(config, saved, [member(1)]);
    assert_eq!(
        node.put("k".into(), "new".into(), NOW),
        Err(WriteError::ClockExhausted { last: Hlc::MAX })
    );
    assert_eq!(
        node.delete("k".into(), NOW),
        Err(WriteError::ClockExhausted { last: Hlc::MAX })
    );
    assert_eq!(node.get("k"), Some("old"));
}

/// Quotas count what the node holds, its saved state included; a full
/// node refuses writes that add keys or bytes, changes nothing doing so,
/// and still takes deletes and writes that shrink the data.
#[test]
fn a_full_node_refuses_new_data_but_takes_deletes_and_shrinking_writes() {
    let mut saved = gossip::StoreMap::new();
    saved.put(
        "a".to_owned(),
        "0123456789".to_owned(),
        Stamp::new(Hlc::new(NOW - 1_000, 0), NodeId::new(1)),
    );
    let config = Config::builder(NodeId::new(0))
        .max_keys(Some(3))
        .max_data_bytes(Some(40))
        .build()
        .unwrap();
    let mut node = Node::with_state(config, saved, [member(1)]);
    node.put("b".into(), "x".repeat(20), NOW).unwrap();
    let before = snapshot(&node);
    assert_eq!(
        node.put("c".into(), "x".repeat(8), NOW),
        Err(WriteError::StoreFull {
            quota: Quota::DataBytes,
            held: 32,
            max: 40
        })
    );
    assert_eq!(snapshot(&node), before);
    node.put("c".into(), "x".repeat(7), NOW).unwrap();
    assert_eq!(
        node.put("d".into(), String::new(), NOW),
        Err(WriteError::StoreFull {
            quota: Quota::Keys,
            held: 3,
            max: 3
        })
    );
    node.put("b".into(), "y".into(), NOW).unwrap();
    node.delete("a".into(), NOW).unwrap();
    node.put("d".into(), "z".into(), NOW).unwrap();
    assert_eq!(node.map().len(), 3);
}
