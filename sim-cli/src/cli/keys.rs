//! `sim-cli keys`: list a node's live keys under a prefix, in key order.

use std::process::ExitCode;

use clap::Args;
use sim::client::proto::MAX_LIST;

use crate::cli::client::{ClientArgs, connect};
use crate::cli::output;

/// `sim-cli keys`.
#[derive(Debug, Args)]
pub(crate) struct KeysArgs {
    /// Only keys starting with this.
    #[arg(long, default_value = "")]
    pub(crate) prefix: String,
    /// Only keys after this one.
    #[arg(long, value_name = "KEY")]
    pub(crate) after: Option<String>,
    /// At most this many keys (default: all of them, fetched a page at a
    /// time).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) limit: Option<u64>,
    /// Print each key's value beside it (`key = value`).
    #[arg(long)]
    pub(crate) values: bool,
    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

/// Runs `sim-cli keys`: text prints one key a line (control characters
/// escaped), `--json` one document with keys and values.
pub(crate) fn run(args: &KeysArgs) -> anyhow::Result<ExitCode> {
    let client = connect(&args.client)?;
    let mut left = args.limit.unwrap_or(u64::MAX);
    let mut after = args.after.clone();
    let mut listed = Vec::new();
    while left > 0 {
        let limit = u32::try_from(left.min(u64::from(MAX_LIST))).unwrap_or(MAX_LIST);
        let page = client.list(&args.prefix, after.as_deref(), limit)?;
        left -= page.keys.len() as u64;
        if args.client.json {
            listed.extend(page.keys);
        } else {
            output::emit(&output::cluster::keys(&page.keys, args.values));
        }
        match page.next_after {
            Some(last) => after = Some(last),
            None => break,
        }
    }
    client.close();
    if args.client.json {
        output::emit(&output::cluster::keys_json(&listed));
    }
    Ok(ExitCode::SUCCESS)
}
