//! Nodes with data directories, as separate processes on loopback: what
//! they acknowledged survives `kill -9`, being killed while cut off, and a
//! whole-cluster restart; a damaged, shared or left directory is refused
//! (or, for a torn journal tail, recovered and logged).

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use support::{
    LIMIT, NodeProc, TempDir, certs, client, eventually, free_addr, json, stderr, stop_all,
};

/// One member: its address, data directory and the flags it restarts with.
struct Member {
    id: u64,
    addr: String,
    data: String,
    seed: Option<String>,
}

impl Member {
    fn new(dir: &TempDir, id: u64, seed: Option<&Member>) -> Member {
        Member {
            id,
            addr: free_addr(),
            data: dir.str(&format!("data-{id}")),
            seed: seed.map(|s| s.addr.clone()),
        }
    }

    /// Starts it with `extra` flags; no `--incarnation`, so the data
    /// directory and the wall clock choose one.
    fn start(&self, dir: &TempDir, certs: &str, extra: &[&str]) -> NodeProc {
        let id = self.id.to_string();
        let mut args = vec![
            "--id",
            &id,
            "--listen",
            &self.addr,
            "--certs",
            certs,
            "--interval-ms",
            "50",
            "--data-dir",
            &self.data,
        ];
        if let Some(seed) = &self.seed {
            args.extend(["--peer", seed]);
        }
        args.extend_from_slice(extra);
        // A log per start: the "node started" line waited for is this one's.
        static STARTS: AtomicU64 = AtomicU64::new(0);
        let n = STARTS.fetch_add(1, Ordering::Relaxed);
        let node = NodeProc::start(&[], &args, dir.join(&format!("node-{}-{n}.log", self.id)));
        node.listen_addr(LIMIT);
        node
    }
}

fn three(dir: &TempDir) -> Vec<Member> {
    let zero = Member::new(dir, 0, None);
    let one = Member::new(dir, 1, Some(&zero));
    let two = Member::new(dir, 2, Some(&zero));
    vec![zero, one, two]
}

/// Starts `members` with `extra` flags and waits until the two that join
/// through the first take writes.
fn start_joined(members: &[Member], dir: &TempDir, certs: &str, extra: &[&str]) -> Vec<NodeProc> {
    let nodes = members.iter().map(|m| m.start(dir, certs, extra)).collect();
    for member in &members[1..] {
        joined(&member.addr, certs);
    }
    nodes
}

/// Whether `key` reads `value` on the node at `addr`.
fn holds(addr: &str, certs: &str, key: &str, value: &str) -> bool {
    let o = client("get", &[key], addr, certs);
    o.status.success() && String::from_utf8_lossy(&o.stdout).lines().next() == Some(value)
}

fn put(addr: &str, certs: &str, key: &str, value: &str) -> bool {
    client("put", &[key, value], addr, certs).status.success()
}

/// Waits until a put on `addr` is taken (the node has joined).
fn joined(addr: &str, certs: &str) {
    assert!(
        eventually(LIMIT, || put(addr, certs, "probe", "x")),
        "{addr} never took a write"
    );
}

fn content_hash(addr: &str, certs: &str) -> Option<String> {
    let o = client("status", &["--json"], addr, certs);
    o.status
        .success()
        .then(|| json(&o)["content_hash"].as_str().unwrap().to_owned())
}

fn converged(members: &[Member], certs: &str) -> bool {
    let hashes: Vec<Option<String>> = members
        .iter()
        .map(|m| content_hash(&m.addr, certs))
        .collect();
    hashes[0].is_some() && hashes.iter().all(|h| h == &hashes[0])
}

#[test]
fn a_node_killed_while_cut_off_keeps_its_acknowledged_writes() {
    let dir = TempDir::new("durable-cut");
    let certs = certs(&dir, "c", "0,1,2");
    let members = three(&dir);
    let mut nodes = start_joined(&members, &dir, &certs, &[]);
    // Node 0 alone: its peers stopped for longer than down detection (four
    // failed exchanges of a second each at most) while it takes writes.
    nodes[1].signal("-STOP");
    nodes[2].signal("-STOP");
    let acked: Vec<String> = (0..20)
        .map(|i| format!("cut-{i}"))
        .filter(|key| put(&members[0].addr, &certs, key, "v"))
        .collect();
    assert_eq!(acked.len(), 20, "node 0 refused writes while alone");
    thread::sleep(Duration::from_secs(3));
    nodes[0].signal("-KILL");
    nodes[0].wait(LIMIT).expect("killed");
    nodes[1].signal("-CONT");
    nodes[2].signal("-CONT");
    nodes[0] = members[0].start(&dir, &certs, &[]);
    for member in &members[1..] {
        for key in &acked {
            assert!(
                eventually(LIMIT, || holds(&member.addr, &certs, key, "v")),
                "node {} never got {key} from the restarted node 0:\n{}",
                member.id,
                nodes[0].log()
            );
        }
    }
    let mut refs: Vec<&mut NodeProc> = nodes.iter_mut().collect();
    stop_all(&mut refs);
}

