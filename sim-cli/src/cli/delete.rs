//! `sim-cli delete`: delete a key on a node (write a tombstone).

use std::process::ExitCode;

use sim::client::Request;

use crate::cli::get::KeyArgs;
use crate::cli::put::write;

/// Runs `sim-cli delete`.
///
/// # Errors
/// As [`write()`].
pub(crate) fn run(args: &KeyArgs) -> anyhow::Result<ExitCode> {
    let request = Request::Delete {
        key: args.key.clone(),
    };
    write(&args.client, "delete", &args.key, &request)
}
