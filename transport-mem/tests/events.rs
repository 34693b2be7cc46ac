//! Node events reach the caller through `gossip::spawn_with_events` on
//! driver threads; a caller that does not read them costs the nodes nothing
//! but a count of what was dropped.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use gossip::{Config, Event, Member, Node};
use lww_crdt::{NodeId, SystemClock};
use transport_mem::{Faults, MemNetwork};

fn id(i: u64) -> NodeId {
    NodeId::new(i)
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
