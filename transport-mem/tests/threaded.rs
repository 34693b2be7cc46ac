//! Real threads: 16 nodes, each driven by `gossip::spawn` on its own thread
//! over a `MemNetwork` with a 15 ms gossip interval and the system clock,
//! while 8 client threads do concurrent puts, gets and deletes of 20
//! colliding keys on random nodes through cloned `NodeHandle`s. Every stamp
//! a write returns is recorded. Then, polling with a 30 s deadline, every
//! node's snapshot must become identical and read exactly the LWW
//! reference; no thread panics or deadlocks (the drivers stop on shutdown
//! and every thread is joined within a deadline).

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::Reference;
use gossip::{Config, Member, Node, NodeHandle, StoreMap};
use lww_crdt::{NodeId, Stamp, SystemClock};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use transport_mem::{Faults, MemNetwork};

const NODES: usize = 16;
const CLIENTS: u64 = 8;
const OPS_PER_CLIENT: usize = 150;
const KEYS: usize = 20;
const DEADLINE: Duration = Duration::from_secs(30);

type Write = (String, Stamp, Option<String>);

fn start() -> (Vec<NodeHandle>, Vec<JoinHandle<()>>) {
    let (_network, transports) = MemNetwork::new(NODES, Faults::NONE, 42);
    transports
        .into_iter()
        .enumerate()
        .map(|(i, transport)| {
            let config = Config::builder(NodeId::new(i as u64))
                .tick_interval_ms(15)
                .exchange_timeout_ms(100)
                .build()
                .unwrap();
            let seeds = (0..NODES).filter(|&p| p != i).map(|p| Member {
                id: NodeId::new(p as u64),
                address: String::new(),
            });
            gossip::spawn(Node::new(config, seeds), transport, SystemClock)
        })
        .unzip()
}

fn client(handles: Vec<NodeHandle>, seed: u64) -> Vec<Write> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut writes = Vec::new();
    for op in 0..OPS_PER_CLIENT {
        let node = &handles[rng.random_range(0..handles.len())];
        let key = format!("k{}", rng.random_range(0..KEYS));
        match rng.random_range(0..10) {
            0..=4 => {
                let value = format!("c{seed}-{op}");
                let stamp = node.put(key.clone(), value.clone()).unwrap();
                writes.push((key, stamp, Some(value)));
            }
            5..=6 => {
                let stamp = node.delete(key.clone()).unwrap();
                writes.push((key, stamp, None));
            }
            _ => {
                let _ = node.get(&key);
                let _ = node.get_entry(&key);
            }
        }
        // Spread the operations over some 20 gossip intervals.
        thread::sleep(Duration::from_millis(2));
    }
    writes
}

fn reads(map: &StoreMap) -> BTreeMap<&str, &str> {
    map.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Joins `thread`, failing if it does not end by `deadline` or panicked.
fn join_by<T>(thread: JoinHandle<T>, deadline: Instant, what: &str) -> T {
    while !thread.is_finished() {
        assert!(Instant::now() < deadline, "{what} did not stop: deadlock?");
        thread::sleep(Duration::from_millis(5));
    }
    match thread.join() {
        Ok(value) => value,
        Err(_) => panic!("{what} panicked"),
    }
}

#[test]
fn sixteen_driven_nodes_converge_to_the_lww_reference_under_concurrent_clients() {
    let started = Instant::now();
    let (handles, drivers) = start();
    let clients: Vec<JoinHandle<Vec<Write>>> = (0..CLIENTS)
        .map(|seed| {
            let handles = handles.clone();
            thread::spawn(move || client(handles, seed))
        })
        .collect();
    let mut reference = Reference::new();
    for (i, client) in clients.into_iter().enumerate() {
        for (key, stamp, value) in join_by(client, started + DEADLINE, &format!("client {i}")) {
            reference.record(&key, stamp, value);
        }
    }
    assert!(reference.len() > (CLIENTS as usize) * OPS_PER_CLIENT / 2);
    let expected = reference.expected();
    let winners = reference.winners();

    let converged_after = loop {
        let snapshots: Vec<StoreMap> = handles.iter().map(NodeHandle::snapshot).collect();
        let identical = snapshots.iter().all(|s| reads(s) == reads(&snapshots[0]));
        if identical && reads(&snapshots[0]) == expected {
            for (i, snapshot) in snapshots.iter().enumerate() {
                for (key, entry) in snapshot.entries() {
                    assert_eq!(
                        winners.get(key.as_str()).copied(),
                        Some(entry),
                        "node {i}, key {key}"
                    );
                }
            }
            break started.elapsed();
        }
        assert!(
            started.elapsed() < DEADLINE,
            "not converged after {DEADLINE:?}: node 0 reads {:?}, expected {expected:?}",
            reads(&snapshots[0])
        );
        thread::sleep(Duration::from_millis(20));
    };

    for handle in &handles {
        assert_eq!(handle.metrics().messages_rejected, 0);
        handle.shutdown();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for (i, driver) in drivers.into_iter().enumerate() {
        join_by(driver, deadline, &format!("driver {i}"));
    }
    eprintln!(
        "{} writes converged after {converged_after:?}",
        reference.len()
    );
}
