//! The Rust client and the CLI over QUIC beyond one request per key:
//! listing by prefix a page at a time, watches that follow local writes
//! and gossip, the oldest unacknowledged write in `status`, and
//! `sim-cli keys` and `sim-cli watch` against nodes run in-process.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lww_crdt::NodeId;
use sim::client::{Client, ClientError, Credentials, ProtoError, Target, WatchEvent};
use sim::node::{NodeConfig, Peer};
use support::{
    InProcess, LIMIT, TempDir, bin, certs, client as cli, eventually, free_addr, stdout,
};

fn config(certs: &str, id: u64, peers: Vec<Peer>) -> NodeConfig {
    let mut config = NodeConfig::new(NodeId::new(id), free_addr().parse().unwrap(), certs);
    config.peers = peers;
    config.incarnation = Some(1);
    config.interval_ms = 20;
    config.drain_ms = 200;
    config
}

fn connect(certs: &str, config: &NodeConfig) -> Client {
    let credentials = Credentials::load(std::path::Path::new(certs)).unwrap();
    let target = Target::resolve(&config.listen.to_string(), None, None).unwrap();
    Client::connect(target, &credentials, Duration::from_secs(5)).unwrap()
}

/// Node 0, founding, and node 1 joining through it, with a client of each
/// once node 1 takes writes.
fn two_nodes(certs: &str) -> ((InProcess, Client), (InProcess, Client)) {
    let zero_config = config(certs, 0, vec![]);
    let seed = Peer {
        id: Some(zero_config.id),
        address: zero_config.listen.to_string(),
    };
    let one_config = config(certs, 1, vec![seed]);
    let zero = InProcess::start(zero_config.clone());
    let one = InProcess::start(one_config.clone());
    let (on_zero, on_one) = (connect(certs, &zero_config), connect(certs, &one_config));
    assert!(
        eventually(LIMIT, || on_one.status().unwrap().joined),
        "node 1 never joined"
    );
    ((zero, on_zero), (one, on_one))
}

/// The next change a watch reports, within the test's limit.
fn next_change(watch: &mut sim::client::Watch<'_>) -> sim::client::Changed {
    match watch.next(LIMIT).unwrap() {
        Some(WatchEvent::Changed(changed)) => changed,
        other => panic!("not a change: {other:?}"),
    }
}

#[test]
fn a_watch_follows_local_writes_and_gossip_and_ends_when_the_node_stops() {
    let dir = TempDir::new("client-watch");
    let certs = certs(&dir, "c", "0,1");
    let ((zero, on_zero), (one, on_one)) = two_nodes(&certs);
    let mut watch = on_zero.watch("w/").unwrap();

    // Outside the prefix, then inside, on node 1: gossip brings it.
    on_one.put("other", "x").unwrap();
    let stamp = on_one.put("w/colour", "blue").unwrap();
    let changed = next_change(&mut watch);
    assert_eq!(changed.key, "w/colour");
    assert_eq!(changed.entry.value.as_deref(), Some("blue"));
    assert_eq!(changed.entry.stamp, stamp);
    assert_eq!(changed.from, Some(NodeId::new(1)));

    // A write and a delete on node 0 itself, in order.
    on_zero.put("w/size", "9").unwrap();
    let deleted = on_zero.delete("w/colour").unwrap();
    let changed = next_change(&mut watch);
    assert_eq!((changed.key.as_str(), changed.from), ("w/size", None));
    let changed = next_change(&mut watch);
    assert_eq!(changed.key, "w/colour");
    assert_eq!(changed.entry.value, None);
    assert_eq!(changed.entry.stamp, deleted);

    // The node stopping ends the watch cleanly, and does not wait on it.
    let start = Instant::now();
    drop(on_zero.watch("").unwrap());
    zero.stop().unwrap();
    assert!(start.elapsed() < LIMIT);
    loop {
        match watch.next(LIMIT) {
            Ok(Some(WatchEvent::Changed(_))) => {}
            Ok(None) => break,
            other => panic!("the watch did not end cleanly: {other:?}"),
        }
    }
    drop(watch);
    on_zero.close();
    on_one.close();
    one.stop().unwrap();
}

#[test]
fn a_listing_pages_through_every_key_in_order_while_writes_go_on() {
    let dir = TempDir::new("client-list");
    let certs = certs(&dir, "c", "0");
    let node_config = config(&certs, 0, vec![]);
    let node = InProcess::start(node_config.clone());
    let on_node = connect(&certs, &node_config);
    assert!(eventually(LIMIT, || on_node.put("p000", "v").is_ok()));
    for i in 1..250 {
        on_node.put(&format!("p{i:03}"), "v").unwrap();
    }
    on_node.delete("p100").unwrap();
    assert!(matches!(
        on_node.list("p", None, 0),
        Err(ClientError::Refused(ProtoError::BadLimit { limit: 0, .. }))
    ));
    assert!(matches!(
        on_node.list("p", None, 1_001),
        Err(ClientError::Refused(ProtoError::BadLimit { .. }))
    ));

    let writer_config = node_config.clone();
    let writer_certs = certs.clone();
    let writer = std::thread::spawn(move || {
        let client = connect(&writer_certs, &writer_config);
        for i in 0..100 {
            client.put(&format!("q{i:03}"), "v").unwrap();
            client.put(&format!("p{i:03}x"), "new").unwrap();
        }
        client.close();
    });
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = on_node.list("p", after.as_deref(), 40).unwrap();
        assert!(page.keys.len() <= 40);
        seen.extend(page.keys.into_iter().map(|(key, _)| key));
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    writer.join().unwrap();
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "out of order");
    let set: BTreeSet<&str> = seen.iter().map(String::as_str).collect();
    for i in (0..250).filter(|&i| i != 100) {
        assert!(set.contains(format!("p{i:03}").as_str()), "p{i:03} missing");
    }
    assert!(!set.contains("p100"), "a deleted key was listed");
    assert!(seen.iter().all(|key| key.starts_with('p')));

    // The CLI lists them all, a page at a time, or up to --limit.
    let listen = node_config.listen.to_string();
    let all = cli("keys", &["--prefix", "q"], &listen, &certs);
    assert_eq!(all.status.code(), Some(0), "{}", support::stderr(&all));
    let expected: String = (0..100).map(|i| format!("q{i:03}\n")).collect();
    assert_eq!(stdout(&all), expected);
    let some = cli(
        "list",
        &["--prefix", "p", "--limit", "2", "--values"],
        &listen,
        &certs,
    );
    assert_eq!(stdout(&some), "p000 = v\np000x = new\n");
    let json = cli("keys", &["--prefix", "q00", "--json"], &listen, &certs);
    let json = support::json(&json);
    assert_eq!(json["keys"].as_array().unwrap().len(), 10);
    assert_eq!(json["keys"][0]["value"], "v");
    on_node.close();
    node.stop().unwrap();
}

