//! Gossip nodes over QUIC, and the transport's own behaviour: pooling,
//! reconnects, limits, shutdown, the client channel.

// Test helpers unwrap like the tests they serve (clippy.toml allows it
// inside #[test] functions only).
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use gossip::{Config, Member, MessageKind, Node, NodeHandle, Transmit, Transport};
use lww_crdt::{NodeId, PhysicalClock, SystemClock};
use transport_quic::certs::{ClusterCa, node_name};
use transport_quic::{ClientError, QuicClient, QuicConfig, QuicTransport, wire};

use common::{
    Raw, app_close_code, eventually, frame, quic_cluster, receive, test_config, test_config_builder,
};

const LIMIT: Duration = Duration::from_secs(20);

fn gossip_config(id: u64) -> Config {
    Config::builder(NodeId::new(id))
        .tick_interval_ms(100)
        .exchange_timeout_ms(800)
        .build()
        .unwrap()
}

/// Spawns one gossip node per transport; members carry the transports'
/// addresses, which are fed back through `add_member`.
fn spawn_nodes(transports: Vec<QuicTransport>) -> Vec<(NodeHandle, thread::JoinHandle<()>)> {
    let members: Vec<Member> = transports
        .iter()
        .map(|t| Member {
            id: t.id(),
            address: t.local_addr().to_string(),
        })
        .collect();
    transports
        .into_iter()
        .map(|transport| {
            let id = transport.id();
            for member in members.iter().filter(|m| m.id != id) {
                transport.add_member(member).unwrap();
            }
            let seeds = members.iter().filter(|m| m.id != id).cloned();
            let node = Node::new(gossip_config(id.get()), seeds);
            gossip::spawn(node, transport, SystemClock)
        })
        .collect()
}

fn converge(nodes: &[(NodeHandle, thread::JoinHandle<()>)], keys: &[(&str, &str)]) -> bool {
    eventually(LIMIT, || {
        nodes.iter().all(|(handle, _)| {
            keys.iter()
                .all(|(key, value)| handle.get(key).as_deref() == Some(*value))
        })
    })
}

fn stop(nodes: Vec<(NodeHandle, thread::JoinHandle<()>)>) {
    for (handle, _) in &nodes {
        handle.shutdown();
    }
    for (_, thread) in nodes {
        thread.join().unwrap();
    }
}

#[test]
fn two_nodes_converge() {
    let ca = ClusterCa::generate().unwrap();
    let nodes = spawn_nodes(quic_cluster(&ca, 2, &test_config()));
    nodes[0].0.put("colour", "blue").unwrap();
    nodes[1].0.put("shape", "square").unwrap();
    assert!(converge(&nodes, &[("colour", "blue"), ("shape", "square")]));
    nodes[1].0.delete("colour").unwrap();
    assert!(eventually(LIMIT, || nodes[0].0.get("colour").is_none()));
    assert_eq!(nodes[0].0.snapshot(), nodes[1].0.snapshot());
    stop(nodes);
}

#[test]
fn a_fresh_node_pulls_a_large_map_without_waiting_for_ticks() {
    // One tick a minute and about 75 entries a message: at one message per
    // tick the 3,000 keys would take some 40 minutes.
    let config = |id: u64| {
        Config::builder(NodeId::new(id))
            .tick_interval_ms(60_000)
            .exchange_timeout_ms(2_000)
            .gc_every_ticks(1)
            .max_message_bytes(4_096)
            .build()
            .unwrap()
    };
    let ca = ClusterCa::generate().unwrap();
    let transports = quic_cluster(&ca, 2, &test_config());
    let members: Vec<Member> = transports
        .iter()
        .map(|t| Member {
            id: t.id(),
            address: t.local_addr().to_string(),
        })
        .collect();
    let mut nodes = Vec::new();
    for (index, transport) in transports.into_iter().enumerate() {
        let other = members[1 - index].clone();
        transport.add_member(&other).unwrap();
        let mut node = Node::new(config(index as u64), [other]);
        if index == 0 {
            for i in 0..3_000 {
                let now = SystemClock.now_ms();
                node.put(format!("key-{i:05}"), format!("value-{i}"), now)
                    .unwrap();
            }
        }
        nodes.push(gossip::spawn(node, transport, SystemClock));
    }
    assert!(eventually(LIMIT, || {
        nodes[1].0.snapshot() == nodes[0].0.snapshot()
    }));
    let fresh = nodes[1].0.metrics();
    // Every exchange but the first tick's was pulled.
    assert!(
        fresh.exchanges_pulled > 20 && fresh.exchanges_pulled + 1 >= fresh.exchanges_started,
        "{fresh:?}"
    );
    stop(nodes);
}

#[test]
fn three_nodes_converge() {
    let ca = ClusterCa::generate().unwrap();
    let nodes = spawn_nodes(quic_cluster(&ca, 3, &test_config()));
    let keys: Vec<(String, String)> = (0..30)
        .map(|i| (format!("key-{i}"), format!("value-{i}")))
        .collect();
    for (i, (key, value)) in keys.iter().enumerate() {
        nodes[i % 3].0.put(key.clone(), value.clone()).unwrap();
    }
    let keys: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert!(converge(&nodes, &keys));
    assert!(eventually(LIMIT, || {
        let first = nodes[0].0.snapshot();
        nodes.iter().all(|(handle, _)| handle.snapshot() == first)
    }));
    stop(nodes);
}

