//! `sim-cli node`: one node of a real cluster over QUIC (`sim::node`), with
//! structured logs on stderr, until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use lww_crdt::NodeId;
use std::time::Duration;

use sim::node::{ClockSkew, NodeConfig, Peer, SyncMode};

/// `sim-cli node`.
#[derive(Debug, Args)]
pub(crate) struct NodeArgs {
    /// This node's id (its certificate node-ID.pem must be in --certs).
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=u64::from(u32::MAX)))]
    pub(crate) id: u64,
    /// UDP address to listen on, e.g. 10.0.0.1:7000 (0.0.0.0:7000 for
    /// every interface, then give --advertise).
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: SocketAddr,
    /// The address peers should reach this node at, told to them through
    /// gossip (default: --listen, unless it is a wildcard).
    #[arg(long, value_name = "ADDR")]
    pub(crate) advertise: Option<SocketAddr>,
    /// A peer to start from: HOST:PORT, or ID=HOST:PORT. Repeatable; one is
    /// enough, and more members are learned through gossip. Without its id,
    /// the peer is authenticated by the IP address its certificate names,
    /// and its id is read from the certificate.
    #[arg(long = "peer", value_name = "[ID=]ADDR", value_parser = parse_peer)]
    pub(crate) peers: Vec<Peer>,
    /// Directory holding ca.pem, node-ID.pem and node-ID.key.
    #[arg(long, value_name = "DIR")]
    pub(crate) certs: PathBuf,
    /// Gossip interval in ms.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) interval_ms: u64,
    /// Peers contacted per interval.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub(crate) fanout: u64,
    /// Peers contacted in an interval that follows one in which nothing
    /// was written, received or learned: an idle cluster's exchanges are
    /// its whole cost. A node with news goes back to `--fanout` at once.
    /// Give it the `--fanout` to keep the full fan-out always.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub(crate) idle_fanout: u64,
    /// An exchange unanswered this long counts against the peer (ms).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) exchange_timeout_ms: u64,
    /// How long a member may stay unheard from (ms, default ten days)
    /// before tombstones are collected without it; it is then refused
    /// until started empty. 0: wait for every member forever.
    #[arg(long, default_value_t = sim::node::DEFAULT_RETENTION_MS)]
    pub(crate) retention_ms: u64,
    /// The largest gossip message in bytes (at most the transport's 4 MiB
    /// frame cap).
    #[arg(long, default_value_t = 1 << 20, value_parser = parse_message_bytes)]
    pub(crate) max_message_bytes: usize,
    /// The most live keys the node holds before it refuses client writes of
    /// new keys (deletes and overwrites still go through; entries from
    /// peers are always taken); 0: no limit.
    #[arg(long, default_value_t = 10_000_000)]
    pub(crate) max_keys: u64,
    /// The most bytes of keys and values the node holds before it refuses
    /// client writes that would add more; 0: no limit.
    #[arg(long, default_value_t = 1 << 30)]
    pub(crate) max_data_bytes: u64,
    /// Exchanges kept open, without waiting for the interval, with a peer
    /// whose last message was cut to --max-message-bytes: how fast a
    /// node far behind catches up (0 to 3; 0 keeps catch-up at one message
    /// per interval and peer).
    #[arg(long, default_value_t = gossip::MAX_PULL_DEPTH, value_parser = parse_pull_depth)]
    pub(crate) pull_depth: usize,
    /// Which life of this member this is; must exceed every incarnation
    /// it used before. Default: seconds since 2020-01-01 UTC on the wall
    /// clock (the node then waits for that second to end before serving).
    #[arg(long)]
    pub(crate) incarnation: Option<u32>,
    /// On SIGINT or SIGTERM, keep gossiping up to this long (ms) until the
    /// writes this node accepted have reached min(fanout, alive peers)
    /// peers; 0 stops at once.
    #[arg(long, default_value_t = 1_000)]
    pub(crate) drain_ms: u64,
    /// Keep the node's state in this directory, and resume from it on the
    /// next start. Without it the node holds its state in memory only.
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// With --data-dir, when a client write is synced to disk before it is
    /// acknowledged: always (fsync, shared by concurrent writers),
    /// interval (every --sync-interval-ms), or never (left to the OS).
    /// Every write reaches the OS before it is acknowledged, so a killed
    /// process loses none in any mode.
    #[arg(long, value_enum, default_value_t = SyncArg::Always, requires = "data_dir")]
    pub(crate) sync: SyncArg,
    /// The period of --sync interval (ms).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) sync_interval_ms: u64,
    /// With --data-dir, leave the cluster on SIGINT or SIGTERM, for good:
    /// the members stop waiting for this one, and the directory is refused
    /// from then on. Without it a node with a data directory stops as for a
    /// restart, and its peers wait for it. (A node without a data directory
    /// always leaves: it cannot come back as it was.)
    #[arg(long, requires = "data_dir")]
    pub(crate) leave_on_stop: bool,
    /// Serve the HTTP/JSON API on this TCP address: plain HTTP on
    /// loopback, HTTPS with client certificates elsewhere
    /// (docs/http-api.md).
    #[arg(long, value_name = "ADDR")]
    pub(crate) http: Option<SocketAddr>,
    /// A file of certificate serial numbers (hex, one a line; # comments)
    /// refused at every TLS handshake: clients, peers either way, HTTPS.
    /// Re-read within seconds of a change, without a restart.
    #[arg(long, value_name = "FILE")]
    pub(crate) revoked: Option<PathBuf>,
}

