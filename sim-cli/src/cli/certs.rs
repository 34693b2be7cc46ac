//! `sim-cli certs`: a cluster CA, node certificates and client
//! certificates, written as a `transport_quic::certs::CertDir`; `--show`
//! prints what a certificate file holds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use lww_crdt::NodeId;
use serde::Serialize;
use transport_quic::certs::{
    CertDir, CertInfo, ClientIdentity, ClientRole, ClusterCa, FIRST_CLIENT, Identity,
    check_client_name, node_name,
};

use crate::cli::output;

/// `sim-cli certs`.
#[derive(Debug, Args)]
pub(crate) struct CertsArgs {
    /// Directory to write into (created if missing). Existing files are
    /// never replaced: if any would be, nothing is written.
    #[arg(long, value_name = "DIR", required_unless_present = "show")]
    pub(crate) out: Option<PathBuf>,
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
    /// Issue the certificates with the CA already in --out (ca/ca.key, or
    /// ca.key beside ca.pem in older directories) instead of making a new
    /// cluster; client.pem is not issued again.
    #[arg(long)]
    pub(crate) add: bool,
    /// Also issue a certificate for the client NAME (client-NAME.pem and
    /// .key): one DNS label of a-z, 0-9 and '-'. Repeatable.
    #[arg(long = "client", value_name = "NAME", value_parser = parse_client_name)]
    pub(crate) clients: Vec<String>,
    /// The role of the clients of --client: read (reads only) or write
    /// (reads and writes).
    #[arg(long, value_name = "ROLE", default_value = "read", value_parser = parse_role, requires = "clients")]
    pub(crate) role: ClientRole,
    /// How many days the node and client certificates issued now are
    /// valid (the CA made with a new cluster: ten years).
    #[arg(long, value_name = "N", default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub(crate) valid_days: u32,
    /// Print what a certificate file holds (each certificate of a bundle):
    /// serial, identity, names and validity; nothing is written.
    #[arg(long, value_name = "FILE.pem", conflicts_with_all = ["out", "nodes", "node", "names", "add", "clients"])]
    pub(crate) show: Option<PathBuf>,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

fn parse_client_name(text: &str) -> Result<String, String> {
    if text == FIRST_CLIENT {
        return Err(format!(
            "{FIRST_CLIENT:?} is the client of client.pem, issued with every new cluster; \
             choose another name"
        ));
    }
    check_client_name(text).map_err(|err| err.to_string())?;
    Ok(text.to_owned())
}

fn parse_role(text: &str) -> Result<ClientRole, String> {
    text.parse()
        .map_err(|err: transport_quic::certs::CertError| err.to_string())
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
    if let Some(path) = &args.show {
        return show(path, args.json);
    }
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
    /// Clients issued now (the first client, `client`, with a new
    /// cluster), with their roles.
    pub(crate) clients: Vec<ClientJson>,
    /// How many days the node and client certificates are valid.
    pub(crate) valid_days: u32,
    /// Every file written, in order.
    pub(crate) files: Vec<Written>,
}

/// A client as JSON.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct ClientJson {
    /// Its name.
    pub(crate) name: String,
    /// `read` or `write`.
    pub(crate) role: String,
}