#[test]
fn concurrent_sends_share_one_connection() {
    let ca = ClusterCa::generate().unwrap();
    let mut t = quic_cluster(&ca, 2, &test_config());
    let to = t[1].id();
    for exchange in 0..40 {
        t[0].send(Transmit {
            to,
            kind: MessageKind::Syn,
            exchange,
            from_initiator: true,
            payload: exchange.to_be_bytes().to_vec(),
        })
        .unwrap();
    }
    assert_eq!(receive(&mut t[1], 40, LIMIT).len(), 40);
    let stats = t[0].stats();
    assert_eq!(stats.connections_dialed, 1, "{stats:?}");
    assert_eq!(stats.streams_opened, 40);
    assert_eq!(t[1].stats().streams_accepted, 40);
}

#[test]
fn reconnects_after_the_peer_restarts() {
    let ca = ClusterCa::generate().unwrap();
    let config = test_config();
    let mut t = quic_cluster(&ca, 2, &config);
    let (a, b) = (t[0].id(), t[1].id());
    let syn = |exchange: u64| Transmit {
        to: b,
        kind: MessageKind::Syn,
        exchange,
        from_initiator: true,
        payload: b"ping".to_vec(),
    };
    t[0].send(syn(0)).unwrap();
    assert_eq!(receive(&mut t[1], 1, LIMIT).len(), 1);
    // Node b goes away and comes back elsewhere; a learns the new address.
    let old = t.pop().unwrap();
    old.shutdown();
    let mut reborn = QuicTransport::builder(ca.issue_node(b, &[]).unwrap(), ca.cert().clone())
        .config(config)
        .peer(a, t[0].local_addr())
        .build()
        .unwrap();
    t[0].add_peer(b, reborn.local_addr());
    let mut exchange = 1;
    assert!(eventually(LIMIT, || {
        t[0].send(syn(exchange)).unwrap();
        exchange += 1;
        !receive(&mut reborn, 1, Duration::from_millis(300)).is_empty()
    }));
    assert_eq!(t[0].stats().connections_dialed, 2);
}

#[test]
fn shutdown_flushes_frames_in_flight() {
    let ca = ClusterCa::generate().unwrap();
    let mut t = quic_cluster(&ca, 2, &test_config());
    let to = t[1].id();
    let payload = vec![7u8; 256 * 1024];
    for exchange in 0..20 {
        t[0].send(Transmit {
            to,
            kind: MessageKind::Syn,
            exchange,
            from_initiator: true,
            payload: payload.clone(),
        })
        .unwrap();
    }
    // Shut down at once: every queued frame still reaches the peer.
    let sender = t.remove(0);
    let handle = sender.handle();
    drop(sender);
    assert!(handle.is_closed());
    let got = receive(&mut t[0], 20, LIMIT);
    assert_eq!(got.len(), 20);
    assert!(got.iter().all(|incoming| incoming.payload == payload));
    assert_eq!(handle.stats().frames_dropped, 0);
}

/// Timeouts long enough that a shutdown waiting on one stands out: 60 s to
/// connect, 120 s to shut down.
fn patient_config() -> QuicConfig {
    QuicConfig::builder()
        .connect_timeout(Duration::from_secs(60))
        .shutdown_timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

/// Drops `t` and says whether that returned within 30 s: well before the
/// connect timeout of [`patient_config`] it would otherwise run to.
fn shuts_down_early(t: QuicTransport) -> bool {
    let (done, finished) = std::sync::mpsc::channel();
    thread::spawn(move || {
        drop(t);
        done.send(()).unwrap();
    });
    finished.recv_timeout(Duration::from_secs(30)).is_ok()
}

#[test]
fn a_dial_to_a_peer_that_died_does_not_hold_up_shutdown() {
    let ca = ClusterCa::generate().unwrap();
    let config = patient_config();
    let mut t = quic_cluster(&ca, 1, &config).remove(0);
    // A peer whose process died: its port takes packets and never answers.
    let dead = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    t.add_peer(NodeId::new(9), dead.local_addr().unwrap());
    t.send(Transmit {
        to: NodeId::new(9),
        kind: MessageKind::Syn,
        exchange: 1,
        from_initiator: true,
        payload: vec![1u8; 64 * 1024],
    })
    .unwrap();
    let mut initial = [0u8; 2048];
    dead.set_read_timeout(Some(LIMIT)).unwrap();
    assert!(dead.recv(&mut initial).is_ok(), "the dial never started");
    assert!(
        shuts_down_early(t),
        "shutdown waited for the dial to the dead peer"
    );
}

#[test]
fn a_connection_that_never_says_hello_does_not_hold_up_shutdown() {
    let ca = ClusterCa::generate().unwrap();
    let config = patient_config();
    let t = quic_cluster(&ca, 1, &config).remove(0);
    let raw = Raw::new();
    let identity = ca.issue_node(NodeId::new(2), &[]).unwrap();
    let tls = transport_quic::tls::peer_client_config(&identity, ca.cert()).unwrap();
    let _silent = raw
        .connect(tls, t.local_addr(), &node_name(t.id()))
        .unwrap();
    let handle = t.handle();
    assert!(eventually(LIMIT, || handle.stats().connections_accepted == 1));
    assert!(
        shuts_down_early(t),
        "shutdown waited for the silent peer's hello"
    );
}

#[test]
fn dropping_the_transport_inside_an_async_runtime_still_flushes() {
    let ca = ClusterCa::generate().unwrap();
    let mut t = quic_cluster(&ca, 2, &test_config());
    let to = t[1].id();
    let mut sender = t.remove(0);
    let handle = sender.handle();
    let elsewhere = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    elsewhere.block_on(async move {
        sender
            .send(Transmit {
                to,
                kind: MessageKind::Syn,
                exchange: 0,
                from_initiator: true,
                payload: b"last words".to_vec(),
            })
            .unwrap();
        drop(sender);
    });
    let got = receive(&mut t[0], 1, LIMIT);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload, b"last words");
    assert!(eventually(LIMIT, || handle.is_closed()));
    assert_eq!(handle.stats().frames_dropped, 0);
}