/// `--sync`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum SyncArg {
    /// fsync before acknowledging, shared by concurrent writers.
    Always,
    /// fsync every --sync-interval-ms.
    Interval,
    /// Leave syncing to the operating system.
    Never,
}

impl NodeArgs {
    /// The node these flags describe.
    pub(crate) fn config(&self) -> NodeConfig {
        NodeConfig {
            id: NodeId::new(self.id),
            listen: self.listen,
            advertise: self.advertise,
            peers: self.peers.clone(),
            certs: self.certs.clone(),
            interval_ms: self.interval_ms,
            fanout: usize::try_from(self.fanout).unwrap_or(usize::MAX),
            idle_fanout: Some(usize::try_from(self.idle_fanout).unwrap_or(usize::MAX)),
            exchange_timeout_ms: self.exchange_timeout_ms,
            retention_ms: Some(self.retention_ms).filter(|&ms| ms > 0),
            max_message_bytes: self.max_message_bytes,
            max_keys: Some(self.max_keys).filter(|&n| n > 0),
            max_data_bytes: Some(self.max_data_bytes).filter(|&n| n > 0),
            pull_depth: self.pull_depth,
            incarnation: self.incarnation,
            drain_ms: self.drain_ms,
            clock_skew: ClockSkew::default(),
            data_dir: self.data_dir.clone(),
            sync: match self.sync {
                SyncArg::Always => SyncMode::Always,
                SyncArg::Interval => {
                    SyncMode::Interval(Duration::from_millis(self.sync_interval_ms))
                }
                SyncArg::Never => SyncMode::Never,
            },
            leave_on_stop: self.leave_on_stop || self.data_dir.is_none(),
            http: self.http,
            revoked: self.revoked.clone(),
        }
    }
}

/// Runs `sim-cli node` until SIGINT or SIGTERM: exit status 0 after a
/// clean shutdown.
///
/// # Errors
/// Setup failures: [`sim::node::NodeError`].
pub(crate) fn run(args: &NodeArgs) -> anyhow::Result<ExitCode> {
    init_logs();
    sim::node::run(args.config(), signals())?;
    Ok(ExitCode::SUCCESS)
}

/// Completes on SIGINT or SIGTERM, naming which. Polled on the node's
/// runtime, which the signal handlers need.
async fn signals() -> &'static str {
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
    tokio::select! {
        _ = interrupt => "SIGINT",
        () = terminate => "SIGTERM",
    }
}

/// Structured logs to stderr; `RUST_LOG` filters them (default `info`).
fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

/// Parses `--max-message-bytes`: a byte count the gossip protocol and the
/// transport both take.
pub(crate) fn parse_message_bytes(text: &str) -> Result<usize, String> {
    let bytes: usize = text
        .parse()
        .map_err(|_| format!("{text:?} is not a byte count"))?;
    let (min, max) = (
        gossip::MIN_MAX_MESSAGE_BYTES,
        transport_quic::DEFAULT_MAX_FRAME_BYTES,
    );
    if !(min..=max).contains(&bytes) {
        return Err(format!("must lie between {min} and {max}"));
    }
    Ok(bytes)
}

fn parse_pull_depth(text: &str) -> Result<usize, String> {
    let depth: usize = text
        .parse()
        .map_err(|_| format!("{text:?} is not a count"))?;
    if depth > gossip::MAX_PULL_DEPTH {
        return Err(format!("must lie between 0 and {}", gossip::MAX_PULL_DEPTH));
    }
    Ok(depth)
}

/// Parses `--peer [ID=]ADDR` of `node`.
fn parse_peer(text: &str) -> Result<Peer, String> {
    let (id, address) = match text.split_once('=') {
        Some((id, address)) => {
            let id = id
                .trim()
                .parse::<u32>()
                .map_err(|_| format!("{id:?} is not a node id"))?;
            (Some(NodeId::new(u64::from(id))), address)
        }
        None => (None, text),
    };
    let address = address.trim();
    if address
        .rsplit_once(':')
        .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
    {
        return Err(format!("{address:?} is not HOST:PORT"));
    }
    Ok(Peer {
        id,
        address: address.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Flags {
        #[command(flatten)]
        node: NodeArgs,
    }

    fn parse(args: &[&str]) -> NodeConfig {
        let base = [
            "sim-cli",
            "--id",
            "3",
            "--listen",
            "127.0.0.1:7000",
            "--certs",
            "c",
        ];
        Flags::try_parse_from(base.iter().chain(args))
            .unwrap()
            .node
            .config()
    }

    #[test]
    fn the_flags_default_to_the_librarys_defaults() {
        let listen = "127.0.0.1:7000".parse().unwrap();
        assert_eq!(parse(&[]), NodeConfig::new(NodeId::new(3), listen, "c"));
    }

    #[test]
    fn peers_come_with_or_without_their_id() {
        let config = parse(&["--peer", "1=10.0.0.1:7000", "--peer", "host-b:7001"]);
        assert_eq!(
            config.peers,
            [
                Peer {
                    id: Some(NodeId::new(1)),
                    address: "10.0.0.1:7000".into()
                },
                Peer {
                    id: None,
                    address: "host-b:7001".into()
                }
            ]
        );
        assert!(parse_peer("1=no-port").is_err());
        assert!(parse_peer("x=h:1").is_err());
    }
}
