//! Nodes in-process: three `sim::node::run` calls on threads of this test,
//! each stopped by completing its shutdown future. Node 0 founds the
//! cluster, node 1 names it as a seed with its id, node 2 names node 1 by
//! address alone. A write through `sim::client::Client` on node 2 reaches
//! node 0; node 2, stopped, is seen as left; a node without its
//! certificate is a `NodeError` at once.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use lww_crdt::NodeId;
use sim::client::{Client, ClientError, Credentials, ProtoError, Target};
use sim::node::{self, NodeConfig, NodeError, Peer};
use support::{InProcess as Running, TempDir, eventually};
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

/// A node key its group or others can read is refused at the start, with
/// what to do about it.
#[cfg(unix)]
#[test]
fn a_node_key_readable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;

    let dir = TempDir::new("in-process-key-mode");
    certs(&dir, 1);
    let key = dir.path().join("node-0.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let never = std::future::pending::<&'static str>();
    let err = node::run(config(&dir, 0, free_addr(), vec![]), never).unwrap_err();
    let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(chain.contains("chmod 600"), "{chain}");
}

/// Five nodes in-process, node 4 with a clock the test moves: 2 s ahead,
/// past the 500 ms maximum offset, then back. Its peers report the offset;
/// it refuses client writes with an error that says why; it takes them
/// again once its clock is back in range.
#[test]
fn a_node_whose_clock_runs_past_the_max_offset_refuses_writes_until_it_is_back() {
    let dir = TempDir::new("in-process-clock");
    certs(&dir, 5);
    let addrs: Vec<_> = (0..5).map(|_| free_addr()).collect();
    let skew = node::ClockSkew::default();
    let nodes: Vec<Running> = (0..5)
        .map(|id| {
            let peers = if id == 0 {
                vec![]
            } else {
                vec![Peer {
                    id: None,
                    address: addrs[0].to_string(),
                }]
            };
            let mut config = config(&dir, id, addrs[id as usize], peers);
            if id == 4 {
                config.clock_skew = skew.clone();
            }
            Running::start(config)
        })
        .collect();
    let skewed = client(&dir, addrs[4]);
    let on_zero = client(&dir, addrs[0]);
    assert!(eventually(LIMIT, || skewed.put("before", "1").is_ok()));

    skew.set_ms(2_000);
    // Peers measure it about 2 s ahead (clocks are asked for on one tick in
    // ten, at a 20 ms interval here).
    assert!(eventually(LIMIT, || {
        on_zero.status().unwrap().members.iter().any(|m| {
            m.id == NodeId::new(4)
                && m.clock_offset_ms
                    .is_some_and(|ms| (1_900..2_100).contains(&ms))
        })
    }));
    let mut refusal = None;
    assert!(eventually(LIMIT, || match skewed.put("during", "1") {
        Err(ClientError::Refused(err @ ProtoError::ClockOutOfRange { .. })) => {
            refusal = Some(err);
            true
        }
        _ => false,
    }));
    let refusal = refusal.unwrap();
    let ProtoError::ClockOutOfRange {
        median_offset_ms,
        max_offset_ms,
        peers_beyond,
        peers_measured,
    } = refusal
    else {
        unreachable!()
    };
    assert!((-2_100..-1_900).contains(&median_offset_ms), "{refusal}");
    assert_eq!(max_offset_ms, 500);
    assert!(peers_beyond * 2 > peers_measured, "{refusal}");
    assert!(refusal.to_string().contains("clock"), "{refusal}");
    let status = skewed.status().unwrap();
    assert!(status.clock.out_of_range);
    // The others still take writes.
    on_zero.put("elsewhere", "1").unwrap();

    skew.set_ms(0);
    assert!(eventually(LIMIT, || skewed.put("after", "1").is_ok()));
    assert!(eventually(LIMIT, || on_zero
        .get("after")
        .unwrap()
        .is_some()));
    assert!(!skewed.status().unwrap().clock.out_of_range);
    skewed.close();
    on_zero.close();
    for node in nodes {
        node.stop().unwrap();
    }
}

/// A running cluster of three with data; a fourth node, named by nobody,
/// starts with one member as its seed (by address), catches up on what the
/// cluster holds, and its own write reaches every member.
#[test]
fn a_node_named_by_nobody_joins_a_running_cluster_through_one_seed() {
    let dir = TempDir::new("in-process-join");
    certs(&dir, 4);
    let addrs: Vec<_> = (0..4).map(|_| free_addr()).collect();
    let seed = |of: usize| {
        vec![Peer {
            id: None,
            address: addrs[of].to_string(),
        }]
    };
    let mut nodes = vec![Running::start(config(&dir, 0, addrs[0], vec![]))];
    nodes.push(Running::start(config(&dir, 1, addrs[1], seed(0))));
    nodes.push(Running::start(config(&dir, 2, addrs[2], seed(1))));
    let clients: Vec<Client> = addrs[..3].iter().map(|&a| client(&dir, a)).collect();
    for (i, c) in clients.iter().enumerate() {
        assert!(eventually(LIMIT, || c
            .put(&format!("old-{i}"), "v")
            .is_ok()));
    }

    nodes.push(Running::start(config(&dir, 3, addrs[3], seed(2))));
    let newcomer = client(&dir, addrs[3]);
    assert!(eventually(LIMIT, || {
        (0..3).all(|i| newcomer.get(&format!("old-{i}")).unwrap().is_some())
    }));
    assert!(eventually(LIMIT, || newcomer.put("new", "v").is_ok()));
    for c in &clients {
        assert!(eventually(LIMIT, || c.get("new").unwrap().is_some()));
        assert!(eventually(LIMIT, || c.status().unwrap().members.len() == 4));
    }
    newcomer.close();
    for c in clients {
        c.close();
    }
    for node in nodes {
        node.stop().unwrap();
    }
}