#[test]
fn handle_shutdown_stops_the_driver() {
    let ca = ClusterCa::generate().unwrap();
    let mut t = quic_cluster(&ca, 1, &test_config());
    let quic = t[0].handle();
    let node = Node::new(gossip_config(0), []);
    let (_handle, thread) = gossip::spawn(node, t.remove(0), SystemClock);
    quic.shutdown();
    assert!(eventually(LIMIT, || thread.is_finished()));
    thread.join().unwrap();
    assert!(quic.is_closed());
    // Shutting down twice is harmless.
    quic.shutdown();
}

/// Nodes driven on their transports' runtimes (`QuicTransport::drive`)
/// converge as threads do, and stop on `NodeHandle::shutdown`, on
/// `DrivenNode::stop`, or when the transport shuts down.
#[test]
fn nodes_driven_on_the_transport_runtime_converge_and_stop() {
    let ca = ClusterCa::generate().unwrap();
    let transports = quic_cluster(&ca, 4, &test_config());
    let quic: Vec<_> = transports.iter().map(QuicTransport::handle).collect();
    let mut driven = Vec::new();
    for transport in transports {
        let id = transport.id();
        let seeds = (0..4).filter(|&p| p != id.get()).map(|p| Member {
            id: NodeId::new(p),
            address: String::new(),
        });
        let driver = gossip::Driver::new(Node::new(gossip_config(id.get()), seeds), SystemClock);
        let handle = driver.handle();
        driven.push((handle, transport.drive(driver)));
    }
    driven[0].0.put("colour", "blue").unwrap();
    driven[3].0.put("shape", "square").unwrap();
    assert!(eventually(LIMIT, || driven.iter().all(|(handle, _)| {
        handle.get("colour").as_deref() == Some("blue")
            && handle.get("shape").as_deref() == Some("square")
    })));
    // Idle exchanges go as datagrams. Waited for: a run that converges
    // within its first exchanges, carried on streams while connections
    // open, may not have sent node 3 one yet.
    assert!(eventually(LIMIT, || quic[3].stats().datagrams_received > 0));
    let (handle, task) = driven.remove(0);
    handle.shutdown();
    assert!(eventually(LIMIT, || task.is_finished()));
    task.join().unwrap();
    let (_handle, task) = driven.remove(0);
    task.stop();
    assert!(eventually(LIMIT, || task.is_finished()));
    task.join().unwrap();
    let (_handle, task) = driven.remove(0);
    quic[2].shutdown();
    assert!(eventually(LIMIT, || task.is_finished()));
    task.join().unwrap();
    assert!(quic[2].is_closed());
}

#[test]
fn frames_over_the_cap_are_refused_before_sending() {
    let ca = ClusterCa::generate().unwrap();
    let config = QuicConfig::builder().max_frame_bytes(1024).build().unwrap();
    let mut t = quic_cluster(&ca, 2, &config);
    let err = t[0]
        .send(Transmit {
            to: NodeId::new(1),
            kind: MessageKind::Syn,
            exchange: 0,
            from_initiator: true,
            payload: vec![0; 1025],
        })
        .unwrap_err();
    assert!(matches!(
        err,
        gossip::TransportError::FrameTooLarge {
            len: 1025,
            max: 1024
        }
    ));
    // An empty frame is refused as such, not as an I/O failure.
    let err = t[0]
        .send(Transmit {
            to: NodeId::new(1),
            kind: MessageKind::Syn,
            exchange: 1,
            from_initiator: true,
            payload: Vec::new(),
        })
        .unwrap_err();
    assert!(matches!(err, gossip::TransportError::EmptyFrame), "{err:?}");
}

#[test]
fn members_feed_the_peer_table() {
    let ca = ClusterCa::generate().unwrap();
    let t = quic_cluster(&ca, 1, &test_config());
    let handle = t[0].handle();
    let members = [
        Member {
            id: NodeId::new(0),
            address: "127.0.0.1:1".into(),
        },
        Member {
            id: NodeId::new(5),
            address: "127.0.0.1:4005".into(),
        },
        Member {
            id: NodeId::new(6),
            address: "localhost:4006".into(),
        },
        Member {
            id: NodeId::new(7),
            address: String::new(),
        },
    ];
    let errors = handle.sync_members(&members);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(handle.peers(), vec![NodeId::new(5), NodeId::new(6)]);
    assert_eq!(
        handle.peer_addr(NodeId::new(5)),
        Some("127.0.0.1:4005".parse().unwrap())
    );
    assert!(handle.remove_peer(NodeId::new(5)).is_some());
    assert_eq!(handle.peers(), vec![NodeId::new(6)]);
}

