//! Who connects: named clients and their roles reach the application with
//! each request; revoked certificates (clients' and nodes', either way) are
//! refused at the handshake, and a replaced deny-list takes effect at once;
//! a node trusting a bundle of CAs accepts both, and only the new one once
//! the old is dropped.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::thread;
use std::time::Duration;

use gossip::{MessageKind, Transmit, Transport};
use lww_crdt::NodeId;
use transport_quic::certs::{CaCert, ClientIdentity, ClientRole, ClusterCa, Identity, node_name};
use transport_quic::{DenyList, QuicClient, QuicConfig, QuicTransport, Serial};

use common::{capture_logs, eventually, logged, receive, test_config};

const LIMIT: Duration = Duration::from_secs(15);

/// A node serving clients, trusting `ca`, refusing `revoked`.
fn node(identity: Identity, ca: &CaCert, revoked: &DenyList) -> QuicTransport {
    QuicTransport::builder(identity, ca.clone())
        .config(test_config())
        .serve_clients(true)
        .revoked(revoked.clone())
        .build()
        .unwrap()
}

/// Echoes every request with the client's name and role, until the
/// transport stops.
fn echo_identities(node: &QuicTransport) -> thread::JoinHandle<()> {
    let requests = node.requests().unwrap();
    thread::spawn(move || {
        while let Some(request) = requests.recv() {
            let answer = format!("{}/{}", request.client.name(), request.client.role());
            let _ = request.responder.respond(answer.into_bytes());
        }
    })
}

/// One request from `client` to the node at `addr`, or why it failed.
fn ask(addr: SocketAddr, client: &Identity, ca: &CaCert) -> Result<String, String> {
    let config = QuicConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .request_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let quic = QuicClient::connect(addr, &node_name(NodeId::new(1)), client, ca, config)
        .map_err(|err| err.to_string())?;
    let answer = quic.request(b"who am I").map_err(|err| err.to_string());
    quic.close();
    answer.map(|bytes| String::from_utf8(bytes).unwrap())
}

fn serial(identity: &Identity) -> Serial {
    Serial::of(&identity.chain()[0]).unwrap()
}

#[test]
fn each_request_carries_the_clients_name_and_role() {
    let ca = ClusterCa::generate().unwrap();
    let node = node(
        ca.issue_node(NodeId::new(1), &[]).unwrap(),
        ca.cert(),
        &DenyList::new(),
    );
    let server = echo_identities(&node);
    let reader = ca
        .issue_named_client(&ClientIdentity::new("grafana", ClientRole::Read).unwrap())
        .unwrap();
    let writer = ca
        .issue_named_client(&ClientIdentity::new("app-1", ClientRole::Write).unwrap())
        .unwrap();
    let addr = node.local_addr();
    assert_eq!(ask(addr, &reader, ca.cert()).unwrap(), "grafana/read");
    assert_eq!(ask(addr, &writer, ca.cert()).unwrap(), "app-1/write");
    // The first client certificate is the client "client", role write.
    assert_eq!(
        ask(addr, &ca.issue_client().unwrap(), ca.cert()).unwrap(),
        "client/write"
    );
    drop(node);
    server.join().unwrap();
}

#[test]
fn a_revoked_client_is_refused_at_the_handshake_until_the_list_is_replaced() {
    capture_logs();
    let ca = ClusterCa::generate().unwrap();
    let lost = ca
        .issue_named_client(&ClientIdentity::new("laptop", ClientRole::Write).unwrap())
        .unwrap();
    let kept = ca
        .issue_named_client(&ClientIdentity::new("server", ClientRole::Write).unwrap())
        .unwrap();
    let revoked = DenyList::from_serials([serial(&lost)]);
    let node = node(
        ca.issue_node(NodeId::new(1), &[]).unwrap(),
        ca.cert(),
        &revoked,
    );
    let server = echo_identities(&node);
    let addr = node.local_addr();
    let refused = ask(addr, &lost, ca.cert()).unwrap_err();
    assert!(refused.contains("Revoked"), "{refused}");
    // The client may have tried twice (once more when the connection it
    // thought it had turned out closed).
    assert!(eventually(LIMIT, || {
        let refused = node.stats().handshakes_refused;
        refused >= 1 && refused == revoked.refused()
    }));
    assert!(logged(&["refused connection", "Revoked"]));
    // The other client is served, and no request of the revoked one ever
    // reached the application.
    assert_eq!(ask(addr, &kept, ca.cert()).unwrap(), "server/write");
    assert_eq!(node.stats().requests_answered, 1);

    // Lifting the revocation takes effect for the next handshake, and so
    // does revoking again.
    revoked.replace([]);
    assert_eq!(ask(addr, &lost, ca.cert()).unwrap(), "laptop/write");
    let before = revoked.refused();
    revoked.replace([serial(&lost), serial(&kept)]);
    assert!(ask(addr, &kept, ca.cert()).is_err());
    assert!(eventually(LIMIT, || revoked.refused() > before));
    drop(node);
    server.join().unwrap();
}

