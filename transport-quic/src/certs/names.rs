//! Node and client names, the client identities and roles they bind, and [`Role`].

use std::fmt;

use lww_crdt::NodeId;
use rustls::pki_types::CertificateDer;

use super::{CLIENT_NAME, CertError, DOMAIN, FIRST_CLIENT, MAX_CLIENT_NAME};

/// The DNS name node `id`'s certificate carries: `node-<id>.gossip-kv`.
pub fn node_name(id: NodeId) -> String {
    format!("node-{id}.{DOMAIN}")
}

/// The node a certificate proves: the `node-<id>.gossip-kv` name among its
/// DNS names, if it is valid for it. `None` for a client or CA certificate,
/// or bytes that are not a certificate. The chain is not checked here: take
/// the leaf of a chain the TLS handshake verified.
pub fn node_in_certificate(leaf: &CertificateDer<'_>) -> Option<NodeId> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    let names = cert.subject_alternative_name().ok()??;
    names
        .value
        .general_names
        .iter()
        .find_map(|name| match name {
            x509_parser::extensions::GeneralName::DNSName(dns) => {
                parse_node_name(dns).filter(|&id| crate::tls::proves_node(leaf, id))
            }
            _ => None,
        })
}

/// The node id a DNS name stands for, if it is a node name
/// (`node-<id>.gossip-kv`, the id in canonical decimal).
pub fn parse_node_name(name: &str) -> Option<NodeId> {
    let digits = name
        .strip_prefix("node-")?
        .strip_suffix(DOMAIN)?
        .strip_suffix('.')?;
    let id: u64 = digits.parse().ok()?;
    // Only the canonical spelling: no leading zeros or signs.
    (id.to_string() == digits).then_some(NodeId::new(id))
}

/// What a client may do, as its certificate says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClientRole {
    /// Reads only: `get`, `keys`, `watch`, `status`, `members`, metrics.
    Read,
    /// Reads and writes (`put`, `delete`).
    Write,
}

impl ClientRole {
    /// The role as certificates and flags spell it: `read` or `write`.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientRole::Read => "read",
            ClientRole::Write => "write",
        }
    }

    /// Whether the role allows writes.
    pub fn may_write(self) -> bool {
        self == ClientRole::Write
    }
}

impl fmt::Display for ClientRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ClientRole {
    type Err = CertError;

    fn from_str(text: &str) -> Result<ClientRole, CertError> {
        match text {
            "read" => Ok(ClientRole::Read),
            "write" => Ok(ClientRole::Write),
            other => Err(CertError::InvalidRole(other.to_owned())),
        }
    }
}

/// Who a client is and what it may do: the name and role its certificate
/// binds (`<name>.<role>.client.gossip-kv`, or [`CLIENT_NAME`] for the
/// client named [`FIRST_CLIENT`] with role `write`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientIdentity {
    name: String,
    role: ClientRole,
}

impl ClientIdentity {
    /// A named client.
    ///
    /// # Errors
    /// [`CertError::InvalidClientName`] unless `name` is one DNS label of
    /// lower-case letters, digits and `-` (1 to [`MAX_CLIENT_NAME`]
    /// characters, no `-` first or last), other than [`FIRST_CLIENT`].
    pub fn new(name: &str, role: ClientRole) -> Result<ClientIdentity, CertError> {
        check_client_name(name)?;
        if name == FIRST_CLIENT {
            return Err(CertError::InvalidClientName {
                name: name.to_owned(),
                reason: "reserved: it is the name of client.pem, the first client certificate",
            });
        }
        Ok(ClientIdentity {
            name: name.to_owned(),
            role,
        })
    }

    /// The client of `client.pem` ([`CLIENT_NAME`]): named [`FIRST_CLIENT`],
    /// role `write`.
    pub fn first() -> ClientIdentity {
        ClientIdentity {
            name: FIRST_CLIENT.to_owned(),
            role: ClientRole::Write,
        }
    }

    /// The client's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What it may do.
    pub fn role(&self) -> ClientRole {
        self.role
    }

    /// The DNS name its certificate carries.
    pub fn dns_name(&self) -> String {
        if self.is_first() {
            CLIENT_NAME.to_owned()
        } else {
            format!("{}.{}.{CLIENT_NAME}", self.name, self.role)
        }
    }

    fn is_first(&self) -> bool {
        self.name == FIRST_CLIENT
    }
}

impl fmt::Display for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client {:?} (role {})", self.name, self.role)
    }
}

/// Checks a client name: one DNS label of lower-case letters, digits and
/// `-`, 1 to [`MAX_CLIENT_NAME`] characters, no `-` first or last.
///
/// # Errors
/// [`CertError::InvalidClientName`], saying what is wrong.
pub fn check_client_name(name: &str) -> Result<(), CertError> {
    let refuse = |reason| {
        Err(CertError::InvalidClientName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return refuse("empty");
    }
    if name.len() > MAX_CLIENT_NAME {
        return refuse("longer than 63 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return refuse("only a-z, 0-9 and '-' may appear");
    }
    if name.starts_with('-') || name.ends_with('-') {
        return refuse("'-' may not come first or last");
    }
    Ok(())
}

/// The client a DNS name stands for, if it is a client name:
/// [`CLIENT_NAME`], or `<name>.<role>.client.gossip-kv` with a valid name
/// and role (lower case only).
pub fn parse_client_name(dns: &str) -> Option<ClientIdentity> {
    if dns == CLIENT_NAME {
        return Some(ClientIdentity::first());
    }
    let rest = dns.strip_suffix(CLIENT_NAME)?.strip_suffix('.')?;
    let (name, role) = rest.split_once('.')?;
    ClientIdentity::new(name, role.parse().ok()?).ok()
}

/// The client a certificate proves: its one client name among its DNS
/// names. `None` for a node or CA certificate, one naming two clients, or
/// bytes that are not a certificate. The chain is not checked here: take
/// the leaf of a chain the TLS handshake verified.
pub fn client_in_certificate(leaf: &CertificateDer<'_>) -> Option<ClientIdentity> {
    match role_of(leaf) {
        Ok(Role::Client) => {}
        _ => return None,
    }
    let parsed = webpki::EndEntityCert::try_from(leaf).ok()?;
    parsed
        .valid_dns_names()
        .find_map(|name| parse_client_name(&name.to_ascii_lowercase()))
}

/// The identity a certificate gives its holder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// A cluster node, authenticated as this id.
    Node(NodeId),
    /// A client of the cluster.
    Client,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Node(id) => write!(f, "node {id}"),
            Role::Client => f.write_str("client"),
        }
    }
}

