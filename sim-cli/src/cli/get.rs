//! `sim-cli get`: read a key on a node.

use std::process::ExitCode;

use clap::Args;
use sim::client::{Request, Response};

use crate::cli::client::{ClientArgs, ask, unexpected};
use crate::cli::output;

/// `sim-cli get` and `sim-cli delete`.
#[derive(Debug, Args)]
pub(crate) struct KeyArgs {
    /// The key.
    pub(crate) key: String,
    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

/// `sim-cli get`.
#[derive(Debug, Args)]
pub(crate) struct GetArgs {
    #[command(flatten)]
    pub(crate) key: KeyArgs,
    /// Print the value's bytes alone, nothing else (for scripts:
    /// `v=$(sim-cli get --raw k)`).
    #[arg(long, conflicts_with = "json")]
    pub(crate) raw: bool,
}

/// Runs `sim-cli get`: exit status 0 when the key has a value, 1 when it is
/// absent (never written or deleted).
pub(crate) fn run(args: &GetArgs) -> anyhow::Result<ExitCode> {
    let (key, client) = (&args.key.key, &args.key.client);
    match ask(
        client,
        &Request::Get {
            key: key.to_owned(),
        },
    )? {
        Response::Entry { entry } => {
            if args.raw {
                if let Some(value) = entry.as_ref().and_then(|e| e.value.as_ref()) {
                    output::emit(value);
                }
            } else {
                output::emit(&output::cluster::entry(key, entry.as_ref(), client.json));
            }
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