fn syn(to: u64, exchange: u64, payload: &[u8]) -> Transmit {
    Transmit {
        to: NodeId::new(to),
        kind: MessageKind::Syn,
        exchange,
        from_initiator: true,
        payload: payload.to_vec(),
    }
}

#[test]
fn a_revoked_node_loses_its_open_link_and_is_refused_both_when_it_dials_and_when_it_is_dialed() {
    capture_logs();
    let ca = ClusterCa::generate().unwrap();
    let two_identity = ca.issue_node(NodeId::new(2), &[]).unwrap();
    let two_serial = serial(&two_identity);
    let revoked = DenyList::new();
    let mut one = node(
        ca.issue_node(NodeId::new(1), &[]).unwrap(),
        ca.cert(),
        &revoked,
    );
    let mut two = node(two_identity, ca.cert(), &DenyList::new());
    one.add_peer(NodeId::new(2), two.local_addr());
    two.add_peer(NodeId::new(1), one.local_addr());
    // A link, used both ways.
    two.send(syn(1, 1, b"hello")).unwrap();
    assert_eq!(receive(&mut one, 1, LIMIT)[0].payload, b"hello");
    one.send(syn(2, 1, b"hello back")).unwrap();
    assert_eq!(receive(&mut two, 1, LIMIT)[0].payload, b"hello back");
    let accepted = one.stats().connections_accepted;

    // Node 2 revoked: its open link is closed, and when it dials again
    // node 1's verifier refuses it.
    revoked.replace([two_serial.clone()]);
    let mut exchange = 1;
    assert!(
        eventually(LIMIT, || {
            exchange += 1;
            two.send(syn(1, exchange, b"let me in")).unwrap();
            one.stats().handshakes_refused >= 1
        }),
        "{:?} {:?}\n{}",
        one.stats(),
        two.stats(),
        common::log_lines_with(&[""]).join("\n")
    );
    // What went on the old link before it closed may still be queued.
    let _ = receive(&mut one, usize::MAX, Duration::from_millis(300));
    let refused = one.stats().handshakes_refused;
    assert!(eventually(LIMIT, || {
        exchange += 1;
        two.send(syn(1, exchange, b"once more")).unwrap();
        one.stats().handshakes_refused > refused
    }));
    assert!(receive(&mut one, 1, Duration::from_millis(300)).is_empty());
    assert_eq!(one.stats().connections_accepted, accepted);
    // Node 1 dials node 2: node 2's certificate is refused by node 1's own
    // verifier, and nothing is sent.
    let before = revoked.refused();
    let dialed = one.stats().connections_dialed;
    exchange += 1;
    one.send(syn(2, exchange, b"secret")).unwrap();
    assert!(eventually(LIMIT, || revoked.refused() > before));
    assert!(receive(&mut two, 1, Duration::from_millis(300)).is_empty());
    assert_eq!(one.stats().connections_dialed, dialed);

    // Lifted, the two talk again: after the reconnect backoff, node 1
    // dials anew.
    revoked.replace([]);
    let reached = eventually(LIMIT, || {
        exchange += 1;
        one.send(syn(2, exchange, b"hello again")).unwrap();
        !receive(&mut two, 1, Duration::from_millis(200)).is_empty()
    });
    assert!(
        reached,
        "node 1 never reached node 2 once the list was emptied"
    );
}

