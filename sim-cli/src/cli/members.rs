//! `sim-cli members`: a node's members, with their state and incarnation.

use std::process::ExitCode;

use sim::client::{Request, Response};

use crate::cli::client::{ask, unexpected};
use crate::cli::output;
use crate::cli::status::StatusArgs;

/// Runs `sim-cli members`.
pub(crate) fn run(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let client = &args.client;
    match ask(client, &Request::Status)? {
        Response::Status(status) => {
            output::emit(&output::cluster::members(&status, client.json));
            Ok(ExitCode::SUCCESS)
        }
        other => Err(unexpected(&other)),
    }
}