#[test]
fn busy_nodes_refuse_streams_explicitly() {
    let ca = ClusterCa::generate().unwrap();
    let config = QuicConfig::builder()
        .max_concurrent_exchanges(2)
        .exchange_idle(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut t = quic_cluster(&ca, 1, &config);
    let raw = Raw::new();
    let me = NodeId::new(9);
    let conn = raw.connect_as(
        &ca.issue_node(me, &[]).unwrap(),
        &ca,
        t[0].local_addr(),
        t[0].id(),
        me,
    );
    let header = |exchange| {
        let mut bytes = wire::encode_stream_header(wire::StreamHeader {
            exchange,
            opener_initiated: true,
        })
        .to_vec();
        bytes.extend(frame(b"syn"));
        bytes
    };
    let _first = raw.open_with(&conn, &header(1));
    let _second = raw.open_with(&conn, &header(2));
    assert_eq!(receive(&mut t[0], 2, LIMIT).len(), 2);
    let (mut send, mut recv) = raw.open_with(&conn, &header(3));
    assert_eq!(
        raw.reset_code(&mut send, &mut recv),
        Some(u64::from(wire::STREAM_BUSY))
    );
    assert_eq!(t[0].stats().streams_refused_busy, 1);
    assert!(receive(&mut t[0], 1, Duration::from_millis(300)).is_empty());
}

#[test]
fn requests_that_timed_out_in_the_queue_are_dropped_not_served() {
    let ca = ClusterCa::generate().unwrap();
    let config = QuicConfig::builder()
        .max_concurrent_requests(1)
        .request_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let node = QuicTransport::builder(
        ca.issue_node(NodeId::new(1), &[]).unwrap(),
        ca.cert().clone(),
    )
    .config(config)
    .serve_clients(true)
    .build()
    .unwrap();
    let requests = node.requests().unwrap();
    let client = QuicClient::connect(
        node.local_addr(),
        &node_name(NodeId::new(1)),
        &ca.issue_client().unwrap(),
        ca.cert(),
        QuicConfig::default(),
    )
    .unwrap();
    let refused_with = |body: &[u8]| match client.request(body) {
        Err(ClientError::Refused(code)) => code,
        other => panic!("not refused: {other:?}"),
    };
    // The application is busy: the request times out in the queue, and
    // keeps its place there until the application comes back.
    assert_eq!(
        refused_with(b"put stale"),
        u64::from(wire::STREAM_UNANSWERED)
    );
    assert_eq!(refused_with(b"put busy"), u64::from(wire::STREAM_BUSY));
    // Back, the application never sees the request its client gave up on.
    assert!(requests.try_recv().is_none());
    let server = serve(requests);
    assert_eq!(client.request(b"fresh").unwrap(), b"echo:fresh");
    drop(node);
    assert_eq!(server.join().unwrap(), 1);
}

fn serve(requests: transport_quic::RequestReceiver) -> thread::JoinHandle<usize> {
    thread::spawn(move || {
        let mut served = 0;
        while let Some(request) = requests.recv() {
            let mut reply = b"echo:".to_vec();
            reply.extend_from_slice(&request.body);
            if request.body == b"ignore" {
                drop(request.responder);
            } else {
                request.responder.respond(reply).unwrap();
            }
            served += 1;
        }
        served
    })
}

#[test]
fn clients_get_answers() {
    let ca = ClusterCa::generate().unwrap();
    let node = QuicTransport::builder(
        ca.issue_node(NodeId::new(1), &["127.0.0.1".into()])
            .unwrap(),
        ca.cert().clone(),
    )
    .serve_clients(true)
    .build()
    .unwrap();
    let server = serve(node.requests().unwrap());
    let identity = ca.issue_client().unwrap();
    // By node name and by IP address.
    for name in [node_name(NodeId::new(1)), "127.0.0.1".to_owned()] {
        let client = QuicClient::connect(
            node.local_addr(),
            &name,
            &identity,
            ca.cert(),
            QuicConfig::default(),
        )
        .unwrap();
        assert_eq!(client.request(b"hello").unwrap(), b"echo:hello");
        let client = Arc::new(client);
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let client = Arc::clone(&client);
                thread::spawn(move || client.request(format!("{i}").as_bytes()).unwrap())
            })
            .collect();
        for (i, thread) in threads.into_iter().enumerate() {
            assert_eq!(thread.join().unwrap(), format!("echo:{i}").into_bytes());
        }
        assert!(matches!(
            client.request(b"ignore"),
            Err(ClientError::Refused(code)) if code == u64::from(wire::STREAM_UNANSWERED)
        ));
        assert!(matches!(
            client.request(b""),
            Err(ClientError::RequestSize { .. })
        ));
    }
    assert_eq!(node.stats().requests_answered, 10);
    drop(node);
    assert_eq!(server.join().unwrap(), 12);
}