/// A tiny deterministic generator, so that a failing run can be replayed
/// from the seed it prints.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

#[test]
fn acknowledged_writes_survive_ten_kill_9_cycles_under_concurrent_clients() {
    let dir = TempDir::new("durable-kill");
    let certs = certs(&dir, "c", "0,1,2");
    let members = three(&dir);
    let mut nodes = start_joined(&members, &dir, &certs, &[]);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("seed {seed}");
    let mut rng = Lcg(seed);
    let addrs: Vec<String> = members.iter().map(|m| m.addr.clone()).collect();
    // Three clients, each writing its own keys to every node in turn, a few
    // keys overwritten; each returns the newest value it had acknowledged
    // per key.
    let done = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..3)
        .map(|c| {
            let (done, addrs, certs) = (Arc::clone(&done), addrs.clone(), certs.clone());
            thread::spawn(move || {
                let mut acked = BTreeMap::new();
                let mut n = 0u64;
                while !done.load(Ordering::Relaxed) {
                    let key = format!("c{c}-{}", n % 40);
                    let value = format!("v{n}");
                    if put(&addrs[(n % 3) as usize], &certs, &key, &value) {
                        acked.insert(key, value);
                    }
                    n += 1;
                }
                acked
            })
        })
        .collect();
    for cycle in 0..10 {
        thread::sleep(Duration::from_millis(200 + rng.below(600)));
        let victim = rng.below(3) as usize;
        nodes[victim].signal("-KILL");
        nodes[victim].wait(LIMIT).expect("killed");
        thread::sleep(Duration::from_millis(rng.below(1_500)));
        nodes[victim] = members[victim].start(&dir, &certs, &[]);
        eprintln!("cycle {cycle}: node {victim} killed and restarted");
    }
    thread::sleep(Duration::from_millis(500));
    done.store(true, Ordering::Relaxed);
    let mut acked = BTreeMap::new();
    for client in clients {
        acked.extend(client.join().unwrap());
    }
    assert!(
        acked.len() > 15,
        "too few writes acknowledged: {}",
        acked.len()
    );
    assert!(
        eventually(Duration::from_secs(30), || converged(&members, &certs)),
        "the nodes never converged"
    );
    // Each client's keys are its own and it writes one at a time: the last
    // value it had acknowledged is the newest, which nothing supersedes.
    for member in &members {
        for (key, value) in &acked {
            assert!(
                holds(&member.addr, &certs, key, value),
                "node {} lost {key}={value} (seed {seed})",
                member.id
            );
        }
    }
    let mut refs: Vec<&mut NodeProc> = nodes.iter_mut().collect();
    stop_all(&mut refs);
}

#[test]
fn a_whole_cluster_restart_loses_nothing_and_the_cluster_forms_again() {
    let dir = TempDir::new("durable-restart");
    let certs = certs(&dir, "c", "0,1,2");
    let members = three(&dir);
    let mut nodes = start_joined(&members, &dir, &certs, &[]);
    for i in 0..30 {
        assert!(put(
            &members[i % 3].addr,
            &certs,
            &format!("k{i}"),
            &format!("v{i}")
        ));
    }
    for i in 0..5 {
        let o = client("delete", &[&format!("k{i}")], &members[2].addr, &certs);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert!(eventually(LIMIT, || converged(&members, &certs)));
    let before = content_hash(&members[0].addr, &certs).unwrap();
    let mut refs: Vec<&mut NodeProc> = nodes.iter_mut().collect();
    stop_all(&mut refs);

    // All started again at once, with the flags they first had.
    let mut nodes: Vec<NodeProc> = members.iter().map(|m| m.start(&dir, &certs, &[])).collect();
    for member in &members {
        assert_eq!(
            content_hash(&member.addr, &certs).as_deref(),
            Some(before.as_str()),
            "node {} came back with other data:\n{}",
            member.id,
            nodes[member.id as usize].log()
        );
    }
    // And they are a cluster again: a write on one reaches the others.
    joined(&members[1].addr, &certs);
    assert!(put(&members[1].addr, &certs, "after", "restart"));
    for member in &members {
        assert!(eventually(LIMIT, || holds(
            &member.addr,
            &certs,
            "after",
            "restart"
        )));
    }
    // Stopped without leaving: the others wait for it (down, not left).
    for node in &nodes {
        assert!(!node.log().contains("left the cluster"), "{}", node.log());
    }
    let mut refs: Vec<&mut NodeProc> = nodes.iter_mut().collect();
    stop_all(&mut refs);
}

/// A one-node cluster with some keys in `dir/data-0`, stopped.
fn one_node_with_keys(dir: &TempDir, certs: &str) -> Member {
    let member = Member::new(dir, 0, None);
    let mut node = member.start(dir, certs, &[]);
    for i in 0..10 {
        assert!(put(&member.addr, certs, &format!("k{i}"), "v"));
    }
    assert_eq!(node.terminate(LIMIT).and_then(|s| s.code()), Some(0));
    member
}

fn journal(data: &str) -> std::path::PathBuf {
    std::fs::read_dir(data)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.extension().is_some_and(|ext| ext == "jnl"))
        .expect("a journal file")
}

