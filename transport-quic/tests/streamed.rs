//! Streamed answers on the client channel: `Responder::stream` on the
//! node, `QuicClient::subscribe` on the client.

#![allow(clippy::unwrap_used)]

use std::thread;
use std::time::{Duration, Instant};

use lww_crdt::NodeId;
use transport_quic::certs::{ClusterCa, node_name};
use transport_quic::{QuicClient, QuicConfig, QuicTransport, RespondError};

const WAIT: Duration = Duration::from_secs(10);

fn node_and_client(ca: &ClusterCa, max_requests: usize) -> (QuicTransport, QuicClient) {
    let config = QuicConfig::builder()
        .max_concurrent_requests(max_requests)
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
    let client = QuicClient::connect(
        node.local_addr(),
        &node_name(NodeId::new(1)),
        &ca.issue_client().unwrap(),
        ca.cert(),
        QuicConfig::default(),
    )
    .unwrap();
    (node, client)
}

#[test]
fn a_stream_carries_frames_in_order_and_ends_when_the_node_drops_it() {
    let ca = ClusterCa::generate().unwrap();
    // One request place: the open stream must not hold it.
    let (node, client) = node_and_client(&ca, 1);
    let requests = node.requests().unwrap();
    let (go, gate) = std::sync::mpsc::channel::<()>();
    let server = thread::spawn(move || {
        let request = requests.recv().unwrap();
        assert_eq!(request.body, b"follow");
        let stream = request.responder.stream(4).unwrap();
        stream.send_blocking(b"first".to_vec()).unwrap();
        // An empty frame is refused, and the stream goes on.
        assert!(matches!(
            stream.send_blocking(Vec::new()),
            Err(RespondError::TooLarge { .. })
        ));
        // A plain request is served while the stream is open.
        let plain = requests.recv().unwrap();
        plain.responder.respond(b"plain".to_vec()).unwrap();
        gate.recv().unwrap();
        for i in 0..5u8 {
            stream.send_blocking(vec![b'0' + i]).unwrap();
        }
    });
    let (first, mut frames) = client.subscribe(b"follow").unwrap();
    assert_eq!(first, b"first");
    assert_eq!(client.request(b"plain?").unwrap(), b"plain");
    go.send(()).unwrap();
    let mut got = Vec::new();
    while let Some(frame) = frames.next(WAIT).unwrap() {
        got.push(frame);
    }
    assert_eq!(got, [b"0", b"1", b"2", b"3", b"4"].map(|b| b.to_vec()));
    assert_eq!(frames.next(WAIT).unwrap(), None);
    server.join().unwrap();
}

#[test]
fn a_client_that_goes_away_closes_the_stream_on_the_node() {
    let ca = ClusterCa::generate().unwrap();
    let (node, client) = node_and_client(&ca, 4);
    let requests = node.requests().unwrap();
    let server = thread::spawn(move || {
        let request = requests.recv().unwrap();
        let stream = request.responder.stream(1).unwrap();
        stream.send_blocking(b"hello".to_vec()).unwrap();
        let start = Instant::now();
        // Frames go until the client's stop reaches the node.
        loop {
            match stream.send_blocking(b"more".to_vec()) {
                Ok(()) => thread::sleep(Duration::from_millis(10)),
                Err(RespondError::Gone) => return start.elapsed(),
                Err(other) => panic!("{other}"),
            }
            assert!(start.elapsed() < WAIT, "the stream never closed");
        }
    });
    let (first, frames) = client.subscribe(b"follow").unwrap();
    assert_eq!(first, b"hello");
    drop(frames);
    server.join().unwrap();
    assert_eq!(node.stats().requests_answered, 1);
}

#[test]
fn shutting_the_node_down_ends_the_stream_cleanly() {
    let ca = ClusterCa::generate().unwrap();
    let (node, client) = node_and_client(&ca, 4);
    let requests = node.requests().unwrap();
    let server = thread::spawn(move || {
        let request = requests.recv().unwrap();
        let stream = request.responder.stream(1).unwrap();
        stream.send_blocking(b"hello".to_vec()).unwrap();
        // Held open until the transport goes.
        stream
    });
    let (first, mut frames) = client.subscribe(b"follow").unwrap();
    assert_eq!(first, b"hello");
    let stream = server.join().unwrap();
    node.shutdown();
    assert_eq!(frames.next(WAIT).unwrap(), None);
    assert!(matches!(
        stream.send_blocking(b"late".to_vec()),
        Err(RespondError::Gone)
    ));
}

#[test]
fn a_plain_answer_to_a_subscription_is_its_only_frame() {
    let ca = ClusterCa::generate().unwrap();
    let (node, client) = node_and_client(&ca, 4);
    let requests = node.requests().unwrap();
    let server = thread::spawn(move || {
        let request = requests.recv().unwrap();
        request.responder.respond(b"no".to_vec()).unwrap();
    });
    let (first, mut frames) = client.subscribe(b"follow").unwrap();
    assert_eq!(first, b"no");
    assert_eq!(frames.next(WAIT).unwrap(), None);
    server.join().unwrap();
}
