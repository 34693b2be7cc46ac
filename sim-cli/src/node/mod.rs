//! One long-running member of a real cluster, as a library: [`run`] starts
//! a node with a [`NodeConfig`] and serves until a shutdown future
//! completes. `sim-cli node` passes SIGINT and SIGTERM as that future;
//! tests start nodes in-process and stop them by completing theirs.
//!
//! A `gossip::Node` driven over a `QuicTransport` by a task on the
//! transport's I/O runtime (`QuicTransport::drive`), on the system clock,
//! plus three helper threads:
//!
//! - `serve`: the client thread, answering requests from the transport's
//!   client channel, and the status it reports;
//! - `seeds`: the seeds thread, finding the seeds given by address alone;
//! - `members`: the membership thread, logging the membership changes the
//!   node's events report (and, through `checks_log`, settings that differ,
//!   clocks that drift and messages refused for far-future stamps) and
//!   feeding the members the node knows into the transport's peer table;
//! - with `--revoked`, a task on the I/O runtime re-reads the deny-list
//!   file when it changes (`revocation`); `audit` logs every client write;
//! - the calling thread waits for the shutdown future, then `drain`s (stops
//!   taking writes, tells every member it is leaving, waits until recent
//!   writes have reached some peers), stops the driver, shuts the transport
//!   down gracefully and returns.
//!
//! `config` holds [`NodeConfig`] and the settings derived from it; `error`
//! holds [`NodeError`].
//!
//! # Example
//!
//! A node founding a cluster on a free loopback port, stopped at once:
//!
//! ```no_run
//! use lww_crdt::NodeId;
//! use sim::node::{self, NodeConfig};
//!
//! // `sim-cli certs --out certs --nodes 1 --name 127.0.0.1` made these.
//! let mut config = NodeConfig::new(NodeId::new(1), "127.0.0.1:0".parse()?, "certs");
//! config.incarnation = Some(1);
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let node = std::thread::spawn(move || {
//!     node::run(config, async {
//!         let _ = stopped.await;
//!         "asked to stop"
//!     })
//! });
//! // ... talk to it with sim::client::Client ...
//! let _ = stop.send(());
//! node.join().expect("the node thread")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod audit;
mod checks_log;
mod config;
mod drain;
mod error;
pub mod http;
mod listing;
mod members;
mod prometheus;
mod revocation;
mod seeds;
mod serve;
pub mod store;
pub mod watch;

use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use gossip::{Member, Node, NodeHandle};
use tracing::{info, warn};
use transport_quic::certs::CertDir;
use transport_quic::{DrivenNode, QuicConfig, QuicHandle, QuicTransport};

pub use audit::AUDIT_TARGET;
pub use config::{
    ClockSkew, DEFAULT_RETENTION_MS, INCARNATION_EPOCH_SECS, NodeConfig, Peer,
    wall_clock_incarnation,
};
pub use error::NodeError;
pub use revocation::RELOAD_EVERY as REVOKED_RELOAD_EVERY;
pub use store::{StoreError, SyncMode};

/// The target of the node's log lines. It names the module they came from
/// before the daemon became a library, so that the lines, and `RUST_LOG`
/// filters naming it, stay as they were.
pub(crate) const LOG_TARGET: &str = "sim_cli::daemon";

/// A node whose certificate expires sooner than this warns at its start.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 24 * 3600);

/// The bound on the transport's graceful shutdown.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(2);

/// Node events held for the membership thread; past that, the driver drops
/// them (and the thread says so).
const EVENT_CAPACITY: usize = 4096;

/// How long the helper threads wait before checking whether to stop.
pub(crate) const POLL: Duration = Duration::from_millis(200);

/// Runs a node until `shutdown` completes, with the reason it completes
/// with (logged as `reason`), or until the driver stops; then drains and
/// stops it, and returns once every thread it started has ended. Blocks
/// the calling thread, and runs `shutdown` on the node's own I/O runtime,
/// so it must not be called from inside an async runtime.
///
/// Without [`NodeConfig::incarnation`], it first waits for the current
/// wall-clock second to end (see [`wall_clock_incarnation`]).
///
/// # Errors
/// [`NodeError`]: setup failures (bad certificates, an address that cannot
/// be bound, bad settings). Once the node has started, it returns `Ok`.
pub fn run<F>(config: NodeConfig, shutdown: F) -> Result<(), NodeError>
where
    F: Future<Output = &'static str>,
{
    let id = config.id;
    let dir = CertDir::new(&config.certs);
    for path in dir.ca_keys_present() {
        warn!(
            target: LOG_TARGET,
            path = %path.display(),
            "the certificate directory holds the CA's private key: whoever reads this host's \
             files can issue certificates for any node or client; keep the ca/ directory (and \
             any ca.key) only where certificates are issued, and copy to a node ca.pem and its \
             own node-ID.pem and node-ID.key"
        );
    }
    let identity = dir
        .load_node(id)
        .map_err(|source| NodeError::NodeCertificate {
            id,
            dir: dir.root().to_path_buf(),
            source,
        })?;
    let ca = dir
        .load_ca_cert()
        .map_err(|source| NodeError::CaCertificate {
            path: dir.ca_cert_path(),
            source,
        })?;

    // With --revoked: the deny-list every handshake checks.
    let revoked = match &config.revoked {
        Some(path) => Some(revocation::load(path)?),
        None => None,
    };
    let security = serve::Security::of(
        &identity,
        revoked.clone().unwrap_or_default(),
        config.revoked.clone(),
    );
    warn_if_expiring(id, &security);

    let opened = match &config.data_dir {
        Some(dir) => Some(store::Store::open(dir, id, config.sync)?),
        None => None,
    };
    if let (Some((store, saved)), Some(window_ms)) = (&opened, config.retention_ms) {
        let now_ms = lww_crdt::PhysicalClock::now_ms(&config.clock_skew.clock());
        let silent_ms = saved.in_touch_ms.map(|at| now_ms.saturating_sub(at));
        if let Some(silent_ms) = silent_ms.filter(|&ms| ms > window_ms) {
            return Err(NodeError::OutOfTouch {
                dir: store.dir().to_path_buf(),
                silent_ms,
                window_ms,
            });
        }
    }
    let last_life = opened
        .as_ref()
        .and_then(|(_, saved)| saved.incarnations.last().copied());
    let incarnation = match (config.incarnation, last_life) {
        (Some(given), Some(last)) if given <= last => {
            return Err(NodeError::IncarnationReused { given, last });
        }
        (Some(n), _) => n,
        (None, last) => {
            let n = wall_clock_incarnation(SystemTime::now())?;
            config::hold_incarnation(n);
            // A clock set back since the last life must not reuse its
            // origin.
            last.map_or(n, |last| n.max(last.saturating_add(1)))
        }
    };
    // Off loopback, the API is HTTPS with the node's certificate.
    let http_tls = match config.http {
        Some(addr) if !http::plain_allowed(addr) => Some(Arc::new(
            match &revoked {
                Some(revoked) => {
                    transport_quic::tls::https_server_config_with_revoked(&identity, &ca, revoked)
                }
                None => transport_quic::tls::https_server_config(&identity, &ca),
            }
            .map_err(|source| NodeError::HttpTls { addr, source })?,
        )),
        _ => None,
    };
    let http_listener = config.http;
    let (store, saved) = match opened {
        Some((store, mut saved)) => {
            store::log_opened(&store, &saved);
            saved.incarnations.push(incarnation);
            store.record_incarnations(&saved.incarnations)?;
            (Some(store), saved)
        }
        None => (None, store::Saved::default()),
    };

    // One worker: the node's whole I/O path on one thread. A current-thread
    // runtime driven by a thread of its own cost less when idle (1.07 % of
    // a core per node against 1.26 %) but made a 100-process cluster's
    // start, when every node makes a TLS handshake with every other, take
    // 11 s instead of 7 s until every node knew every member
    // (docs/benchmarks.md).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(format!("node-{id}-io"))
        .enable_all()
        .build()
        .map_err(NodeError::Runtime)?;
    let quic_config = QuicConfig::builder()
        .exchange_idle(Duration::from_millis(config.exchange_timeout_ms))
        // No gossip message, and no client request, is larger: a peer cannot
        // make this node buffer more per stream.
        .max_incoming_frame_bytes(config.max_message_bytes)
        // The drain has already waited for the peers; what is left to
        // flush is the final frames of exchanges, which a live peer takes
        // in a round trip.
        .shutdown_timeout(SHUTDOWN_BOUND)
        .build()
        .map_err(NodeError::TransportConfig)?;
    let mut builder = QuicTransport::builder(identity, ca)
        .bind(config.listen)
        .config(quic_config)
        .runtime(runtime.handle().clone())
        .serve_clients(true);
    if let Some(revoked) = &revoked {
        builder = builder.revoked(revoked.clone());
    }
    let transport = builder.build().map_err(|source| NodeError::Listen {
        listen: config.listen,
        source,
    })?;
    let local = transport.local_addr();
    let advertise = advertised(config.advertise, local);
    let http_listener = match http_listener {
        Some(addr) => Some(
            runtime
                .block_on(tokio::net::TcpListener::bind(addr))
                .map_err(|source| NodeError::HttpListen { addr, source })?,
        ),
        None => None,
    };

    let mut seeds = Vec::new();
    // Seeds given by address alone, found once they answer.
    let mut unnamed = Vec::new();
    for peer in &config.peers {
        let Some(peer_id) = peer.id else {
            unnamed.push(resolve_seed(&peer.address)?);
            continue;
        };
        if peer_id == id {
            return Err(NodeError::PeerIsSelf {
                id: peer_id,
                address: peer.address.clone(),
            });
        }
        let member = Member {
            id: peer_id,
            address: peer.address.clone(),
        };
        transport
            .add_member(&member)
            .map_err(|source| NodeError::PeerAddress {
                id: peer_id,
                address: peer.address.clone(),
                source,
            })?;
        seeds.push(member);
    }
    // A member restarted on its data directory is known to the members it
    // saved: it joins through them.
    let founder = config.peers.is_empty() && saved.members.iter().all(|m| m.id == id);
    let gossip_config = config
        .gossip_config(incarnation, &advertise, founder)
        .map_err(NodeError::GossipConfig)?;
    let restored: Vec<Member> = saved
        .members
        .into_iter()
        .filter(|member| member.id != id && !seeds.iter().any(|seed| seed.id == member.id))
        .collect();
    for member in &restored {
        // A saved address that no longer resolves is only a stale hint:
        // the member's gossip corrects it.
        let _ = transport.add_member(member);
    }
    let node = Node::with_state(
        gossip_config,
        saved.map,
        seeds.iter().cloned().chain(restored),
    );

    let quic = transport.handle();
    let requests = transport.requests().ok_or(NodeError::NoClientChannel)?;
    let (mut driver, events) =
        gossip::Driver::with_events(node, config.clock_skew.clock(), EVENT_CAPACITY);
    if let Some(store) = &store {
        driver.persist_to(Arc::clone(store) as Arc<dyn gossip::Persist>);
    }
    let feed = watch::ChangeFeed::new();
    driver.watch_changes(feed.sink());
    let handle = driver.handle();
    // On the I/O runtime, not a thread of its own: a frame and its answer
    // then never cross threads.
    let driver = transport.drive(driver);
    info!(
        target: LOG_TARGET,
        node = %id,
        incarnation,
        listen = %local,
        advertise = %advertise,
        peers = config.peers.len(),
        interval_ms = config.interval_ms,
        fanout = config.fanout,
        "node started"
    );

    let mut running = Running {
        handle: handle.clone(),
        driver,
        quic: quic.clone(),
        stop: Arc::new(AtomicBool::new(false)),
        helpers: Vec::new(),
        runtime,
        store,
        http_stop: None,
        feed: feed.clone(),
    };
    let helpers = Helpers {
        requests,
        unnamed,
        events,
        seeds,
        feed,
        http: http_listener.map(|listener| (listener, http_tls)),
        security,
    };
    if let (Some(path), Some(revoked)) = (&config.revoked, revoked) {
        running
            .runtime
            .spawn(revocation::follow(path.clone(), revoked));
    }
    if let Err(err) = running.start_helpers(&config, local, helpers) {
        running.stop(false);
        return Err(err);
    }

    let reason = running
        .runtime
        .block_on(wait_for_stop(&running.driver, shutdown));
    info!(target: LOG_TARGET, node = %id, reason, "shutting down");
    let leaving = config.leave_on_stop && !running.driver.is_finished();
    if !running.driver.is_finished() {
        drain::drain(
            &handle,
            Duration::from_millis(config.drain_ms),
            config.leave_on_stop,
        );
    }
    running.stop(leaving);
    info!(target: LOG_TARGET, node = %id, "stopped");
    Ok(())
}

/// What the helper threads take with them.
struct Helpers {
    /// The transport's client channel.
    requests: transport_quic::RequestReceiver,
    /// Seeds given by address alone.
    unnamed: Vec<SocketAddr>,
    /// The node's events.
    events: gossip::EventReceiver,
    /// The members the node started with.
    seeds: Vec<Member>,
    /// The changes the node makes, for watches.
    feed: watch::ChangeFeed,
    /// The HTTP API's listener and its TLS configuration off loopback,
    /// with `--http`.
    http: Option<(tokio::net::TcpListener, Option<Arc<rustls::ServerConfig>>)>,
    /// The node's certificate and revocation list, for `status`.
    security: serve::Security,
}

/// A started node: its driver, transport, helper threads and runtime.
struct Running {
    handle: NodeHandle,
    driver: DrivenNode,
    quic: QuicHandle,
    /// Tells the helper threads to end.
    stop: Arc<AtomicBool>,
    /// The helper threads, in the order they are joined.
    helpers: Vec<JoinHandle<()>>,
    runtime: tokio::runtime::Runtime,
    /// The data directory, if kept.
    store: Option<Arc<store::Store>>,
    /// Stops the HTTP API, with `--http`.
    http_stop: Option<tokio::sync::watch::Sender<bool>>,
    /// The changes the node makes, for watches: closed when it stops.
    feed: watch::ChangeFeed,
}

impl Running {
    /// Starts the client, seeds and members threads.
    fn start_helpers(
        &mut self,
        config: &NodeConfig,
        listen: SocketAddr,
        helpers: Helpers,
    ) -> Result<(), NodeError> {
        let Helpers {
            requests,
            unnamed,
            events,
            seeds: starting,
            feed,
            http: http_listener,
            security,
        } = helpers;
        let server = Arc::new(serve::Server {
            node: self.handle.clone(),
            quic: self.quic.clone(),
            started: Instant::now(),
            listen,
            interval_ms: config.interval_ms,
            store: self.store.clone(),
            feed,
            runtime: self.runtime.handle().clone(),
            security,
        });
        if let Some((listener, tls)) = http_listener {
            let (stop, stopped) = tokio::sync::watch::channel(false);
            let app = http::router(Arc::clone(&server), config.max_message_bytes);
            if let Ok(addr) = listener.local_addr() {
                let scheme = if tls.is_some() { "https" } else { "http" };
                info!(target: LOG_TARGET, addr = %addr, scheme, "HTTP API listening");
            }
            let revoked = server.security.revoked.clone();
            self.runtime
                .spawn(http::serve(listener, app, tls, stopped, revoked));
            self.http_stop = Some(stop);
        }
        let client = spawn_thread("client", move || serve::serve_clients(&server, &requests))?;
        self.helpers.push(client);
        let finder = {
            let (handle, quic, stop) = (
                self.handle.clone(),
                self.quic.clone(),
                Arc::clone(&self.stop),
            );
            spawn_thread("seeds", move || {
                seeds::find_seeds(&handle, &quic, &stop, unnamed);
            })?
        };
        let watcher = {
            let (handle, quic, stop, store) = (
                self.handle.clone(),
                self.quic.clone(),
                Arc::clone(&self.stop),
                self.store.clone(),
            );
            let interval = Duration::from_millis(config.interval_ms);
            spawn_thread("members", move || {
                let watch = members::Watch {
                    handle: &handle,
                    quic: &quic,
                    events: &events,
                    seeds: &starting,
                    stop: &stop,
                    interval,
                    store: store.as_deref(),
                };
                members::watch_members(&watch);
            })
        };
        // Joined in this order: client, members, seeds.
        let watched = watcher.map(|watcher| self.helpers.push(watcher));
        self.helpers.push(finder);
        watched
    }

    /// Stops the driver, the transport, then the helper threads and the
    /// runtime; syncs the data directory last, marking it left if the node
    /// `left` the cluster.
    fn stop(self, left: bool) {
        let (id, incarnation) = self
            .handle
            .with_node(|node| (node.id(), node.incarnation()));
        self.feed.close();
        if let Some(http) = &self.http_stop {
            let _ = http.send(true);
        }
        self.stop.store(true, Ordering::Relaxed);
        self.handle.shutdown();
        self.driver.stop();
        // The driver owns the transport: when it returns, dropping the
        // transport shuts it down gracefully (open streams flushed and
        // finished, peers told), within the transport's shutdown bound.
        if self.driver.join().is_err() {
            warn!(target: LOG_TARGET, node = %id, "the driver task panicked");
        }
        self.quic.shutdown();
        for thread in self.helpers {
            if thread.join().is_err() {
                warn!(target: LOG_TARGET, node = %id, "a helper thread panicked");
            }
        }
        self.runtime.shutdown_timeout(Duration::from_secs(1));
        if let Some(store) = self.store {
            let saved = if left {
                store.record_left(incarnation)
            } else {
                store.close()
            };
            if let Err(err) = saved {
                warn!(target: LOG_TARGET, node = %id, error = %err, "the data directory could not be synced at the stop");
            }
        }
    }
}

/// Warns when the node's certificate expires within [`EXPIRY_WARNING`].
fn warn_if_expiring(id: lww_crdt::NodeId, security: &serve::Security) {
    let now = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let left = security.not_after.saturating_sub(now);
    let warn_within = i64::try_from(EXPIRY_WARNING.as_secs()).unwrap_or(i64::MAX);
    if left < warn_within {
        warn!(
            target: LOG_TARGET,
            node = %id,
            expires = %crate::utc_date(security.not_after),
            days_left = left.div_euclid(86_400),
            serial = %security.serial,
            "this node's certificate expires soon: issue a new one (sim-cli certs --add) and \
             restart the node with it before then, or its peers and clients will refuse it"
        );
    }
}

/// The address of a seed given without its id.
fn resolve_seed(address: &str) -> Result<SocketAddr, NodeError> {
    address
        .to_socket_addrs()
        .map_err(|source| NodeError::PeerResolve {
            address: address.to_owned(),
            source,
        })?
        .next()
        .ok_or_else(|| NodeError::PeerNoAddress {
            address: address.to_owned(),
        })
}

fn advertised(flag: Option<SocketAddr>, local: SocketAddr) -> String {
    match flag {
        Some(addr) => addr.to_string(),
        None if local.ip().is_unspecified() => {
            warn!(
                target: LOG_TARGET,
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
) -> Result<JoinHandle<()>, NodeError> {
    thread::Builder::new()
        .name(name.to_owned())
        .spawn(body)
        .map_err(|source| NodeError::Thread {
            name: name.to_owned(),
            source,
        })
}

/// Waits for `shutdown` or the driver's end; names which.
async fn wait_for_stop(
    driver: &DrivenNode,
    shutdown: impl Future<Output = &'static str>,
) -> &'static str {
    let driver_ended = async {
        while !driver.is_finished() {
            tokio::time::sleep(POLL).await;
        }
    };
    tokio::select! {
        reason = shutdown => reason,
        () = driver_ended => "the driver stopped",
    }
}