/// Starts `member` and waits for it to exit on its own: a refused start.
fn refused_start(member: &Member, dir: &TempDir, certs: &str, extra: &[&str]) -> String {
    let id = member.id.to_string();
    let mut args = vec![
        "--id",
        &id,
        "--listen",
        &member.addr,
        "--certs",
        certs,
        "--data-dir",
        &member.data,
    ];
    args.extend_from_slice(extra);
    static REFUSED: AtomicU64 = AtomicU64::new(0);
    let n = REFUSED.fetch_add(1, Ordering::Relaxed);
    let log = dir.join(&format!("refused-{n}.log"));
    let mut node = NodeProc::start(&[], &args, log);
    let status = node
        .wait(LIMIT)
        .unwrap_or_else(|| panic!("a refused start exits:\n{}", node.log()));
    assert_eq!(status.code(), Some(2), "{}", node.log());
    node.log()
}

#[test]
fn a_damaged_data_directory_is_refused_and_a_torn_journal_tail_recovered() {
    let dir = TempDir::new("durable-damage");
    let certs = certs(&dir, "c", "0");
    let member = one_node_with_keys(&dir, &certs);

    // Flipped bytes inside the journal, in the middle of an entry: refused,
    // naming the damage.
    let jnl = journal(&member.data);
    let good = std::fs::read(&jnl).unwrap();
    let mut flipped = good.clone();
    let at = good
        .windows(2)
        .position(|w| w == b"k5")
        .expect("the journal holds k5");
    flipped[at + 3] ^= 0xff;
    std::fs::write(&jnl, &flipped).unwrap();
    let log = refused_start(&member, &dir, &certs, &[]);
    assert!(
        log.contains("is damaged") && log.contains("Checksum"),
        "{log}"
    );

    // A torn tail (the last batch cut short, as a crash mid-write leaves
    // it): recovered to the last complete batch, and said so.
    // fjall preallocates its journal: the batches end at the last byte
    // that is not zero.
    let end = good.iter().rposition(|&b| b != 0).unwrap() + 1;
    std::fs::write(&jnl, &good[..end - 5]).unwrap();
    let mut node = member.start(&dir, &certs, &[]);
    assert!(
        node.log().contains("recovered to the last complete batch"),
        "{}",
        node.log()
    );
    assert!(holds(&member.addr, &certs, "k0", "v"));
    assert_eq!(node.terminate(LIMIT).and_then(|s| s.code()), Some(0));
}

#[test]
fn a_data_directory_in_use_left_behind_or_with_a_used_incarnation_is_refused() {
    let dir = TempDir::new("durable-refuse");
    let certs = certs(&dir, "c", "0,1");
    let member = one_node_with_keys(&dir, &certs);
    let mut node = member.start(&dir, &certs, &[]);
    // A second process on the same directory.
    let other = Member {
        id: 1,
        addr: free_addr(),
        data: member.data.clone(),
        seed: None,
    };
    let log = refused_start(&other, &dir, &certs, &[]);
    assert!(log.contains("in use by another process"), "{log}");
    assert!(
        holds(&member.addr, &certs, "k1", "v"),
        "the first node was disturbed"
    );
    assert_eq!(node.terminate(LIMIT).and_then(|s| s.code()), Some(0));

    // An incarnation the directory says was lived already.
    let log = refused_start(&member, &dir, &certs, &["--incarnation", "1"]);
    assert!(log.contains("already lived incarnation"), "{log}");

    // A member that left for good: its directory is refused after.
    let mut node = member.start(&dir, &certs, &["--leave-on-stop"]);
    let status = node.terminate(LIMIT);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", node.log());
    let log = refused_start(&member, &dir, &certs, &[]);
    assert!(log.contains("as it was when it left the cluster"), "{log}");
}