#[test]
fn clients_are_refused_where_not_served_or_misnamed() {
    let ca = ClusterCa::generate().unwrap();
    let t = quic_cluster(&ca, 1, &test_config());
    let identity = ca.issue_client().unwrap();
    let config = QuicConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    // The node does not offer the client protocol.
    assert!(
        QuicClient::connect(
            t[0].local_addr(),
            &node_name(t[0].id()),
            &identity,
            ca.cert(),
            config.clone(),
        )
        .is_err()
    );
    // The node is not who the client asked for.
    let served = QuicTransport::builder(
        ca.issue_node(NodeId::new(1), &[]).unwrap(),
        ca.cert().clone(),
    )
    .serve_clients(true)
    .build()
    .unwrap();
    assert!(matches!(
        QuicClient::connect(
            served.local_addr(),
            &node_name(NodeId::new(2)),
            &identity,
            ca.cert(),
            config.clone(),
        ),
        Err(ClientError::Connection(_))
    ));
    // A node identity cannot be a client.
    assert!(matches!(
        QuicClient::connect(
            served.local_addr(),
            &node_name(NodeId::new(1)),
            &ca.issue_node(NodeId::new(3), &[]).unwrap(),
            ca.cert(),
            config,
        ),
        Err(ClientError::Tls(_))
    ));
}

/// Sends as the exchange's initiator for a `Syn` or an `Ack`, as its
/// responder for a `SynAck`.
fn send(t: &mut QuicTransport, to: u64, kind: MessageKind, exchange: u64, payload: &[u8]) {
    send_as(t, to, kind, kind != MessageKind::SynAck, exchange, payload);
}

fn send_as(
    t: &mut QuicTransport,
    to: u64,
    kind: MessageKind,
    from_initiator: bool,
    exchange: u64,
    payload: &[u8],
) {
    t.send(Transmit {
        to: NodeId::new(to),
        kind,
        exchange,
        from_initiator,
        payload: payload.to_vec(),
    })
    .unwrap();
}

fn one(t: &mut QuicTransport) -> gossip::Incoming {
    let mut got = receive(t, 1, LIMIT);
    assert_eq!(got.len(), 1, "nothing arrived");
    got.remove(0)
}

/// The test configuration with every frame on a stream, for the tests of
/// how exchanges map onto streams.
fn streams_only() -> QuicConfig {
    test_config_builder().datagrams(false).build().unwrap()
}

#[test]
fn an_exchange_stays_on_one_stream() {
    let ca = ClusterCa::generate().unwrap();
    let mut t = quic_cluster(&ca, 2, &streams_only());
    send(&mut t[0], 1, MessageKind::Syn, 42, b"syn");
    assert_eq!(one(&mut t[1]).payload, b"syn");
    send(&mut t[1], 0, MessageKind::SynAck, 42, b"synack");
    assert_eq!(one(&mut t[0]).payload, b"synack");
    send(&mut t[0], 1, MessageKind::Ack, 42, b"ack");
    assert_eq!(one(&mut t[1]).payload, b"ack");
    send_as(&mut t[1], 0, MessageKind::Ack, false, 42, b"last ack");
    assert_eq!(one(&mut t[0]).payload, b"last ack");
    assert_eq!(t[0].stats().streams_opened, 1);
    assert_eq!(t[1].stats().streams_opened, 0);
    assert_eq!(t[1].stats().streams_accepted, 1);
}

fn encoded_ack(exchange: u64, from_initiator: bool) -> Vec<u8> {
    let ack = gossip::Message::Ack(gossip::Ack {
        exchange,
        incarnation: 0,
        from_initiator,
        delta: Default::default(),
        vector: None,
        members: None,
    });
    gossip::codec::encode(&ack, 1 << 20).unwrap()
}

#[test]
fn both_sides_may_number_an_exchange_alike() {
    let ca = ClusterCa::generate().unwrap();
    let mut t = quic_cluster(&ca, 2, &streams_only());
    // Each node opens its own exchange 5 with the other.
    send(&mut t[0], 1, MessageKind::Syn, 5, b"syn from 0");
    send(&mut t[1], 0, MessageKind::Syn, 5, b"syn from 1");
    assert_eq!(one(&mut t[1]).payload, b"syn from 0");
    assert_eq!(one(&mut t[0]).payload, b"syn from 1");
    send(&mut t[0], 1, MessageKind::SynAck, 5, b"synack from 0");
    send(&mut t[1], 0, MessageKind::SynAck, 5, b"synack from 1");
    assert_eq!(one(&mut t[1]).payload, b"synack from 0");
    assert_eq!(one(&mut t[0]).payload, b"synack from 1");
    // Both Acks of node 0 have two open streams to choose from; each goes
    // on its own exchange's stream.
    for from_initiator in [true, false] {
        let ack = encoded_ack(5, from_initiator);
        send_as(&mut t[0], 1, MessageKind::Ack, from_initiator, 5, &ack);
        assert_eq!(one(&mut t[1]).payload, ack);
    }
    for t in &t {
        let stats = t.stats();
        assert_eq!((stats.streams_opened, stats.streams_accepted), (1, 1));
    }
}

#[test]
fn a_late_reply_opens_a_stream_of_its_own() {
    let ca = ClusterCa::generate().unwrap();
    let config = streams_only();
    let mut t = quic_cluster(&ca, 2, &config);
    send(&mut t[0], 1, MessageKind::Syn, 9, b"syn");
    assert_eq!(one(&mut t[1]).payload, b"syn");
    // Let the exchange's stream go quiet and finish (a timer, not a
    // convergence wait).
    thread::sleep(config.exchange_idle() * 3);
    send(&mut t[1], 0, MessageKind::SynAck, 9, b"late synack");
    let got = one(&mut t[0]);
    assert_eq!(
        (got.from, got.payload.as_slice()),
        (NodeId::new(1), &b"late synack"[..])
    );
    assert_eq!(t[1].stats().streams_opened, 1);
    // The initiator's Ack follows the reply's stream.
    send(&mut t[0], 1, MessageKind::Ack, 9, b"ack");
    assert_eq!(one(&mut t[1]).payload, b"ack");
    assert_eq!(t[0].stats().streams_opened, 1);
}

