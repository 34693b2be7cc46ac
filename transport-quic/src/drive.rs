//! [`QuicTransport::drive`]: a gossip node driven by a task on the
//! transport's own runtime.

use std::sync::Arc;

use gossip::{Driver, Output};
use tokio_util::sync::CancellationToken;

use crate::net::Shared;
use crate::transport::QuicTransport;

/// A node driven on its transport's runtime, from
/// [`QuicTransport::drive`]. Dropping it leaves the node running; the
/// node stops after [`stop`](Self::stop), after
/// [`NodeHandle::shutdown`](gossip::NodeHandle::shutdown) (at its next
/// timer) or when the transport shuts down.
#[derive(Debug)]
pub struct DrivenNode {
    task: tokio::task::JoinHandle<()>,
    runtime: tokio::runtime::Handle,
    stop: CancellationToken,
}

impl DrivenNode {
    /// Stops the driver now, rather than at the node's next timer as
    /// [`NodeHandle::shutdown`](gossip::NodeHandle::shutdown) does. The
    /// task then drops the transport, which shuts down gracefully.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Whether the driver has ended.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Waits for the driver to end. Blocks: call it from outside any async
    /// runtime.
    ///
    /// # Errors
    /// The driver task's [`JoinError`](tokio::task::JoinError) if it
    /// panicked.
    pub fn join(self) -> Result<(), tokio::task::JoinError> {
        self.runtime.block_on(self.task)
    }
}

impl QuicTransport {
    /// Drives `driver`'s node over this transport on a task of the
    /// transport's own runtime, rather than on a thread of its own as
    /// `gossip::spawn` does: a frame reaches the node, and the node's
    /// answer reaches the network, without waking another thread. The
    /// node's handle is [`Driver::handle`], taken before.
    ///
    /// The task ends after [`NodeHandle::shutdown`](gossip::NodeHandle::shutdown)
    /// (noticed at the node's next timer, at most one tick later) or as
    /// soon as the transport shuts down; it then drops the transport,
    /// which shuts it down gracefully.
    pub fn drive(self, driver: Driver) -> DrivenNode {
        let runtime = self.shared.runtime.clone();
        let stop = CancellationToken::new();
        let task = runtime.spawn(run(self, driver, stop.clone()));
        DrivenNode {
            task,
            runtime,
            stop,
        }
    }
}

async fn run(mut transport: QuicTransport, mut driver: Driver, stop: CancellationToken) {
    let shared = Arc::clone(&transport.shared);
    while !driver.is_stopped() && !shared.is_closed() {
        let wait = driver.until_due();
        if !wait.is_zero() {
            tokio::select! {
                incoming = transport.inbox.recv() => match incoming {
                    Some(incoming) => driver.receive(incoming),
                    None => break,
                },
                () = tokio::time::sleep(wait) => {}
                () = shared.stopped() => break,
                () = stop.cancelled() => break,
            }
        }
        driver.step(|output| send(&shared, output));
    }
    // The last frames held for the node's durable copy, such as the final
    // `Ack`s of a drain, before the transport is dropped.
    driver.finish(std::time::Duration::from_secs(2), |output| {
        send(&shared, output);
    });
}

fn send(shared: &Arc<Shared>, output: Output) {
    match output {
        // Delivery is best effort; an unreachable peer shows up as a
        // timed-out exchange.
        Output::Transmit(transmit) => {
            let _ = shared.send(transmit);
        }
        Output::EndExchange(end) => shared.end_exchange(end),
    }
}