#[test]
fn a_node_stopped_past_the_retention_window_is_refused_until_started_empty() {
    let dir = TempDir::new("durable-retention");
    let certs = certs(&dir, "c", "0,1,2");
    let members = three(&dir);
    // Two seconds: past the GC period at this interval (21 ticks of 50 ms).
    let window = ["--retention-ms", "2000"];
    let mut nodes = start_joined(&members, &dir, &certs, &window);
    assert!(put(&members[0].addr, &certs, "doomed", "v"));
    assert!(eventually(LIMIT, || holds(
        &members[2].addr,
        &certs,
        "doomed",
        "v"
    )));
    // Node 2 stops for well past the window while the key is deleted.
    nodes[2].signal("-STOP");
    let o = client("delete", &["doomed"], &members[0].addr, &certs);
    assert!(o.status.success(), "{}", stderr(&o));
    for member in &members[..2] {
        let node = member.id as usize;
        assert!(
            eventually(LIMIT, || nodes[node].log().contains("peer expired")),
            "node {node} never expired node 2:\n{}",
            nodes[node].log()
        );
    }
    thread::sleep(Duration::from_secs(2));
    nodes[2].signal("-CONT");
    // It comes back as it was: told it expired, it takes no writes, and the
    // value it holds does not come back anywhere.
    assert!(
        eventually(LIMIT, || nodes[2].log().contains("this node expired")),
        "node 2 was never told:\n{}",
        nodes[2].log()
    );
    let o = client("put", &["late", "write"], &members[2].addr, &certs);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("expired"), "{}", stderr(&o));
    thread::sleep(Duration::from_secs(1));
    for member in &members[..2] {
        // `get` exits 0 only when the key has a value.
        let o = client("get", &["doomed"], &member.addr, &certs);
        assert!(
            !o.status.success(),
            "the deleted value came back on node {}",
            member.id
        );
    }
    // Restarted on its directory, it is refused: the refusal was saved.
    nodes[2].terminate(LIMIT).expect("node 2 stops");
    let log = refused_start(&members[2], &dir, &certs, &window);
    assert!(log.contains("refused as expired"), "{log}");
    // Started empty (its data directory moved away), it rejoins.
    std::fs::rename(&members[2].data, dir.join("data-2-expired")).unwrap();
    nodes[2] = members[2].start(&dir, &certs, &window);
    joined(&members[2].addr, &certs);
    assert!(
        eventually(LIMIT, || converged(&members, &certs)),
        "the restarted node never caught up"
    );
    let o = client("get", &["doomed"], &members[2].addr, &certs);
    assert!(!o.status.success(), "the deleted value is back on node 2");
    let mut refs: Vec<&mut NodeProc> = nodes.iter_mut().collect();
    stop_all(&mut refs);
}

/// Node 2 is killed (it never hears that it expired) and its directory is
/// started again only after the others expired it: in a new incarnation
/// the others would welcome it, values and all, though deletes were
/// collected without it. Its directory says when it last heard from a
/// majority; past the window, the start is refused. Within the window,
/// the same directory starts.
#[test]
fn a_directory_out_of_touch_longer_than_the_retention_window_is_refused() {
    let dir = TempDir::new("durable-out-of-touch");
    let certs = certs(&dir, "c", "0,1,2");
    let members = three(&dir);
    let window = ["--retention-ms", "2000"];
    let mut nodes = start_joined(&members, &dir, &certs, &window);
    // Within the window: killed and started again at once, it resumes.
    nodes[2].signal("-KILL");
    let _ = nodes[2].wait(LIMIT);
    nodes[2] = members[2].start(&dir, &certs, &window);
    joined(&members[2].addr, &certs);
    thread::sleep(Duration::from_millis(1_500));
    nodes[2].signal("-KILL");
    let _ = nodes[2].wait(LIMIT);
    // The others expire its life; and its last contact, saved at most a
    // second before the kill, lies more than the window back.
    assert!(
        eventually(LIMIT, || nodes[0].log().contains("peer expired")),
        "node 0 never expired node 2:\n{}",
        nodes[0].log()
    );
    thread::sleep(Duration::from_secs(3));
    let log = refused_start(&members[2], &dir, &certs, &window);
    assert!(log.contains("last heard from a majority"), "{log}");
    assert!(log.contains("retention window"), "{log}");
    let mut refs: Vec<&mut NodeProc> = nodes[..2].iter_mut().collect();
    stop_all(&mut refs);
}
