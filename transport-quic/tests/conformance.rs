//! One conformance suite for every `gossip::Transport`, run against the
//! in-memory transport and the QUIC transport.

// Test helpers unwrap like the tests they serve (clippy.toml allows it
// inside #[test] functions only).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use gossip::{MessageKind, Transmit, Transport, TransportError};
use lww_crdt::NodeId;
use transport_mem::{Faults, MemNetwork};
use transport_quic::certs::ClusterCa;

use common::{quic_cluster, receive, test_config};

const LIMIT: Duration = Duration::from_secs(15);

/// A frame sent as the exchange's initiator, except a `SynAck`.
fn transmit(to: NodeId, kind: MessageKind, exchange: u64, payload: &[u8]) -> Transmit {
    transmit_as(to, kind, kind != MessageKind::SynAck, exchange, payload)
}

fn transmit_as(
    to: NodeId,
    kind: MessageKind,
    from_initiator: bool,
    exchange: u64,
    payload: &[u8],
) -> Transmit {
    Transmit {
        to,
        kind,
        exchange,
        from_initiator,
        payload: payload.to_vec(),
    }
}

/// Runs every check, each on fresh transports from `make(n)`, which must
/// return `n` connected transports with ids `0..n`.
fn conformance<T: Transport>(make: impl Fn(usize) -> Vec<T>) {
    frames_arrive_intact_with_their_sender(make(3));
    an_exchange_travels_both_ways(make(2));
    unknown_peers_are_refused(make(2));
    idle_receive_returns_none(make(2));
}

fn frames_arrive_intact_with_their_sender<T: Transport>(mut t: Vec<T>) {
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let payloads: Vec<Vec<u8>> = vec![b"one".to_vec(), vec![0xff; 1], big];
    for (i, payload) in payloads.iter().enumerate() {
        t[0].send(transmit(
            NodeId::new(2),
            MessageKind::Syn,
            i as u64,
            payload,
        ))
        .unwrap();
    }
    t[1].send(transmit(NodeId::new(2), MessageKind::Syn, 0, b"from one"))
        .unwrap();
    let got = receive(&mut t[2], 4, LIMIT);
    let got: BTreeSet<(u64, Vec<u8>)> = got
        .into_iter()
        .map(|incoming| (incoming.from.get(), incoming.payload))
        .collect();
    let mut want: BTreeSet<(u64, Vec<u8>)> = payloads.into_iter().map(|p| (0, p)).collect();
    want.insert((1, b"from one".to_vec()));
    assert_eq!(got, want);
}

fn an_exchange_travels_both_ways<T: Transport>(mut t: Vec<T>) {
    let (a, b) = (NodeId::new(0), NodeId::new(1));
    let steps = [
        (0, b, MessageKind::Syn, &b"syn"[..]),
        (1, a, MessageKind::SynAck, &b"synack"[..]),
        (0, b, MessageKind::Ack, &b"ack from initiator"[..]),
        (1, a, MessageKind::Ack, &b"ack from responder"[..]),
    ];
    for (sender, to, kind, payload) in steps {
        t[sender]
            .send(transmit_as(to, kind, sender == 0, 42, payload))
            .unwrap();
        let receiver = 1 - sender;
        let got = receive(&mut t[receiver], 1, LIMIT);
        assert_eq!(got.len(), 1, "{kind:?} did not arrive");
        assert_eq!(got[0].from, NodeId::new(sender as u64));
        assert_eq!(got[0].payload, payload);
    }
}

fn unknown_peers_are_refused<T: Transport>(mut t: Vec<T>) {
    let stranger = NodeId::new(999);
    match t[0].send(transmit(stranger, MessageKind::Syn, 1, b"hello?")) {
        Err(TransportError::UnknownPeer(id)) => assert_eq!(id, stranger),
        other => panic!("expected UnknownPeer, got {other:?}"),
    }
}

fn idle_receive_returns_none<T: Transport>(mut t: Vec<T>) {
    let start = Instant::now();
    assert!(matches!(
        t[1].recv_timeout(Duration::from_millis(50)),
        Ok(None)
    ));
    assert!(start.elapsed() >= Duration::from_millis(40));
    assert!(matches!(t[1].recv_timeout(Duration::ZERO), Ok(None)));
}

#[test]
fn mem_transport_conforms() {
    conformance(|n| MemNetwork::new(n, Faults::NONE, 7).1);
}

#[test]
fn quic_transport_conforms() {
    let ca = ClusterCa::generate().unwrap();
    let config = test_config();
    conformance(|n| quic_cluster(&ca, n as u64, &config));
}
