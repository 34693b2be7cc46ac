//! `sim-cli bench members`: how long until every given node lists as many
//! members as are given, each node asked by a thread of its own over one
//! connection, so the answer does not wait on the others.

use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use clap::Args;
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
}

/// What `bench members` measured.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct MembersReport {
    /// The members every node should list: as many as nodes given.
    pub(crate) expected: usize,
    /// Per node, in the order given: ms from the start until it listed
    /// them all, or `None` if it did not in time.
    pub(crate) known_ms: Vec<Option<f64>>,
    /// Whether every node did.
    pub(crate) all_known: bool,
    /// The median over the nodes that did.
    pub(crate) median_ms: f64,
    /// The slowest node that did.
    pub(crate) max_ms: f64,
}

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
    let known_ms: Vec<Option<f64>> = thread::scope(|scope| {
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
    let done: Vec<f64> = known_ms.iter().flatten().copied().collect();
    Ok(MembersReport {
        expected,
        all_known: done.len() == known_ms.len(),
        median_ms: median_of(&done),
        max_ms: done.iter().copied().fold(0.0, f64::max),
        known_ms,
    })
}

/// Asks one node until it lists `expected` members; the time since `start`
/// when it first did.
fn poll(
    target: Target,
    credentials: &Credentials,
    expected: usize,
    start: Instant,
    timeout: Duration,
    every: Duration,
) -> Option<f64> {
    let mut client: Option<Client> = None;
    while start.elapsed() < timeout {
        if client.is_none() {
            client = Client::connect(target.clone(), credentials, Duration::from_millis(500)).ok();
        }
        if let Some(conn) = &client {
            match conn.status() {
                Ok(status) if status.members.len() >= expected => {
                    let ms = start.elapsed().as_secs_f64() * 1e3;
                    if let Some(conn) = client.take() {
                        conn.close();
                    }
                    return Some(ms);
                }
                Ok(_) => {}
                Err(_) => client = None,
            }
        }
        thread::sleep(every);
    }
    None
}
