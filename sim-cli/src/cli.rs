//! The command line: flags, their parsing and their checks.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use lww_crdt::NodeId;
use sim::node::{NodeConfig, Peer};
use sim::{CrashMode, FuzzSpec, Scenario, SweepSpec, WritePattern};
use transport_mem::Timing;

/// Simulate, run and query a gossip-replicated key-value store.
#[derive(Debug, Parser)]
#[command(name = "sim-cli", version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run one simulated cluster under a workload and faults, and verify it.
    Simulate(SimulateArgs),
    /// Measure rounds to spread one update over cluster sizes, fan-outs and
    /// seeds, beside the push-pull theory.
    Sweep(SweepArgs),
    /// Run random small clusters under random fault mixes; each must
    /// converge and verify once its faults stop (exit status 1 if any does
    /// not, with the command that replays it).
    Fuzz(FuzzArgs),
    /// Make a cluster CA, node certificates and the client certificate.
    Certs(CertsArgs),
    /// Run one node of a real cluster over QUIC until SIGINT or SIGTERM.
    Node(NodeArgs),
    /// Write a value on a node.
    Put(PutArgs),
    /// Read a key on a node (exit status 1 if it is absent).
    Get(KeyArgs),
    /// Delete a key on a node.
    Delete(KeyArgs),
    /// Show a node's members, keys, version vector and counters.
    Status(StatusArgs),
    /// List a node's members: id, address, state, incarnation, failures and
    /// when each was last heard from.
    Members(StatusArgs),
    /// Wait until every given node holds the same map (exit status 1 if
    /// they do not within --timeout-ms).
    Converged(ConvergedArgs),
    /// Performance measurements (not tests).
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// `sim-cli certs`.
#[derive(Debug, Args)]
pub(crate) struct CertsArgs {
    /// Directory to write into (created if missing). Existing files are
    /// never replaced: if any would be, nothing is written.
    #[arg(long, value_name = "DIR")]
    pub(crate) out: PathBuf,
    /// Node ids to issue certificates for, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "ID,...")]
    pub(crate) nodes: Vec<u64>,
    /// A node and the IP addresses or DNS names its certificate carries
    /// besides node-ID.gossip-kv, e.g. --node 1=10.0.0.1,host-a.
    /// Repeatable.
    #[arg(long = "node", alias = "node-names", value_name = "ID=NAME,...", value_parser = parse_node_names)]
    pub(crate) node: Vec<NodeNames>,
    /// An IP address or DNS name every node certificate carries (e.g.
    /// 127.0.0.1 for a cluster on one machine). Repeatable.
    #[arg(long = "name", visible_alias = "ip", value_name = "NAME")]
    pub(crate) names: Vec<String>,
    /// Issue the node certificates with the CA already in --out (ca.pem
    /// and ca.key) instead of making a new cluster; no client certificate.
    #[arg(long)]
    pub(crate) add: bool,
    /// Print one JSON document instead of the list of files.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `--node ID=NAME,...` of `certs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NodeNames {
    pub(crate) id: u64,
    pub(crate) names: Vec<String>,
}

fn parse_node_names(text: &str) -> Result<NodeNames, String> {
    let (id, names) = text.split_once('=').unwrap_or((text, ""));
    let id = id
        .trim()
        .parse::<u64>()
        .map_err(|_| format!("expected ID=NAME,..., got {text:?}"))?;
    let names = names
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect();
    Ok(NodeNames { id, names })
}

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
    /// An exchange unanswered this long counts against the peer (ms).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) exchange_timeout_ms: u64,
    /// The largest gossip message in bytes (at most the transport's 4 MiB
    /// frame cap).
    #[arg(long, default_value_t = 1 << 20, value_parser = parse_message_bytes)]
    pub(crate) max_message_bytes: usize,
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
            exchange_timeout_ms: self.exchange_timeout_ms,
            max_message_bytes: self.max_message_bytes,
            pull_depth: self.pull_depth,
            incarnation: self.incarnation,
            drain_ms: self.drain_ms,
        }
    }
}

