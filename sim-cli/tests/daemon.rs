//! The node daemon and the client commands on loopback: certificates, a
//! two-node cluster serving put/get/delete/status, clean shutdown on
//! SIGTERM and SIGINT, refused clients and bad flags.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use lww_crdt::NodeId;
use support::{
    LIMIT, NodeProc, TempDir, certs, client, eventually, free_addr, json, run, stderr, stdout,
    stop_all,
};
use transport_quic::certs::CertDir;

fn start(dir: &TempDir, certs: &str, id: u64, listen: &str, peers: &[(u64, &str)]) -> NodeProc {
    start_with(dir, certs, id, listen, peers, &[])
}

/// [`start`] with `extra` flags.
fn start_with(
    dir: &TempDir,
    certs: &str,
    id: u64,
    listen: &str,
    peers: &[(u64, &str)],
    extra: &[&str],
) -> NodeProc {
    let mut args = vec![
        "--id".to_owned(),
        id.to_string(),
        "--listen".to_owned(),
        listen.to_owned(),
        "--certs".to_owned(),
        certs.to_owned(),
        "--interval-ms".to_owned(),
        "50".to_owned(),
    ];
    if !extra.contains(&"--incarnation") {
        args.extend(["--incarnation".to_owned(), "1".to_owned()]);
    }
    for (peer, addr) in peers {
        args.push("--peer".to_owned());
        args.push(format!("{peer}={addr}"));
    }
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.extend_from_slice(extra);
    NodeProc::start(&[], &args, dir.join(&format!("node-{id}.log")))
}

