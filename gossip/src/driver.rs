//! A generic driver: one [`Node`] over any [`Transport`], on its own thread,
//! handing the node's [`Event`]s to the caller when asked to
//! ([`spawn_with_events`]); and the same loop taken apart ([`Driver`]) for
//! drivers of other shapes.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use lww_crdt::{Entry, PhysicalClock, Stamp};

use crate::metrics::Metrics;
use crate::node::{Change, Event, Node, StoreMap, WriteError, vector_hash};
use crate::node::{ExchangeEnd, Transmit};
use crate::persist::{Persist, PersistError};
use crate::transport::{Incoming, Transport, TransportError};

/// The longest the driver waits on the transport before checking whether it
/// should stop.
const MAX_WAIT: Duration = Duration::from_millis(50);

/// How long a stopping driver waits for its durable copy to let its last
/// frames go ([`Driver::finish`]).
const FINISH_BOUND: Duration = Duration::from_secs(2);

struct Shared {
    node: Mutex<Node>,
    stop: AtomicBool,
    /// The durable copy of the map, if kept.
    persist: OnceLock<Arc<dyn Persist>>,
    /// The hash of the version vector last written to `persist`.
    persisted_vector: AtomicU64,
    /// The last ticket `persist` issued: a frame made now may reveal
    /// everything up to it.
    last_ticket: AtomicU64,
    /// Who else is told of every change (see [`Driver::watch_changes`]).
    watch: OnceLock<Box<dyn ChangeSink>>,
}

/// Who [`Driver::watch_changes`] tells of every change to the node's map.
///
/// Logging changes copies every entry that changes, so the node logs them
/// only while [`is_watched`](Self::is_watched) says someone reads them (or
/// a durable copy is kept). It is asked, with the node locked, before every
/// client write, frame and timer: a watcher that registers before a change
/// is made is told of it.
pub trait ChangeSink: Send + Sync {
    /// Whether anyone wants the changes now.
    fn is_watched(&self) -> bool;

    /// The changes one client write, frame or timer made, in order, with
    /// the node locked. Must be quick and must not block: hand them to a
    /// channel that drops what a slow reader cannot take.
    fn deliver(&self, changes: &[Change]);
}

impl<T: ChangeSink + ?Sized> ChangeSink for Arc<T> {
    fn is_watched(&self) -> bool {
        (**self).is_watched()
    }

    fn deliver(&self, changes: &[Change]) {
        (**self).deliver(changes);
    }
}

impl Shared {
    /// Hands the changes the locked `node` made to the durable copy, if one
    /// is kept; returns the ticket to wait on before acknowledging them.
    fn persist(&self, node: &mut Node) -> Result<Option<(u64, &dyn Persist)>, PersistError> {
        // Empty unless a durable copy or a watch asked the node to log.
        let changes = node.take_changes();
        if let Some(watch) = self.watch.get()
            && !changes.is_empty()
        {
            watch.deliver(&changes);
        }
        let Some(persist) = self.persist.get() else {
            return Ok(None);
        };
        let hash = vector_hash(node.version_vector());
        if changes.is_empty() && hash == self.persisted_vector.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let ticket = persist.write(node, changes)?;
        self.persisted_vector.store(hash, Ordering::Relaxed);
        self.last_ticket.store(ticket, Ordering::Relaxed);
        Ok(Some((ticket, persist.as_ref())))
    }

    /// Has the locked `node` log its changes exactly while someone needs
    /// them: a durable copy, or a watcher. Called before every change.
    fn log_if_needed(&self, node: &mut Node) {
        let needed = self.persist.get().is_some()
            || self.watch.get().is_some_and(|watch| watch.is_watched());
        match (needed, node.is_recording_changes()) {
            (true, false) => node.record_changes(),
            (false, true) => node.stop_recording_changes(),
            _ => {}
        }
    }
}

/// A handle for clients of a driven node: cheap to clone, usable from any
/// thread.
#[derive(Clone)]
pub struct NodeHandle {
    shared: Arc<Shared>,
    clock: Arc<dyn PhysicalClock + Send + Sync>,
}

impl std::fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle").finish_non_exhaustive()
    }
}