#[test]
fn a_client_revoked_while_connected_has_its_connection_closed() {
    let ca = ClusterCa::generate().unwrap();
    let revoked = DenyList::new();
    let node = node(
        ca.issue_node(NodeId::new(1), &[]).unwrap(),
        ca.cert(),
        &revoked,
    );
    let requests = node.requests().unwrap();
    let server = thread::spawn(move || {
        let request = requests.recv().unwrap();
        let stream = request.responder.stream(4).unwrap();
        stream.send_blocking(b"watching".to_vec()).unwrap();
        // Held open until the client goes.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(stream.closed());
    });
    let watcher = ca
        .issue_named_client(&ClientIdentity::new("watcher", ClientRole::Read).unwrap())
        .unwrap();
    let client = QuicClient::connect(
        node.local_addr(),
        &node_name(NodeId::new(1)),
        &watcher,
        ca.cert(),
        QuicConfig::default(),
    )
    .unwrap();
    let (first, mut frames) = client.subscribe(b"follow").unwrap();
    assert_eq!(first, b"watching");
    revoked.replace([serial(&watcher)]);
    // The stream ends with the connection, well before any timeout.
    let started = std::time::Instant::now();
    let ended = frames.next(LIMIT);
    assert!(!matches!(ended, Ok(Some(_))), "{ended:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(client.request(b"again").is_err());
    drop(client);
    server.join().unwrap();
}

#[test]
fn a_node_trusting_a_bundle_takes_both_cas_then_only_the_new_one() {
    let old = ClusterCa::generate().unwrap();
    let new = ClusterCa::generate().unwrap();
    let bundle = CaCert::bundle([old.cert(), new.cert()]);
    // Node 1, reissued under the new CA, trusts both during the change.
    let mut one = node(
        new.issue_node(NodeId::new(1), &[]).unwrap(),
        &bundle,
        &DenyList::new(),
    );
    let server = echo_identities(&one);
    let old_client = old.issue_client().unwrap();
    let new_client = new
        .issue_named_client(&ClientIdentity::new("ops", ClientRole::Read).unwrap())
        .unwrap();
    let addr = one.local_addr();
    assert_eq!(ask(addr, &old_client, &bundle).unwrap(), "client/write");
    assert_eq!(ask(addr, &new_client, &bundle).unwrap(), "ops/read");
    // A peer still on the old CA's certificate, trusting the bundle, and
    // node 1 exchange frames both ways.
    let mut two = node(
        old.issue_node(NodeId::new(2), &[]).unwrap(),
        &bundle,
        &DenyList::new(),
    );
    two.add_peer(NodeId::new(1), addr);
    one.add_peer(NodeId::new(2), two.local_addr());
    two.send(syn(1, 1, b"old to new")).unwrap();
    assert_eq!(receive(&mut one, 1, LIMIT)[0].payload, b"old to new");
    one.send(syn(2, 1, b"new to old")).unwrap();
    assert_eq!(receive(&mut two, 1, LIMIT)[0].payload, b"new to old");
    drop(one);
    server.join().unwrap();

    // The old CA dropped: node 1 restarted trusting the new CA alone
    // refuses the old CA's client and node.
    let mut one = node(
        new.issue_node(NodeId::new(1), &[]).unwrap(),
        new.cert(),
        &DenyList::new(),
    );
    let server = echo_identities(&one);
    let addr = one.local_addr();
    assert_eq!(ask(addr, &new_client, new.cert()).unwrap(), "ops/read");
    assert!(ask(addr, &old_client, &bundle).is_err());
    let mut three = node(
        old.issue_node(NodeId::new(3), &[]).unwrap(),
        &bundle,
        &DenyList::new(),
    );
    three.add_peer(NodeId::new(1), addr);
    three.send(syn(1, 1, b"still old")).unwrap();
    assert!(eventually(LIMIT, || one.stats().handshakes_refused >= 2));
    assert!(receive(&mut one, 1, Duration::from_millis(300)).is_empty());
    drop(one);
    server.join().unwrap();
}
