//! `sim-cli`: simulate the gossip-replicated store, run its nodes, query them.
//!
//! Exit status: 0 when a simulation converged and verified, 1 when it did not
//! converge within its round budget or failed verification, 2 for usage or
//! internal errors. The other commands follow the same rule: `get` exits 1
//! when the key is absent, `converged` when the nodes did not converge in
//! time; `node` exits 0 after a clean shutdown on SIGINT or SIGTERM; every
//! error (bad flags, certificates, an unreachable node, a refused request)
//! exits 2 with one line on stderr.

#![forbid(unsafe_code)]

mod bench;
mod certs;
mod cli;
mod output;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::{BenchCommand, Cli, ClientArgs, Command, FuzzArgs, SimulateArgs, SweepArgs};
use sim::client::proto::{self, Request, Response};
use sim::client::{Client, Credentials, Target};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Simulate(args) => simulate(&args),
        Command::Sweep(args) => sweep(&args),
        Command::Fuzz(args) => fuzz(&args),
        Command::Certs(args) => certs::run(&args).map(|report| {
            output::emit(&if args.json {
                output::json(&report)
            } else {
                output::certs_report(&report)
            });
            ExitCode::SUCCESS
        }),
        Command::Node(args) => {
            init_logs();
            sim::node::run(args.config(), signals())
                .map(|()| ExitCode::SUCCESS)
                .map_err(anyhow::Error::from)
        }
        Command::Put(args) => {
            let request = Request::Put {
                key: args.key.clone(),
                value: args.value,
            };
            write(&args.client, "put", &args.key, &request)
        }
        Command::Delete(args) => {
            let request = Request::Delete {
                key: args.key.clone(),
            };
            write(&args.client, "delete", &args.key, &request)
        }
        Command::Get(args) => get(&args.client, &args.key),
        Command::Status(args) => status(&args.client),
        Command::Members(args) => members(&args.client),
        Command::Converged(args) => bench::converged(&args).map(|report| {
            output::emit(&output::converged(&report, args.nodes.json));
            if report.converged {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }),
        Command::Bench(BenchCommand::CatchUp(args)) => bench::catch_up(&args).map(|report| {
            output::emit(&output::catch_up(&report, args.json));
            ExitCode::SUCCESS
        }),
        Command::Bench(BenchCommand::Spread(args)) => bench::spread(&args).map(|report| {
            output::emit(&output::spread(&report, args.nodes.json));
            ExitCode::SUCCESS
        }),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            output::error(&format!("{err:#}"));
            ExitCode::from(2)
        }
    }
}

