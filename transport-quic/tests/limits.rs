//! Exhaustion: a stranger flooding handshakes, a peer hoarding streams or
//! trickling bytes, partial frames piling up, a client trickling requests.
//! Each is held to its own share, and everyone else is still served.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use gossip::{MessageKind, Transmit, Transport};
use lww_crdt::NodeId;
use transport_quic::certs::{ClusterCa, node_name};
use transport_quic::{CLIENT_ALPN, QuicClient, QuicConfig, QuicTransport, tls, wire};

use common::{Raw, frame, receive, test_config_builder};

const LIMIT: Duration = Duration::from_secs(15);

fn header(exchange: u64) -> Vec<u8> {
    wire::encode_stream_header(wire::StreamHeader {
        exchange,
        opener_initiated: true,
    })
    .to_vec()
}

fn node(ca: &ClusterCa, id: u64, config: QuicConfig) -> QuicTransport {
    QuicTransport::builder(
        ca.issue_node(NodeId::new(id), &[]).unwrap(),
        ca.cert().clone(),
    )
    .config(config)
    .serve_clients(true)
    .build()
    .unwrap()
}

/// Node 1 (the victim), node 2 (a well-behaved peer that knows it), and a
/// raw connection to node 1 authenticated as node 3.
fn victim_friend_and_intruder(
    ca: &ClusterCa,
    config: QuicConfig,
) -> (QuicTransport, QuicTransport, Raw, quinn::Connection) {
    let victim = node(ca, 1, config.clone());
    let friend = QuicTransport::builder(
        ca.issue_node(NodeId::new(2), &[]).unwrap(),
        ca.cert().clone(),
    )
    .config(config)
    .peer(NodeId::new(1), victim.local_addr())
    .build()
    .unwrap();
    let raw = Raw::new();
    let conn = raw.connect_as(
        &ca.issue_node(NodeId::new(3), &[]).unwrap(),
        ca,
        victim.local_addr(),
        NodeId::new(1),
        NodeId::new(3),
    );
    (victim, friend, raw, conn)
}

/// Node 2 sends node 1 `count` frames on fresh exchanges; all arrive.
fn exchanges_get_through(from: &mut QuicTransport, to: &mut QuicTransport, first: u64, count: u64) {
    for exchange in first..first + count {
        from.send(Transmit {
            to: NodeId::new(1),
            kind: MessageKind::Syn,
            exchange,
            from_initiator: true,
            payload: format!("friendly {exchange}").into_bytes(),
        })
        .unwrap();
    }
    let got = receive(to, usize::try_from(count).unwrap(), LIMIT);
    assert_eq!(got.len(), usize::try_from(count).unwrap(), "frames lost");
    assert!(got.iter().all(|incoming| incoming.from == NodeId::new(2)));
}

/// Forwards what it receives to `target` from 127.0.0.2 and drops every
/// answer: the handshakes it carries never complete, and a Retry sent
/// back never arrives, as with a flood of spoofed or half-open
/// handshakes.
fn one_way_relay(target: SocketAddr) -> SocketAddr {
    let inbound = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let outbound = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 2), 0)).unwrap();
    let addr = inbound.local_addr().unwrap();
    inbound
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    thread::spawn(move || {
        let started = Instant::now();
        let mut buf = [0u8; 2048];
        while started.elapsed() < Duration::from_secs(20) {
            if let Ok((len, _)) = inbound.recv_from(&mut buf) {
                let _ = outbound.send_to(&buf[..len], target);
            }
        }
    });
    addr
}

