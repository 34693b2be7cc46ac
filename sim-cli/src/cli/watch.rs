//! `sim-cli watch`: follow the changes a node makes under a prefix, its
//! own clients' writes and what gossip brings, one line each.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use sim::client::WatchEvent;

use crate::cli::client::{ClientArgs, connect};
use crate::cli::output;

/// `sim-cli watch`.
#[derive(Debug, Args)]
pub(crate) struct WatchArgs {
    /// Only keys starting with this.
    #[arg(long, default_value = "")]
    pub(crate) prefix: String,
    /// Exit after this many changes (default: follow until interrupted or
    /// the node stops).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) count: Option<u64>,
    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

/// Runs `sim-cli watch`: a line per change as it comes (`--json`: one JSON
/// object a line). Exit status 0 after `--count` changes, 1 if the node
/// ends the watch first (it is shutting down).
pub(crate) fn run(args: &WatchArgs) -> anyhow::Result<ExitCode> {
    let client = connect(&args.client)?;
    let mut watch = client.watch(&args.prefix)?;
    let mut left = args.count.unwrap_or(u64::MAX);
    while left > 0 {
        // QUIC keep-alives notice a node that went away; a quiet one is
        // waited for.
        let Some(event) = watch.next(Duration::MAX)? else {
            output::error("the node ended the watch: it is shutting down");
            // Closing tells the node at once that the end arrived, rather
            // than leaving it to wait for the acknowledgement.
            drop(watch);
            client.close();
            return Ok(ExitCode::from(1));
        };
        if matches!(event, WatchEvent::Changed(_)) {
            left -= 1;
        }
        output::emit(&output::cluster::watch_event(&event, args.client.json));
    }
    drop(watch);
    client.close();
    Ok(ExitCode::SUCCESS)
}