/// The role a leaf certificate names; see
/// [`Identity::from_pem`](super::Identity::from_pem).
///
/// # Errors
/// [`CertError::Invalid`] for a certificate webpki cannot parse,
/// [`CertError::NoIdentity`] when it names no single role.
pub fn role_of(cert: &CertificateDer<'_>) -> Result<Role, CertError> {
    let parsed = webpki::EndEntityCert::try_from(cert).map_err(CertError::Invalid)?;
    let mut role = None;
    let mut clients = 0;
    for name in parsed.valid_dns_names() {
        let lower = name.to_ascii_lowercase();
        let found = if parse_client_name(&lower).is_some() {
            clients += 1;
            Role::Client
        } else if let Some(id) = parse_node_name(&lower) {
            Role::Node(id)
        } else {
            continue;
        };
        if role.is_some_and(|r| r != found) {
            return Err(CertError::NoIdentity);
        }
        role = Some(found);
    }
    // A certificate naming two clients would leave the role in doubt.
    if clients > 1 {
        return Err(CertError::NoIdentity);
    }
    role.ok_or(CertError::NoIdentity)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::{ClusterCa, Identity};

    #[test]
    fn node_names_round_trip_canonically() {
        let id = NodeId::new(42);
        assert_eq!(node_name(id), "node-42.gossip-kv");
        assert_eq!(parse_node_name("node-42.gossip-kv"), Some(id));
        for bad in [
            "node-042.gossip-kv",
            "node-+4.gossip-kv",
            "node-.gossip-kv",
            "node-4.gossip-kvx",
            "xnode-4.gossip-kv",
            "node-4gossip-kv",
            "client.gossip-kv",
        ] {
            assert_eq!(parse_node_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn client_names_are_one_lower_case_dns_label_and_not_the_first_clients() {
        for good in ["alice", "a", "prom-1", "0", &"x".repeat(MAX_CLIENT_NAME)] {
            let client = ClientIdentity::new(good, ClientRole::Read).unwrap();
            assert_eq!(client.name(), good);
            assert_eq!(parse_client_name(&client.dns_name()), Some(client));
        }
        for (bad, why) in [
            ("", "empty"),
            (&"x".repeat(MAX_CLIENT_NAME + 1)[..], "longer"),
            ("Alice", "only a-z"),
            ("al.ice", "only a-z"),
            ("al ice", "only a-z"),
            ("al_ice", "only a-z"),
            ("-alice", "first or last"),
            ("alice-", "first or last"),
            ("client", "reserved"),
        ] {
            match ClientIdentity::new(bad, ClientRole::Write) {
                Err(err @ CertError::InvalidClientName { .. }) => {
                    assert!(err.to_string().contains(why), "{bad:?}: {err}");
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        assert!(matches!(
            "admin".parse::<ClientRole>(),
            Err(CertError::InvalidRole(_))
        ));
        assert_eq!(
            parse_client_name(CLIENT_NAME),
            Some(ClientIdentity::first())
        );
        for bad in [
            "alice.admin.client.gossip-kv",
            "alice.client.gossip-kv",
            "a.b.read.client.gossip-kv",
            "client.write.client.gossip-kv",
            "alice.read.client.gossip-kvx",
        ] {
            assert_eq!(parse_client_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_named_client_certificate_binds_its_name_and_role() {
        let ca = ClusterCa::generate().unwrap();
        let reader = ClientIdentity::new("prometheus", ClientRole::Read).unwrap();
        let issued = ca.issue_named_client(&reader).unwrap();
        assert_eq!(issued.role(), Role::Client);
        assert_eq!(issued.client(), Some(&reader));
        let leaf = &issued.chain()[0];
        assert_eq!(client_in_certificate(leaf), Some(reader.clone()));
        assert_eq!(node_in_certificate(leaf), None);
        // Read back from PEM, the name and role come from the certificate.
        let again = Identity::from_pem(&issued.cert_pem(), &issued.key_pem()).unwrap();
        assert_eq!(again.client(), Some(&reader));
        ca.cert().verify(issued.chain(), false).unwrap();
        assert!(ca.cert().verify(issued.chain(), true).is_err());
        // The first client certificate is the client "client", role write.
        let first = ca.issue_client().unwrap();
        assert_eq!(
            client_in_certificate(&first.chain()[0]),
            Some(ClientIdentity::first())
        );
        // A node certificate names no client.
        let node = ca.issue_node(NodeId::new(1), &[]).unwrap();
        assert_eq!(client_in_certificate(&node.chain()[0]), None);
    }
}