#[test]
fn a_flood_of_half_open_handshakes_does_not_lock_clients_out() {
    let ca = ClusterCa::generate().unwrap();
    let config = test_config_builder()
        .max_incoming_connections(16)
        .max_pending_handshakes(16)
        .handshake_timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let victim = node(&ca, 1, config);
    let relay = one_way_relay(victim.local_addr());
    let flood = Raw::new();
    let flood_tls =
        tls::peer_client_config(&ca.issue_node(NodeId::new(9), &[]).unwrap(), ca.cert()).unwrap();
    let flood_config = tls::quinn_client(flood_tls).unwrap();
    let pending: Vec<_> = (0..200)
        .map(|_| {
            let _guard = flood.runtime.enter();
            flood
                .endpoint
                .connect_with(flood_config.clone(), relay, &node_name(NodeId::new(1)))
                .unwrap()
        })
        .collect();
    // Let the flood's Initial packets arrive.
    assert!(common::eventually(LIMIT, || victim
        .stats()
        .handshakes_retried
        > 100));
    // Fresh clients, from another address, still get in, one after another
    // and while the flood's handshakes are pending.
    let client = ca.issue_client().unwrap();
    for _ in 0..5 {
        let raw = Raw::new();
        let mut tls = tls::client_config(&client, ca.cert()).unwrap();
        tls.alpn_protocols = vec![CLIENT_ALPN.to_vec()];
        let conn = raw.connect(tls, victim.local_addr(), &node_name(NodeId::new(1)));
        assert!(conn.is_ok(), "a client was locked out: {conn:?}");
    }
    let stats = victim.stats();
    assert!(
        stats.connections_accepted >= 5,
        "accepted {}",
        stats.connections_accepted
    );
    drop(pending);
}

#[test]
fn one_peer_hoarding_streams_leaves_room_for_the_others() {
    let ca = ClusterCa::generate().unwrap();
    let config = test_config_builder()
        .max_concurrent_exchanges(64)
        .max_exchanges_per_peer(16)
        .build()
        .unwrap();
    let (mut victim, mut friend, hoarder, conn) = victim_friend_and_intruder(&ca, config);
    // 70 streams, each stopped inside its first frame.
    let mut streams = Vec::new();
    for exchange in 0..70 {
        let mut bytes = header(exchange);
        bytes.extend(100u32.to_be_bytes());
        bytes.push(0);
        streams.push(hoarder.open_with(&conn, &bytes));
    }
    assert!(common::eventually(LIMIT, || victim
        .stats()
        .streams_refused_busy
        >= 54));
    exchanges_get_through(&mut friend, &mut victim, 1, 10);
    assert_eq!(victim.stats().streams_accepted, 16 + 10);
}

