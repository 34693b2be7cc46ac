//! `sim-cli bench spread`: how long a write takes to be readable on every
//! node of a running cluster.

use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use clap::Args;
use lww_crdt::{PhysicalClock, SystemClock};
use serde::Serialize;
use sim::client::{Client, Credentials, Request, Response, Target};

use crate::cli::bench::median;
use crate::cli::client::NodesArgs;
use crate::cli::output;

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

/// Runs `sim-cli bench spread`.
///
/// # Errors
/// As [`measure`].
pub(crate) fn run(args: &SpreadArgs) -> anyhow::Result<ExitCode> {
    let report = measure(args)?;
    output::emit(&output::bench::spread(&report, args.nodes.json));
    Ok(ExitCode::SUCCESS)
}

/// What `bench spread` measured.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct SpreadReport {
    /// The nodes.
    pub(crate) nodes: Vec<String>,
    /// Milliseconds from each write's acknowledgement until every node
    /// read it, in write order.
    pub(crate) visible_ms: Vec<f64>,
    /// Their median.
    pub(crate) median_ms: f64,
    /// The slowest.
    pub(crate) max_ms: f64,
}

fn connect_all(args: &NodesArgs, timeout: Duration) -> anyhow::Result<Vec<Client>> {
    let credentials = Credentials::load_as(&args.certs, args.client.as_deref())?;
    let mut clients = Vec::with_capacity(args.nodes.len());
    for node in &args.nodes {
        clients.push(Client::connect(
            Target::resolve(node, None, None)?,
            &credentials,
            timeout,
        )?);
    }
    Ok(clients)
}

/// Measures `bench spread`.
///
/// # Errors
/// Unreachable nodes, refused writes, a write not visible everywhere in
/// time.
fn measure(args: &SpreadArgs) -> anyhow::Result<SpreadReport> {
    let timeout = Duration::from_millis(args.timeout_ms);
    let connections = connect_all(&args.nodes, timeout)?;
    let run = SystemClock.now_ms();
    let mut visible_ms = Vec::new();
    for w in 0..args.writes {
        let key = format!("spread-{run}-{w}");
        let value = format!("{w}");
        let writer = &connections[(w as usize) % connections.len()];
        match writer.call(&Request::Put {
            key: key.clone(),
            value: value.clone(),
        })? {
            Response::Written { .. } => {}
            other => anyhow::bail!("write refused: {other:?}"),
        }
        let written = Instant::now();
        let seen: Vec<anyhow::Result<Duration>> = thread::scope(|scope| {
            let polls: Vec<_> = connections
                .iter()
                .map(|conn| {
                    let (key, value) = (&key, &value);
                    scope.spawn(move || {
                        let request = Request::Get { key: key.clone() };
                        loop {
                            if let Response::Entry { entry: Some(entry) } = conn.call(&request)? {
                                if entry.value.as_deref() == Some(value.as_str()) {
                                    return Ok(written.elapsed());
                                }
                            }
                            if written.elapsed() > timeout {
                                anyhow::bail!("write {w} not visible within {timeout:?}");
                            }
                            thread::sleep(Duration::from_millis(2));
                        }
                    })
                })
                .collect();
            polls
                .into_iter()
                .map(|p| {
                    p.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("a poller panicked")))
                })
                .collect()
        });
        let mut slowest = Duration::ZERO;
        for s in seen {
            slowest = slowest.max(s?);
        }
        visible_ms.push(slowest.as_secs_f64() * 1e3);
        // Start the next write at another phase of the gossip interval.
        thread::sleep(Duration::from_millis(37 + 13 * (w % 7)));
    }
    for conn in connections {
        conn.close();
    }
    let mut sorted = visible_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let median_ms = median(&sorted);
    Ok(SpreadReport {
        nodes: args.nodes.nodes.clone(),
        max_ms: sorted.last().copied().unwrap_or_default(),
        visible_ms,
        median_ms,
    })
}
