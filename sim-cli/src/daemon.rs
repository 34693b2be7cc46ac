//! `sim-cli node`: one long-running member of a real cluster.
//!
//! A `gossip::Node` driven by `gossip::spawn` over a `QuicTransport`, on the
//! system clock, plus three helpers:
//!
//! - a client thread that answers requests from the transport's client
//!   channel ([`Server::answer`]),
//! - a membership thread that, every gossip interval, feeds the members the
//!   node knows (seeds and those learned through gossip) into the
//!   transport's peer table, and logs liveness changes it sees,
//! - the main thread, which waits for SIGINT or SIGTERM and then stops the
//!   driver, shuts the transport down gracefully and returns.

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use gossip::{Config, Liveness, Member, Node, NodeHandle, WriteError};
use lww_crdt::{NodeId, PhysicalClock, SystemClock};
use tracing::{debug, info, warn};
use transport_quic::certs::CertDir;
use transport_quic::{QuicConfig, QuicHandle, QuicTransport, RecvRequestError, RequestReceiver};

use crate::cli::NodeArgs;
use sim::client::proto::{
    self, MemberStatus, OriginStatus, ProtoError, Request, Response, Status, TransportStatus,
};

/// Unix time of 2020-01-01T00:00:00Z: wall-clock incarnations count seconds
/// from here, which fits a `u32` until 2156.
pub(crate) const INCARNATION_EPOCH_SECS: u64 = 1_577_836_800;

/// The bound on the transport's graceful shutdown.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(2);

/// How long the helper threads wait before checking whether to stop.
const POLL: Duration = Duration::from_millis(200);

/// The incarnation a node started without `--incarnation` takes: seconds
/// since 2020-01-01 UTC on the wall clock.
///
/// A member restarted without its state must write under an origin it
/// never used, or its new writes could carry stamps its earlier life
/// already issued and be taken for old ones. The node keeps no state on
/// disk, so it cannot remember its last incarnation; the wall clock can.
/// The caller then waits for the second to end, so that no later start of
/// this member can read the same second (see [`hold_incarnation`]).
///
/// # Errors
/// When the clock reads before 2020 or past 2156: pass `--incarnation`.
pub(crate) fn wall_clock_incarnation(now: SystemTime) -> anyhow::Result<u32> {
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    secs.checked_sub(INCARNATION_EPOCH_SECS)
        .and_then(|s| u32::try_from(s).ok())
        .filter(|&s| s > 0)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "the wall clock ({secs} s since 1970) is outside 2020..2156; pass --incarnation"
            )
        })
}

/// Sleeps until the wall-clock second `incarnation` was read in is over.
fn hold_incarnation(incarnation: u32) {
    let end = UNIX_EPOCH
        + Duration::from_secs(INCARNATION_EPOCH_SECS + u64::from(incarnation) + 1)
        + Duration::from_millis(1);
    if let Ok(left) = end.duration_since(SystemTime::now()) {
        thread::sleep(left.min(Duration::from_secs(1)));
    }
}

