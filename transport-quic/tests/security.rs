//! Hostile peers: no certificate, another CA's, a stolen identity claim,
//! the wrong protocol for a certificate, oversize frames, random bytes.
//! In every case the refusal is logged with the peer's address, the node
//! stays up, and a well-behaved peer keeps being served without loss.

// Test helpers unwrap like the tests they serve (clippy.toml allows it
// inside #[test] functions only).
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use gossip::{Config, Member, MessageKind, Node, Transmit, Transport};
use lww_crdt::{NodeId, SystemClock};
use rand::{RngCore, SeedableRng};
use transport_quic::certs::{ClusterCa, node_name};
use transport_quic::{CLIENT_ALPN, DEFAULT_MAX_FRAME_BYTES, QuicTransport, tls, wire};

use common::{
    Raw, app_close_code, capture_logs, eventually, frame, logged, quic_cluster, receive,
    test_config,
};

const LIMIT: Duration = Duration::from_secs(15);

/// Node 1 under attack, node 2 well-behaved.
struct Fixture {
    ca: ClusterCa,
    victim: QuicTransport,
    friend: QuicTransport,
    next_exchange: u64,
}

impl Fixture {
    fn new() -> Fixture {
        capture_logs();
        let ca = ClusterCa::generate().unwrap();
        let victim = QuicTransport::builder(
            ca.issue_node(NodeId::new(1), &[]).unwrap(),
            ca.cert().clone(),
        )
        .config(test_config())
        .serve_clients(true)
        .build()
        .unwrap();
        let friend = QuicTransport::builder(
            ca.issue_node(NodeId::new(2), &[]).unwrap(),
            ca.cert().clone(),
        )
        .config(test_config())
        .peer(NodeId::new(1), victim.local_addr())
        .build()
        .unwrap();
        victim.add_peer(NodeId::new(2), friend.local_addr());
        Fixture {
            ca,
            victim,
            friend,
            next_exchange: 0,
        }
    }

    fn addr(&self) -> std::net::SocketAddr {
        self.victim.local_addr()
    }

    /// Node 2 sends `count` frames to node 1 and gets one back: all arrive,
    /// with the right sender.
    fn still_serving(&mut self, count: usize) {
        let mut sent = Vec::new();
        for _ in 0..count {
            self.next_exchange += 1;
            let payload = format!("friendly {}", self.next_exchange).into_bytes();
            self.friend
                .send(Transmit {
                    to: NodeId::new(1),
                    kind: MessageKind::Syn,
                    exchange: self.next_exchange,
                    from_initiator: true,
                    payload: payload.clone(),
                })
                .unwrap();
            sent.push(payload);
        }
        let mut got: Vec<Vec<u8>> = receive(&mut self.victim, count, LIMIT)
            .into_iter()
            .map(|incoming| {
                assert_eq!(incoming.from, NodeId::new(2));
                incoming.payload
            })
            .collect();
        got.sort();
        sent.sort();
        assert_eq!(got, sent, "node 1 lost frames from its friend");
        self.victim
            .send(Transmit {
                to: NodeId::new(2),
                kind: MessageKind::SynAck,
                exchange: self.next_exchange,
                from_initiator: false,
                payload: b"still here".to_vec(),
            })
            .unwrap();
        let back = receive(&mut self.friend, 1, LIMIT);
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].from, NodeId::new(1));
        assert_eq!(back[0].payload, b"still here");
    }
}

fn header(exchange: u64) -> Vec<u8> {
    wire::encode_stream_header(wire::StreamHeader {
        exchange,
        opener_initiated: true,
    })
    .to_vec()
}

#[test]
fn a_peer_without_a_certificate_is_refused_at_the_handshake() {
    let mut fx = Fixture::new();
    let raw = Raw::new();
    let mut tls = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates({
            let mut roots = rustls::RootCertStore::empty();
            roots.add(fx.ca.cert().der().clone()).unwrap();
            roots
        })
        .with_no_client_auth();
    tls.alpn_protocols = vec![transport_quic::PEER_ALPN.to_vec()];
    if let Ok(conn) = raw.connect(tls, fx.addr(), &node_name(NodeId::new(1))) {
        // TLS 1.3 clients finish first; the server's refusal follows.
        raw.closed(&conn);
    }
    assert!(eventually(LIMIT, || fx.victim.stats().handshakes_refused == 1));
    let peer = raw.local_addr().to_string();
    assert!(logged(&["refused connection", &peer]));
    fx.still_serving(3);
}