#[test]
fn a_stream_that_keeps_trickling_is_reset_at_its_lifetime() {
    let ca = ClusterCa::generate().unwrap();
    let config = test_config_builder()
        .exchange_idle(Duration::from_secs(2))
        .stream_lifetime(Duration::from_secs(1))
        .build()
        .unwrap();
    let mut victim = node(&ca, 1, config);
    let raw = Raw::new();
    let conn = raw.connect_as(
        &ca.issue_node(NodeId::new(3), &[]).unwrap(),
        &ca,
        victim.local_addr(),
        NodeId::new(1),
        NodeId::new(3),
    );
    let (mut send, mut recv) = raw.open_with(&conn, &header(1));
    // A frame every 200 ms for 6 s: far more often than the idle timer.
    let code = raw.runtime.block_on(async {
        let trickle = async {
            for n in 0..30u8 {
                if send.write_all(&frame(&[n])).await.is_err() {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            None
        };
        let reset = async {
            let mut buf = [0u8; 64];
            loop {
                match recv.read(&mut buf).await {
                    Err(quinn::ReadError::Reset(code)) => return Some(code.into_inner()),
                    Err(_) | Ok(None) => return None,
                    Ok(Some(_)) => {}
                }
            }
        };
        tokio::select! {
            code = reset => code,
            none = trickle => none,
        }
    });
    assert_eq!(code, Some(u64::from(wire::STREAM_TIMEOUT)));
    assert_eq!(victim.stats().streams_rejected, 1);
    // What arrived before the reset was delivered.
    assert!(!receive(&mut victim, 1, LIMIT).is_empty());
}

#[test]
fn partial_frames_share_a_byte_budget() {
    let ca = ClusterCa::generate().unwrap();
    let config = test_config_builder()
        .max_incoming_frame_bytes(256 << 10)
        .max_partial_frame_bytes(600 << 10)
        .build()
        .unwrap();
    let (mut victim, mut friend, raw, conn) = victim_friend_and_intruder(&ca, config);
    let announce = |exchange| {
        let mut bytes = header(exchange);
        bytes.extend((250u32 << 10).to_be_bytes());
        bytes.extend(vec![7u8; 1024]);
        raw.open_with(&conn, &bytes)
    };
    let _first = announce(1);
    let _second = announce(2);
    assert!(common::eventually(LIMIT, || victim
        .stats()
        .streams_accepted
        == 2));
    let (mut send, mut recv) = announce(3);
    assert_eq!(
        raw.reset_code(&mut send, &mut recv),
        Some(u64::from(wire::STREAM_BUSY))
    );
    assert_eq!(victim.stats().streams_refused_busy, 1);
    // Small frames still fit in what is left.
    exchanges_get_through(&mut friend, &mut victim, 1, 5);
}

#[test]
fn a_client_trickling_requests_does_not_starve_the_others() {
    let ca = ClusterCa::generate().unwrap();
    let config = test_config_builder()
        .max_concurrent_requests(8)
        .max_requests_per_connection(4)
        .build()
        .unwrap();
    let victim = node(&ca, 1, config);
    let requests = victim.requests().unwrap();
    let server = thread::spawn(move || {
        while let Some(request) = requests.recv() {
            let _ = request.responder.respond(b"answer".to_vec());
        }
    });
    let identity = ca.issue_client().unwrap();
    // Two connections, each opening 20 request streams that never finish
    // their frame: 4 of each are read, the rest refused at once.
    let attackers: Vec<_> = (0..2)
        .map(|_| {
            let raw = Raw::new();
            let mut tls = tls::client_config(&identity, ca.cert()).unwrap();
            tls.alpn_protocols = vec![CLIENT_ALPN.to_vec()];
            let conn = raw
                .connect(tls, victim.local_addr(), &node_name(NodeId::new(1)))
                .unwrap();
            let opened = raw.runtime.block_on(async {
                let mut opened = Vec::new();
                for _ in 0..20 {
                    let open = tokio::time::timeout(Duration::from_millis(300), conn.open_bi());
                    let Ok(Ok((mut send, recv))) = open.await else {
                        break;
                    };
                    send.write_all(&[0, 0]).await.unwrap();
                    opened.push((send, recv));
                }
                opened
            });
            assert_eq!(opened.len(), 20);
            (raw, conn, opened)
        })
        .collect();
    assert!(common::eventually(LIMIT, || victim
        .stats()
        .requests_refused
        >= 32));
    for _ in 0..10 {
        let client = QuicClient::connect(
            victim.local_addr(),
            &node_name(NodeId::new(1)),
            &identity,
            ca.cert(),
            QuicConfig::default(),
        )
        .unwrap();
        assert_eq!(client.request(b"get").unwrap(), b"answer");
    }
    drop(attackers);
    drop(victim);
    server.join().unwrap();
}

/// A peer that stays down is dialed again and again (every probe); its
/// outage is warned about once, not once per dial.
#[test]
fn a_peer_that_stays_down_is_warned_about_once() {
    common::capture_logs();
    let ca = ClusterCa::generate().unwrap();
    let config = test_config_builder()
        .connect_timeout(Duration::from_millis(300))
        .reconnect_backoff(Duration::from_millis(50))
        .build()
        .unwrap();
    let mut node = QuicTransport::builder(
        ca.issue_node(NodeId::new(70), &[]).unwrap(),
        ca.cert().clone(),
    )
    .config(config)
    .build()
    .unwrap();
    // Bound and never read: whatever is sent there goes unanswered.
    let silent = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    node.add_peer(NodeId::new(71), silent.local_addr().unwrap());
    for exchange in 0..4 {
        node.send(Transmit {
            to: NodeId::new(71),
            kind: MessageKind::Syn,
            exchange,
            from_initiator: true,
            payload: vec![1; 2000],
        })
        .unwrap();
        let failed = exchange + 1;
        assert!(common::eventually(LIMIT, || node.stats().connect_failures >= failed));
        thread::sleep(Duration::from_millis(100));
    }
    let warned = common::log_lines_with(&["WARN", "could not connect to peer", "node=70"]);
    assert_eq!(warned.len(), 1, "{warned:#?}");
}