/// Runs a node until SIGINT or SIGTERM. Errors are setup failures (bad
/// certificates, an address that cannot be bound, bad flags).
pub(crate) fn run(args: &NodeArgs) -> anyhow::Result<()> {
    let id = NodeId::new(args.id);
    let dir = CertDir::new(&args.certs);
    let identity = dir.load_node(id).with_context(|| {
        format!(
            "cannot load node {id}'s certificate from {} (node-{id}.pem, node-{id}.key, ca.pem)",
            dir.root().display()
        )
    })?;
    let ca = dir
        .load_ca_cert()
        .with_context(|| format!("cannot load {}", dir.ca_cert_path().display()))?;

    let incarnation = match args.incarnation {
        Some(n) => n,
        None => {
            let n = wall_clock_incarnation(SystemTime::now())?;
            hold_incarnation(n);
            n
        }
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(format!("node-{id}-io"))
        .enable_all()
        .build()
        .context("cannot start the I/O runtime")?;
    let quic_config = QuicConfig::builder()
        .exchange_idle(Duration::from_millis(args.exchange_timeout_ms))
        // The drain has already waited for the peers; what is left to
        // flush is the final frames of exchanges, which a live peer takes
        // in a round trip.
        .shutdown_timeout(SHUTDOWN_BOUND)
        .build()
        .context("transport configuration")?;
    let transport = QuicTransport::builder(identity, ca)
        .bind(args.listen)
        .config(quic_config)
        .runtime(runtime.handle().clone())
        .serve_clients(true)
        .build()
        .with_context(|| format!("cannot listen on {} (UDP)", args.listen))?;
    let local = transport.local_addr();
    let advertise = advertised(args.advertise, local);

    let mut seeds = Vec::new();
    // Seeds given by address alone, found once they answer.
    let mut unnamed = Vec::new();
    for peer in &args.peers {
        let Some(peer_id) = peer.id else {
            let addr = peer
                .address
                .to_socket_addrs()
                .with_context(|| format!("--peer {}: cannot resolve the address", peer.address))?
                .next()
                .with_context(|| format!("--peer {}: the name has no address", peer.address))?;
            unnamed.push(addr);
            continue;
        };
        if peer_id == id {
            anyhow::bail!("--peer {}={} names this node itself", peer_id, peer.address);
        }
        let member = Member {
            id: peer_id,
            address: peer.address.clone(),
        };
        transport
            .add_member(&member)
            .with_context(|| format!("--peer {}={}", peer_id, peer.address))?;
        seeds.push(member);
    }
    let config = Config::builder(id)
        .incarnation(incarnation)
        .address(advertise.clone())
        .fanout(args.fanout())
        .tick_interval_ms(args.interval_ms)
        .exchange_timeout_ms(args.exchange_timeout_ms)
        .max_message_bytes(args.max_message_bytes)
        .pull_depth(args.pull_depth)
        .join_before_writing(true)
        .founder(args.peers.is_empty())
        .gc_every_ticks(gc_every_ticks(args.interval_ms, args.exchange_timeout_ms))
        .seed(u64::from(incarnation) << 32 | args.id)
        .build()
        .context("gossip configuration")?;
    let node = Node::new(config, seeds);

    let quic = transport.handle();
    let requests = transport
        .requests()
        .context("the transport does not serve clients")?;
    let (handle, driver) = gossip::spawn(node, transport, SystemClock);
    info!(
        node = %id,
        incarnation,
        listen = %local,
        advertise = %advertise,
        peers = args.peers.len(),
        interval_ms = args.interval_ms,
        fanout = args.fanout,
        "node started"
    );

    let stop = Arc::new(AtomicBool::new(false));
    let server = Server {
        node: handle.clone(),
        quic: quic.clone(),
        started: Instant::now(),
        listen: local,
        interval_ms: args.interval_ms,
    };
    let client_thread = spawn_thread("client", move || serve_clients(&server, &requests))?;
    let seeds_thread = {
        let (handle, quic, stop) = (handle.clone(), quic.clone(), Arc::clone(&stop));
        spawn_thread("seeds", move || find_seeds(&handle, &quic, &stop, unnamed))?
    };
    let members_thread = {
        let (handle, quic, stop) = (handle.clone(), quic.clone(), Arc::clone(&stop));
        let interval = Duration::from_millis(args.interval_ms);
        spawn_thread("members", move || {
            watch_members(&handle, &quic, &stop, interval)
        })?
    };

    let reason = runtime.block_on(wait_for_stop(&driver));
    info!(node = %id, reason, "shutting down");
    if !driver.is_finished() {
        drain(&handle, Duration::from_millis(args.drain_ms));
    }
    stop.store(true, Ordering::Relaxed);
    handle.shutdown();
    // The driver owns the transport: when it returns, dropping the
    // transport shuts it down gracefully (open streams flushed and
    // finished, peers told), within the transport's shutdown bound.
    if driver.join().is_err() {
        warn!(node = %id, "the driver thread panicked");
    }
    quic.shutdown();
    for thread in [client_thread, members_thread, seeds_thread] {
        if thread.join().is_err() {
            warn!(node = %id, "a helper thread panicked");
        }
    }
    runtime.shutdown_timeout(Duration::from_secs(1));
    info!(node = %id, "stopped");
    Ok(())
}

/// Ticks between tombstone collections: ten, or enough that the GC period
/// outlasts the exchange timeout (an exchange still open could carry an
/// older write).
pub(crate) fn gc_every_ticks(interval_ms: u64, exchange_timeout_ms: u64) -> u32 {
    let ticks = (exchange_timeout_ms / interval_ms.max(1)).saturating_add(1);
    u32::try_from(ticks.max(10)).unwrap_or(u32::MAX)
}

/// Stops taking writes and opens a last exchange with every member, saying
/// it is leaving, then keeps gossiping until the writes this node accepted
/// have reached some peers, or `bound` passes: until `min(fanout, alive
/// peers)` exchanges this node opened complete after the signal. Completing
/// one means the peer's answer arrived after the signal, and the final
/// `Ack` that answer calls for is computed from the map as it is then, so
/// it carries every write accepted before the signal (or the peer already
/// had them, when the digests matched); the transport flushes that `Ack`
/// as it shuts down. With no alive peer there is no one to tell, and it
/// returns at once; when as many exchanges time out as it waits for, the
/// peers are gone or going, and it returns then.
fn drain(handle: &NodeHandle, bound: Duration) {
    let deadline = Instant::now() + bound;
    // Under the node's lock: every write taken is in the map as these
    // counters saw it, so every exchange that completes later carries it.
    // The exchanges it opens with every member tell them it is leaving.
    let (at_signal, _) = handle.leave();
    let wanted = handle.with_node(|node| {
        let alive = node
            .peers()
            .iter()
            .filter(|p| p.liveness == Liveness::Alive)
            .count();
        alive.min(node.config().fanout()) as u64
    });
    if wanted == 0 || bound.is_zero() {
        return;
    }
    loop {
        let now = handle.metrics();
        let completed = now.exchanges_completed - at_signal.exchanges_completed;
        if completed >= wanted {
            info!(
                exchanges = completed,
                "drained: recent writes reached the peers"
            );
            return;
        }
        let timed_out = now.exchanges_timed_out - at_signal.exchanges_timed_out;
        if timed_out >= wanted {
            warn!(
                exchanges = completed,
                timed_out, "peers stopped answering; stopping without waiting longer"
            );
            return;
        }
        if Instant::now() >= deadline {
            warn!(
                bound_ms = bound.as_millis() as u64,
                exchanges = completed,
                wanted,
                "drain bound reached before enough exchanges completed"
            );
            return;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Finds the id of every seed given by address alone, retrying once a
/// second while it does not answer, and hands each found seed to the node
/// and the transport, as if it had been given with its id.
fn find_seeds(
    handle: &NodeHandle,
    quic: &QuicHandle,
    stop: &AtomicBool,
    mut pending: Vec<SocketAddr>,
) {
    let mut told = HashSet::new();
    while !pending.is_empty() && !stop.load(Ordering::Relaxed) {
        pending.retain(|&addr| match quic.discover(addr) {
            Ok(peer) => {
                info!(%peer, %addr, "seed found");
                quic.add_peer(peer, addr);
                handle.add_member(Member {
                    id: peer,
                    address: addr.to_string(),
                });
                false
            }
            Err(transport_quic::DiscoverError::Itself) => {
                warn!(%addr, "--peer names this node itself; ignored");
                false
            }
            Err(err) => {
                if told.insert(addr) {
                    warn!(%addr, error = %err, "seed not found yet; trying again every second");
                }
                true
            }
        });
        let until = Instant::now() + Duration::from_secs(1);
        while !pending.is_empty() && Instant::now() < until && !stop.load(Ordering::Relaxed) {
            thread::sleep(POLL);
        }
    }
}

fn advertised(flag: Option<SocketAddr>, local: SocketAddr) -> String {
    match flag {
        Some(addr) => addr.to_string(),
        None if local.ip().is_unspecified() => {
            warn!(
                listen = %local,
                "listening on a wildcard address without --advertise: peers learn this node's \
                 address only from their own --peer flags"
            );
            String::new()
        }
        None => local.to_string(),
    }
}

fn spawn_thread(
    name: &str,
    body: impl FnOnce() + Send + 'static,
) -> anyhow::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name(name.to_owned())
        .spawn(body)
        .with_context(|| format!("cannot start the {name} thread"))
}

/// Waits for SIGINT, SIGTERM or the driver's end; names which.
async fn wait_for_stop(driver: &JoinHandle<()>) -> &'static str {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    #[cfg(unix)]
    let terminate = async {
        match terminate.as_mut() {
            Some(signal) => {
                signal.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    let driver_ended = async {
        while !driver.is_finished() {
            tokio::time::sleep(POLL).await;
        }
    };
    tokio::select! {
        _ = interrupt => "SIGINT",
        () = terminate => "SIGTERM",
        () = driver_ended => "the driver stopped",
    }
}

/// What the client thread needs to answer requests.
pub(crate) struct Server {
    pub(crate) node: NodeHandle,
    pub(crate) quic: QuicHandle,
    pub(crate) started: Instant,
    pub(crate) listen: SocketAddr,
    pub(crate) interval_ms: u64,
}

fn serve_clients(server: &Server, requests: &RequestReceiver) {
    loop {
        match requests.recv_timeout(POLL) {
            Ok(request) => {
                let response = server.answer(&request.body);
                debug!(client = %request.remote, response = response_kind(&response), "request");
                let bytes = proto::encode(&response);
                if let Err(err) = request.responder.respond(bytes) {
                    debug!(client = %request.remote, error = %err, "response not sent");
                }
            }
            Err(RecvRequestError::Timeout) => {}
            Err(RecvRequestError::Closed) => return,
        }
    }
}

fn response_kind(response: &Response) -> &'static str {
    match response {
        Response::Written { .. } => "written",
        Response::Entry { .. } => "entry",
        Response::Status(_) => "status",
        Response::Error(_) => "error",
    }
}

impl Server {
    /// The response to one request frame; a frame that is not a request
    /// gets an error response.
    pub(crate) fn answer(&self, body: &[u8]) -> Response {
        let request = match proto::decode::<Request>(body) {
            Ok(request) => request,
            Err(err) => return err.to_response(),
        };
        match request {
            Request::Put { key, value } => written(self.node.put(key, value)),
            Request::Delete { key } => written(self.node.delete(key)),
            Request::Get { key } => Response::Entry {
                entry: self.node.get_entry(&key),
            },
            Request::Status => Response::Status(Box::new(self.status())),
        }
    }

    fn status(&self) -> Status {
        let now = SystemClock.now_ms();
        let mut status = self.node.with_node(|node| {
            let map = node.map();
            let vector = node.version_vector();
            let mut members = vec![MemberStatus {
                id: node.id(),
                address: node.config().address().to_owned(),
                liveness: None,
                failures: 0,
                last_heard_ms_ago: None,
                incarnation: Some(node.incarnation()),
            }];
            let mut peers = node.peers();
            peers.sort_by_key(|p| p.member.id);
            members.extend(peers.into_iter().map(|p| MemberStatus {
                id: p.member.id,
                address: p.member.address,
                liveness: Some(p.liveness),
                failures: p.failures,
                last_heard_ms_ago: p.last_heard_ms.map(|t| now.saturating_sub(t)),
                incarnation: p.incarnation,
            }));
            Status {
                id: node.id(),
                incarnation: node.incarnation(),
                joined: node.is_joined(),
                listen: String::new(),
                uptime_ms: 0,
                interval_ms: 0,
                members,
                keys: map.len() as u64,
                tombstones: map.tombstone_count() as u64,
                vector: vector
                    .iter()
                    .map(|(origin, hlc)| OriginStatus { origin, hlc })
                    .collect(),
                max_hlc: vector.iter().map(|(_, hlc)| hlc).max().unwrap_or_default(),
                vector_hash: gossip::vector_hash(vector),
                content_hash: content_hash(map),
                metrics: *node.metrics(),
                transport: TransportStatus::default(),
            }
        });
        status.listen = self.listen.to_string();
        status.uptime_ms = self.started.elapsed().as_millis() as u64;
        status.interval_ms = self.interval_ms;
        status.transport = self.quic.stats().into();
        status
    }
}

fn written(result: Result<lww_crdt::Stamp, WriteError>) -> Response {
    match result {
        Ok(stamp) => Response::Written { stamp },
        Err(WriteError::TooLarge { len, max }) => Response::Error(ProtoError::TooLarge {
            len: len as u64,
            max: max as u64,
        }),
        Err(WriteError::NotJoined) => Response::Error(ProtoError::NotJoined),
        Err(WriteError::Draining) => Response::Error(ProtoError::ShuttingDown),
    }
}

/// An order-independent hash of every entry (key, stamp, value or
/// tombstone): the wrapping sum of one hash per entry, so it needs no
/// sorting and is the same on every node holding the same map.
pub(crate) fn content_hash(map: &gossip::StoreMap) -> u64 {
    map.entries().fold(0u64, |sum, (key, entry)| {
        let mut h = Fnv::default();
        h.write(key.as_bytes());
        h.write(&[0xff]);
        h.write(&entry.stamp.hlc.as_u64().to_le_bytes());
        h.write(&entry.stamp.origin.get().to_le_bytes());
        match &entry.value {
            Some(value) => {
                h.write(&[1]);
                h.write(value.as_bytes());
            }
            None => h.write(&[0]),
        }
        sum.wrapping_add(finish(h.0))
    })
}

/// FNV-1a, 64 bits: stable across builds and platforms.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// A final avalanche (splitmix64), so that summed hashes do not cancel in
/// structured ways.
fn finish(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Every interval: gives the transport the addresses of every member the
/// node knows, and logs what changed since the last look (the driver
/// consumes the node's events itself, so they are recovered by comparing
/// states).
fn watch_members(handle: &NodeHandle, quic: &QuicHandle, stop: &AtomicBool, interval: Duration) {
    let mut seen: HashMap<NodeId, (String, Liveness)> = HashMap::new();
    let mut unusable: HashMap<NodeId, String> = HashMap::new();
    while !stop.load(Ordering::Relaxed) {
        thread::sleep(interval.min(POLL));
        let (members, peers) = handle.with_node(|node| (node.members(), node.peers()));
        for err in quic.sync_members(&members) {
            let (id, text) = match &err {
                transport_quic::AddressError::Empty(id) => (*id, err.to_string()),
                transport_quic::AddressError::Resolve { id, .. } => (*id, err.to_string()),
            };
            if unusable.get(&id) != Some(&text) {
                debug!(peer = %id, error = %text, "member address not usable");
                unusable.insert(id, text);
            }
        }
        for peer in peers {
            let id = peer.member.id;
            let now = (peer.member.address.clone(), peer.liveness);
            match seen.get(&id) {
                None => info!(peer = %id, address = %now.0, liveness = ?now.1, "member known"),
                Some((_, before)) if *before != now.1 => match now.1 {
                    Liveness::Alive => info!(peer = %id, was = ?before, "peer up"),
                    Liveness::Left => info!(peer = %id, "peer left the cluster"),
                    Liveness::Suspect | Liveness::Down => {
                        warn!(peer = %id, liveness = ?now.1, failures = peer.failures, "peer unresponsive");
                    }
                },
                Some((address, _)) if *address != now.0 && !now.0.is_empty() => {
                    info!(peer = %id, address = %now.0, "member address learned");
                }
                Some(_) => {}
            }
            seen.insert(id, now);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn bad_requests_get_typed_errors_and_the_node_keeps_serving() {
        use transport_quic::QuicClient;
        use transport_quic::certs::ClusterCa;

        let ca = ClusterCa::generate().unwrap();
        let id = NodeId::new(1);
        let identity = ca.issue_node(id, &["127.0.0.1".to_owned()]).unwrap();
        let transport = QuicTransport::builder(identity, ca.cert().clone())
            .serve_clients(true)
            .build()
            .unwrap();
        let (quic, requests, listen) = (
            transport.handle(),
            transport.requests().unwrap(),
            transport.local_addr(),
        );
        let node = Node::new(Config::builder(id).build().unwrap(), []);
        let (handle, driver) = gossip::spawn(node, transport, SystemClock);
        let server = Server {
            node: handle.clone(),
            quic: quic.clone(),
            started: Instant::now(),
            listen,
            interval_ms: 100,
        };
        assert!(matches!(
            server.answer(&[&[proto::PROTO_VERSION][..], b"garbage"].concat()),
            Response::Error(ProtoError::Malformed { .. })
        ));
        assert!(matches!(
            server.answer(b"\x01garbage"),
            Response::Error(ProtoError::UnsupportedVersion { got: 1, .. })
        ));
        assert!(matches!(
            server.answer(&[7, 0]),
            Response::Error(ProtoError::UnsupportedVersion { got: 7, .. })
        ));
        let huge = Request::Put {
            key: "k".into(),
            value: "x".repeat(600_000),
        };
        assert!(matches!(
            server.answer(&proto::encode(&huge)),
            Response::Error(ProtoError::TooLarge { .. })
        ));
        assert_eq!(handle.get("k"), None, "a refused write changed the map");

        // The same over the wire, through the client channel.
        let serving = thread::spawn(move || serve_clients(&server, &requests));
        let client = QuicClient::connect(
            listen,
            "127.0.0.1",
            &ca.issue_client().unwrap(),
            ca.cert(),
            QuicConfig::default(),
        )
        .unwrap();
        let ask =
            |bytes: &[u8]| proto::decode::<Response>(&client.request(bytes).unwrap()).unwrap();
        assert!(matches!(
            ask(&[proto::PROTO_VERSION, 0xff, 0xff, 0xff]),
            Response::Error(ProtoError::Malformed { .. })
        ));
        let put = Request::Put {
            key: "k".into(),
            value: "v".into(),
        };
        assert!(matches!(
            ask(&proto::encode(&put)),
            Response::Written { .. }
        ));
        let get = Request::Get { key: "k".into() };
        match ask(&proto::encode(&get)) {
            Response::Entry { entry: Some(entry) } => assert_eq!(entry.value.as_deref(), Some("v")),
            other => panic!("{other:?}"),
        }
        match ask(&proto::encode(&Request::Status)) {
            Response::Status(status) => {
                assert_eq!((status.id, status.keys), (id, 1));
                assert_eq!(status.transport.requests_answered, 3);
            }
            other => panic!("{other:?}"),
        }
        // Draining before shutdown: writes are refused, reads still served.
        handle.start_draining();
        let late = Request::Put {
            key: "late".into(),
            value: "v".into(),
        };
        assert!(matches!(
            ask(&proto::encode(&late)),
            Response::Error(ProtoError::ShuttingDown)
        ));
        assert!(matches!(
            ask(&proto::encode(&Request::Delete { key: "k".into() })),
            Response::Error(ProtoError::ShuttingDown)
        ));
        assert!(matches!(
            ask(&proto::encode(&get)),
            Response::Entry { entry: Some(_) }
        ));
        assert_eq!(handle.get("late"), None, "a refused write changed the map");
        client.close();
        handle.shutdown();
        driver.join().unwrap();
        quic.shutdown();
        serving.join().unwrap();
    }

    #[test]
    fn wall_clock_incarnations_grow_with_time_and_refuse_odd_clocks() {
        let at = |secs| UNIX_EPOCH + Duration::from_secs(secs);
        let a = wall_clock_incarnation(at(INCARNATION_EPOCH_SECS + 100)).unwrap();
        let b = wall_clock_incarnation(at(INCARNATION_EPOCH_SECS + 101)).unwrap();
        assert_eq!((a, b), (100, 101));
        assert!(wall_clock_incarnation(at(1_000)).is_err());
        assert!(wall_clock_incarnation(at(INCARNATION_EPOCH_SECS + (1 << 32))).is_err());
        assert!(wall_clock_incarnation(SystemTime::now()).is_ok());
    }

    #[test]
    fn content_hash_depends_on_entries_not_their_order() {
        use lww_crdt::{Entry, Hlc, Stamp};
        let stamp = |t| Stamp::new(Hlc::new(t, 0), NodeId::new(1));
        let mut a = gossip::StoreMap::new();
        let mut b = gossip::StoreMap::new();
        a.insert("x".into(), Entry::value(stamp(1), "1".into()));
        a.insert("y".into(), Entry::tombstone(stamp(2)));
        b.insert("y".into(), Entry::tombstone(stamp(2)));
        b.insert("x".into(), Entry::value(stamp(1), "1".into()));
        assert_eq!(content_hash(&a), content_hash(&b));
        b.insert("x".into(), Entry::value(stamp(3), "1".into()));
        assert_ne!(content_hash(&a), content_hash(&b));
        assert_ne!(content_hash(&a), content_hash(&gossip::StoreMap::new()));
    }
}