fn end(t: &mut QuicTransport, peer: u64, exchange: u64, from_initiator: bool) {
    t.end_exchange(gossip::ExchangeEnd {
        peer: NodeId::new(peer),
        exchange,
        from_initiator,
    });
}

#[test]
fn an_ended_exchange_frees_its_served_slot_at_once() {
    let ca = ClusterCa::generate().unwrap();
    // Quiet streams would hold their slot far longer than this test runs.
    let config = QuicConfig::builder()
        .max_concurrent_exchanges(2)
        .exchange_idle(Duration::from_secs(60))
        .datagrams(false)
        .build()
        .unwrap();
    let mut t = quic_cluster(&ca, 2, &config);
    for exchange in 0..10 {
        send(&mut t[0], 1, MessageKind::Syn, exchange, b"syn");
        assert_eq!(one(&mut t[1]).payload, b"syn", "exchange {exchange}");
        send(&mut t[1], 0, MessageKind::SynAck, exchange, b"synack");
        end(&mut t[1], 0, exchange, false);
        assert_eq!(one(&mut t[0]).payload, b"synack", "exchange {exchange}");
        end(&mut t[0], 1, exchange, true);
    }
    assert_eq!(t[1].stats().streams_refused_busy, 0);
    assert_eq!(t[1].stats().streams_accepted, 10);
}

#[test]
fn a_peer_that_ended_its_side_still_gets_the_answer_on_the_same_stream() {
    let ca = ClusterCa::generate().unwrap();
    let mut t = quic_cluster(&ca, 2, &streams_only());
    send(&mut t[0], 1, MessageKind::Syn, 3, b"syn");
    assert_eq!(one(&mut t[1]).payload, b"syn");
    send(&mut t[1], 0, MessageKind::SynAck, 3, b"synack");
    assert_eq!(one(&mut t[0]).payload, b"synack");
    send(&mut t[0], 1, MessageKind::Ack, 3, b"ack");
    end(&mut t[0], 1, 3, true);
    assert_eq!(one(&mut t[1]).payload, b"ack");
    // By now the initiator's side may well have finished; the answer still
    // rides the exchange's stream.
    thread::sleep(Duration::from_millis(100));
    send_as(&mut t[1], 0, MessageKind::Ack, false, 3, b"last ack");
    end(&mut t[1], 0, 3, false);
    assert_eq!(one(&mut t[0]).payload, b"last ack");
    assert_eq!(t[1].stats().streams_opened, 0);
    assert_eq!(t[0].stats().streams_opened, 1);
}

#[test]
fn fast_gossip_never_runs_out_of_served_slots() {
    let ca = ClusterCa::generate().unwrap();
    let config = QuicConfig::builder()
        .max_concurrent_exchanges(4)
        .exchange_idle(Duration::from_secs(60))
        // The nodes stop one after the other: the second may be dialing the
        // first when it stops.
        .shutdown_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let transports = quic_cluster(&ca, 2, &config);
    let quic: Vec<_> = transports.iter().map(QuicTransport::handle).collect();
    let peer = |t: &QuicTransport| Member {
        id: t.id(),
        address: t.local_addr().to_string(),
    };
    let members: Vec<Member> = transports.iter().map(peer).collect();
    let nodes: Vec<_> = transports
        .into_iter()
        .enumerate()
        .map(|(i, transport)| {
            let config = Config::builder(NodeId::new(i as u64))
                .address(members[i].address.clone())
                .tick_interval_ms(2)
                .exchange_timeout_ms(1_000)
                .gc_every_ticks(1_000)
                .build()
                .unwrap();
            let node = Node::new(config, [members[1 - i].clone()]);
            gossip::spawn(node, transport, SystemClock)
        })
        .collect();
    // A few hundred exchanges each way, all within one idle period, with
    // writes on one side only: node 1's exchanges bring entries back and
    // have nothing to send, node 0's send entries and get receipts.
    let mut written = 0;
    assert!(eventually(LIMIT, || {
        nodes[0].0.put(format!("key-{written}"), "value").unwrap();
        written += 1;
        nodes
            .iter()
            .all(|(handle, _)| handle.metrics().exchanges_completed >= 200)
    }));
    let last = format!("key-{}", written - 1);
    assert!(eventually(LIMIT, || nodes[1].0.get(&last).is_some()));
    for handle in &quic {
        assert_eq!(handle.stats().streams_refused_busy, 0);
    }
    stop(nodes);
}

#[test]
fn incoming_connections_are_bounded() {
    let ca = ClusterCa::generate().unwrap();
    let config = QuicConfig::builder()
        .max_incoming_connections(1)
        .build()
        .unwrap();
    let t = quic_cluster(&ca, 1, &config);
    let identity = ca.issue_node(NodeId::new(5), &[]).unwrap();
    let first = Raw::new();
    let conn = first.connect_as(&identity, &ca, t[0].local_addr(), t[0].id(), NodeId::new(5));
    let second = Raw::new();
    let tls = transport_quic::tls::peer_client_config(&identity, ca.cert()).unwrap();
    // The handshake goes through (it holds a pending-handshake slot, not a
    // connection slot); then the node closes the connection as busy.
    let closed = match second.connect(tls.clone(), t[0].local_addr(), &node_name(t[0].id())) {
        Ok(refused) => second.closed(&refused),
        Err(err) => err,
    };
    assert_eq!(app_close_code(&closed), Some(u64::from(wire::CONN_BUSY)));
    assert_eq!(t[0].stats().connections_refused_busy, 1);
    conn.close(0u32.into(), b"done");
    assert!(eventually(LIMIT, || {
        second
            .connect(tls.clone(), t[0].local_addr(), &node_name(t[0].id()))
            .is_ok()
    }));
}

