//! `sim-cli converged`: wait until every given node holds the same map.

use std::process::ExitCode;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;
use sim::client::{Client, Credentials, Request, Response, Target};

use crate::cli::client::NodesArgs;
use crate::cli::output;

/// `sim-cli converged`.
#[derive(Debug, Args)]
pub(crate) struct ConvergedArgs {
    #[command(flatten)]
    pub(crate) nodes: NodesArgs,
    /// Give up after this many ms (exit status 1).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) timeout_ms: u64,
}

/// Runs `sim-cli converged`: exit status 0 when the nodes converged, 1 when
/// they did not within `--timeout-ms`.
///
/// # Errors
/// As [`poll`].
pub(crate) fn run(args: &ConvergedArgs) -> anyhow::Result<ExitCode> {
    let report = poll(args)?;
    output::emit(&output::cluster::converged(&report, args.nodes.json));
    Ok(if report.converged {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// One node's state as `converged` saw it last.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct NodeView {
    /// The address asked.
    pub(crate) node: String,
    /// Its member id, once it answered.
    pub(crate) id: Option<u64>,
    /// Its live keys.
    pub(crate) keys: u64,
    /// Its content hash.
    pub(crate) content_hash: Option<u64>,
    /// Why it could not be asked, if it could not.
    pub(crate) error: Option<String>,
}

/// What `converged` found.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct ConvergedReport {
    /// Whether every node held the same map.
    pub(crate) converged: bool,
    /// Milliseconds from the start until they did, or until giving up.
    pub(crate) elapsed_ms: f64,
    /// The nodes, as last seen.
    pub(crate) nodes: Vec<NodeView>,
}

/// Polls every node's status until all hold the same map (same content
/// hash and version vector) or the timeout passes. Unreachable nodes are
/// retried until then.
///
/// # Errors
/// Only unusable credentials; unreachable nodes are reported, not errors.
fn poll(args: &ConvergedArgs) -> anyhow::Result<ConvergedReport> {
    let start = Instant::now();
    let timeout = Duration::from_millis(args.timeout_ms);
    let deadline = start + timeout;
    let credentials = Arc::new(Credentials::load_as(
        &args.nodes.certs,
        args.nodes.client.as_deref(),
    )?);
    let mut connections: Vec<Option<Client>> = args.nodes.nodes.iter().map(|_| None).collect();
    let mut views: Vec<NodeView> = args
        .nodes
        .nodes
        .iter()
        .map(|node| NodeView {
            node: node.clone(),
            id: None,
            keys: 0,
            content_hash: None,
            error: None,
        })
        .collect();
    loop {
        let mut digests = Vec::new();
        for (i, node) in args.nodes.nodes.iter().enumerate() {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(100));
            if connections[i].is_none() {
                match Target::resolve(node, None, None)
                    .and_then(|t| Client::connect(t, &credentials, left.min(timeout)))
                {
                    Ok(conn) => connections[i] = Some(conn),
                    Err(err) => views[i].error = Some(format!("{:#}", anyhow::Error::from(err))),
                }
            }
            let Some(conn) = &connections[i] else {
                continue;
            };
            match conn.call(&Request::Status) {
                Ok(Response::Status(status)) => {
                    views[i].id = Some(status.id.get());
                    views[i].keys = status.keys;
                    views[i].content_hash = Some(status.content_hash);
                    views[i].error = None;
                    digests.push((status.content_hash, status.vector_hash));
                }
                Ok(other) => views[i].error = Some(format!("unexpected answer {other:?}")),
                Err(err) => {
                    views[i].error = Some(format!("{:#}", anyhow::Error::from(err)));
                    connections[i] = None;
                }
            }
        }
        let all = digests.len() == args.nodes.nodes.len();
        if all && digests.windows(2).all(|w| w[0] == w[1]) {
            return Ok(finish(true, start, views, connections));
        }
        if Instant::now() >= deadline {
            return Ok(finish(false, start, views, connections));
        }
        thread::sleep(Duration::from_millis(10));
    }
}

fn finish(
    converged: bool,
    start: Instant,
    nodes: Vec<NodeView>,
    connections: Vec<Option<Client>>,
) -> ConvergedReport {
    let elapsed_ms = start.elapsed().as_secs_f64() * 1e3;
    for conn in connections.into_iter().flatten() {
        conn.close();
    }
    ConvergedReport {
        converged,
        elapsed_ms,
        nodes,
    }
}
