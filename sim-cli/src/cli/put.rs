//! `sim-cli put`: write a value on a node, waiting for a node that has not
//! joined its cluster yet.

use std::process::ExitCode;

use clap::Args;
use sim::client::{ProtoError, Request, Response};

use crate::cli::client::{ClientArgs, call, unexpected};
use crate::cli::output;

/// `sim-cli put`.
#[derive(Debug, Args)]
pub(crate) struct PutArgs {
    /// The key.
    pub(crate) key: String,
    /// The value; `-` reads it from standard input.
    #[arg(required_unless_present = "value_file", conflicts_with = "value_file")]
    pub(crate) value: Option<String>,
    /// Read the value from this file.
    #[arg(long, value_name = "PATH")]
    pub(crate) value_file: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

impl PutArgs {
    /// The value, from the argument, standard input or the file.
    fn value(&self) -> anyhow::Result<String> {
        use std::io::Read as _;
        let bytes = match (&self.value, &self.value_file) {
            (Some(value), _) if value != "-" => return Ok(value.clone()),
            (Some(_), _) => {
                let mut bytes = Vec::new();
                std::io::stdin().read_to_end(&mut bytes)?;
                bytes
            }
            (None, Some(path)) => std::fs::read(path)
                .map_err(|err| anyhow::anyhow!("--value-file {}: {err}", path.display()))?,
            (None, None) => anyhow::bail!("give a value, - for standard input, or --value-file"),
        };
        String::from_utf8(bytes)
            .map_err(|_| anyhow::anyhow!("values are UTF-8 text; this one is not"))
    }
}

/// Runs `sim-cli put`.
///
/// # Errors
/// As [`write()`].
pub(crate) fn run(args: &PutArgs) -> anyhow::Result<ExitCode> {
    let request = Request::Put {
        key: args.key.clone(),
        value: args.value()?,
    };
    write(&args.client, "put", &args.key, &request)
}

/// How often a write refused as `NotJoined` is tried again.
const RETRY_NOT_JOINED: std::time::Duration = std::time::Duration::from_millis(100);

/// A write, retried every 100 ms while the node has not joined its cluster
/// yet (a node just started takes writes once a peer answers it), until
/// `--timeout-ms` has passed.
pub(crate) fn write(
    args: &ClientArgs,
    op: &str,
    key: &str,
    request: &Request,
) -> anyhow::Result<ExitCode> {
    let deadline = std::time::Instant::now() + args.timeout();
    let mut answer = call(args, request)?;
    while matches!(answer, Response::Error(ProtoError::NotJoined))
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
            output::emit(&output::cluster::written(op, key, &stamp, args.json));
            Ok(ExitCode::SUCCESS)
        }
        other => Err(unexpected(&other)),
    }
}