impl NodeHandle {
    /// The driver's clock, in ms: the time every input to the node carries.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Writes `value` to `key` on this node.
    ///
    /// # Errors
    /// [`WriteError`] if the entry could not travel in one message, or the
    /// node has not joined or is stopping.
    pub fn put(
        &self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Stamp, WriteError> {
        let now = self.clock.now_ms();
        self.write(|node| node.put(key.into(), value.into(), now))
    }

    /// Deletes `key` on this node.
    ///
    /// # Errors
    /// [`WriteError`] if the tombstone could not travel in one message, or
    /// the node has not joined or is stopping.
    pub fn delete(&self, key: impl Into<String>) -> Result<Stamp, WriteError> {
        let now = self.clock.now_ms();
        self.write(|node| node.delete(key.into(), now))
    }

    /// Runs a client write and, if the node keeps a durable copy, writes it
    /// there under the lock and waits, outside it, until it may be
    /// acknowledged.
    fn write(
        &self,
        write: impl FnOnce(&mut Node) -> Result<Stamp, WriteError>,
    ) -> Result<Stamp, WriteError> {
        let (stamp, persisted) = {
            let mut node = self.lock();
            self.shared.log_if_needed(&mut node);
            let stamp = write(&mut node)?;
            let persisted = self.shared.persist(&mut node).inspect_err(|_| {
                node.start_draining();
                self.shutdown();
            })?;
            (stamp, persisted)
        };
        if let Some((ticket, persist)) = persisted {
            persist.wait_acknowledged(ticket).inspect_err(|_| {
                self.lock().start_draining();
                self.shutdown();
            })?;
        }
        Ok(stamp)
    }

    /// The value of `key` on this node.
    pub fn get(&self, key: &str) -> Option<String> {
        self.lock().get(key).map(str::to_owned)
    }

    /// The entry of `key` on this node, tombstone included.
    pub fn get_entry(&self, key: &str) -> Option<Entry<String>> {
        self.lock().get_entry(key).cloned()
    }

    /// A copy of the whole map.
    pub fn snapshot(&self) -> StoreMap {
        self.lock().map().clone()
    }

    /// The node's counters.
    pub fn metrics(&self) -> Metrics {
        *self.lock().metrics()
    }

    /// Runs `f` with the node locked, for anything the other methods do not
    /// cover.
    pub fn with_node<R>(&self, f: impl FnOnce(&Node) -> R) -> R {
        f(&self.lock())
    }

    /// Stops the node taking writes ([`Node::start_draining`]) and returns
    /// its counters at that moment: every write it took is in the map those
    /// counters saw, so an exchange that completes later carries it.
    pub fn start_draining(&self) -> Metrics {
        let mut node = self.lock();
        node.start_draining();
        *node.metrics()
    }

    /// Leaves the cluster ([`Node::leave`]) and returns the node's counters
    /// at that moment, as [`start_draining`](Self::start_draining) does, and
    /// how many exchanges it opened to say so. Keep the driver running until
    /// they complete.
    pub fn leave(&self) -> (Metrics, usize) {
        let now = self.clock.now_ms();
        let mut node = self.lock();
        let opened = node.leave(now);
        (*node.metrics(), opened)
    }

    /// See [`Node::add_member`].
    pub fn add_member(&self, member: crate::message::Member) -> bool {
        self.lock().add_member(member)
    }

    /// Asks the driver thread to stop after its current step.
    pub fn shutdown(&self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, Node> {
        // A panic while holding the lock leaves a node whose state is still a
        // valid CRDT state (every mutation is a join), so keep serving it.
        crate::lock(&self.shared.node)
    }
}

/// The receiving end of a driven node's [`Event`]s, from
/// [`spawn_with_events`]: the events in the order the node raised them.
///
/// The queue is bounded. The driver never waits for the reader: an event
/// that finds the queue full is dropped and counted in
/// [`dropped`](Self::dropped), so a reader that falls behind (or never
/// reads) costs the driver nothing. Once the driver thread has ended and
/// the queue is empty, the receiver reports it closed.
#[derive(Debug)]
pub struct EventReceiver {
    rx: mpsc::Receiver<Event>,
    dropped: Arc<AtomicU64>,
}

impl EventReceiver {
    /// Waits up to `timeout` for the next event.
    ///
    /// # Errors
    /// [`RecvTimeoutError::Timeout`] if none came in time,
    /// [`RecvTimeoutError::Disconnected`] once the driver has ended and
    /// every event it sent was read.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Event, RecvTimeoutError> {
        self.rx.recv_timeout(timeout)
    }

    /// The next event if one is waiting.
    pub fn try_recv(&self) -> Option<Event> {
        self.rx.try_recv().ok()
    }

    /// Every event waiting now, without blocking.
    pub fn try_iter(&self) -> impl Iterator<Item = Event> + '_ {
        self.rx.try_iter()
    }