fn parse_message_bytes(text: &str) -> Result<usize, String> {
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

/// How a client command reaches its node.
#[derive(Debug, Args)]
pub(crate) struct ClientArgs {
    /// The node to ask: HOST:PORT (UDP).
    #[arg(long, value_name = "ADDR")]
    pub(crate) node: String,
    /// Directory holding ca.pem, client.pem and client.key.
    #[arg(long, value_name = "DIR")]
    pub(crate) certs: PathBuf,
    /// The node's id: authenticate it as node-ID.gossip-kv.
    #[arg(long, value_name = "ID")]
    pub(crate) node_id: Option<u64>,
    /// The name the node's certificate must carry (default: from
    /// --node-id, else the host of --node).
    #[arg(long, value_name = "NAME")]
    pub(crate) server_name: Option<String>,
    /// Give up after this many ms.
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) timeout_ms: u64,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

impl ClientArgs {
    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// `sim-cli put`.
#[derive(Debug, Args)]
pub(crate) struct PutArgs {
    /// The key.
    pub(crate) key: String,
    /// The value.
    pub(crate) value: String,
    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

/// `sim-cli get` and `sim-cli delete`.
#[derive(Debug, Args)]
pub(crate) struct KeyArgs {
    /// The key.
    pub(crate) key: String,
    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

/// `sim-cli status`.
#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

/// Nodes to reach at once, for `converged` and `bench spread`.
#[derive(Debug, Args)]
pub(crate) struct NodesArgs {
    /// A node: HOST:PORT, authenticated by the host (an IP or DNS name its
    /// certificate carries). Repeatable.
    #[arg(long = "node", value_name = "ADDR", required = true)]
    pub(crate) nodes: Vec<String>,
    /// Directory holding ca.pem, client.pem and client.key.
    #[arg(long, value_name = "DIR")]
    pub(crate) certs: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `sim-cli converged`.
#[derive(Debug, Args)]
pub(crate) struct ConvergedArgs {
    #[command(flatten)]
    pub(crate) nodes: NodesArgs,
    /// Give up after this many ms (exit status 1).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) timeout_ms: u64,
}

/// `sim-cli bench ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// A fresh node catching up a large map from one peer over loopback
    /// QUIC, against raw quinn moving the same bytes on one stream.
    CatchUp(CatchUpArgs),
    /// How long writes take to be visible on every given node (run where
    /// every node is reachable).
    Spread(SpreadArgs),
}

/// `sim-cli bench catch-up`.
#[derive(Debug, Args)]
pub(crate) struct CatchUpArgs {
    /// Keys the seeded node holds.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) keys: u64,
    /// Bytes per key (at least 8).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(8..=4096))]
    pub(crate) key_bytes: u64,
    /// Bytes per value.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(0..=65_536))]
    pub(crate) value_bytes: u64,
    /// Gossip interval of both nodes in ms.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) interval_ms: u64,
    /// The largest gossip message in bytes.
    #[arg(long, default_value_t = 1 << 20, value_parser = parse_message_bytes)]
    pub(crate) max_message_bytes: usize,
    /// Runs of each measurement (medians count).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=20))]
    pub(crate) runs: u64,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `sim-cli bench spread`.
#[derive(Debug, Args)]
pub(crate) struct SpreadArgs {
    #[command(flatten)]
    pub(crate) nodes: NodesArgs,
    /// Writes to time, each on the next node in turn.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub(crate) writes: u64,
    /// Give up on one write after this many ms.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) timeout_ms: u64,
}

/// `sim-cli sweep`.
#[derive(Debug, Args)]
pub(crate) struct SweepArgs {
    /// Cluster sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [10, 100, 1_000])]
    pub(crate) nodes: Vec<usize>,
    /// Fan-outs, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 3])]
    pub(crate) fanout: Vec<usize>,
    /// Runs per (size, fan-out), with seeds 0..SEEDS.
    #[arg(long, default_value_t = 20)]
    pub(crate) seeds: u64,
    /// The most rounds one run may take.
    #[arg(long, default_value_t = 200)]
    pub(crate) rounds: u64,
    #[command(flatten)]
    pub(crate) clock: ClockArgs,
    /// Worker threads (default: the machine's cores); results do not depend
    /// on it.
    #[arg(long)]
    pub(crate) threads: Option<usize>,
    /// Print one JSON document instead of the table.
    #[arg(long)]
    pub(crate) json: bool,
    /// Write rounds against cluster size as an SVG plot.
    #[arg(long, value_name = "FILE.svg")]
    pub(crate) plot: Option<PathBuf>,
}

impl SweepArgs {
    pub(crate) fn spec(&self) -> SweepSpec {
        let threads = self.threads.unwrap_or_else(available_threads);
        SweepSpec {
            nodes: self.nodes.clone(),
            fanouts: self.fanout.clone(),
            seeds: self.seeds,
            base: Scenario {
                rounds: self.rounds,
                interval_ms: self.clock.interval_ms,
                timing: self.clock.timing(),
                ..Scenario::default()
            },
            threads,
        }
    }
}

/// `sim-cli fuzz`.
#[derive(Debug, Args)]
pub(crate) struct FuzzArgs {
    /// Scenarios to draw and run.
    #[arg(long, default_value_t = 1_000)]
    pub(crate) runs: u64,
    /// Seed of the draws: the same seed draws the same scenarios.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Worker threads (default: the machine's cores); results do not depend
    /// on it.
    #[arg(long)]
    pub(crate) threads: Option<usize>,
    /// Print one JSON document instead of the summary.
    #[arg(long)]
    pub(crate) json: bool,
}

impl FuzzArgs {
    pub(crate) fn spec(&self) -> FuzzSpec {
        FuzzSpec {
            runs: self.runs,
            seed: self.seed,
            threads: self.threads.unwrap_or_else(available_threads),
        }
    }
}

fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// How virtual time runs: shared by `simulate` and `sweep`.
#[derive(Debug, Args)]
pub(crate) struct ClockArgs {
    /// Gossip interval in ms of virtual time.
    #[arg(long, default_value_t = 1_000)]
    pub(crate) interval_ms: u64,
    /// When nodes tick within an interval.
    #[arg(long, value_enum, default_value_t = TimingArg::Lockstep)]
    pub(crate) timing: TimingArg,
    /// One-way message latency in ms under --timing staggered.
    #[arg(long, default_value_t = 50)]
    pub(crate) latency_ms: u64,
}

impl ClockArgs {
    pub(crate) fn timing(&self) -> Timing {
        match self.timing {
            TimingArg::Lockstep => Timing::Lockstep,
            TimingArg::Staggered => Timing::Staggered {
                latency_ms: self.latency_ms,
            },
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum PatternArg {
    /// Every write before the first round.
    Burst,
    /// Writes spread over --write-rounds rounds.
    Steady,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum TimingArg {
    /// Every node ticks at the start of each round; messages arrive at once.
    Lockstep,
    /// Nodes tick at random phases; messages take --latency-ms.
    Staggered,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum CrashModeArg {
    /// A crashed node loses its state and restarts empty.
    Wipe,
    /// A crashed node keeps its state.
    Keep,
}

/// `sim-cli simulate`.
#[derive(Debug, Args)]
pub(crate) struct SimulateArgs {
    /// Nodes in the cluster.
    #[arg(long, default_value_t = 100)]
    pub(crate) nodes: usize,
    /// Peers each node contacts per round.
    #[arg(long, default_value_t = 3)]
    pub(crate) fanout: usize,
    /// Writes the workload issues, each on a random node.
    #[arg(long, default_value_t = 1_000)]
    pub(crate) writes: usize,
    /// Distinct keys the writes choose from.
    #[arg(long, default_value_t = 100)]
    pub(crate) keys: usize,
    /// Fraction of writes that are deletes.
    #[arg(long, default_value_t = 0.1)]
    pub(crate) deletes: f64,
    /// How writes are spread over time.
    #[arg(long, value_enum, default_value_t = PatternArg::Burst)]
    pub(crate) write_pattern: PatternArg,
    /// Rounds a steady workload spans.
    #[arg(long, default_value_t = 10)]
    pub(crate) write_rounds: u64,
    /// The most rounds to run before giving up (exit status 1).
    #[arg(long, default_value_t = 200)]
    pub(crate) rounds: u64,
    /// Seed of every random choice: the same seed gives the same run.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Size limit of one gossip message in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub(crate) max_message_bytes: usize,
    #[command(flatten)]
    pub(crate) clock: ClockArgs,
    /// Seed peers each node starts with (default: all); the rest are learned.
    #[arg(long)]
    pub(crate) seed_peers: Option<usize>,
    /// Rounds, from the first, during which unavailability, crashes and
    /// message faults are active.
    #[arg(long, default_value_t = 20)]
    pub(crate) fault_rounds: u64,
    /// Fraction of nodes unavailable at a time (a new random set every
    /// --churn-rounds).
    #[arg(long, default_value_t = 0.0)]
    pub(crate) unavailable: f64,
    /// Rounds between changes of the unavailable set.
    #[arg(long, default_value_t = 5)]
    pub(crate) churn_rounds: u64,
    /// Probability per node and round of a crash.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) crash_rate: f64,
    /// What a crash does to the node's state.
    #[arg(long, value_enum, default_value_t = CrashModeArg::Wipe)]
    pub(crate) crash_mode: CrashModeArg,
    /// Rounds a crashed node stays down.
    #[arg(long, default_value_t = 3)]
    pub(crate) crash_downtime: u64,
    /// Split the cluster in two halves from round START until round END.
    #[arg(long, value_name = "START..END", value_parser = parse_range)]
    pub(crate) partition: Option<(u64, u64)>,
    /// Probability that a message is lost.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) loss: f64,
    /// Probability that a message is delivered twice.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) duplicate: f64,
    /// Probability that a message is delayed and overtaken.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) reorder: f64,
    /// Spread of node clock skews in ms (each node off by up to half).
    #[arg(long, default_value_t = 0)]
    pub(crate) clock_skew_ms: u64,
    /// Largest accepted offset of a remote timestamp, in ms.
    #[arg(long, default_value_t = lww_crdt::DEFAULT_MAX_OFFSET_MS)]
    pub(crate) max_clock_offset_ms: u64,
    /// Run one driver thread per node and concurrent client threads on
    /// wall-clock time (rounds last --interval-ms; try --interval-ms 20).
    #[arg(long)]
    pub(crate) threads: bool,
    /// Client threads writing and reading concurrently under --threads.
    #[arg(long, default_value_t = 8)]
    pub(crate) client_threads: usize,
    /// Print one JSON document instead of the human report.
    #[arg(long)]
    pub(crate) json: bool,
    /// Write the per-round convergence curve as an SVG plot.
    #[arg(long, value_name = "FILE.svg")]
    pub(crate) plot: Option<PathBuf>,
}

impl SimulateArgs {
    pub(crate) fn scenario(&self) -> Scenario {
        Scenario {
            nodes: self.nodes,
            fanout: self.fanout,
            writes: self.writes,
            keys: self.keys,
            deletes: self.deletes,
            write_pattern: match self.write_pattern {
                PatternArg::Burst => WritePattern::Burst,
                PatternArg::Steady => WritePattern::Steady,
            },
            write_rounds: self.write_rounds,
            rounds: self.rounds,
            seed: self.seed,
            max_message_bytes: self.max_message_bytes,
            interval_ms: self.clock.interval_ms,
            timing: self.clock.timing(),
            seed_peers: self.seed_peers,
            fault_rounds: self.fault_rounds,
            unavailable: self.unavailable,
            churn_rounds: self.churn_rounds,
            crash_rate: self.crash_rate,
            crash_mode: match self.crash_mode {
                CrashModeArg::Wipe => CrashMode::Wipe,
                CrashModeArg::Keep => CrashMode::Keep,
            },
            crash_downtime: self.crash_downtime,
            partition: self.partition,
            loss: self.loss,
            duplicate: self.duplicate,
            reorder: self.reorder,
            clock_skew_ms: self.clock_skew_ms,
            max_clock_offset_ms: self.max_clock_offset_ms,
            threads: self.threads,
            client_threads: self.client_threads,
        }
    }
}

/// Parses `START..END` into a pair of rounds.
fn parse_range(text: &str) -> Result<(u64, u64), String> {
    let (start, end) = text
        .split_once("..")
        .ok_or_else(|| format!("expected START..END, got {text:?}"))?;
    let parse = |part: &str| {
        part.trim()
            .parse::<u64>()
            .map_err(|_| format!("{part:?} is not a round number"))
    };
    Ok((parse(start)?, parse(end)?))
}
