//! `sim-cli bench members`: how long until every given node lists as many
//! members as are given, each with its address, each node asked by a
//! thread of its own over one connection, so the answer does not wait on
//! the others.
//!
//! Two times per node: when this command saw the full list, and when the
//! node itself says its list last changed (`members_changed_ms` of its
//! status). On a host whose cores the nodes saturate, an answer can reach
//! the poller a second or more after the node learned its last member; the
//! node's own time does not wait on that, but it is read from the node's
//! clock, so it compares with the start only on one host or with clocks in
//! sync.

use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use clap::Args;
use lww_crdt::{PhysicalClock, SystemClock};
use serde::Serialize;
use sim::client::{Client, Credentials, Target};

use crate::cli::bench::median_of;
use crate::cli::client::NodesArgs;
use crate::cli::output;

/// `sim-cli bench members`.
#[derive(Debug, Args)]
pub(crate) struct MembersArgs {
    #[command(flatten)]
    pub(crate) nodes: NodesArgs,
    /// Give up after this many ms (exit status 1).
    #[arg(long, default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) timeout_ms: u64,
    /// Ask each node this often, in ms: the times are as precise as this.
    /// Asking much more often than nodes gossip takes CPU from the nodes
    /// measured.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub(crate) poll_ms: u64,
    /// Count every time from this moment (ms since the Unix epoch, e.g.
    /// `date +%s%3N` before the first node was launched) instead of from
    /// this command's start, which on a saturated host can come seconds
    /// after the launch.
    #[arg(long, value_name = "UNIX_MS")]
    pub(crate) since_unix_ms: Option<u64>,
}

/// What `bench members` measured.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct MembersReport {
    /// The members every node should list: as many as nodes given.
    pub(crate) expected: usize,
    /// Per node, in the order given: ms from the start (or
    /// `--since-unix-ms`) until it was seen listing
    /// them all, or `None` if it did not in time.
    pub(crate) known_ms: Vec<Option<f64>>,
    /// Whether every node did.
    pub(crate) all_known: bool,
    /// The median over the nodes that did.
    pub(crate) median_ms: f64,
    /// The slowest node that did.
    pub(crate) max_ms: f64,
    /// Per node: when, by its own clock, its list last changed before it
    /// was seen complete, in ms from the start (or `--since-unix-ms`).
    pub(crate) node_known_ms: Vec<Option<f64>>,
    /// The median of `node_known_ms` over the nodes that told it.
    pub(crate) node_median_ms: f64,
    /// The largest of `node_known_ms`.
    pub(crate) node_max_ms: f64,
}

/// When one node was seen listing every member: ms since the start, and
/// its own time for it in ms since the Unix epoch, if it told one.
type Known = Option<(f64, Option<u64>)>;

/// Runs `sim-cli bench members`: exit status 1 if some node did not list
/// every member in time.
///
/// # Errors
/// Unusable credentials or addresses.
pub(crate) fn run(args: &MembersArgs) -> anyhow::Result<ExitCode> {
    let report = measure(args)?;
    output::emit(&output::bench::members(&report, args.nodes.json));
    Ok(if report.all_known {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn measure(args: &MembersArgs) -> anyhow::Result<MembersReport> {
    let start = Instant::now();
    // Polls are timed on the monotonic clock from `start`; `--since-unix-ms`
    // moves that origin back by however long before `start` it lies.
    let now_ms = SystemClock.now_ms();
    let since_unix_ms = args.since_unix_ms.unwrap_or(now_ms);
    let origin_ms = now_ms.saturating_sub(since_unix_ms) as f64;
    let timeout = Duration::from_millis(args.timeout_ms);
    let every = Duration::from_millis(args.poll_ms);
    let credentials = Credentials::load_as(&args.nodes.certs, args.nodes.client.as_deref())?;
    let targets = args
        .nodes
        .nodes
        .iter()
        .map(|node| Target::resolve(node, None, None))
        .collect::<Result<Vec<_>, _>>()?;
    let expected = targets.len();
    let known: Vec<Known> = thread::scope(|scope| {
        let pollers: Vec<_> = targets
            .into_iter()
            .map(|target| {
                let credentials = &credentials;
                scope.spawn(move || poll(target, credentials, expected, start, timeout, every))
            })
            .collect();
        pollers
            .into_iter()
            .map(|poller| poller.join().unwrap_or(None))
            .collect()
    });
    let known_ms: Vec<Option<f64>> = known
        .iter()
        .map(|k| k.map(|(ms, _)| ms + origin_ms))
        .collect();
    let node_known_ms: Vec<Option<f64>> = known
        .iter()
        .map(|k| {
            let at = k.and_then(|(_, at)| at)?;
            Some(at as f64 - since_unix_ms as f64)
        })
        .collect();
    let done: Vec<f64> = known_ms.iter().flatten().copied().collect();
    let told: Vec<f64> = node_known_ms.iter().flatten().copied().collect();
    Ok(MembersReport {
        expected,
        all_known: done.len() == known_ms.len(),
        median_ms: median_of(&done),
        max_ms: done.iter().copied().fold(0.0, f64::max),
        known_ms,
        node_median_ms: median_of(&told),
        node_max_ms: told.iter().copied().fold(0.0, f64::max),
        node_known_ms,
    })
}

/// Whether `status` lists at least `expected` members, each with an
/// address: a member known only from its own first message, address not
/// yet learned, cannot be contacted yet.
fn knows_all(status: &sim::client::Status, expected: usize) -> bool {
    status.members.len() >= expected && status.members.iter().all(|m| !m.address.is_empty())
}

/// Asks one node until it lists `expected` members; the time since `start`
/// when it first did, and the node's own time for when its list last
/// changed.
fn poll(
    target: Target,
    credentials: &Credentials,
    expected: usize,
    start: Instant,
    timeout: Duration,
    every: Duration,
) -> Known {
    let mut client: Option<Client> = None;
    while start.elapsed() < timeout {
        if client.is_none() {
            client = Client::connect(target.clone(), credentials, Duration::from_millis(500)).ok();
        }
        if let Some(conn) = &client {
            match conn.status() {
                Ok(status) if knows_all(&status, expected) => {
                    let ms = start.elapsed().as_secs_f64() * 1e3;
                    if let Some(conn) = client.take() {
                        conn.close();
                    }
                    return Some((ms, status.members_changed_ms));
                }
                Ok(_) => {}
                Err(_) => client = None,
            }
        }
        thread::sleep(every);
    }
    None
}