    /// Events dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The driver's end of an [`EventReceiver`].
struct EventSender {
    tx: SyncSender<Event>,
    dropped: Arc<AtomicU64>,
    /// False once the receiver is gone: nobody to tell any more.
    open: bool,
}

impl EventSender {
    fn deliver(&mut self, event: Event) {
        if !self.open {
            return;
        }
        match self.tx.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => self.open = false,
        }
    }
}

/// What a driving step hands the transport, in the order the node
/// produced it.
#[derive(Debug)]
pub enum Output {
    /// A frame to send ([`Transport::send`]).
    Transmit(Transmit),
    /// An exchange this node sends nothing more in
    /// ([`Transport::end_exchange`]).
    EndExchange(ExchangeEnd),
}

/// One node's driving loop, taken apart, for drivers of other shapes than
/// [`spawn`]'s thread: an async task on a transport's own runtime, say,
/// so that frames reach the node without crossing threads.
///
/// A driver loops: wait for a frame or for [`until_due`](Self::until_due)
/// to pass, [`receive`](Self::receive) the frame if one came, then
/// [`step`](Self::step), handing each [`Output`] to the transport; stop
/// once [`is_stopped`](Self::is_stopped) or the transport closes.
///
/// ```
/// use gossip::{Config, Driver, Node, Output};
/// use lww_crdt::{NodeId, SystemClock};
///
/// let node = Node::new(Config::builder(NodeId::new(1)).build()?, Vec::new());
/// let mut driver = Driver::new(node, SystemClock);
/// let handle = driver.handle();
/// handle.put("k", "v")?;
/// let mut sent = 0;
/// driver.step(|output| {
///     if let Output::Transmit(_) = output {
///         sent += 1;
///     }
/// });
/// assert_eq!(sent, 0, "a node without peers sends nothing");
/// assert_eq!(handle.get("k").as_deref(), Some("v"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Driver {
    handle: NodeHandle,
    events: Option<EventSender>,
    outgoing: Vec<Transmit>,
    ended: Vec<ExchangeEnd>,
    raised: Vec<Event>,
    /// Frames and ends waiting until the durable copy holds what they may
    /// reveal, with the ticket they wait for, oldest first.
    held: VecDeque<(u64, Output)>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver").finish_non_exhaustive()
    }
}

impl Driver {
    /// A driver for `node`, reading time from `clock`. The node's
    /// [`Event`]s are discarded.
    pub fn new<C>(node: Node, clock: C) -> Driver
    where
        C: PhysicalClock + Send + Sync + 'static,
    {
        Driver {
            handle: NodeHandle {
                shared: Arc::new(Shared {
                    node: Mutex::new(node),
                    stop: AtomicBool::new(false),
                    persist: OnceLock::new(),
                    persisted_vector: AtomicU64::new(0),
                    last_ticket: AtomicU64::new(0),
                    watch: OnceLock::new(),
                }),
                clock: Arc::new(clock),
            },
            events: None,
            outgoing: Vec::new(),
            ended: Vec::new(),
            raised: Vec::new(),
            held: VecDeque::new(),
        }
    }