fn simulate(args: &SimulateArgs) -> anyhow::Result<ExitCode> {
    let scenario = args.scenario();
    scenario.validate()?;
    let progress = progress_bar(scenario.rounds, args.json);
    let report = sim::simulate(&scenario, |done, _| progress.set_position(done))?;
    progress.finish_and_clear();
    if let Some(path) = &args.plot {
        let svg = output::curve_chart(&report).to_svg();
        std::fs::write(path, svg)
            .map_err(|e| anyhow::anyhow!("cannot write plot {}: {e}", path.display()))?;
    }
    if args.json {
        output::emit(&output::json(&report));
    } else {
        output::emit(&output::simulate_report(&report));
    }
    Ok(if report.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn sweep(args: &SweepArgs) -> anyhow::Result<ExitCode> {
    let spec = args.spec();
    let runs = (spec.nodes.len() * spec.fanouts.len()) as u64 * spec.seeds;
    let progress = progress_bar(runs, args.json);
    let report = sim::sweep(&spec, || progress.inc(1))?;
    progress.finish_and_clear();
    if let Some(path) = &args.plot {
        let svg = output::sweep_chart(&report).to_svg();
        std::fs::write(path, svg)
            .map_err(|e| anyhow::anyhow!("cannot write plot {}: {e}", path.display()))?;
    }
    if args.json {
        output::emit(&output::json(&report));
    } else {
        output::emit(&output::sweep_table(&report));
    }
    let failed = report.points.iter().any(|p| p.failed > 0);
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn fuzz(args: &FuzzArgs) -> anyhow::Result<ExitCode> {
    let spec = args.spec();
    let progress = progress_bar(spec.runs, args.json);
    let report = sim::fuzz(&spec, || progress.inc(1))?;
    progress.finish_and_clear();
    output::emit(&if args.json {
        output::json(&report)
    } else {
        output::fuzz_report(&report)
    });
    Ok(if report.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// A progress bar on stderr, hidden for JSON output and when stderr is not a
/// terminal.
fn progress_bar(len: u64, json: bool) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {pos}/{len} {elapsed}") {
        bar.set_style(style);
    }
    bar
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

/// One request to the node named by `args`, on a connection of its own.
fn call(args: &ClientArgs, request: &Request) -> anyhow::Result<Response> {
    let target = Target::resolve(&args.node, args.node_id, args.server_name.as_deref())?;
    let credentials = Credentials::load(&args.certs)?;
    let client = Client::connect(target, &credentials, args.timeout())?;
    let response = client.call(request);
    client.close();
    Ok(response?)
}

/// A node's answer to a request, or the error it sent back.
fn ask(args: &ClientArgs, request: &Request) -> anyhow::Result<Response> {
    match call(args, request)? {
        Response::Error(err) => Err(anyhow::anyhow!("the node refused the request: {err}")),
        response => Ok(response),
    }
}

/// How often a write refused as `NotJoined` is tried again.
const RETRY_NOT_JOINED: std::time::Duration = std::time::Duration::from_millis(100);

fn unexpected(response: &Response) -> anyhow::Error {
    anyhow::anyhow!("the node sent an unexpected answer: {response:?}")
}

/// A write, retried every 100 ms while the node has not joined its cluster
/// yet (a node just started takes writes once a peer answers it), until
/// `--timeout-ms` has passed.
fn write(args: &ClientArgs, op: &str, key: &str, request: &Request) -> anyhow::Result<ExitCode> {
    let deadline = std::time::Instant::now() + args.timeout();
    let mut answer = call(args, request)?;
    while matches!(answer, Response::Error(proto::ProtoError::NotJoined))
        && std::time::Instant::now() + RETRY_NOT_JOINED < deadline
    {
        std::thread::sleep(RETRY_NOT_JOINED);
        answer = call(args, request)?;
    }
    let answer = match answer {
        Response::Error(err) => return Err(anyhow::anyhow!("the node refused the request: {err}")),
        answer => answer,
    };
    match answer {
        Response::Written { stamp } => {
            output::emit(&output::written(op, key, &stamp, args.json));
            Ok(ExitCode::SUCCESS)
        }
        other => Err(unexpected(&other)),
    }
}

/// Exit status 0 when the key has a value, 1 when it is absent (never
/// written or deleted).
fn get(args: &ClientArgs, key: &str) -> anyhow::Result<ExitCode> {
    match ask(
        args,
        &Request::Get {
            key: key.to_owned(),
        },
    )? {
        Response::Entry { entry } => {
            output::emit(&output::entry(key, entry.as_ref(), args.json));
            let found = entry.is_some_and(|e| e.value.is_some());
            Ok(if found {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        other => Err(unexpected(&other)),
    }
}

fn members(args: &ClientArgs) -> anyhow::Result<ExitCode> {
    match ask(args, &Request::Status)? {
        Response::Status(status) => {
            output::emit(&output::members(&status, args.json));
            Ok(ExitCode::SUCCESS)
        }
        other => Err(unexpected(&other)),
    }
}

fn status(args: &ClientArgs) -> anyhow::Result<ExitCode> {
    match ask(args, &Request::Status)? {
        Response::Status(status) => {
            output::emit(&if args.json {
                output::status_json(&status)
            } else {
                output::status_text(&status)
            });
            Ok(ExitCode::SUCCESS)
        }
        other => Err(unexpected(&other)),
    }
}
