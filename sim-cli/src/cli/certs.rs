//! `sim-cli certs`: a cluster CA, node certificates and the client
//! certificate, written as a `transport_quic::certs::CertDir`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use lww_crdt::NodeId;
use serde::Serialize;
use transport_quic::certs::{CertDir, ClusterCa, Identity, node_name};

use crate::cli::output;

/// `sim-cli certs`.
#[derive(Debug, Args)]
pub(crate) struct CertsArgs {
    /// Directory to write into (created if missing). Existing files are
    /// never replaced: if any would be, nothing is written.
    #[arg(long, value_name = "DIR")]
    pub(crate) out: PathBuf,
    /// Node ids to issue certificates for, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "ID,...")]
    pub(crate) nodes: Vec<u64>,
    /// A node and the IP addresses or DNS names its certificate carries
    /// besides node-ID.gossip-kv, e.g. --node 1=10.0.0.1,host-a.
    /// Repeatable.
    #[arg(long = "node", alias = "node-names", value_name = "ID=NAME,...", value_parser = parse_node_names)]
    pub(crate) node: Vec<NodeNames>,
    /// An IP address or DNS name every node certificate carries (e.g.
    /// 127.0.0.1 for a cluster on one machine). Repeatable.
    #[arg(long = "name", visible_alias = "ip", value_name = "NAME")]
    pub(crate) names: Vec<String>,
    /// Issue the node certificates with the CA already in --out (ca.pem
    /// and ca.key) instead of making a new cluster; no client certificate.
    #[arg(long)]
    pub(crate) add: bool,
    /// Print one JSON document instead of the list of files.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `--node ID=NAME,...` of `certs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NodeNames {
    pub(crate) id: u64,
    pub(crate) names: Vec<String>,
}

fn parse_node_names(text: &str) -> Result<NodeNames, String> {
    let (id, names) = text.split_once('=').unwrap_or((text, ""));
    let id = id
        .trim()
        .parse::<u64>()
        .map_err(|_| format!("expected ID=NAME,..., got {text:?}"))?;
    let names = names
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect();
    Ok(NodeNames { id, names })
}

/// Runs `sim-cli certs`.
///
/// # Errors
/// As [`issue`].
pub(crate) fn run(args: &CertsArgs) -> anyhow::Result<ExitCode> {
    let report = issue(args)?;
    output::emit(&if args.json {
        output::json(&report)
    } else {
        output::cluster::certs_report(&report)
    });
    Ok(ExitCode::SUCCESS)
}

/// One file written.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Written {
    /// Its path.
    pub(crate) path: PathBuf,
    /// What it holds.
    pub(crate) what: String,
    /// Whether it is a private key (mode 0600).
    pub(crate) secret: bool,
}

/// What `certs` did.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct CertsReport {
    /// The directory.
    pub(crate) dir: PathBuf,
    /// Whether the CA was made now (false with `--add`).
    pub(crate) new_ca: bool,
    /// Node ids and the names their certificates carry.
    pub(crate) nodes: BTreeMap<u64, Vec<String>>,
    /// Every file written, in order.
    pub(crate) files: Vec<Written>,
}

/// The node ids asked for and the names each certificate carries.
fn plan(args: &CertsArgs) -> anyhow::Result<BTreeMap<u64, Vec<String>>> {
    let mut nodes: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for &id in &args.nodes {
        nodes.entry(id).or_default();
    }
    for spec in &args.node {
        nodes
            .entry(spec.id)
            .or_default()
            .extend(spec.names.iter().cloned());
    }
    if nodes.is_empty() {
        anyhow::bail!("no nodes: give --nodes 0,1,2 or --node ID=NAME,...");
    }
    for (&id, names) in &mut nodes {
        if u32::try_from(id).is_err() {
            anyhow::bail!("node id {id} is too large (at most {})", u32::MAX);
        }
        names.extend(args.names.iter().cloned());
        let mut seen = std::collections::HashSet::new();
        names.retain(|n| seen.insert(n.clone()));
    }
    Ok(nodes)
}

/// Makes (or, with `--add`, loads) the CA and issues every certificate,
/// then writes them, refusing to replace any file.
///
/// # Errors
/// Bad ids or names, existing files (nothing is written then), I/O.
fn issue(args: &CertsArgs) -> anyhow::Result<CertsReport> {
    let nodes = plan(args)?;
    let dir = CertDir::new(&args.out);

    let mut planned: Vec<PathBuf> = Vec::new();
    if !args.add {
        planned.extend([dir.ca_cert_path(), dir.ca_key_path()]);
        let (cert, key) = dir.client_paths();
        planned.extend([cert, key]);
    }
    for &id in nodes.keys() {
        let (cert, key) = dir.node_paths(NodeId::new(id));
        planned.extend([cert, key]);
    }
    let existing: Vec<&PathBuf> = planned.iter().filter(|p| p.exists()).collect();
    if let Some(first) = existing.first() {
        anyhow::bail!(
            "refusing to overwrite {}{}; choose another --out or remove them (nothing was written)",
            first.display(),
            match existing.len() {
                1 => String::new(),
                n => format!(" and {} more existing files", n - 1),
            }
        );
    }

    let ca = if args.add {
        dir.load_ca().with_context(|| {
            format!(
                "--add needs the CA in {} (ca.pem and ca.key)",
                dir.root().display()
            )
        })?
    } else {
        ClusterCa::generate().context("generating the cluster CA")?
    };
    let mut identities: Vec<(Identity, String)> = Vec::new();
    for (&id, names) in &nodes {
        let node = NodeId::new(id);
        let identity = ca
            .issue_node(node, names)
            .with_context(|| format!("node {id}'s certificate"))?;
        let mut all = vec![node_name(node)];
        all.extend(names.iter().cloned());
        identities.push((identity, format!("node {id} ({})", all.join(", "))));
    }
    if !args.add {
        let client = ca
            .issue_client()
            .context("generating the client certificate")?;
        identities.push((client, "the client (client.gossip-kv)".to_owned()));
    }

    let mut files = Vec::new();
    if !args.add {
        dir.write_ca(&ca)
            .with_context(|| format!("writing the CA to {}", dir.root().display()))?;
        files.push(Written {
            path: dir.ca_cert_path(),
            what: "cluster CA certificate (every node and client needs it)".into(),
            secret: false,
        });
        files.push(Written {
            path: dir.ca_key_path(),
            what: "cluster CA private key (only to issue certificates; keep it offline)".into(),
            secret: true,
        });
    }
    for (identity, what) in &identities {
        dir.write_identity(identity)
            .with_context(|| format!("writing {what}'s certificate"))?;
        let (cert, key) = match identity.node_id() {
            Some(id) => dir.node_paths(id),
            None => dir.client_paths(),
        };
        files.push(Written {
            path: cert,
            what: format!("certificate of {what}"),
            secret: false,
        });
        files.push(Written {
            path: key,
            what: format!("private key of {what}"),
            secret: true,
        });
    }
    Ok(CertsReport {
        dir: args.out.clone(),
        new_ca: !args.add,
        nodes,
        files,
    })
}