    /// As [`new`](Self::new), and hands every [`Event`] the node raises to
    /// the returned [`EventReceiver`], on the terms of
    /// [`spawn_with_events`].
    pub fn with_events<C>(node: Node, clock: C, capacity: usize) -> (Driver, EventReceiver)
    where
        C: PhysicalClock + Send + Sync + 'static,
    {
        let (tx, rx) = mpsc::sync_channel(capacity.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let mut driver = Driver::new(node, clock);
        driver.events = Some(EventSender {
            tx,
            dropped: Arc::clone(&dropped),
            open: true,
        });
        (driver, EventReceiver { rx, dropped })
    }

    /// Keeps a durable copy of the node's map in `persist` from now on: the
    /// node logs its changes ([`Node::record_changes`]), every client write
    /// waits for [`Persist::wait_acknowledged`] before it returns, and every
    /// step hands what it changed to `persist`, and holds its frames until
    /// [`Persist::written`] says the copy has it. Meanwhile the driver goes
    /// on taking frames, so a node applies one delta while the one before
    /// is written. Call it before the node takes writes; a second call changes
    /// nothing. If the storage fails, the node stops taking writes and the
    /// driver stops.
    pub fn persist_to(&mut self, persist: Arc<dyn Persist>) {
        let mut node = self.handle.lock();
        if self.handle.shared.persist.set(persist).is_ok() {
            node.record_changes();
            let hash = vector_hash(node.version_vector());
            self.handle
                .shared
                .persisted_vector
                .store(hash, Ordering::Relaxed);
        }
    }

    /// Tells `sink` of every change to the node's map from now on while it
    /// [is watched](ChangeSink::is_watched), in order, with the node
    /// locked: a client write's as it is made, a peer's delta's as it is
    /// applied, a collected tombstone's (see [`Change`]). A second call
    /// changes nothing.
    pub fn watch_changes(&mut self, sink: Box<dyn ChangeSink>) {
        let _ = self.handle.shared.watch.set(sink);
    }

    /// The handle for clients of the node.
    pub fn handle(&self) -> NodeHandle {
        self.handle.clone()
    }

    /// Whether [`NodeHandle::shutdown`] was called: the loop should end.
    pub fn is_stopped(&self) -> bool {
        self.handle.shared.stop.load(Ordering::Relaxed)
    }

    /// How long until the node's next timer is due; zero if it is, or if
    /// the node has not ticked yet. At most
    /// a millisecond while frames wait for the durable copy (see
    /// [`persist_to`](Self::persist_to)).
    pub fn until_due(&self) -> Duration {
        let now = self.handle.clock.now_ms();
        let due = self.handle.lock().poll_timeout();
        let until = Duration::from_millis(due.map_or(0, |due| due.saturating_sub(now)));
        if self.held.is_empty() {
            until
        } else {
            until.min(Duration::from_millis(1))
        }
    }

    /// Hands a frame to the node. A refused frame changes nothing; the node
    /// counts it.
    pub fn receive(&mut self, incoming: Incoming) {
        let now = self.handle.clock.now_ms();
        let mut node = self.handle.lock();
        self.handle.shared.log_if_needed(&mut node);
        let _ = node.handle_message(incoming.from, &incoming.payload, now);
        self.persist(&mut node);
    }

    /// Writes what the locked `node` changed to the durable copy, if kept;
    /// on failure, stops taking writes and stops the driver. Returns whether
    /// the frames the node produced may go.
    fn persist(&self, node: &mut Node) -> bool {
        if self.handle.shared.persist(node).is_ok() {
            return true;
        }
        node.start_draining();
        self.handle.shutdown();
        false
    }

    /// Runs the node's timers if they are due, delivers its events, and
    /// hands `out` every frame to send and every exchange ended, frames
    /// first. The node is not locked while `out` runs.
    pub fn step(&mut self, mut out: impl FnMut(Output)) {
        {
            let mut node = self.handle.lock();
            let now = self.handle.clock.now_ms();
            if node.poll_timeout().is_none_or(|due| due <= now) {
                self.handle.shared.log_if_needed(&mut node);
                node.handle_tick(now);
            }
            if !self.persist(&mut node) {
                // Nothing may say the node holds what is not kept.
                while node.poll_transmit().is_some() {}
                return;
            }
            while let Some(transmit) = node.poll_transmit() {
                self.outgoing.push(transmit);
            }
            while let Some(end) = node.poll_exchange_end() {
                self.ended.push(end);
            }
            while let Some(event) = node.poll_event() {
                if self.events.is_some() {
                    self.raised.push(event);
                }
            }
        }
        if let Some(events) = self.events.as_mut() {
            // Outside the node's lock: a full queue drops, never waits.
            for event in self.raised.drain(..) {
                events.deliver(event);
            }
        }
        let Some(persist) = self.handle.shared.persist.get() else {
            for transmit in self.outgoing.drain(..) {
                out(Output::Transmit(transmit));
            }
            for end in self.ended.drain(..) {
                out(Output::EndExchange(end));
            }
            return;
        };
        // Read after the node's lock was let go: the frames above were made
        // with every change up to this ticket in the map.
        let needed = self.handle.shared.last_ticket.load(Ordering::Relaxed);
        let frames = self.outgoing.drain(..).map(Output::Transmit);
        let ends = self.ended.drain(..).map(Output::EndExchange);
        self.held
            .extend(frames.chain(ends).map(|output| (needed, output)));
        let written = match persist.written() {
            Ok(written) => written,
            Err(_) => {
                self.held.clear();
                self.handle.lock().start_draining();
                self.handle.shutdown();
                return;
            }
        };
        self.release(written, &mut out);
    }

    /// Hands `out` the held frames and ends `written` covers, oldest first.
    fn release(&mut self, written: u64, out: &mut impl FnMut(Output)) {
        while self
            .held
            .front()
            .is_some_and(|(ticket, _)| *ticket <= written)
        {
            if let Some((_, output)) = self.held.pop_front() {
                out(output);
            }
        }
    }

    /// For a driver about to stop: waits, up to `bound`, until the durable
    /// copy holds what the frames still held may reveal, and hands them to
    /// `out` (a node's last answers, such as the final `Ack`s of its
    /// drain). Without a durable copy nothing is held.
    pub fn finish(&mut self, bound: Duration, mut out: impl FnMut(Output)) {
        let Some(persist) = self.handle.shared.persist.get().cloned() else {
            return;
        };
        let deadline = std::time::Instant::now() + bound;
        while !self.held.is_empty() && std::time::Instant::now() < deadline {
            let Ok(written) = persist.written() else {
                return;
            };
            self.release(written, &mut out);
            if !self.held.is_empty() {
                thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

/// Runs `node` over `transport` on a new thread, reading time from `clock`.
/// Returns the client handle and the thread, which ends after
/// [`NodeHandle::shutdown`] or when the transport closes.
///
/// The node's [`Event`]s are discarded; [`spawn_with_events`] hands them
/// over.
pub fn spawn<T, C>(node: Node, transport: T, clock: C) -> (NodeHandle, JoinHandle<()>)
where
    T: Transport,
    C: PhysicalClock + Send + Sync + 'static,
{
    start(Driver::new(node, clock), transport)
}

/// As [`spawn`], and hands every [`Event`] the node raises to the returned
/// [`EventReceiver`], which holds up to `capacity` unread events (at least
/// one); beyond that the driver drops them and counts them rather than
/// wait. Events raised through the [`NodeHandle`] (for instance by
/// [`add_member`](NodeHandle::add_member)) are delivered on the driver's
/// next step.
pub fn spawn_with_events<T, C>(
    node: Node,
    transport: T,
    clock: C,
    capacity: usize,
) -> (NodeHandle, JoinHandle<()>, EventReceiver)
where
    T: Transport,
    C: PhysicalClock + Send + Sync + 'static,
{
    let (driver, events) = Driver::with_events(node, clock, capacity);
    let (handle, thread) = start(driver, transport);
    (handle, thread, events)
}

/// Runs an assembled [`Driver`] (one that [persists](Driver::persist_to),
/// say) over `transport` on a new thread, as [`spawn`] does.
pub fn spawn_driver<T: Transport>(driver: Driver, transport: T) -> (NodeHandle, JoinHandle<()>) {
    start(driver, transport)
}

fn start<T: Transport>(driver: Driver, mut transport: T) -> (NodeHandle, JoinHandle<()>) {
    let handle = driver.handle();
    let name = format!("gossip-node-{}", handle.lock().id());
    let thread = thread::Builder::new()
        .name(name)
        .spawn(move || run(driver, &mut transport))
        .expect("spawning a driver thread");
    (handle, thread)
}

fn run<T: Transport>(mut driver: Driver, transport: &mut T) {
    let send = |transport: &mut T, output| match output {
        // Delivery is best effort; an unreachable peer shows up as a
        // timed-out exchange.
        Output::Transmit(transmit) => {
            let _ = transport.send(transmit);
        }
        Output::EndExchange(end) => transport.end_exchange(end),
    };
    while !driver.is_stopped() {
        match transport.recv_timeout(driver.until_due().min(MAX_WAIT)) {
            Ok(Some(incoming)) => driver.receive(incoming),
            Ok(None) => {}
            Err(TransportError::Closed) => return,
            Err(_) => {}
        }
        driver.step(|output| send(transport, output));
    }
    driver.finish(FINISH_BOUND, |output| send(transport, output));
}
