//! A driver that keeps a durable copy ([`Driver::persist_to`]) lets no
//! frame go before the copy holds what the frame may reveal, goes on
//! meanwhile, and lets its last frames go when it finishes.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{builder, member};
use gossip::{Change, Driver, Node, Output, Persist, PersistError};
use lww_crdt::ManualClock;

/// A durable copy whose writes complete when the test says.
#[derive(Default)]
struct Gate {
    issued: AtomicU64,
    written: AtomicU64,
    changes: AtomicU64,
}

impl Persist for Gate {
    fn write(&self, _node: &Node, changes: Vec<Change>) -> Result<u64, PersistError> {
        self.changes
            .fetch_add(changes.len() as u64, Ordering::Relaxed);
        Ok(self.issued.fetch_add(1, Ordering::Relaxed) + 1)
    }

    fn written(&self) -> Result<u64, PersistError> {
        Ok(self.written.load(Ordering::Relaxed))
    }

    fn wait_acknowledged(&self, _ticket: u64) -> Result<(), PersistError> {
        Ok(())
    }
}

fn frames(driver: &mut Driver) -> usize {
    let mut sent = 0;
    driver.step(|output| {
        if let Output::Transmit(_) = output {
            sent += 1;
        }
    });
    sent
}

#[test]
fn frames_wait_until_the_durable_copy_holds_what_they_reveal() {
    let clock = ManualClock::new(1_000);
    let node = Node::new(builder(1).fanout(1).build().unwrap(), [member(2)]);
    let mut driver = Driver::new(node, clock.clone());
    let gate = Arc::new(Gate::default());
    driver.persist_to(Arc::clone(&gate) as Arc<dyn Persist>);
    let handle = driver.handle();

    handle.put("k", "v").unwrap();
    assert_eq!(gate.issued.load(Ordering::Relaxed), 1);
    assert_eq!(gate.changes.load(Ordering::Relaxed), 1);
    // The first tick opens an exchange, whose `Syn` carries the vector
    // with the write in it: held.
    assert_eq!(frames(&mut driver), 0);
    assert!(driver.until_due() <= Duration::from_millis(1));
    gate.written.store(1, Ordering::Relaxed);
    assert_eq!(
        frames(&mut driver),
        1,
        "the Syn goes once the write is kept"
    );

    // A later write, and the next round's frame, held again; the driver's
    // finish lets it go once the copy catches up.
    handle.put("k2", "v").unwrap();
    // Past the first exchange's timeout and the next round.
    clock.advance(5_000);
    assert_eq!(frames(&mut driver), 0);
    assert_eq!(gate.issued.load(Ordering::Relaxed), 2);
    let catching_up = {
        let gate = Arc::clone(&gate);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            gate.written.store(2, Ordering::Relaxed);
        })
    };
    let mut last = 0;
    driver.finish(Duration::from_secs(5), |output| {
        if let Output::Transmit(_) = output {
            last += 1;
        }
    });
    catching_up.join().unwrap();
    assert!(last >= 1, "finish let no held frame go");
}