/// A member with a valid node certificate answers every `Syn` with an
/// eviction notice (`SynAck::evicted` of wire version 2) and sends
/// unsolicited ones for every exchange number it might guess, for four
/// seconds (forty gossip intervals). Earlier versions made a node drop its
/// whole state on such a notice: tried against three daemons, both others
/// went from 3 keys to 0 within 3 s. Now no member is evicted, the wire has
/// no such notice, and every honest node keeps its keys and incarnation.
#[test]
fn eviction_notices_from_a_hostile_member_change_nothing() {
    let ca = ClusterCa::generate().unwrap();
    let mut transports = quic_cluster(&ca, 4, &test_config());
    let mut hostile = transports.pop().unwrap();
    let members: Vec<Member> = transports
        .iter()
        .map(|t| t.id())
        .chain([hostile.id()])
        .map(|id| Member {
            id,
            address: String::new(),
        })
        .collect();
    let nodes: Vec<(NodeHandle, thread::JoinHandle<()>)> = transports
        .into_iter()
        .map(|transport| {
            let id = transport.id();
            let seeds = members.iter().filter(|m| m.id != id).cloned();
            gossip::spawn(
                Node::new(gossip_config(id.get()), seeds),
                transport,
                SystemClock,
            )
        })
        .collect();
    for (i, (handle, _)) in nodes.iter().enumerate() {
        handle.put(format!("key-{i}"), "kept").unwrap();
    }
    let keys = [("key-0", "kept"), ("key-1", "kept"), ("key-2", "kept")];
    assert!(converge(&nodes, &keys));

    // Eviction notices as wire version 2, the last that had them, encoded
    // them: this version's `SynAck` with `evicted` (true) and `vouch`
    // (false) after the incarnation (0, one byte). Exchange numbers stay
    // below 251 here, so they take one byte too.
    let notice = |exchange: u64| {
        let now = gossip::codec::encode(
            &gossip::Message::SynAck(gossip::SynAck {
                exchange: exchange % 251,
                incarnation: 0,
                delta: gossip::StoreDelta::default(),
                digest: gossip::Digest::Hash(0),
                wants_vector: false,
                members: None,
                members_hash: 0,
                time_ms: None,
                refusal: None,
            }),
            1 << 20,
        )
        .unwrap();
        let mut old = vec![2, now[1], now[2], now[3], 1, 0];
        old.extend_from_slice(&now[4..now.len() - 2]);
        old
    };
    let started = std::time::Instant::now();
    let mut answered = 0;
    let mut next_sweep = started;
    while started.elapsed() < Duration::from_secs(4) {
        if std::time::Instant::now() >= next_sweep {
            for to in 0..3 {
                for exchange in 0..8 {
                    send_as(
                        &mut hostile,
                        to,
                        MessageKind::SynAck,
                        false,
                        exchange,
                        &notice(exchange),
                    );
                }
            }
            next_sweep += Duration::from_millis(500);
        }
        let Ok(Some(incoming)) = hostile.recv_timeout(Duration::from_millis(20)) else {
            continue;
        };
        if let Ok(gossip::Message::Syn(syn)) = gossip::codec::decode(&incoming.payload, 1 << 20) {
            let to = incoming.from.get();
            send_as(
                &mut hostile,
                to,
                MessageKind::SynAck,
                false,
                syn.exchange,
                &notice(syn.exchange),
            );
            answered += 1;
        }
    }
    // Its answers are refused, so the others soon find it unresponsive and
    // only probe it; the unsolicited notices go on regardless.
    assert!(
        answered >= 3,
        "the hostile member answered only {answered} Syns"
    );
    for (i, (handle, _)) in nodes.iter().enumerate() {
        for (key, value) in keys {
            assert_eq!(
                handle.get(key).as_deref(),
                Some(value),
                "node {i} lost {key}"
            );
        }
        assert_eq!(handle.with_node(Node::incarnation), 0, "node {i} rejoined");
    }
    stop(nodes);
}