#[test]
fn certs_writes_every_file_and_never_overwrites() {
    let dir = TempDir::new("certs");
    let out = dir.str("c");
    let o = run(&[
        "certs",
        "--out",
        &out,
        "--nodes",
        "0,1",
        "--node",
        "2=10.213.77.12,host-b",
        "--name",
        "127.0.0.1",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let names = [
        "ca.pem",
        "ca/ca.key",
        "ca/ca.pem",
        "node-0.pem",
        "node-0.key",
        "node-1.pem",
        "node-1.key",
        "node-2.pem",
        "node-2.key",
        "client.pem",
        "client.key",
    ];
    for name in names {
        let path = dir.join(&format!("c/{name}"));
        assert!(path.exists(), "{name} missing");
        assert!(
            stdout(&o).contains(name),
            "{name} not listed: {}",
            stdout(&o)
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            let want = if name.ends_with(".key") { 0o600 } else { 0o644 };
            assert_eq!(mode, want, "{name}");
        }
    }
    // Each node certificate chains to the CA and names what was asked.
    let certs = CertDir::new(&out);
    for id in 0..3 {
        certs.load_node(NodeId::new(id)).unwrap();
    }
    let two = certs.load_node(NodeId::new(2)).unwrap();
    assert!(transport_quic::tls::valid_for(&two.chain()[0], "host-b"));
    assert!(!transport_quic::tls::valid_for(
        &certs.load_node(NodeId::new(0)).unwrap().chain()[0],
        "host-b"
    ));
    certs.load_client().unwrap();

    // Nothing is replaced, and a refusal writes nothing at all.
    let ca_before = std::fs::read(dir.join("c/ca.pem")).unwrap();
    let o = run(&["certs", "--out", &out, "--nodes", "1,7"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("refusing to overwrite"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!dir.join("c/node-7.pem").exists());
    assert_eq!(std::fs::read(dir.join("c/ca.pem")).unwrap(), ca_before);

    // --add issues more nodes with the existing CA.
    let o = run(&["certs", "--out", &out, "--add", "--nodes", "7", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(json(&o)["new_ca"], false);
    certs.load_node(NodeId::new(7)).unwrap();
    assert_eq!(std::fs::read(dir.join("c/ca.pem")).unwrap(), ca_before);

    // No nodes, or an id beyond 32 bits: refused.
    for args in [
        vec!["certs", "--out", &out],
        vec!["certs", "--out", &out, "--nodes", "4294967296"],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn two_nodes_serve_put_get_delete_status_and_stop_cleanly() {
    let dir = TempDir::new("loopback");
    let certs = certs(&dir, "c", "1,2,3");
    let (addr1, addr2, addr3) = (free_addr(), free_addr(), free_addr());
    // Node 1 knows 2 and 3; they know only node 1, and learn each other's
    // addresses through gossip.
    let mut one = start(&dir, &certs, 1, &addr1, &[(2, &addr2), (3, &addr3)]);
    let mut two = start(&dir, &certs, 2, &addr2, &[(1, &addr1)]);
    let three = start(&dir, &certs, 3, &addr3, &[(1, &addr1)]);
    for node in [&one, &two, &three] {
        node.listen_addr(LIMIT);
    }
    let o = client("put", &["colour", "blue"], &addr2, &certs);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("put \"colour\": hlc "),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("by member 2 (incarnation 1)"));

    // Replicated to node 1, read with its stamp.
    assert!(
        eventually(LIMIT, || client("get", &["colour"], &addr1, &certs)
            .status
            .success()),
        "node 1 never saw the write"
    );
    let o = client("get", &["colour", "--json"], &addr1, &certs);
    let doc = json(&o);
    assert_eq!(doc["found"], true);
    assert_eq!(doc["value"], "blue");
    assert_eq!(doc["stamp"]["member"], 2);
    assert_eq!(doc["stamp"]["incarnation"], 1);
    assert!(doc["stamp"]["hlc"].as_u64().unwrap() > 0);
    let text = stdout(&client("get", &["colour"], &addr1, &certs));
    assert!(text.starts_with("blue\nstamp  hlc "), "{text}");

    // Nodes 2 and 3 learned each other's addresses through gossip, and
    // talk directly.
    assert!(
        eventually(LIMIT, || {
            let doc = json(&client("status", &["--json"], &addr2, &certs));
            doc["members"].as_array().unwrap().iter().any(|m| {
                m["id"] == 3
                    && m["address"] == addr3.as_str()
                    && m["liveness"] == "alive"
                    && m["last_heard_ms_ago"].is_u64()
            })
        }),
        "{}",
        two.log()
    );

    // Delete on node 1; node 2 reads it as absent, exit status 1.
    let o = client("delete", &["colour"], &addr1, &certs);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(eventually(LIMIT, || {
        let o = client("get", &["colour"], &addr2, &certs);
        o.status.code() == Some(1) && stdout(&o).contains("was deleted")
    }));

    // A key never written: absent, exit status 1, nothing on stderr.
    let o = client("get", &["never"], &addr2, &certs);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("never written"), "{}", stdout(&o));
    assert!(stderr(&o).is_empty());
    assert_eq!(
        json(&client("get", &["never", "--json"], &addr2, &certs))["found"],
        false
    );

    // Status: members, counts, vector, counters; text and JSON.
    let doc = json(&client("status", &["--json"], &addr2, &certs));
    assert_eq!(doc["id"], 2);
    assert_eq!(doc["incarnation"], 1);
    assert_eq!(doc["members"].as_array().unwrap().len(), 3);
    assert_eq!(doc["members"][0]["liveness"], "self");
    assert_eq!(doc["keys"], 0);
    // The delete's tombstone, unless every member has it already and it was
    // collected (a GC period is about a second here).
    assert!(doc["tombstones"] == 1 || doc["tombstones"] == 0, "{doc}");
    assert_eq!(doc["vector"]["origins"].as_array().unwrap().len(), 2);
    assert!(doc["vector"]["max_hlc"].as_u64().unwrap() > 0);
    assert!(doc["metrics"]["exchanges_completed"].as_u64().unwrap() > 0);
    assert!(doc["transport"]["requests_answered"].as_u64().unwrap() > 0);
    let text = stdout(&client("status", &[], &addr2, &certs));
    for needle in [
        "node 2 (incarnation 1)",
        "members",
        "keys        0 live, ",
        "vector      2 origins",
        "exchanges",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }

    // Both nodes hold the same map.
    let o = run(&[
        "converged",
        "--node",
        &addr1,
        "--node",
        &addr2,
        "--certs",
        &certs,
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert_eq!(json(&o)["converged"], true);

    // --node-id authenticates the node by its id instead of its address.
    let o = client("get", &["never", "--node-id", "1"], &addr1, &certs);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let o = client("get", &["never", "--node-id", "2"], &addr1, &certs);
    assert_eq!(o.status.code(), Some(2), "node 1 passed for node 2");

    // A write acknowledged just before SIGTERM still reaches the peer: the
    // node drains before it stops, and exits 0.
    let o = client("put", &["last-word", "said"], &addr2, &certs);
    assert_eq!(o.status.code(), Some(0));
    let status = two.terminate(LIMIT).expect("node 2 exits after SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", two.log());
    let log = two.log();
    assert!(log.contains("reason=\"SIGTERM\""), "{log}");
    assert!(log.contains("stopped"), "{log}");
    // The test's certificate directory holds ca.key, as `certs` leaves it.
    assert!(log.contains("holds the CA's private key"), "{log}");
    let o = client("get", &["last-word"], &addr1, &certs);
    assert_eq!(
        o.status.code(),
        Some(0),
        "the last write was lost: {}",
        one.log()
    );

    // SIGINT stops a node too.
    one.signal("-INT");
    let status = one.wait(LIMIT).expect("node 1 exits after SIGINT");
    assert_eq!(status.code(), Some(0), "{}", one.log());
    assert!(one.log().contains("reason=\"SIGINT\""));
}

#[test]
fn clients_without_this_clusters_certificate_are_refused() {
    let dir = TempDir::new("refused");
    let certs = certs(&dir, "c", "1");
    let foreign = certs_of_other_cluster(&dir);
    let addr = free_addr();
    let one = start(&dir, &certs, 1, &addr, &[]);
    one.listen_addr(LIMIT);

    // A client certificate from another CA: the handshake fails.
    let o = client("get", &["k", "--timeout-ms", "3000"], &addr, &foreign);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: TLS handshake with 127.0.0.1:") || err.contains("refused"),
        "{err}"
    );

    // No client certificate at all: the client says so before dialing.
    let bare = dir.join("bare");
    std::fs::create_dir_all(&bare).unwrap();
    std::fs::copy(dir.join("c/ca.pem"), bare.join("ca.pem")).unwrap();
    let o = client("status", &[], &addr, bare.to_str().unwrap());
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("cannot load the client certificate"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    // A node certificate is not a client certificate either.
    let impostor = dir.join("impostor");
    std::fs::create_dir_all(&impostor).unwrap();
    std::fs::copy(dir.join("c/ca.pem"), impostor.join("ca.pem")).unwrap();
    std::fs::copy(dir.join("c/node-1.pem"), impostor.join("client.pem")).unwrap();
    std::fs::copy(dir.join("c/node-1.key"), impostor.join("client.key")).unwrap();
    let o = client("status", &[], &addr, impostor.to_str().unwrap());
    assert_eq!(o.status.code(), Some(2));

    // The node kept serving, and counted the refused handshake.
    let o = client("status", &["--json"], &addr, &certs);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        json(&o)["transport"]["handshakes_refused"]
            .as_u64()
            .unwrap()
            >= 1
    );
}

/// A run of refused handshakes is counted one by one, but warned about
/// once per period: a flood must not become a flood of log lines.
#[test]
fn refused_handshakes_are_counted_and_their_warnings_held_to_one_a_period() {
    let dir = TempDir::new("refused-flood");
    let certs = certs(&dir, "c", "1");
    let foreign = certs_of_other_cluster(&dir);
    let addr = free_addr();
    let mut one = start(&dir, &certs, 1, &addr, &[]);
    one.listen_addr(LIMIT);
    let attempts = 12;
    for _ in 0..attempts {
        let o = client("get", &["k", "--timeout-ms", "3000"], &addr, &foreign);
        assert_eq!(o.status.code(), Some(2));
    }
    let o = client("status", &["--json"], &addr, &certs);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let refused = json(&o)["transport"]["handshakes_refused"]
        .as_u64()
        .unwrap();
    assert!(refused >= attempts, "{refused} refusals counted");
    let status = one.terminate(LIMIT).expect("exits after SIGTERM");
    assert_eq!(status.code(), Some(0));
    let warned = one
        .log()
        .lines()
        .filter(|line| line.contains("refused connection") && line.contains("WARN"))
        .count();
    // The run takes a few seconds, well inside one 10 s period.
    assert!(
        (1..=2).contains(&warned),
        "{warned} warnings:\n{}",
        one.log()
    );
}

fn certs_of_other_cluster(dir: &TempDir) -> String {
    certs(dir, "other", "1")
}

#[test]
fn nothing_listens_means_a_clear_error() {
    let dir = TempDir::new("nobody");
    let certs = certs(&dir, "c", "1");
    // A port nobody serves: bind one, then let it go.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let o = client("get", &["k", "--timeout-ms", "500"], &addr, &certs);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("no answer from 127.0.0.1:"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn bad_flags_and_bad_setups_exit_two() {
    let dir = TempDir::new("flags");
    let certs = certs(&dir, "c", "1");
    for (args, needle) in [
        (
            vec![
                "node",
                "--id",
                "1",
                "--listen",
                "127.0.0.1:0",
                "--certs",
                &certs,
                "--peer",
                "nonsense",
            ],
            "HOST:PORT",
        ),
        (vec!["node", "--id", "1", "--certs", &certs], "--listen"),
        (
            vec![
                "node",
                "--id",
                "1",
                "--listen",
                "127.0.0.1:0",
                "--certs",
                &certs,
                "--fanout",
                "0",
            ],
            "--fanout",
        ),
        (
            vec![
                "node",
                "--id",
                "1",
                "--listen",
                "127.0.0.1:0",
                "--certs",
                &certs,
                "--max-message-bytes",
                "99999999",
            ],
            "--max-message-bytes",
        ),
        (
            vec![
                "node",
                "--id",
                "1",
                "--listen",
                "127.0.0.1:0",
                "--certs",
                &certs,
                "--pull-depth",
                "4",
            ],
            "--pull-depth",
        ),
        (vec!["put", "k", "v", "--certs", &certs], "--node"),
        (
            vec!["get", "k", "--node", "no-port", "--certs", &certs],
            "no-port",
        ),
        (vec!["certs", "--nodes", "1"], "--out"),
        // Setup errors after parsing: a node without its certificate, a
        // peer naming the node itself.
        (
            vec![
                "node",
                "--id",
                "5",
                "--listen",
                "127.0.0.1:0",
                "--certs",
                &certs,
            ],
            "node 5's certificate",
        ),
        (
            vec![
                "node",
                "--id",
                "1",
                "--listen",
                "127.0.0.1:0",
                "--certs",
                &certs,
                "--peer",
                "1=127.0.0.1:9",
            ],
            "names this node itself",
        ),
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
        assert!(stdout(&o).is_empty(), "{args:?}");
    }
}

#[test]
fn a_draining_node_stops_once_its_peers_stop_answering() {
    // The drain bound is a minute; the peer's death must end it long before.
    let dir = TempDir::new("drain");
    let certs = certs(&dir, "c", "1,2");
    let (addr1, addr2) = (free_addr(), free_addr());
    let extra = ["--exchange-timeout-ms", "300", "--drain-ms", "60000"];
    let mut one = start_with(&dir, &certs, 1, &addr1, &[(2, &addr2)], &extra);
    let mut two = start_with(&dir, &certs, 2, &addr2, &[(1, &addr1)], &extra);
    one.listen_addr(LIMIT);
    two.listen_addr(LIMIT);
    let o = client("put", &["colour", "blue"], &addr2, &certs);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        eventually(LIMIT, || client("get", &["colour"], &addr1, &certs)
            .status
            .code()
            == Some(0)),
        "the nodes never gossiped: {}",
        one.log()
    );
    two.signal("-KILL");
    two.wait(LIMIT).expect("node 2 dies");
    let status = one
        .terminate(LIMIT)
        .expect("node 1 stops without waiting out its drain bound");
    assert_eq!(status.code(), Some(0), "{}", one.log());
    assert!(
        one.log().contains("peers stopped answering"),
        "{}",
        one.log()
    );
}

/// A node started with a peer that is not up takes no writes: `put` waits
/// out `--timeout-ms` and exits 2 with the reason, `status` says the node
/// has not joined, and nothing is written. Once the peer answers, the same
/// `put` goes through. A node started with no peer founds the cluster and
/// takes writes at once.
#[test]
fn a_node_takes_writes_only_once_a_peer_has_answered() {
    let dir = TempDir::new("join");
    let certs = certs(&dir, "c", "1,2,3");
    let (addr1, addr2, addr3) = (free_addr(), free_addr(), free_addr());
    let mut one = start(&dir, &certs, 1, &addr1, &[(2, &addr2)]);
    one.listen_addr(LIMIT);
    let status = json(&client("status", &["--json"], &addr1, &certs));
    assert_eq!(status["joined"], serde_json::Value::Bool(false));
    assert!(stdout(&client("status", &[], &addr1, &certs)).contains("not joined yet"));
    let o = client(
        "put",
        &["colour", "blue", "--timeout-ms", "600"],
        &addr1,
        &certs,
    );
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("has not joined the cluster yet"),
        "{}",
        stderr(&o)
    );
    let status = json(&client("status", &["--json"], &addr1, &certs));
    assert_eq!(status["keys"], 0);

    let mut two = start(&dir, &certs, 2, &addr2, &[(1, &addr1)]);
    two.listen_addr(LIMIT);
    let o = client("put", &["colour", "blue"], &addr1, &certs);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let status = json(&client("status", &["--json"], &addr1, &certs));
    assert_eq!(status["joined"], serde_json::Value::Bool(true));

    let mut three = start(&dir, &certs, 3, &addr3, &[]);
    three.listen_addr(LIMIT);
    let o = client(
        "put",
        &["alone", "yes", "--timeout-ms", "600"],
        &addr3,
        &certs,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    stop_all(&mut [&mut one, &mut two, &mut three]);
}

/// Twenty nodes, each started naming node 0 only (node 0 names no one):
/// every node learns every member and its address through gossip, and
/// writes on three nodes that no flag names reach all twenty. Node 0 answers
/// each newcomer on the stream it opened before it knows the newcomer's
/// address; before it did, a write on such a node never left it.
#[test]
fn nodes_that_name_one_seed_learn_each_other_and_converge() {
    const NODES: u64 = 20;
    let dir = TempDir::new("one-seed");
    let ids: Vec<String> = (0..NODES).map(|id| id.to_string()).collect();
    let certs = certs(&dir, "c", &ids.join(","));
    let launched_unix_ms = unix_ms();
    // Each node binds a port of its own choosing and logs it: twenty ports
    // picked free beforehand could be taken by another test meanwhile.
    let zero = start(&dir, &certs, 0, "127.0.0.1:0", &[]);
    let seed = zero.listen_addr(LIMIT);
    let mut nodes = vec![zero];
    nodes.extend((1..NODES).map(|id| start(&dir, &certs, id, "127.0.0.1:0", &[(0, &seed)])));
    let addrs: Vec<String> = nodes.iter().map(|node| node.listen_addr(LIMIT)).collect();
    for (writer, key) in [(3, "from-3"), (11, "from-11"), (17, "from-17")] {
        let o = client("put", &[key, "v"], &addrs[writer], &certs);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    let mut args = vec!["converged", "--timeout-ms", "20000"];
    for addr in &addrs {
        args.extend(["--node", addr.as_str()]);
    }
    args.extend(["--certs", certs.as_str()]);
    let o = run(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    for addr in &addrs {
        let members = json(&client("members", &["--json"], addr, &certs));
        let members = members.as_array().unwrap();
        assert_eq!(members.len(), NODES as usize, "{addr}: {members:?}");
        assert!(
            members
                .iter()
                .all(|m| !m["address"].as_str().unwrap().is_empty()
                    && m["incarnation"] == 1
                    && ["self", "alive"].contains(&m["liveness"].as_str().unwrap())),
            "{addr}: {members:?}"
        );
        let status = json(&client("status", &["--json"], addr, &certs));
        assert_eq!(status["keys"], 3, "{addr}");
    }
    let table = stdout(&client("members", &[], &addrs[5], &certs));
    assert_eq!(table.lines().count(), NODES as usize + 1, "{table}");
    assert!(
        table.lines().next().unwrap().contains("incarnation"),
        "{table}"
    );
    // `bench members` reads when each node's list became whole by the
    // node's own clock: after the launch, before this moment.
    let since = launched_unix_ms.to_string();
    let mut args = vec!["bench", "members", "--since-unix-ms", &since, "--json"];
    for addr in &addrs {
        args.extend(["--node", addr.as_str()]);
    }
    args.extend(["--certs", certs.as_str()]);
    let o = run(&args);
    let asked_by = (unix_ms() - launched_unix_ms) as f64;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["all_known"], true, "{report}");
    let told = report["node_known_ms"].as_array().unwrap();
    assert_eq!(told.len(), NODES as usize, "{report}");
    for ms in told {
        let ms = ms.as_f64().unwrap();
        assert!(
            ms > 0.0 && ms < asked_by,
            "{ms} not within 0..{asked_by}: {report}"
        );
    }
    stop_all(&mut nodes.iter_mut().collect::<Vec<_>>());
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Writers keep putting on node 2 while it gets SIGTERM. Every put it
/// acknowledged must be on node 1 once node 2 is gone; the rest were refused
/// (`shutting down`, exit 2) or found the node gone. A write taken during the
/// drain, after the last exchange that would carry it, was acknowledged and
/// then lost with the node.
#[test]
fn puts_during_shutdown_are_refused_or_reach_a_surviving_peer() {
    let dir = TempDir::new("drain-writes");
    let certs = certs(&dir, "c", "1,2");
    let (addr1, addr2) = (free_addr(), free_addr());
    let mut one = start(&dir, &certs, 1, &addr1, &[]);
    let mut two = start(&dir, &certs, 2, &addr2, &[(1, &addr1)]);
    one.listen_addr(LIMIT);
    two.listen_addr(LIMIT);
    let o = client("put", &["warm", "up"], &addr2, &certs);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let acknowledged = std::sync::Mutex::new(Vec::new());
    let refused = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for writer in 0..4 {
            let (acknowledged, refused, addr2, certs) = (&acknowledged, &refused, &addr2, &certs);
            scope.spawn(move || {
                for i in 0..40 {
                    let key = format!("w{writer}-{i}");
                    let o = client("put", &[&key, "v", "--timeout-ms", "1000"], addr2, certs);
                    if o.status.code() == Some(0) {
                        acknowledged.lock().unwrap().push(key);
                    } else {
                        // Refused, or the node is gone: this writer is done.
                        refused.lock().unwrap().push(stderr(&o));
                        return;
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_millis(800));
        let status = two.terminate(LIMIT).expect("node 2 exits after SIGTERM");
        assert_eq!(status.code(), Some(0), "{}", two.log());
    });
    let acknowledged = acknowledged.into_inner().unwrap();
    let refused = refused.into_inner().unwrap();
    assert!(
        !acknowledged.is_empty() && !refused.is_empty(),
        "no write around the stop"
    );
    for key in &acknowledged {
        let o = client("get", &[key], &addr1, &certs);
        assert_eq!(
            o.status.code(),
            Some(0),
            "acknowledged {key} lost: {}",
            one.log()
        );
    }
    eprintln!(
        "{} puts acknowledged, {} writers stopped by a refusal or a gone node, {} by `shutting down`",
        acknowledged.len(),
        refused.len(),
        refused
            .iter()
            .filter(|e| e.contains("shutting down"))
            .count()
    );
    let status = one.terminate(LIMIT).expect("node 1 exits");
    assert_eq!(status.code(), Some(0), "{}", one.log());
}

/// A `watch` client killed with SIGKILL never acknowledges the end of its
/// stream. The node's SIGTERM must not wait for it to the transport's
/// shutdown bound (it did: 2 s and `shutdown bound reached with streams
/// still open`).
#[test]
fn a_killed_watch_client_does_not_hold_up_the_shutdown() {
    let dir = TempDir::new("watch-killed");
    let certs = certs(&dir, "c", "1");
    let mut node = start(&dir, &certs, 1, "127.0.0.1:0", &[]);
    let addr = node.listen_addr(LIMIT);
    let out = std::fs::File::create(dir.join("watch.out")).unwrap();
    let mut watch = std::process::Command::new(support::bin())
        .args(["watch", "--node", &addr, "--certs", &certs])
        .stdout(out)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Until the watch has seen a change: it is being served.
    assert!(eventually(LIMIT, || {
        let _ = client("put", &["k", "v"], &addr, &certs);
        std::fs::read_to_string(dir.join("watch.out")).is_ok_and(|o| o.contains("put k"))
    }));
    watch.kill().unwrap();
    let _ = watch.wait();
    assert_eq!(node.terminate(LIMIT).and_then(|s| s.code()), Some(0));
    assert!(
        !node.log().contains("shutdown bound reached"),
        "{}",
        node.log()
    );
}

/// SIGTERM on node 3: the others mark it Left within a few intervals and log
/// that it left, never that it is unresponsive, though it stays gone longer
/// than down detection takes. Restarted in a newer incarnation, it is alive
/// again.
#[test]
fn a_node_stopped_with_sigterm_is_left_not_down_and_welcome_back() {
    let dir = TempDir::new("leave");
    let certs = certs(&dir, "c", "1,2,3");
    let (addr1, addr2, addr3) = (free_addr(), free_addr(), free_addr());
    let mut one = start(&dir, &certs, 1, &addr1, &[]);
    let mut two = start(&dir, &certs, 2, &addr2, &[(1, &addr1)]);
    let mut three = start(&dir, &certs, 3, &addr3, &[(1, &addr1)]);
    for node in [&mut one, &mut two, &mut three] {
        node.listen_addr(LIMIT);
    }
    let state_of_3 = |addr: &str| {
        let members = json(&client("members", &["--json"], addr, &certs));
        members
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == 3)
            .map(|m| m["liveness"].as_str().unwrap().to_owned())
    };
    assert!(eventually(LIMIT, || [&addr1, &addr2]
        .iter()
        .all(|a| state_of_3(a).as_deref() == Some("alive"))));
    let status = three.terminate(LIMIT).expect("node 3 exits after SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", three.log());
    assert!(
        eventually(Duration::from_secs(2), || [&addr1, &addr2]
            .iter()
            .all(|a| state_of_3(a).as_deref() == Some("left"))),
        "{}\n{}",
        one.log(),
        two.log()
    );
    // Past down detection (4 failed exchanges of 1 s, probes every 10
    // intervals): still Left, and nothing logged as unresponsive.
    std::thread::sleep(Duration::from_secs(3));
    for (node, addr) in [(&one, &addr1), (&two, &addr2)] {
        assert_eq!(state_of_3(addr).as_deref(), Some("left"));
        let log = node.log();
        assert!(log.contains("peer left the cluster peer=3"), "{log}");
        assert!(!log.contains("peer unresponsive peer=3"), "{log}");
    }
    let mut back = start_with(
        &dir,
        &certs,
        3,
        &addr3,
        &[(1, &addr1)],
        &["--incarnation", "2"],
    );
    back.listen_addr(LIMIT);
    assert!(eventually(LIMIT, || [&addr1, &addr2]
        .iter()
        .all(|a| state_of_3(a).as_deref() == Some("alive"))));
    stop_all(&mut [&mut one, &mut two, &mut back]);
}

/// Seeds given by address alone (`--peer 127.0.0.1:PORT`): the node reads
/// the seed's id from its certificate, which names that address, and joins
/// through it as with `--peer ID=ADDR`. Node 2 starts before its seed: the
/// dial waits for it (and would be tried again every second).
#[test]
fn a_seed_given_by_address_alone_is_found_and_joined_through() {
    let dir = TempDir::new("seed-by-address");
    let certs = certs(&dir, "c", "1,2,3");
    let (addr1, addr2, addr3) = (free_addr(), free_addr(), free_addr());
    // Node 2 starts first: its seed is not up yet.
    let mut two = start_with(&dir, &certs, 2, &addr2, &[], &["--peer", &addr1]);
    two.listen_addr(LIMIT);
    let mut one = start(&dir, &certs, 1, &addr1, &[]);
    one.listen_addr(LIMIT);
    let mut three = start_with(&dir, &certs, 3, &addr3, &[], &["--peer", &addr1]);
    three.listen_addr(LIMIT);
    let o = client("put", &["from-3", "v"], &addr3, &certs);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = client("put", &["from-2", "v"], &addr2, &certs);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(&[
        "converged",
        "--node",
        &addr1,
        "--node",
        &addr2,
        "--node",
        &addr3,
        "--certs",
        &certs,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    for addr in [&addr1, &addr2, &addr3] {
        let members = json(&client("members", &["--json"], addr, &certs));
        assert_eq!(members.as_array().unwrap().len(), 3, "{addr}: {members}");
        assert_eq!(
            client("get", &["from-3"], addr, &certs).status.code(),
            Some(0)
        );
    }
    assert!(two.log().contains("seed found"), "{}", two.log());
    // Being found is no refused connection: the finder closes as soon as
    // it has read the certificate, before the seed has read a hello.
    assert!(!one.log().contains("refused connection"), "{}", one.log());
    stop_all(&mut [&mut one, &mut two, &mut three]);
}

/// Node 2 runs with a smaller `--max-message-bytes` than nodes 0 and 1.
/// Before, node 0 sent node 2 entries node 2 refused unread, and every
/// exchange between them failed silently from the first large entry on.
/// Now both sides log the mismatch, naming the setting and both values,
/// and refuse to exchange; nodes 0 and 1, which agree, carry the large
/// entry and every write after it.
#[test]
fn nodes_with_different_message_limits_say_so_and_hold_no_write_back() {
    let dir = TempDir::new("limits");
    let certs = certs(&dir, "c", "0,1,2");
    let addrs: Vec<String> = (0..3).map(|_| free_addr()).collect();
    let mut zero = start(&dir, &certs, 0, &addrs[0], &[]);
    zero.listen_addr(LIMIT);
    let mut one = start(&dir, &certs, 1, &addrs[1], &[(0, &addrs[0])]);
    let mut two = start_with(
        &dir,
        &certs,
        2,
        &addrs[2],
        &[(0, &addrs[0])],
        &["--max-message-bytes", "65536"],
    );
    one.listen_addr(LIMIT);
    two.listen_addr(LIMIT);
    let big = "x".repeat(100_000);
    let o = client("put", &["big", &big], &addrs[0], &certs);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for i in 0..3 {
        let o = client("put", &[&format!("after-{i}"), "v"], &addrs[0], &certs);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    assert!(eventually(LIMIT, || {
        let o = client("get", &["after-2"], &addrs[1], &certs);
        o.status.success()
    }));
    let o = client("get", &["big"], &addrs[1], &certs);
    assert_eq!(stdout(&o).lines().next().unwrap().len(), 100_000);
    let said = |node: &NodeProc, ours: &str, theirs: &str| {
        node.log().lines().any(|line| {
            line.contains("a setting that must agree differs")
                && line.contains("setting=\"max_message_bytes\"")
                && line.contains(&format!("ours={ours}"))
                && line.contains(&format!("theirs={theirs}"))
        })
    };
    assert!(eventually(LIMIT, || said(&zero, "1048576", "65536")
        && said(&two, "65536", "1048576")));
    let o = client("get", &["after-2"], &addrs[2], &certs);
    assert_eq!(o.status.code(), Some(1), "node 2 exchanges with nobody");
    stop_all(&mut [&mut zero, &mut one, &mut two]);
    let warnings = two
        .log()
        .lines()
        .filter(|line| {
            line.contains("a setting that must agree differs") && line.contains("peer=0")
        })
        .count();
    assert_eq!(warnings, 1, "once per peer and value: {}", two.log());
}

/// A node killed with SIGKILL and started again at the same address is
/// reached at once by a peer whose connection to its earlier life is still
/// open: the new process answers on that connection with a stateless reset
/// the peer can verify (the reset key comes from the node's private key),
/// so the peer drops it and dials anew. Node 1 comes back founding a
/// cluster of its own, knowing nobody, so only node 0's dialing can reach
/// it. Before, node 0 sent into the dead connection until the QUIC idle
/// timeout (30 s) closed it.
#[test]
fn a_node_killed_and_restarted_at_its_address_is_reached_at_once() {
    let dir = TempDir::new("reset");
    let certs = certs(&dir, "c", "0,1");
    let (addr0, addr1) = (free_addr(), free_addr());
    let mut zero = start(&dir, &certs, 0, &addr0, &[]);
    zero.listen_addr(LIMIT);
    let mut one = start(&dir, &certs, 1, &addr1, &[(0, &addr0)]);
    one.listen_addr(LIMIT);
    let o = client("put", &["before", "v"], &addr0, &certs);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(eventually(LIMIT, || client(
        "get",
        &["before"],
        &addr1,
        &certs
    )
    .status
    .success()));
    one.signal("-KILL");
    one.wait(LIMIT).expect("killed");
    let mut one = start_with(&dir, &certs, 1, &addr1, &[], &["--incarnation", "2"]);
    one.listen_addr(LIMIT);
    // Well inside the idle timeout.
    assert!(
        eventually(Duration::from_secs(10), || client(
            "get",
            &["before"],
            &addr1,
            &certs
        )
        .status
        .success()),
        "node 0 never reached the restarted node 1:\n{}",
        zero.log()
    );
    stop_all(&mut [&mut zero, &mut one]);
}

#[test]
fn client_commands_take_stdin_files_raw_output_and_the_environment() {
    use std::io::Write as _;
    use std::process::{Command, Stdio};

    let dir = TempDir::new("cli-values");
    let certs = certs(&dir, "c", "0");
    let addr = free_addr();
    let mut zero = start(&dir, &certs, 0, &addr, &[]);
    zero.listen_addr(LIMIT);
    // A value with a newline, a tab and an ANSI colour escape, from stdin.
    let value = "line one\nline\ttwo \u{1b}[31mred\u{1b}[0m";
    let mut put = Command::new(support::bin())
        .args(["put", "odd", "-", "--node", &addr, "--certs", &certs])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    put.stdin
        .take()
        .unwrap()
        .write_all(value.as_bytes())
        .unwrap();
    let put = put.wait_with_output().unwrap();
    assert_eq!(put.status.code(), Some(0), "{}", stderr(&put));
    // --raw: the bytes alone.
    let raw = client("get", &["odd", "--raw"], &addr, &certs);
    assert_eq!(raw.stdout, value.as_bytes());
    // Text output escapes the control characters; JSON keeps them.
    let text = stdout(&client("get", &["odd"], &addr, &certs));
    assert!(
        !text.contains('\u{1b}') && text.contains("\\u{1b}[31m"),
        "{text}"
    );
    let json = json(&client("get", &["odd", "--json"], &addr, &certs));
    assert_eq!(json["value"], value);
    // --value-file.
    let file = dir.join("value.txt");
    std::fs::write(&file, "from a file").unwrap();
    let o = client(
        "put",
        &["filed", "--value-file", file.to_str().unwrap()],
        &addr,
        &certs,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // The node and certificates from the environment.
    let o = Command::new(support::bin())
        .args(["get", "filed", "--raw"])
        .env("GOSSIP_KV_NODE", &addr)
        .env("GOSSIP_KV_CERTS", &certs)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "from a file");
    // A value that is not UTF-8 is refused before anything is sent.
    std::fs::write(&file, [0xff, 0xfe]).unwrap();
    let o = client(
        "put",
        &["bad", "--value-file", file.to_str().unwrap()],
        &addr,
        &certs,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("UTF-8"), "{}", stderr(&o));
    stop_all(&mut [&mut zero]);
}