#[test]
fn a_certificate_from_another_ca_is_refused_both_ways() {
    let mut fx = Fixture::new();
    let other = ClusterCa::generate().unwrap();
    // Another CA's node 2 dials node 1 (it even trusts node 1's CA).
    let raw = Raw::new();
    let forged = other.issue_node(NodeId::new(2), &[]).unwrap();
    let tls = tls::peer_client_config(&forged, fx.ca.cert()).unwrap();
    if let Ok(conn) = raw.connect(tls, fx.addr(), &node_name(NodeId::new(1))) {
        raw.closed(&conn);
    }
    assert!(eventually(LIMIT, || fx.victim.stats().handshakes_refused == 1));
    assert!(logged(&[
        "refused connection",
        &raw.local_addr().to_string()
    ]));
    // Node 1 dials a node of another CA: it does not trust it, and sends it
    // nothing.
    let mut stranger = QuicTransport::builder(
        other.issue_node(NodeId::new(3), &[]).unwrap(),
        other.cert().clone(),
    )
    .config(test_config())
    .build()
    .unwrap();
    fx.victim.add_peer(NodeId::new(3), stranger.local_addr());
    fx.victim
        .send(Transmit {
            to: NodeId::new(3),
            kind: MessageKind::Syn,
            exchange: 1,
            from_initiator: true,
            payload: b"secret".to_vec(),
        })
        .unwrap();
    assert!(eventually(LIMIT, || fx.victim.stats().connect_failures >= 1));
    assert!(receive(&mut stranger, 1, Duration::from_millis(300)).is_empty());
    assert_eq!(fx.victim.stats().frames_sent, 0);
    fx.still_serving(3);
}

#[test]
fn a_peer_claiming_another_node_id_is_refused() {
    let mut fx = Fixture::new();
    let raw = Raw::new();
    // A valid certificate for node 2 whose hello claims node 3.
    let conn = raw.connect_as(
        &fx.ca.issue_node(NodeId::new(2), &[]).unwrap(),
        &fx.ca,
        fx.addr(),
        NodeId::new(1),
        NodeId::new(3),
    );
    // Whatever it sends meanwhile is never delivered.
    let mut bytes = header(1);
    bytes.extend(frame(b"I am node 3"));
    let _ = raw.runtime.block_on(async {
        let (mut send, _recv) = conn.open_bi().await?;
        send.write_all(&bytes)
            .await
            .map_err(|_| quinn::ConnectionError::LocallyClosed)
    });
    let closed = raw.closed(&conn);
    assert_eq!(
        app_close_code(&closed),
        Some(u64::from(wire::CONN_IDENTITY_REFUSED))
    );
    assert_eq!(fx.victim.stats().identities_refused, 1);
    assert!(logged(&[
        "refused connection",
        "claimed=3",
        &raw.local_addr().to_string()
    ]));
    fx.still_serving(3);
    assert!(receive(&mut fx.victim, 1, Duration::from_millis(300)).is_empty());
}

#[test]
fn certificates_only_work_on_their_own_protocol() {
    let mut fx = Fixture::new();
    // The client certificate speaking the peer protocol, claiming node 2.
    let raw = Raw::new();
    let client = fx.ca.issue_client().unwrap();
    let mut tls = tls::client_config(&client, fx.ca.cert()).unwrap();
    tls.alpn_protocols = vec![transport_quic::PEER_ALPN.to_vec()];
    let conn = raw
        .connect(tls, fx.addr(), &node_name(NodeId::new(1)))
        .unwrap();
    raw.send_uni(&conn, &wire::encode_hello(NodeId::new(2)));
    assert_eq!(
        app_close_code(&raw.closed(&conn)),
        Some(u64::from(wire::CONN_IDENTITY_REFUSED))
    );
    // A node certificate speaking the client protocol.
    let raw = Raw::new();
    let node = fx.ca.issue_node(NodeId::new(2), &[]).unwrap();
    let mut tls = tls::peer_client_config(&node, fx.ca.cert()).unwrap();
    tls.alpn_protocols = vec![CLIENT_ALPN.to_vec()];
    let conn = raw
        .connect(tls, fx.addr(), &node_name(NodeId::new(1)))
        .unwrap();
    assert_eq!(
        app_close_code(&raw.closed(&conn)),
        Some(u64::from(wire::CONN_ROLE_REFUSED))
    );
    assert!(logged(&[
        "refused connection",
        &raw.local_addr().to_string()
    ]));
    assert_eq!(fx.victim.stats().identities_refused, 2);
    fx.still_serving(3);
}