impl From<&ClientIdentity> for ClientJson {
    fn from(client: &ClientIdentity) -> ClientJson {
        ClientJson {
            name: client.name().to_owned(),
            role: client.role().to_string(),
        }
    }
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
    // With --add, clients alone will do.
    let clients_only = args.add && !args.clients.is_empty();
    if nodes.is_empty() && !clients_only {
        anyhow::bail!(
            "no nodes: give --nodes 0,1,2 or --node ID=NAME,... (with --add, --client NAME alone \
             will do)"
        );
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
    let out = args
        .out
        .clone()
        .context("give --out DIR (or --show FILE.pem)")?;
    let dir = CertDir::new(&out);
    let mut clients: Vec<ClientIdentity> = Vec::new();
    if !args.add {
        clients.push(ClientIdentity::first());
    }
    for name in &args.clients {
        let client =
            ClientIdentity::new(name, args.role).with_context(|| format!("--client {name}"))?;
        if clients.iter().any(|c| c.name() == client.name()) {
            anyhow::bail!("--client {name} is given twice");
        }
        clients.push(client);
    }

    let mut planned: Vec<PathBuf> = Vec::new();
    if !args.add {
        planned.extend(dir.ca_paths());
    }
    for client in &clients {
        let (cert, key) = dir.named_client_paths(client.name());
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

    let mut ca = if args.add {
        dir.load_ca().with_context(|| {
            format!(
                "--add needs the CA in {} (ca/ca.key, or ca.key beside ca.pem)",
                dir.root().display()
            )
        })?
    } else {
        ClusterCa::generate().context("generating the cluster CA")?
    };
    ca.set_validity(Duration::from_secs(u64::from(args.valid_days) * 86_400));
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
    for client in &clients {
        let identity = ca
            .issue_named_client(client)
            .with_context(|| format!("{client}'s certificate"))?;
        identities.push((identity, format!("{client} ({})", client.dns_name())));
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
            what: "cluster CA private key (only to issue certificates; keep ca/ offline)".into(),
            secret: true,
        });
        files.push(Written {
            path: dir.ca_own_cert_path(),
            what: "the certificate of that key's CA (stays with the key)".into(),
            secret: false,
        });
    }
    for (identity, what) in &identities {
        dir.write_identity(identity)
            .with_context(|| format!("writing {what}'s certificate"))?;
        let (cert, key) = dir.identity_paths(identity);
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
        dir: out,
        new_ca: !args.add,
        nodes,
        clients: clients.iter().map(ClientJson::from).collect(),
        valid_days: args.valid_days,
        files,
    })
}

/// One certificate as `certs --show` prints it.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Shown {
    /// The serial, in hex: what a deny-list (`node --revoked`) takes.
    pub(crate) serial: String,
    /// `ca`, `node`, `client` or `other`.
    pub(crate) kind: &'static str,
    /// The node id, for a node's certificate.
    pub(crate) node: Option<u64>,
    /// The client, for a client's certificate.
    pub(crate) client: Option<ClientJson>,
    /// What it is, in words.
    pub(crate) identity: String,
    /// The subject's distinguished name.
    pub(crate) subject: String,
    /// The issuer's distinguished name.
    pub(crate) issuer: String,
    /// DNS names and IP addresses it carries.
    pub(crate) names: Vec<String>,
    /// Valid from (seconds since 1970, UTC).
    pub(crate) not_before: i64,
    /// Valid until (seconds since 1970, UTC).
    pub(crate) not_after: i64,
    /// `not_before` as a UTC date.
    pub(crate) not_before_text: String,
    /// `not_after` as a UTC date.
    pub(crate) not_after_text: String,
    /// Whole days from now until `not_after` (negative once expired).
    pub(crate) days_left: i64,
}

impl Shown {
    fn new(info: &CertInfo, now: i64) -> Shown {
        use transport_quic::certs::CertKind;
        let (kind, node, client) = match &info.kind {
            CertKind::Ca => ("ca", None, None),
            CertKind::Node(id) => ("node", Some(id.get()), None),
            CertKind::Client(client) => ("client", None, Some(ClientJson::from(client))),
            CertKind::Other => ("other", None, None),
        };
        let mut names = info.dns_names.clone();
        names.extend(info.ip_addresses.iter().map(ToString::to_string));
        Shown {
            serial: info.serial.to_string(),
            kind,
            node,
            client,
            identity: info.kind.to_string(),
            subject: info.subject.clone(),
            issuer: info.issuer.clone(),
            names,
            not_before: info.not_before,
            not_after: info.not_after,
            not_before_text: output::utc_date(info.not_before),
            not_after_text: output::utc_date(info.not_after),
            days_left: (info.not_after - now).div_euclid(86_400),
        }
    }
}

/// `certs --show FILE`: every certificate of the file.
fn show(path: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let infos = CertInfo::read_pem_file(path)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let shown: Vec<Shown> = infos.iter().map(|info| Shown::new(info, now)).collect();
    output::emit(&if json {
        output::json(&shown)
    } else {
        output::cluster::shown_certs(path, &shown)
    });
    Ok(ExitCode::SUCCESS)
}
