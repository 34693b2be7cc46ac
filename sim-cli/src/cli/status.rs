//! `sim-cli status`: a node's members, keys, version vector and counters.

use std::process::ExitCode;

use clap::Args;
use sim::client::{Request, Response};

use crate::cli::client::{ClientArgs, ask, unexpected};
use crate::cli::output;

/// `sim-cli status`.
#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

/// Runs `sim-cli status`.
pub(crate) fn run(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let client = &args.client;
    match ask(client, &Request::Status)? {
        Response::Status(status) => {
            output::emit(&if client.json {
                output::cluster::status_json(&status)
            } else {
                output::cluster::status_text(&status)
            });
            Ok(ExitCode::SUCCESS)
        }
        other => Err(unexpected(&other)),
    }
}