#[test]
fn an_oversize_frame_resets_only_its_stream() {
    let mut fx = Fixture::new();
    let raw = Raw::new();
    let conn = raw.connect_as(
        &fx.ca.issue_node(NodeId::new(2), &[]).unwrap(),
        &fx.ca,
        fx.addr(),
        NodeId::new(1),
        NodeId::new(2),
    );
    let mut bytes = header(100);
    let too_long = u32::try_from(DEFAULT_MAX_FRAME_BYTES + 1).unwrap();
    bytes.extend(too_long.to_be_bytes());
    bytes.extend(vec![0u8; 1000]);
    let (mut send, mut recv) = raw.open_with(&conn, &bytes);
    assert_eq!(
        raw.reset_code(&mut send, &mut recv),
        Some(u64::from(wire::STREAM_FRAME_TOO_LARGE))
    );
    // The same connection still carries other exchanges.
    let mut good = header(101);
    good.extend(frame(b"within the cap"));
    let _stream = raw.open_with(&conn, &good);
    let got = receive(&mut fx.victim, 1, LIMIT);
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].from, got[0].payload.as_slice()),
        (NodeId::new(2), &b"within the cap"[..])
    );
    assert!(conn.close_reason().is_none());
    assert_eq!(fx.victim.stats().streams_rejected, 1);
    assert!(logged(&["bad frame", &raw.local_addr().to_string()]));
    fx.still_serving(3);
}

/// A node caps what peers may send it at its own largest message, not at
/// the transport's 4 MiB frame cap.
#[test]
fn frames_over_the_incoming_cap_are_refused() {
    let ca = ClusterCa::generate().unwrap();
    let victim = QuicTransport::builder(
        ca.issue_node(NodeId::new(1), &[]).unwrap(),
        ca.cert().clone(),
    )
    .config(
        common::test_config_builder()
            .max_incoming_frame_bytes(1_000)
            .build()
            .unwrap(),
    )
    .build()
    .unwrap();
    let raw = Raw::new();
    let conn = raw.connect_as(
        &ca.issue_node(NodeId::new(2), &[]).unwrap(),
        &ca,
        victim.local_addr(),
        NodeId::new(1),
        NodeId::new(2),
    );
    let mut over = header(7);
    over.extend(frame(&[1u8; 1_001]));
    let (mut send, mut recv) = raw.open_with(&conn, &over);
    assert_eq!(
        raw.reset_code(&mut send, &mut recv),
        Some(u64::from(wire::STREAM_FRAME_TOO_LARGE))
    );
    assert_eq!(victim.stats().streams_rejected, 1);
}

#[test]
fn random_bytes_are_rejected() {
    let mut fx = Fixture::new();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(99);
    let mut noise = |len: usize| {
        let mut bytes = vec![0u8; len];
        rng.fill_bytes(&mut bytes);
        bytes
    };
    let raw = Raw::new();
    let conn = raw.connect_as(
        &fx.ca.issue_node(NodeId::new(2), &[]).unwrap(),
        &fx.ca,
        fx.addr(),
        NodeId::new(1),
        NodeId::new(2),
    );
    // Noise instead of a stream header.
    let (mut send, mut recv) = raw.open_with(&conn, &noise(300));
    assert_eq!(
        raw.reset_code(&mut send, &mut recv),
        Some(u64::from(wire::STREAM_MALFORMED))
    );
    // A valid header, then a frame cut short.
    let mut cut = header(7);
    cut.extend(100u32.to_be_bytes());
    cut.extend(noise(10));
    let (mut send, mut recv) = raw.open_with(&conn, &cut);
    send.finish().unwrap();
    assert_eq!(
        raw.reset_code(&mut send, &mut recv),
        Some(u64::from(wire::STREAM_MALFORMED))
    );
    // A valid header, then an empty frame.
    let mut empty = header(8);
    empty.extend(0u32.to_be_bytes());
    let (mut send, mut recv) = raw.open_with(&conn, &empty);
    assert_eq!(
        raw.reset_code(&mut send, &mut recv),
        Some(u64::from(wire::STREAM_MALFORMED))
    );
    assert_eq!(fx.victim.stats().streams_rejected, 3);
    assert!(conn.close_reason().is_none());
    assert!(logged(&[
        "bad stream header",
        &raw.local_addr().to_string()
    ]));
    // Noise instead of a hello closes the connection.
    let raw = Raw::new();
    let node = fx.ca.issue_node(NodeId::new(2), &[]).unwrap();
    let conn = raw
        .connect(
            tls::peer_client_config(&node, fx.ca.cert()).unwrap(),
            fx.addr(),
            &node_name(NodeId::new(1)),
        )
        .unwrap();
    raw.send_uni(&conn, &noise(13));
    assert_eq!(
        app_close_code(&raw.closed(&conn)),
        Some(u64::from(wire::CONN_BAD_HELLO))
    );
    assert!(logged(&[
        "refused connection",
        &raw.local_addr().to_string()
    ]));
    // Noise on a client's request stream (whose length prefix claims more
    // than the cap).
    let raw = Raw::new();
    let tls = tls::client_config(&fx.ca.issue_client().unwrap(), fx.ca.cert()).unwrap();
    let conn = raw
        .connect(tls, fx.addr(), &node_name(NodeId::new(1)))
        .unwrap();
    let mut request = noise(64);
    request[0] = 0xff;
    let (mut send, mut recv) = raw.open_with(&conn, &request);
    assert_eq!(
        raw.reset_code(&mut send, &mut recv),
        Some(u64::from(wire::STREAM_FRAME_TOO_LARGE))
    );
    assert!(fx.victim.stats().requests_refused >= 1);
    assert!(receive(&mut fx.victim, 1, Duration::from_millis(300)).is_empty());
    fx.still_serving(3);
}

