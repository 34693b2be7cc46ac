//! A driver's change watcher ([`Driver::watch_changes`]) is told of every
//! change made while it is watched, client writes and peers' deltas alike,
//! and the node logs nothing while nobody watches.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::{builder, member};
use gossip::{Change, ChangeSink, Driver, Incoming, Node, Output};
use lww_crdt::{ManualClock, NodeId};

/// A change as the test checks it: key, value, and the peer it came from.
type Seen = (String, Option<String>, Option<NodeId>);

/// A watcher switched on and off by the test, keeping what it is told.
#[derive(Default)]
struct Recorder {
    watched: AtomicBool,
    seen: Mutex<Vec<Seen>>,
}

impl ChangeSink for Recorder {
    fn is_watched(&self) -> bool {
        self.watched.load(Ordering::Relaxed)
    }

    fn deliver(&self, changes: &[Change]) {
        let mut seen = self.seen.lock().unwrap();
        for change in changes {
            if let Change::Wrote { key, entry, from } = change {
                seen.push((key.clone(), entry.value.clone(), *from));
            }
        }
    }
}

fn driver(id: u64, peer: u64, clock: &ManualClock) -> Driver {
    let config = builder(id).fanout(1).build().unwrap();
    Driver::new(Node::new(config, [member(peer)]), clock.clone())
}

/// Runs both drivers' timers and carries their frames both ways until
/// neither has anything to say.
fn settle(a: &mut Driver, b: &mut Driver) {
    for _ in 0..20 {
        let mut to_b = Vec::new();
        let mut to_a = Vec::new();
        a.step(|out| {
            if let Output::Transmit(t) = out {
                to_b.push(t.payload);
            }
        });
        b.step(|out| {
            if let Output::Transmit(t) = out {
                to_a.push(t.payload);
            }
        });
        if to_a.is_empty() && to_b.is_empty() {
            return;
        }
        for payload in to_b {
            b.receive(Incoming {
                from: NodeId::new(1),
                payload,
            });
        }
        for payload in to_a {
            a.receive(Incoming {
                from: NodeId::new(2),
                payload,
            });
        }
    }
}

#[test]
fn a_watcher_hears_local_writes_and_deltas_only_while_it_watches() {
    let clock = ManualClock::new(1_000);
    let mut a = driver(1, 2, &clock);
    let mut b = driver(2, 1, &clock);
    let recorder = Arc::new(Recorder::default());
    b.watch_changes(Box::new(Arc::clone(&recorder)));
    let (a_handle, b_handle) = (a.handle(), b.handle());

    // Unwatched: nothing logged, nothing told.
    a_handle.put("before", "1").unwrap();
    b_handle.put("local-before", "1").unwrap();
    settle(&mut a, &mut b);
    assert!(!b_handle.with_node(Node::is_recording_changes));
    assert!(recorder.seen.lock().unwrap().is_empty());

    recorder.watched.store(true, Ordering::Relaxed);
    b_handle.put("local", "2").unwrap();
    a_handle.put("remote", "3").unwrap();
    clock.advance(1_000);
    settle(&mut a, &mut b);
    let seen = recorder.seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            ("local".to_owned(), Some("2".to_owned()), None),
            (
                "remote".to_owned(),
                Some("3".to_owned()),
                Some(NodeId::new(1))
            ),
        ]
    );

    // Watched no more: the log stops with the next change.
    recorder.watched.store(false, Ordering::Relaxed);
    b_handle.put("after", "4").unwrap();
    assert!(!b_handle.with_node(Node::is_recording_changes));
    assert_eq!(recorder.seen.lock().unwrap().len(), 2);
}
