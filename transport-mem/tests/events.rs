//! Node events reach the caller: through `Cluster::poll_event` on virtual
//! time, and through `gossip::spawn_with_events` on driver threads; a caller
//! that does not read them costs the nodes nothing but a count of what was
//! dropped.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use gossip::{Config, Event, Member, Node};
use lww_crdt::{NodeId, SystemClock};
use transport_mem::{Cluster, ClusterConfig, Faults, MemNetwork};

fn id(i: u64) -> NodeId {
    NodeId::new(i)
}

fn drain(cluster: &mut Cluster) -> Vec<(NodeId, Event)> {
    std::iter::from_fn(|| cluster.poll_event()).collect()
}

#[test]
fn a_cluster_reports_members_joining_going_away_and_coming_back() {
    let mut cluster = Cluster::new(ClusterConfig {
        nodes: 3,
        seed: 5,
        seed_peers: Some(1),
        ..ClusterConfig::default()
    })
    .unwrap();
    cluster.keep_events(10_000);
    // Node 0, with no seed, founds the cluster and takes writes at once.
    cluster.put(0, "k", "v").unwrap();
    cluster.run_rounds(5);
    let events = drain(&mut cluster);
    // Nodes 1 and 2 start knowing node 0 only, and learn each other.
    assert!(events.contains(&(id(1), Event::MemberJoined(member_of(&cluster, 1, 2)))));
    assert!(events.contains(&(id(2), Event::MemberJoined(member_of(&cluster, 2, 1)))));
    assert!(
        events
            .iter()
            .any(|(at, e)| *at == id(2) && matches!(e, Event::Updated { .. })),
        "{events:?}"
    );

    cluster.set_available(2, false).unwrap();
    // Suspected peers are contacted rarely: going down takes a while.
    cluster.run_rounds(100);
    let events = drain(&mut cluster);
    for watcher in [0, 1] {
        assert!(events.contains(&(id(watcher), Event::PeerSuspect(id(2)))));
        assert!(events.contains(&(id(watcher), Event::PeerDown(id(2)))));
    }
    cluster.set_available(2, true).unwrap();
    cluster.run_rounds(20);
    let events = drain(&mut cluster);
    assert!(
        events
            .iter()
            .any(|e| *e == (id(0), Event::PeerUp(id(2))) || *e == (id(1), Event::PeerUp(id(2)))),
        "{events:?}"
    );
    assert_eq!(cluster.events_dropped(), 0);
}

fn member_of(cluster: &Cluster, at: usize, of: u64) -> Member {
    let node = cluster.node(at).unwrap();
    node.members().into_iter().find(|m| m.id == id(of)).unwrap()
}

#[test]
fn keeping_events_changes_nothing_and_stays_within_its_capacity() {
    let config = ClusterConfig {
        nodes: 30,
        seed: 9,
        seed_peers: Some(2),
        faults: Faults {
            loss: 0.1,
            duplicate: 0.05,
            reorder: 0.05,
        },
        ..ClusterConfig::default()
    };
    let run = |capacity: Option<usize>| {
        let mut cluster = Cluster::new(config.clone()).unwrap();
        if let Some(capacity) = capacity {
            cluster.keep_events(capacity);
        }
        cluster.run_rounds(3);
        for i in 0..30 {
            // A node no member has answered yet refuses the write.
            let _ = cluster.put(i, &format!("k{i}"), "v");
        }
        cluster.run_rounds(15);
        cluster
    };
    let plain = run(None);
    let mut kept = run(Some(4));
    assert_eq!(plain.trace_hash(), kept.trace_hash());
    assert!(plain.converged() && kept.converged());
    assert!(kept.events_dropped() > 0);
    assert_eq!(drain(&mut kept).len(), 4);
    let mut none = run(None);
    assert_eq!((none.poll_event(), none.events_dropped()), (None, 0));
}

fn config(i: u64) -> Config {
    Config::builder(id(i))
        .tick_interval_ms(10)
        .exchange_timeout_ms(40)
        .build()
        .unwrap()
}

fn seeds(i: u64, nodes: u64) -> Vec<Member> {
    (0..nodes)
        .filter(|&p| p != i)
        .map(|p| Member {
            id: id(p),
            address: String::new(),
        })
        .collect()
}

/// Waits up to 10 s for an event `wanted` accepts; panics otherwise.
fn expect(events: &gossip::EventReceiver, what: &str, wanted: impl Fn(&Event) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match events.recv_timeout(left) {
            Ok(event) if wanted(&event) => return,
            Ok(_) => {}
            Err(err) => panic!("no {what}: {err}"),
        }
    }
    panic!("no {what} within 10 s");
}

#[test]
fn a_driver_hands_its_nodes_events_to_the_caller() {
    let (network, mut transports) = MemNetwork::new(2, Faults::NONE, 1);
    let b_transport = transports.pop().unwrap();
    let a_transport = transports.pop().unwrap();
    let (a, a_thread, a_events) = gossip::spawn_with_events(
        Node::new(config(0), seeds(0, 2)),
        a_transport,
        SystemClock,
        64,
    );
    let (b, b_thread, b_events) = gossip::spawn_with_events(
        Node::new(config(1), seeds(1, 2)),
        b_transport,
        SystemClock,
        64,
    );

    a.put("colour", "blue").unwrap();
    expect(
        &b_events,
        "update from a",
        |e| matches!(e, Event::Updated { from, .. } if *from == id(0)),
    );
    network.set_available(id(1), false);
    expect(&a_events, "suspicion of b", |e| {
        *e == Event::PeerSuspect(id(1))
    });
    expect(&a_events, "b down", |e| *e == Event::PeerDown(id(1)));
    network.set_available(id(1), true);
    expect(&a_events, "b back up", |e| *e == Event::PeerUp(id(1)));
    // Raised through the handle, delivered on the driver's next step.
    assert!(a.add_member(Member {
        id: id(7),
        address: "somewhere:1".into(),
    }));
    expect(
        &a_events,
        "member 7",
        |e| matches!(e, Event::MemberJoined(m) if m.id == id(7)),
    );

    for (handle, thread) in [(a, a_thread), (b, b_thread)] {
        handle.shutdown();
        thread.join().unwrap();
    }
    // The driver is gone: what is left can be read, then the end shows.
    while a_events.try_recv().is_some() {}
    assert_eq!(
        a_events.recv_timeout(Duration::from_secs(1)),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected)
    );
    assert_eq!(a_events.dropped(), 0);
}

#[test]
fn a_reader_that_never_reads_does_not_hold_the_driver_up() {
    let (_network, mut transports) = MemNetwork::new(2, Faults::NONE, 2);
    let b_transport = transports.pop().unwrap();
    let a_transport = transports.pop().unwrap();
    let (a, a_thread) = gossip::spawn(Node::new(config(0), seeds(0, 2)), a_transport, SystemClock);
    // Room for one event, never read.
    let (b, b_thread, b_events) = gossip::spawn_with_events(
        Node::new(config(1), seeds(1, 2)),
        b_transport,
        SystemClock,
        1,
    );
    let mut written = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    // Writes spread over several exchanges, each an update event on b.
    while b_events.dropped() < 5 || b.get(&format!("k{}", written - 1)).is_none() {
        assert!(Instant::now() < deadline, "b stalled or dropped nothing");
        a.put(format!("k{written}"), "v").unwrap();
        written += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    for (handle, thread) in [(a, a_thread), (b, b_thread)] {
        handle.shutdown();
        thread.join().unwrap();
    }
    // One event waits, as many as there was room for; the rest were
    // counted, not queued.
    assert_eq!(b_events.try_iter().count(), 1);
}
