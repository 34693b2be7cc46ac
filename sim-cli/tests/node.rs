//! Nodes in-process: three `sim::node::run` calls on threads of this test,
//! each stopped by completing its shutdown future. Node 0 founds the
//! cluster, node 1 names it as a seed with its id, node 2 names node 1 by
//! address alone. A write through `sim::client::Client` on node 2 reaches
//! node 0; node 2, stopped, is seen as left; a node without its
//! certificate is a `NodeError` at once.

#![allow(clippy::unwrap_used)]

mod support;

use std::thread::{self, JoinHandle};
use std::time::Duration;

use lww_crdt::NodeId;
use sim::client::{Client, ClientError, Credentials, ProtoError, Target};
use sim::node::{self, NodeConfig, NodeError, Peer};
use support::{TempDir, eventually};
use tokio::sync::oneshot;
use transport_quic::certs::{CertDir, ClusterCa};

const LIMIT: Duration = Duration::from_secs(20);

fn certs(dir: &TempDir, nodes: u64) {
    let ca = ClusterCa::generate().unwrap();
    let out = CertDir::new(dir.path());
    out.write_ca(&ca).unwrap();
    for id in 0..nodes {
        let identity = ca
            .issue_node(NodeId::new(id), &["127.0.0.1".to_owned()])
            .unwrap();
        out.write_identity(&identity).unwrap();
    }
    out.write_identity(&ca.issue_client().unwrap()).unwrap();
}

fn free_addr() -> std::net::SocketAddr {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap()
}

/// A node running on a thread of this test, stopped through `stop`.
struct Running {
    stop: oneshot::Sender<()>,
    thread: JoinHandle<Result<(), NodeError>>,
}

impl Running {
    fn start(config: NodeConfig) -> Running {
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = thread::spawn(move || {
            node::run(config, async {
                let _ = stopped.await;
                "the test stopped it"
            })
        });
        Running { stop, thread }
    }

    /// Completes the shutdown future; returns what `run` returned.
    fn stop(self) -> Result<(), NodeError> {
        let _ = self.stop.send(());
        self.thread.join().unwrap()
    }
}

fn config(dir: &TempDir, id: u64, listen: std::net::SocketAddr, peers: Vec<Peer>) -> NodeConfig {
    let mut config = NodeConfig::new(NodeId::new(id), listen, dir.path());
    config.peers = peers;
    config.incarnation = Some(1);
    config.interval_ms = 20;
    config.drain_ms = 500;
    config
}

fn client(dir: &TempDir, addr: std::net::SocketAddr) -> Client {
    let credentials = Credentials::load(dir.path()).unwrap();
    let target = Target::resolve(&addr.to_string(), None, None).unwrap();
    Client::connect(target, &credentials, Duration::from_secs(5)).unwrap()
}

#[test]
fn nodes_run_in_process_replicate_and_stop_when_told() {
    let dir = TempDir::new("in-process");
    certs(&dir, 3);
    let addrs = [free_addr(), free_addr(), free_addr()];
    let zero = Running::start(config(&dir, 0, addrs[0], vec![]));
    let one = Running::start(config(
        &dir,
        1,
        addrs[1],
        vec![Peer {
            id: Some(NodeId::new(0)),
            address: addrs[0].to_string(),
        }],
    ));
    let two = Running::start(config(
        &dir,
        2,
        addrs[2],
        vec![Peer {
            id: None,
            address: addrs[1].to_string(),
        }],
    ));

    let on_two = client(&dir, addrs[2]);
    // Node 2 takes writes once a member has answered it.
    let mut stamp = None;
    assert!(eventually(LIMIT, || match on_two.put("colour", "blue") {
        Ok(s) => {
            stamp = Some(s);
            true
        }
        Err(ClientError::Refused(ProtoError::NotJoined)) => false,
        Err(err) => panic!("{err}"),
    }));
    let on_zero = client(&dir, addrs[0]);
    assert!(eventually(LIMIT, || {
        on_zero.get("colour").unwrap().map(|e| e.stamp) == stamp
    }));
    assert!(eventually(LIMIT, || on_zero
        .status()
        .unwrap()
        .members
        .len()
        == 3));
    on_two.close();

    two.stop().unwrap();
    assert!(eventually(LIMIT, || {
        let status = on_zero.status().unwrap();
        status
            .members
            .iter()
            .any(|m| m.id == NodeId::new(2) && m.liveness == Some(gossip::Liveness::Left))
    }));
    on_zero.close();
    one.stop().unwrap();
    zero.stop().unwrap();
}

#[test]
fn a_node_without_its_certificate_does_not_start() {
    let dir = TempDir::new("in-process-bad");
    certs(&dir, 1);
    let never = std::future::pending::<&'static str>();
    let err = node::run(config(&dir, 9, free_addr(), vec![]), never).unwrap_err();
    assert!(matches!(err, NodeError::NodeCertificate { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("cannot load node 9's certificate")
    );
}