/// Gossip nodes keep converging while one of them is under attack.
#[test]
fn gossip_survives_attacks_without_loss() {
    capture_logs();
    let ca = ClusterCa::generate().unwrap();
    let transports = quic_cluster(&ca, 2, &test_config());
    let victim_addr = transports[0].local_addr();
    let victim_quic = transports[0].handle();
    let members: Vec<Member> = transports
        .iter()
        .map(|t| Member {
            id: t.id(),
            address: t.local_addr().to_string(),
        })
        .collect();
    let nodes: Vec<_> = transports
        .into_iter()
        .map(|transport| {
            let id = transport.id();
            let config = Config::builder(id)
                .tick_interval_ms(100)
                .exchange_timeout_ms(800)
                .build()
                .unwrap();
            let seeds = members.iter().filter(|m| m.id != id).cloned();
            gossip::spawn(Node::new(config, seeds), transport, SystemClock)
        })
        .collect();
    let writer = {
        let handles: Vec<_> = nodes.iter().map(|(h, _)| h.clone()).collect();
        thread::spawn(move || {
            for i in 0..40 {
                handles[i % 2]
                    .put(format!("k{i}"), format!("v{i}"))
                    .unwrap();
                thread::sleep(Duration::from_millis(20));
            }
        })
    };
    // Meanwhile: a stolen identity claim, an oversize frame, and noise.
    let raw = Arc::new(Raw::new());
    let honest_cert = ca.issue_node(NodeId::new(5), &[]).unwrap();
    // Node 5's certificate, claiming to be node 1 (the victim's real peer).
    let liar = raw.connect_as(
        &honest_cert,
        &ca,
        victim_addr,
        NodeId::new(0),
        NodeId::new(1),
    );
    assert_eq!(
        app_close_code(&raw.closed(&liar)),
        Some(u64::from(wire::CONN_IDENTITY_REFUSED))
    );
    let conn = raw.connect_as(
        &honest_cert,
        &ca,
        victim_addr,
        NodeId::new(0),
        NodeId::new(5),
    );
    let mut oversize = header(1);
    oversize.extend(u32::MAX.to_be_bytes());
    let (mut send, mut recv) = raw.open_with(&conn, &oversize);
    assert_eq!(
        raw.reset_code(&mut send, &mut recv),
        Some(u64::from(wire::STREAM_FRAME_TOO_LARGE))
    );
    let (mut send, mut recv) = raw.open_with(&conn, b"\x00\x01garbage garbage garbage");
    assert_eq!(
        raw.reset_code(&mut send, &mut recv),
        Some(u64::from(wire::STREAM_MALFORMED))
    );
    writer.join().unwrap();
    assert!(eventually(Duration::from_secs(20), || {
        (0..40).all(|i| {
            nodes
                .iter()
                .all(|(h, _)| h.get(&format!("k{i}")) == Some(format!("v{i}")))
        })
    }));
    let stats = victim_quic.stats();
    assert_eq!(stats.streams_rejected, 2, "{stats:?}");
    assert_eq!(stats.identities_refused, 1, "{stats:?}");
    for (handle, _) in &nodes {
        handle.shutdown();
    }
    for (_, thread) in nodes {
        thread.join().unwrap();
    }
}
