//! [`NodeConfig`], what a node runs with (the flags of `sim-cli node`), and
//! the settings derived from it: the incarnation read from the wall clock
//! and the gossip settings (whose tombstone collection period
//! `gossip::Config::for_interval` derives from the interval and the
//! exchange timeout).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lww_crdt::{NodeId, PhysicalClock, SystemClock};

use crate::node::NodeError;
use crate::node::store::SyncMode;

/// How to run one node. [`NodeConfig::new`] gives the defaults of
/// `sim-cli node`; `docs/multi-host.md` explains each setting by its flag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeConfig {
    /// This node's member id (`--id`); its certificate `node-ID.pem` must
    /// be in [`certs`](Self::certs). Must fit in 32 bits.
    pub id: NodeId,
    /// The UDP address to listen on (`--listen`); port 0 picks a free one.
    pub listen: SocketAddr,
    /// The address peers should reach this node at (`--advertise`);
    /// `None` for [`listen`](Self::listen), unless it is a wildcard.
    pub advertise: Option<SocketAddr>,
    /// Peers to start from (`--peer`); none founds a cluster.
    pub peers: Vec<Peer>,
    /// The directory holding `ca.pem`, `node-ID.pem` and `node-ID.key`
    /// (`--certs`).
    pub certs: PathBuf,
    /// The gossip interval in ms (`--interval-ms`).
    pub interval_ms: u64,
    /// Peers contacted per interval (`--fanout`).
    pub fanout: usize,
    /// Peers contacted in an interval that follows one with nothing new
    /// (`--idle-fanout`); `None`: always `fanout`.
    pub idle_fanout: Option<usize>,
    /// How long an exchange may stay unanswered before it counts against
    /// the peer, in ms (`--exchange-timeout-ms`).
    pub exchange_timeout_ms: u64,
    /// How long a member may stay unheard from before tombstone collection
    /// goes on without it and it is refused until started empty
    /// (`--retention-ms`); `None`: never.
    pub retention_ms: Option<u64>,
    /// The largest gossip message in bytes (`--max-message-bytes`).
    pub max_message_bytes: usize,
    /// The quota on live keys (`--max-keys`); `None`: no limit.
    pub max_keys: Option<u64>,
    /// The quota on bytes of keys and values (`--max-data-bytes`); `None`:
    /// no limit.
    pub max_data_bytes: Option<u64>,
    /// Exchanges kept open with a peer whose last message was cut to size
    /// (`--pull-depth`).
    pub pull_depth: usize,
    /// Which life of this member this is (`--incarnation`); `None` reads it
    /// from the wall clock ([`wall_clock_incarnation`]).
    pub incarnation: Option<u32>,
    /// How long to keep gossiping after the shutdown signal until recent
    /// writes have reached some peers, in ms (`--drain-ms`); 0 stops at
    /// once.
    pub drain_ms: u64,
    /// Added to the system clock to make the node's clock: zero unless a
    /// test moves it (to run a node whose clock is off, in-process).
    pub clock_skew: ClockSkew,
    /// Where the node keeps its state (`--data-dir`); `None` holds it in
    /// memory only.
    pub data_dir: Option<PathBuf>,
    /// When writes are synced to disk (`--sync`), with a data directory.
    pub sync: SyncMode,
    /// Whether a shutdown leaves the cluster for good: always without a
    /// data directory, only with `--leave-on-stop` with one.
    pub leave_on_stop: bool,
    /// Where to serve the HTTP/JSON API (`--http`): plain HTTP on
    /// loopback, HTTPS with client certificates elsewhere; `None` serves
    /// none.
    pub http: Option<SocketAddr>,
    /// A file of certificate serials to refuse at every TLS handshake
    /// (`--revoked`), re-read when it changes; `None` refuses none.
    pub revoked: Option<PathBuf>,
}

/// An offset in ms, shared with whoever holds a clone, that a node adds to
/// the system clock. Tests move it to skew a running node's clock; a real
/// node leaves it at zero (use libfaketime to skew a real one).
#[derive(Clone, Debug, Default)]
pub struct ClockSkew(Arc<AtomicI64>);

impl ClockSkew {
    /// Sets the offset.
    pub fn set_ms(&self, ms: i64) {
        self.0.store(ms, Ordering::Relaxed);
    }

    /// The offset.
    pub fn ms(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }

    /// The system clock moved by this offset.
    pub(crate) fn clock(&self) -> impl PhysicalClock + Clone + Send + Sync + 'static {
        let skew = self.clone();
        move || SystemClock.now_ms().saturating_add_signed(skew.ms())
    }
}

/// Equal when the offsets are, now.
impl PartialEq for ClockSkew {
    fn eq(&self, other: &Self) -> bool {
        self.ms() == other.ms()
    }
}

impl Eq for ClockSkew {}

