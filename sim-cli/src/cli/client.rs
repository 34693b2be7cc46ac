//! How the client commands reach their nodes: [`ClientArgs`] for one node,
//! [`NodesArgs`] for several, and one request on a connection of its own.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use sim::client::{Client, Credentials, Request, Response, Target};

/// How a client command reaches its node.
#[derive(Debug, Args)]
pub(crate) struct ClientArgs {
    /// The node to ask: HOST:PORT (UDP).
    #[arg(long, value_name = "ADDR", env = "GOSSIP_KV_NODE")]
    pub(crate) node: String,
    /// Directory holding ca.pem, client.pem and client.key (or the
    /// --client's files).
    #[arg(long, value_name = "DIR", env = "GOSSIP_KV_CERTS")]
    pub(crate) certs: PathBuf,
    /// Act as client NAME: client-NAME.pem and client-NAME.key in --certs
    /// (default: client.pem and client.key).
    #[arg(long = "client", value_name = "NAME", env = "GOSSIP_KV_CLIENT")]
    pub(crate) client: Option<String>,
    /// The node's id: authenticate it as node-ID.gossip-kv.
    #[arg(long, value_name = "ID")]
    pub(crate) node_id: Option<u64>,
    /// The name the node's certificate must carry (default: from
    /// --node-id, else the host of --node).
    #[arg(long, value_name = "NAME")]
    pub(crate) server_name: Option<String>,
    /// Give up after this many ms.
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) timeout_ms: u64,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

impl ClientArgs {
    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// Nodes to reach at once, for `converged` and `bench spread`.
#[derive(Debug, Args)]
pub(crate) struct NodesArgs {
    /// A node: HOST:PORT, authenticated by the host (an IP or DNS name its
    /// certificate carries). Repeatable.
    #[arg(long = "node", value_name = "ADDR", required = true)]
    pub(crate) nodes: Vec<String>,
    /// Directory holding ca.pem, client.pem and client.key (or the
    /// --client's files).
    #[arg(long, value_name = "DIR")]
    pub(crate) certs: PathBuf,
    /// Act as client NAME: client-NAME.pem and client-NAME.key in --certs
    /// (default: client.pem and client.key).
    #[arg(long = "client", value_name = "NAME", env = "GOSSIP_KV_CLIENT")]
    pub(crate) client: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

/// A connection to the node named by `args`.
pub(crate) fn connect(args: &ClientArgs) -> anyhow::Result<Client> {
    let target = Target::resolve(&args.node, args.node_id, args.server_name.as_deref())?;
    let credentials = Credentials::load_as(&args.certs, args.client.as_deref())?;
    Ok(Client::connect(target, &credentials, args.timeout())?)
}

/// One request to the node named by `args`, on a connection of its own.
pub(crate) fn call(args: &ClientArgs, request: &Request) -> anyhow::Result<Response> {
    let client = connect(args)?;
    let response = client.call(request);
    client.close();
    Ok(response?)
}

/// A node's answer to a request, or the error it sent back.
pub(crate) fn ask(args: &ClientArgs, request: &Request) -> anyhow::Result<Response> {
    match call(args, request)? {
        Response::Error(err) => Err(anyhow::anyhow!("the node refused the request: {err}")),
        response => Ok(response),
    }
}

/// The error for an answer of the wrong kind.
pub(crate) fn unexpected(response: &Response) -> anyhow::Error {
    anyhow::anyhow!("the node sent an unexpected answer: {response:?}")
}