#[test]
fn the_watch_command_prints_changes_from_another_node_as_they_come() {
    let dir = TempDir::new("client-watch-cli");
    let certs = certs(&dir, "c", "0,1");
    let ((zero, on_zero), (one, on_one)) = two_nodes(&certs);
    let status = on_zero.status().unwrap();
    let mut watcher = Command::new(bin())
        .args([
            "watch",
            "--prefix",
            "cli/",
            "--count",
            "2",
            "--json",
            "--node",
            &status.listen,
            "--certs",
            &certs,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Writes go on until the watcher, once in place, has seen two.
    let deadline = Instant::now() + LIMIT;
    let mut i = 0;
    while watcher.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the watcher never saw two changes"
        );
        on_one.put(&format!("cli/{i}"), "a\u{1b}[31m").unwrap();
        i += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = watcher.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        support::stderr(&output)
    );
    let lines: Vec<serde_json::Value> = stdout(&output)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for line in &lines {
        assert_eq!(line["op"], "put");
        assert_eq!(line["value"], "a\u{1b}[31m");
        assert_eq!(line["from"], 1);
        assert!(line["key"].as_str().unwrap().starts_with("cli/"));
    }
    on_zero.close();
    on_one.close();
    one.stop().unwrap();
    zero.stop().unwrap();
}

#[test]
fn status_shows_a_write_no_peer_holds_until_one_does() {
    let dir = TempDir::new("client-unacked");
    let certs = certs(&dir, "c", "0,1");
    // Node 0 founds alone: its writes are held by nobody else.
    let zero_config = config(&certs, 0, vec![]);
    let zero = InProcess::start(zero_config.clone());
    let on_zero = connect(&certs, &zero_config);
    assert!(eventually(LIMIT, || on_zero.put("alone", "1").is_ok()));
    std::thread::sleep(Duration::from_millis(200));
    let age = on_zero.status().unwrap().oldest_unacknowledged_write_ms;
    assert!(age.is_some_and(|ms| ms >= 150), "{age:?}");
    let text = cli("status", &[], &zero_config.listen.to_string(), &certs);
    assert!(
        stdout(&text).contains("the oldest write no peer is known to hold"),
        "{}",
        stdout(&text)
    );

    // A second member joins and takes it: nothing is unacknowledged.
    let one = InProcess::start(config(
        &certs,
        1,
        vec![Peer {
            id: Some(NodeId::new(0)),
            address: zero_config.listen.to_string(),
        }],
    ));
    assert!(
        eventually(LIMIT, || on_zero
            .status()
            .unwrap()
            .oldest_unacknowledged_write_ms
            .is_none()),
        "the write was never acknowledged"
    );
    on_zero.close();
    one.stop().unwrap();
    zero.stop().unwrap();
}

/// A node at its quota refuses writes that add keys or bytes, saying which
/// quota and flag, over the client and the CLI; deletes and shrinking
/// overwrites still go through.
#[test]
fn a_full_node_refuses_new_data_and_names_its_quota() {
    let dir = TempDir::new("client-quota");
    let certs = certs(&dir, "c", "0");
    let mut node_config = config(&certs, 0, vec![]);
    node_config.max_keys = Some(2);
    node_config.max_data_bytes = Some(100);
    let node = InProcess::start(node_config.clone());
    let client = connect(&certs, &node_config);
    assert!(eventually(LIMIT, || client.put("a", "1").is_ok()));
    client.put("b", &"x".repeat(90)).unwrap();
    assert!(matches!(
        client.put("c", "1"),
        Err(ClientError::Refused(ProtoError::StoreFull {
            held: 2,
            max: 2,
            ..
        }))
    ));
    assert!(matches!(
        client.put("a", &"y".repeat(10)),
        Err(ClientError::Refused(ProtoError::StoreFull {
            held: 93,
            max: 100,
            ..
        }))
    ));
    let refused = cli("put", &["c", "1"], &node_config.listen.to_string(), &certs);
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("--max-keys"), "{message}");
    client.put("b", "short").unwrap();
    client.delete("a").unwrap();
    client.put("c", "1").unwrap();
    assert!(
        client
            .get("a")
            .unwrap()
            .is_none_or(|entry| entry.value.is_none())
    );
    client.close();
    node.stop().unwrap();
}