impl NodeConfig {
    /// A node `id` listening on `listen` with the certificates in `certs`,
    /// no peers, and every other setting at the default of `sim-cli node`.
    pub fn new(id: NodeId, listen: SocketAddr, certs: impl Into<PathBuf>) -> NodeConfig {
        NodeConfig {
            id,
            listen,
            advertise: None,
            peers: Vec::new(),
            certs: certs.into(),
            interval_ms: 100,
            fanout: 3,
            idle_fanout: Some(1),
            exchange_timeout_ms: 1_000,
            retention_ms: Some(DEFAULT_RETENTION_MS),
            max_message_bytes: 1 << 20,
            max_keys: Some(10_000_000),
            max_data_bytes: Some(1 << 30),
            pull_depth: gossip::MAX_PULL_DEPTH,
            incarnation: None,
            drain_ms: 1_000,
            clock_skew: ClockSkew::default(),
            data_dir: None,
            sync: SyncMode::Always,
            leave_on_stop: true,
            http: None,
            revoked: None,
        }
    }
}

impl NodeConfig {
    /// The gossip settings a node runs with: these flags, in life
    /// `incarnation`, advertising `advertise`, and founding the cluster
    /// if `founder`. A node joins through its seeds before it writes.
    ///
    /// # Errors
    /// [`gossip::ConfigError`] for flags out of the protocol's range.
    pub(crate) fn gossip_config(
        &self,
        incarnation: u32,
        advertise: &str,
        founder: bool,
    ) -> Result<gossip::Config, gossip::ConfigError> {
        gossip::Config::for_interval(self.id, self.interval_ms, self.exchange_timeout_ms)
            .incarnation(incarnation)
            .address(advertise)
            .fanout(self.fanout)
            .idle_fanout(self.idle_fanout.filter(|&idle| idle < self.fanout))
            .max_message_bytes(self.max_message_bytes)
            .max_keys(self.max_keys)
            .max_data_bytes(self.max_data_bytes)
            .pull_depth(self.pull_depth)
            .retention_ms(self.retention_ms)
            .join_before_writing(true)
            .founder(founder)
            .seed(u64::from(incarnation) << 32 | self.id.get())
            .build()
    }
}

/// A peer to start from: `ID=HOST:PORT`, or `HOST:PORT` alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// `None` when only the address was given: the node dials it,
    /// authenticates it by the IP address its certificate names, and reads
    /// its id from the certificate.
    pub id: Option<NodeId>,
    /// `HOST:PORT`.
    pub address: String,
}

/// The default retention window: ten days, Cassandra's `gc_grace_seconds`.
/// An outage or partition shorter than this heals by itself.
pub const DEFAULT_RETENTION_MS: u64 = 10 * 24 * 3_600 * 1_000;

/// Unix time of 2020-01-01T00:00:00Z: wall-clock incarnations count seconds
/// from here, which fits a `u32` until 2156.
pub const INCARNATION_EPOCH_SECS: u64 = 1_577_836_800;

/// The incarnation a node started without one takes: seconds since
/// 2020-01-01 UTC on the wall clock.
///
/// A member restarted without its state must write under an origin it
/// never used, or its new writes could carry stamps its earlier life
/// already issued and be taken for old ones. The node keeps no state on
/// disk, so it cannot remember its last incarnation; the wall clock can.
/// The node then waits for the second to end, so that no later start of
/// this member can read the same second.
///
/// # Errors
/// [`NodeError::WallClock`] when the clock reads before 2020 or past 2156:
/// give the incarnation.
pub fn wall_clock_incarnation(now: SystemTime) -> Result<u32, NodeError> {
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    secs.checked_sub(INCARNATION_EPOCH_SECS)
        .and_then(|s| u32::try_from(s).ok())
        .filter(|&s| s > 0)
        .ok_or(NodeError::WallClock { secs })
}

/// Sleeps until the wall-clock second `incarnation` was read in is over.
pub(crate) fn hold_incarnation(incarnation: u32) {
    let end = UNIX_EPOCH
        + Duration::from_secs(INCARNATION_EPOCH_SECS + u64::from(incarnation) + 1)
        + Duration::from_millis(1);
    if let Ok(left) = end.duration_since(SystemTime::now()) {
        thread::sleep(left.min(Duration::from_secs(1)));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

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

    /// Every gossip setting of a node run with the default flags, spelled
    /// out: what any change to how they are derived must keep.
    #[test]
    fn the_default_flags_give_these_gossip_settings() {
        let listen = "127.0.0.1:7000".parse().unwrap();
        let flags = NodeConfig::new(NodeId::new(7), listen, "certs");
        let expected = |founder| {
            gossip::Config::builder(NodeId::new(7))
                .incarnation(3)
                .address("10.0.0.7:7000")
                .fanout(3)
                .idle_fanout(Some(1))
                .tick_interval_ms(100)
                .exchange_timeout_ms(1_000)
                .max_message_bytes(1 << 20)
                .max_keys(Some(10_000_000))
                .max_data_bytes(Some(1 << 30))
                .pull_depth(3)
                .max_clock_offset_ms(500)
                .liveness_thresholds(2, 4)
                .probe_every_ticks(10)
                .gc_every_ticks(11)
                .retention_ms(Some(DEFAULT_RETENTION_MS))
                .join_before_writing(true)
                .founder(founder)
                .seed(3 << 32 | 7)
                .build()
                .unwrap()
        };
        for founder in [false, true] {
            let config = flags.gossip_config(3, "10.0.0.7:7000", founder).unwrap();
            assert_eq!(config, expected(founder));
        }
    }
}