/// A node answers a peer whose address it does not know on the stream the
/// peer opened: a member that joined through someone else, listed by nobody
/// here yet, still gets its `SynAck`. Only a new stream needs the address.
/// (The transport refused every frame to such a peer, so a node named by no
/// one never heard back from its seed.)
/// A peer whose address this node does not know is reached on the link
/// the peer opened: answers, exchanges of this node's own, and frames too
/// large for a datagram, which open a stream on that link. Nothing is
/// dialed.
#[test]
fn a_peer_without_an_address_is_reached_on_the_link_it_opened() {
    let ca = ClusterCa::generate().unwrap();
    let mut t = quic_cluster(&ca, 2, &test_config());
    t[1].handle().remove_peer(NodeId::new(0));
    send(&mut t[0], 1, MessageKind::Syn, 7, b"syn");
    let got = one(&mut t[1]);
    assert_eq!(
        (got.from, got.payload.as_slice()),
        (NodeId::new(0), &b"syn"[..])
    );
    send(&mut t[1], 0, MessageKind::SynAck, 7, b"synack");
    assert_eq!(one(&mut t[0]).payload, b"synack");
    send(&mut t[1], 0, MessageKind::Syn, 1, b"syn of its own");
    assert_eq!(one(&mut t[0]).payload, b"syn of its own");
    let large = vec![7u8; 64 << 10];
    send(&mut t[1], 0, MessageKind::Syn, 2, &large);
    assert_eq!(one(&mut t[0]).payload, large);
    let stats = t[1].stats();
    assert_eq!(stats.connections_dialed, 0, "{stats:?}");
    assert_eq!(stats.streams_opened, 1, "{stats:?}");
    assert_eq!(t[0].stats().streams_accepted, 1);
    // Once the link is gone, opening an exchange needs the address again.
    t[0].handle().remove_peer(NodeId::new(1));
    assert!(eventually(LIMIT, || {
        let opened = t[1].send(Transmit {
            to: NodeId::new(0),
            kind: MessageKind::Syn,
            exchange: 3,
            from_initiator: true,
            payload: b"syn".to_vec(),
        });
        matches!(opened, Err(gossip::TransportError::UnknownPeer(_)))
    }));
}

/// Once two nodes share a link, a frame that fits in a datagram goes as
/// one, either way, whichever node dialed; a larger one goes on a stream,
/// and the rest of its exchange follows it there.
#[test]
fn small_frames_go_as_datagrams_on_the_shared_link() {
    let ca = ClusterCa::generate().unwrap();
    let mut t = quic_cluster(&ca, 2, &test_config());
    // The first frame dials, on a stream.
    send(&mut t[0], 1, MessageKind::Syn, 1, b"first syn");
    assert_eq!(one(&mut t[1]).payload, b"first syn");
    send(&mut t[1], 0, MessageKind::SynAck, 1, b"synack");
    assert_eq!(one(&mut t[0]).payload, b"synack");
    for exchange in 10..20 {
        send(&mut t[0], 1, MessageKind::Syn, exchange, b"syn");
        assert_eq!(one(&mut t[1]).payload, b"syn");
        send(&mut t[1], 0, MessageKind::SynAck, exchange, b"synack");
        assert_eq!(one(&mut t[0]).payload, b"synack");
        send(
            &mut t[1],
            0,
            MessageKind::Syn,
            exchange,
            b"syn the other way",
        );
        assert_eq!(one(&mut t[0]).payload, b"syn the other way");
    }
    let (zero, one_) = (t[0].stats(), t[1].stats());
    assert_eq!((zero.connections_dialed, one_.connections_dialed), (1, 0));
    assert_eq!((zero.streams_opened, one_.streams_opened), (1, 0));
    assert_eq!(zero.datagrams_sent, 10);
    assert_eq!(one_.datagrams_sent, 20, "the first synack rode its stream");
    assert_eq!(zero.datagrams_received, 20);
    // Too large for a datagram: a stream, which the exchange's Ack follows.
    let large = vec![1u8; 8 << 10];
    send(&mut t[1], 0, MessageKind::SynAck, 30, &large);
    assert_eq!(one(&mut t[0]).payload, large);
    assert_eq!(t[1].stats().streams_opened, 1);
    let ack = encoded_ack(30, true);
    send(&mut t[0], 1, MessageKind::Ack, 30, &ack);
    assert_eq!(one(&mut t[1]).payload, ack);
    let zero = t[0].stats();
    assert_eq!((zero.streams_opened, zero.datagrams_sent), (1, 10));
}

/// With datagrams off, every frame goes on a stream, as before.
#[test]
fn datagrams_off_keeps_every_frame_on_streams() {
    let ca = ClusterCa::generate().unwrap();
    let mut t = quic_cluster(&ca, 2, &streams_only());
    for exchange in 0..5 {
        send(&mut t[0], 1, MessageKind::Syn, exchange, b"syn");
        assert_eq!(one(&mut t[1]).payload, b"syn");
    }
    assert_eq!(t[0].stats().streams_opened, 5);
    assert_eq!(t[0].stats().datagrams_sent, 0);
}

/// A seed given by address alone: dialing it authenticates the node by the
/// IP address its certificate names, and the certificate tells its id. Its
/// own address, or a node whose certificate does not name the address, is
/// refused with a typed error, and nothing is added to the peer table.
#[test]
fn a_node_is_discovered_by_its_address() {
    let ca = ClusterCa::generate().unwrap();
    let t = quic_cluster(&ca, 2, &test_config());
    let handle = t[1].handle();
    handle.remove_peer(NodeId::new(0));
    assert_eq!(handle.discover(t[0].local_addr()).unwrap(), NodeId::new(0));
    assert_eq!(
        handle.peer_addr(NodeId::new(0)),
        None,
        "discovery added a peer"
    );
    assert!(matches!(
        handle.discover(t[1].local_addr()),
        Err(transport_quic::DiscoverError::Itself)
    ));
    // A node whose certificate names only its node name, no address.
    let unnamed = QuicTransport::builder(
        ca.issue_node(NodeId::new(5), &[]).unwrap(),
        ca.cert().clone(),
    )
    .config(test_config())
    .build()
    .unwrap();
    assert!(matches!(
        handle.discover(unnamed.local_addr()),
        Err(transport_quic::DiscoverError::Connect(_))
    ));
}
