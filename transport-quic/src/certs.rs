//! Certificates: a cluster CA, node and client identities, and the directory
//! they live in.
//!
//! Every certificate is issued by one cluster CA (made here with rcgen) and
//! names its holder in a DNS subject alternative name:
//!
//! - a node's certificate names `node-<id>.gossip-kv` ([`node_name`]), plus
//!   the IP addresses and DNS names it is reached at; it may act as TLS
//!   server and as TLS client (it dials its peers).
//! - a client certificate names the client and its role
//!   ([`ClientIdentity`]): `<name>.<role>.client.gossip-kv`, the role `read`
//!   (reads only) or `write` (reads and writes), and may only act as a TLS
//!   client. The first client certificate, `client.gossip-kv`
//!   ([`CLIENT_NAME`]), is the client named `client` with role `write`.
//!
//! Names under `.gossip-kv` are reserved for these roles: a node certificate
//! cannot carry another node's name or a client name as an extra name.
//!
//! Node and client certificates are valid for [`DEFAULT_LEAF_VALIDITY`] (90
//! days) unless [`ClusterCa::set_validity`] says otherwise; the CA for
//! [`DEFAULT_CA_VALIDITY`]. Each certificate's serial number is a hash of
//! its public key (20 bytes), unique to it; [`CertInfo`] reads it, with the
//! rest of what an operator needs to know, from a PEM file, and
//! [`DenyList`](crate::revoked::DenyList) refuses the serials listed in it.
//!
//! # Directory layout
//!
//! [`CertDir`] reads and writes PEM files in one directory:
//!
//! | file | content | who needs it |
//! |---|---|---|
//! | `ca.pem` | the cluster CA certificates trusted: one, or several during a CA change (a bundle) | every node and client |
//! | `ca/ca.key` | the CA private key (PKCS#8), in a directory of its own (mode `0700`) | only whoever issues certificates; keep it offline |
//! | `ca/ca.pem` | the certificate of the CA that `ca/ca.key` belongs to | beside its key |
//! | `node-<id>.pem` | node `<id>`'s certificate | node `<id>` |
//! | `node-<id>.key` | node `<id>`'s private key (PKCS#8) | node `<id>` |
//! | `client.pem` | the first client certificate (`client`, role `write`) | clients |
//! | `client.key` | its private key (PKCS#8) | clients |
//! | `client-<name>.pem`, `client-<name>.key` | client `<name>`'s certificate and key | that client |
//!
//! `<id>` is the decimal node id. Directories written before the CA had a
//! directory of its own hold `ca.key` beside `ca.pem`; [`CertDir::load_ca`]
//! still finds it there. Private keys are written with mode `0600` on Unix,
//! and a key its group or others may read is refused when loaded
//! ([`CertError::KeyReadable`]). Writing never replaces an existing file.

use std::fmt;
use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lww_crdt::NodeId;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

/// The DNS suffix reserved for cluster identities.
pub const DOMAIN: &str = "gossip-kv";

/// The DNS name the first client certificate carries (`client.pem`): the
/// client named [`FIRST_CLIENT`] with role [`ClientRole::Write`].
pub const CLIENT_NAME: &str = "client.gossip-kv";

/// The name of the client whose certificate is [`CLIENT_NAME`]; no other
/// client certificate may take it.
pub const FIRST_CLIENT: &str = "client";

/// The longest client name: one DNS label.
pub const MAX_CLIENT_NAME: usize = 63;

/// The common name of the cluster CA. Certificates issued by a CA loaded
/// from files name this issuer, so a CA made elsewhere must use it too.
pub const CA_COMMON_NAME: &str = "gossip-kv cluster CA";

/// How long a new CA certificate is valid by default (ten years).
pub const DEFAULT_CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// How long a new node or client certificate is valid by default (90
/// days): a stolen key is good for a season at most, and renewing is
/// routine.
pub const DEFAULT_LEAF_VALIDITY: Duration = Duration::from_secs(90 * 24 * 3600);

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

/// Why certificates could not be made, loaded or written.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// rcgen could not generate a key or a certificate. Nothing was written.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// An extra name for a node certificate is empty, not a valid DNS name,
    /// or lies in the reserved `.gossip-kv` domain. Nothing was issued.
    #[error("invalid subject name {0:?} (empty, not a DNS name, or under .{DOMAIN})")]
    InvalidName(String),
    /// A client name is not one DNS label of `a-z`, `0-9` and `-`, or is
    /// reserved. Nothing was issued or loaded.
    #[error("invalid client name {name:?}: {reason}")]
    InvalidClientName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A client role is neither `read` nor `write`.
    #[error("invalid client role {0:?}: give read or write")]
    InvalidRole(String),
    /// The client certificate in a client's files names another client.
    /// Nothing was loaded.
    #[error("{path}: the certificate is {found}'s, not this client's")]
    OtherClient {
        /// The certificate file.
        path: PathBuf,
        /// The client it names.
        found: String,
    },
    /// No certificate of the CA bundle belongs to the CA private key: the
    /// key and the certificates do not go together. Nothing was loaded.
    #[error("{path}: no certificate of the CA bundle goes with this CA private key")]
    CaKeyMismatch {
        /// The key file.
        path: PathBuf,
    },
    /// A PEM file holds no certificate or key of the expected kind, or is
    /// not PEM. Nothing was loaded.
    #[error("{path}: no usable {what} in PEM")]
    Pem {
        /// The file (or `<memory>`).
        path: PathBuf,
        /// What was looked for.
        what: &'static str,
    },
    /// A certificate is not a valid X.509 end-entity certificate, or is
    /// not valid for the role it was loaded for. Nothing was loaded.
    #[error("certificate is not usable: {0}")]
    Invalid(webpki::Error),
    /// A certificate names no role (no node name and no client name), or
    /// more than one. Nothing was loaded.
    #[error(
        "certificate names no single gossip-kv identity (node-<id>.{DOMAIN}, {CLIENT_NAME} or \
         <name>.<role>.{CLIENT_NAME})"
    )]
    NoIdentity,
    /// A certificate was not issued by the expected CA (or has expired).
    /// Nothing was loaded or written.
    #[error("certificate does not chain to the cluster CA: {0}")]
    WrongCa(webpki::Error),
    /// A file already exists; writing never replaces one. Nothing was
    /// written.
    #[error("{0}: already exists")]
    Exists(PathBuf),
    /// A private key file can be read by its group or by others: anyone who
    /// can read it can act as its holder. Nothing was loaded.
    #[error(
        "{}: the private key is readable by group or others (mode {mode:04o}); run chmod 600 on it",
        path.display()
    )]
    KeyReadable {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Reading or writing a file failed. When writing a pair, any file of
    /// the pair already written was removed again.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
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

/// The cluster CA certificates nodes and clients trust: one, or several
/// while the cluster changes CA (a bundle, `ca.pem` holding them one after
/// another). A certificate issued by any of them is accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaCert {
    ders: Vec<CertificateDer<'static>>,
}

impl CaCert {
    /// Parses every certificate of a PEM text (a bundle, or one).
    ///
    /// # Errors
    /// [`CertError::Pem`] when there is none, or the text is not PEM.
    pub fn from_pem(pem: &str) -> Result<CaCert, CertError> {
        parse_bundle(pem.as_bytes(), Path::new("<memory>"))
    }

    /// The bundle of `cas`' certificates, in order, each once: what a
    /// cluster changing CA trusts.
    pub fn bundle<'a>(cas: impl IntoIterator<Item = &'a CaCert>) -> CaCert {
        let mut ders: Vec<CertificateDer<'static>> = Vec::new();
        for der in cas.into_iter().flat_map(|ca| ca.ders.iter()) {
            if !ders.contains(der) {
                ders.push(der.clone());
            }
        }
        CaCert { ders }
    }

    /// The first certificate, DER-encoded.
    pub fn der(&self) -> &CertificateDer<'static> {
        // Never empty: every constructor refuses an empty bundle.
        &self.ders[0]
    }

    /// Every certificate of the bundle, DER-encoded.
    pub fn ders(&self) -> &[CertificateDer<'static>] {
        &self.ders
    }

    /// The certificates as PEM text, one after another.
    pub fn to_pem(&self) -> String {
        self.ders
            .iter()
            .map(|der| pem_encode("CERTIFICATE", der.as_ref()))
            .collect()
    }

    /// Checks that `chain` (leaf first) is issued by one of these CAs, is
    /// currently valid, and is fit for TLS client authentication, and for
    /// server authentication too when `server` is set.
    ///
    /// # Errors
    /// [`CertError::WrongCa`] or [`CertError::Invalid`]; nothing changes.
    pub fn verify(&self, chain: &[CertificateDer<'_>], server: bool) -> Result<(), CertError> {
        let leaf = chain.first().ok_or(CertError::NoIdentity)?;
        let cert = webpki::EndEntityCert::try_from(leaf).map_err(CertError::Invalid)?;
        let anchors = self
            .ders
            .iter()
            .map(|der| webpki::anchor_from_trusted_cert(der).map_err(CertError::Invalid))
            .collect::<Result<Vec<_>, _>>()?;
        let now = UnixTime::now();
        let intermediates = chain.get(1..).unwrap_or_default();
        let check = |usage| {
            cert.verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &anchors,
                intermediates,
                now,
                usage,
                None,
                None,
            )
            .map(|_| ())
            .map_err(CertError::WrongCa)
        };
        check(webpki::KeyUsage::client_auth())?;
        if server {
            check(webpki::KeyUsage::server_auth())?;
        }
        Ok(())
    }
}

/// Every certificate of a PEM text; at least one.
fn parse_bundle(pem: &[u8], path: &Path) -> Result<CaCert, CertError> {
    let ders = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .ok()
        .filter(|ders| !ders.is_empty())
        .ok_or_else(|| CertError::Pem {
            path: path.to_owned(),
            what: "CA certificate",
        })?;
    Ok(CaCert { ders })
}

/// The certificate of `bundle` whose public key is `key`'s.
fn matching_cert(bundle: &CaCert, key: &KeyPair) -> Option<CaCert> {
    use rcgen::PublicKeyData as _;
    bundle
        .ders
        .iter()
        .find(|der| {
            x509_parser::parse_x509_certificate(der.as_ref()).is_ok_and(|(_, cert)| {
                cert.public_key().subject_public_key.data.as_ref() == key.der_bytes()
            })
        })
        .map(|der| CaCert {
            ders: vec![der.clone()],
        })
}

/// A cluster CA with its private key: issues node and client certificates.
pub struct ClusterCa {
    cert: CaCert,
    issuer: Issuer<'static, KeyPair>,
    validity: Duration,
}

impl fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key stays out of logs.
        f.debug_struct("ClusterCa")
            .field("validity", &self.validity)
            .finish_non_exhaustive()
    }
}

fn ca_params(validity: Duration) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_COMMON_NAME);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params, validity);
    params
}

fn set_validity(params: &mut CertificateParams, validity: Duration) {
    let now = time::OffsetDateTime::now_utc();
    // An hour of slack for clocks that lag the issuer's.
    params.not_before = now - time::Duration::hours(1);
    // At most a century: rcgen dates must stay within the calendar.
    let secs = i64::try_from(validity.as_secs())
        .unwrap_or(i64::MAX)
        .min(100 * 365 * 24 * 3600);
    params.not_after = now + time::Duration::seconds(secs);
}

impl ClusterCa {
    /// Generates a new CA (ECDSA P-256), valid for
    /// [`DEFAULT_CA_VALIDITY`]; the certificates it issues are valid for
    /// [`DEFAULT_LEAF_VALIDITY`].
    ///
    /// # Errors
    /// [`CertError::Generate`] if rcgen fails.
    pub fn generate() -> Result<ClusterCa, CertError> {
        let key = KeyPair::generate()?;
        let params = ca_params(DEFAULT_CA_VALIDITY);
        let der = params.self_signed(&key)?.der().clone();
        Ok(ClusterCa {
            cert: CaCert { ders: vec![der] },
            issuer: Issuer::new(params, key),
            validity: DEFAULT_LEAF_VALIDITY,
        })
    }

    /// A CA from its certificate and private key in PEM. The certificate
    /// text may be a bundle: the CA is the certificate whose public key is
    /// the key's. It must name [`CA_COMMON_NAME`] as its subject (as every
    /// CA this module makes does): issuing checks each new certificate
    /// against it.
    ///
    /// # Errors
    /// [`CertError::Pem`] for unusable input, [`CertError::CaKeyMismatch`]
    /// when no certificate goes with the key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<ClusterCa, CertError> {
        let bundle = CaCert::from_pem(cert_pem)?;
        let key = KeyPair::from_pem(key_pem).map_err(|_| CertError::Pem {
            path: PathBuf::from("<memory>"),
            what: "CA private key",
        })?;
        Self::from_parts(&bundle, key, Path::new("<memory>"))
    }

    fn from_parts(bundle: &CaCert, key: KeyPair, path: &Path) -> Result<ClusterCa, CertError> {
        let cert = matching_cert(bundle, &key).ok_or_else(|| CertError::CaKeyMismatch {
            path: path.to_owned(),
        })?;
        Ok(ClusterCa {
            cert,
            issuer: Issuer::new(ca_params(DEFAULT_CA_VALIDITY), key),
            validity: DEFAULT_LEAF_VALIDITY,
        })
    }

    /// Sets how long the certificates issued from now on are valid.
    pub fn set_validity(&mut self, validity: Duration) {
        self.validity = validity;
    }

    /// The CA certificate.
    pub fn cert(&self) -> &CaCert {
        &self.cert
    }

    /// The CA private key as PKCS#8 PEM. Keep it offline.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// Issues node `id`'s certificate: it names `node-<id>.gossip-kv` and
    /// every entry of `names`, each an IP address or a DNS name.
    ///
    /// # Errors
    /// [`CertError::InvalidName`] for an empty or reserved name,
    /// [`CertError::Generate`] if rcgen fails, [`CertError::WrongCa`] if a
    /// CA loaded from files does not match [`CA_COMMON_NAME`].
    pub fn issue_node(&self, id: NodeId, names: &[String]) -> Result<Identity, CertError> {
        let mut sans = vec![dns_san(&node_name(id))?];
        for name in names {
            let name = name.trim();
            if let Ok(ip) = name.parse::<IpAddr>() {
                sans.push(SanType::IpAddress(ip));
                continue;
            }
            let lower = name.to_ascii_lowercase();
            let reserved = lower == DOMAIN || lower.ends_with(&format!(".{DOMAIN}"));
            if name.is_empty() || reserved || ServerName::try_from(name).is_err() {
                return Err(CertError::InvalidName(name.to_owned()));
            }
            sans.push(dns_san(name)?);
        }
        self.issue(
            &node_name(id),
            sans,
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            Role::Node(id),
        )
    }

    /// Issues the first client certificate (`client.pem`): it names
    /// `client.gossip-kv`, the client [`FIRST_CLIENT`] with role `write`,
    /// and is only fit for TLS client authentication.
    ///
    /// # Errors
    /// As [`ClusterCa::issue_node`].
    pub fn issue_client(&self) -> Result<Identity, CertError> {
        self.issue_named_client(&ClientIdentity::first())
    }

    /// Issues `client`'s certificate: it names
    /// `<name>.<role>.client.gossip-kv` ([`ClientIdentity::dns_name`]) and
    /// is only fit for TLS client authentication.
    ///
    /// # Errors
    /// As [`ClusterCa::issue_node`].
    pub fn issue_named_client(&self, client: &ClientIdentity) -> Result<Identity, CertError> {
        let name = client.dns_name();
        let mut identity = self.issue(
            &name,
            vec![dns_san(&name)?],
            vec![ExtendedKeyUsagePurpose::ClientAuth],
            Role::Client,
        )?;
        identity.client = Some(client.clone());
        Ok(identity)
    }

    fn issue(
        &self,
        common_name: &str,
        sans: Vec<SanType>,
        usages: Vec<ExtendedKeyUsagePurpose>,
        role: Role,
    ) -> Result<Identity, CertError> {
        let server = usages.contains(&ExtendedKeyUsagePurpose::ServerAuth);
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.subject_alt_names = sans;
        params.extended_key_usages = usages;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, self.validity);
        let cert = params.signed_by(&key, &self.issuer)?;
        let identity = Identity {
            role,
            client: None,
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        };
        // A CA loaded from files under another subject would issue
        // certificates nobody accepts: catch it here.
        self.cert.verify(&identity.chain, server)?;
        Ok(identity)
    }
}

fn dns_san(name: &str) -> Result<SanType, CertError> {
    let ia5 = name
        .try_into()
        .map_err(|_| CertError::InvalidName(name.to_owned()))?;
    Ok(SanType::DnsName(ia5))
}

/// A certificate chain (leaf first) with its private key, and the role the
/// leaf names.
pub struct Identity {
    role: Role,
    client: Option<ClientIdentity>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl Clone for Identity {
    fn clone(&self) -> Identity {
        Identity {
            role: self.role,
            client: self.client.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl Identity {
    /// An identity from PEM texts: the certificate chain (leaf first) and
    /// the private key. The role comes from the leaf's names: exactly one
    /// node name (`node-<id>.gossip-kv`) or client name
    /// ([`parse_client_name`]).
    ///
    /// # Errors
    /// [`CertError::Pem`], [`CertError::Invalid`] or
    /// [`CertError::NoIdentity`].
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Identity, CertError> {
        Self::parse(
            cert_pem.as_bytes(),
            key_pem.as_bytes(),
            Path::new("<memory>"),
        )
    }

    fn parse(cert_pem: &[u8], key_pem: &[u8], path: &Path) -> Result<Identity, CertError> {
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .ok()
            .filter(|chain| !chain.is_empty())
            .ok_or_else(|| CertError::Pem {
                path: path.to_owned(),
                what: "certificate",
            })?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| CertError::Pem {
            path: path.to_owned(),
            what: "private key",
        })?;
        let role = role_of(&chain[0])?;
        let client = client_in_certificate(&chain[0]);
        Ok(Identity {
            role,
            client,
            chain,
            key,
        })
    }

    /// The role the certificate names.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The client's name and role, for a client identity.
    pub fn client(&self) -> Option<&ClientIdentity> {
        self.client.as_ref()
    }

    /// The node id, for a node identity.
    pub fn node_id(&self) -> Option<NodeId> {
        match self.role {
            Role::Node(id) => Some(id),
            Role::Client => None,
        }
    }

    /// The certificate chain, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The private key.
    pub fn key(&self) -> &PrivateKeyDer<'static> {
        &self.key
    }

    /// The certificate chain as PEM text.
    pub fn cert_pem(&self) -> String {
        self.chain
            .iter()
            .map(|der| pem_encode("CERTIFICATE", der.as_ref()))
            .collect()
    }

    /// The private key as PKCS#8 PEM text.
    pub fn key_pem(&self) -> String {
        pem_encode("PRIVATE KEY", self.key.secret_der())
    }
}

/// The role a leaf certificate names; see [`Identity::from_pem`].
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

/// What one certificate holds that an operator needs: its serial (to
/// revoke it), whom it names and in what role, and when it is valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// The serial number, as a deny-list takes it.
    pub serial: crate::revoked::Serial,
    /// The subject's distinguished name, e.g. `CN=node-1.gossip-kv`.
    pub subject: String,
    /// The issuer's distinguished name.
    pub issuer: String,
    /// What the certificate is for the cluster.
    pub kind: CertKind,
    /// The DNS names it carries.
    pub dns_names: Vec<String>,
    /// The IP addresses it carries.
    pub ip_addresses: Vec<IpAddr>,
    /// Valid from, in seconds since 1970 (UTC).
    pub not_before: i64,
    /// Valid until, in seconds since 1970 (UTC).
    pub not_after: i64,
}

/// What a certificate is for the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertKind {
    /// A CA certificate.
    Ca,
    /// Node `id`'s certificate.
    Node(NodeId),
    /// A client's certificate, with its name and role.
    Client(ClientIdentity),
    /// Neither: no single gossip-kv identity.
    Other,
}

impl fmt::Display for CertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertKind::Ca => f.write_str("CA"),
            CertKind::Node(id) => write!(f, "node {id}"),
            CertKind::Client(client) => client.fmt(f),
            CertKind::Other => f.write_str("no gossip-kv identity"),
        }
    }
}

impl CertInfo {
    /// Reads a DER certificate.
    ///
    /// # Errors
    /// [`CertError::Pem`] for bytes that are not an X.509 certificate.
    pub fn parse(der: &CertificateDer<'_>) -> Result<CertInfo, CertError> {
        let bad = || CertError::Pem {
            path: PathBuf::from("<memory>"),
            what: "X.509 certificate",
        };
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).map_err(|_| bad())?;
        let mut dns_names = Vec::new();
        let mut ip_addresses = Vec::new();
        if let Ok(Some(names)) = cert.subject_alternative_name() {
            for name in &names.value.general_names {
                match name {
                    x509_parser::extensions::GeneralName::DNSName(dns) => {
                        dns_names.push((*dns).to_owned());
                    }
                    x509_parser::extensions::GeneralName::IPAddress(bytes) => {
                        if let Ok(v4) = <[u8; 4]>::try_from(*bytes) {
                            ip_addresses.push(IpAddr::from(v4));
                        } else if let Ok(v6) = <[u8; 16]>::try_from(*bytes) {
                            ip_addresses.push(IpAddr::from(v6));
                        }
                    }
                    _ => {}
                }
            }
        }
        let kind = if cert.is_ca() {
            CertKind::Ca
        } else {
            match role_of(der) {
                Ok(Role::Node(id)) => CertKind::Node(id),
                Ok(Role::Client) => {
                    client_in_certificate(der).map_or(CertKind::Other, CertKind::Client)
                }
                Err(_) => CertKind::Other,
            }
        };
        Ok(CertInfo {
            serial: crate::revoked::Serial::from_bytes(cert.raw_serial()),
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            kind,
            dns_names,
            ip_addresses,
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
        })
    }

    /// Reads every certificate of a PEM file (a bundle gives several).
    ///
    /// # Errors
    /// [`CertError::Io`], or [`CertError::Pem`] when it holds no
    /// certificate.
    pub fn read_pem_file(path: &Path) -> Result<Vec<CertInfo>, CertError> {
        let pem = read(path)?;
        let bundle = parse_bundle(&pem, path).map_err(|_| CertError::Pem {
            path: path.to_owned(),
            what: "certificate",
        })?;
        bundle
            .ders()
            .iter()
            .map(|der| {
                CertInfo::parse(der).map_err(|_| CertError::Pem {
                    path: path.to_owned(),
                    what: "X.509 certificate",
                })
            })
            .collect()
    }
}

/// When a DER certificate stops being valid, in seconds since 1970 (UTC);
/// `None` if it does not parse.
pub fn not_after(der: &CertificateDer<'_>) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// A directory of cluster certificates; see the [module documentation](self)
/// for its layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertDir {
    root: PathBuf,
}

impl CertDir {
    /// The directory at `root` (not created until something is written).
    pub fn new(root: impl Into<PathBuf>) -> CertDir {
        CertDir { root: root.into() }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `ca.pem`: the CA certificates every node and client trusts.
    pub fn ca_cert_path(&self) -> PathBuf {
        self.root.join("ca.pem")
    }

    /// `ca/`: the CA's own directory, holding its key.
    pub fn ca_dir(&self) -> PathBuf {
        self.root.join("ca")
    }

    /// `ca/ca.key`: where the CA private key is written.
    pub fn ca_key_path(&self) -> PathBuf {
        self.ca_dir().join("ca.key")
    }

    /// `ca/ca.pem`: the certificate of the CA whose key is `ca/ca.key`.
    pub fn ca_own_cert_path(&self) -> PathBuf {
        self.ca_dir().join("ca.pem")
    }

    /// `ca.key` beside `ca.pem`: where directories written before the CA
    /// had a directory of its own keep the CA private key.
    pub fn old_ca_key_path(&self) -> PathBuf {
        self.root.join("ca.key")
    }

    /// The CA private keys present in this directory, in either place.
    pub fn ca_keys_present(&self) -> Vec<PathBuf> {
        [self.ca_key_path(), self.old_ca_key_path()]
            .into_iter()
            .filter(|path| path.exists())
            .collect()
    }

    /// `node-<id>.pem` and `node-<id>.key`.
    pub fn node_paths(&self, id: NodeId) -> (PathBuf, PathBuf) {
        (
            self.root.join(format!("node-{id}.pem")),
            self.root.join(format!("node-{id}.key")),
        )
    }

    /// `client.pem` and `client.key`: the first client's.
    pub fn client_paths(&self) -> (PathBuf, PathBuf) {
        (self.root.join("client.pem"), self.root.join("client.key"))
    }

    /// `client-<name>.pem` and `client-<name>.key`; for [`FIRST_CLIENT`],
    /// `client.pem` and `client.key`. The name is not checked here.
    pub fn named_client_paths(&self, name: &str) -> (PathBuf, PathBuf) {
        if name == FIRST_CLIENT {
            return self.client_paths();
        }
        (
            self.root.join(format!("client-{name}.pem")),
            self.root.join(format!("client-{name}.key")),
        )
    }

    /// The files [`CertDir::write_ca`] writes: `ca.pem`, `ca/ca.key` and
    /// `ca/ca.pem`.
    pub fn ca_paths(&self) -> [PathBuf; 3] {
        [
            self.ca_cert_path(),
            self.ca_key_path(),
            self.ca_own_cert_path(),
        ]
    }

    /// Writes `ca.pem`, then `ca/ca.key` and `ca/ca.pem` in the CA's own
    /// directory (mode `0700`), creating the directories if needed.
    ///
    /// # Errors
    /// [`CertError::Exists`] if any of the files exists, [`CertError::Io`]
    /// otherwise; no file is left behind on failure.
    pub fn write_ca(&self, ca: &ClusterCa) -> Result<(), CertError> {
        for path in self.ca_paths() {
            if path.exists() {
                return Err(CertError::Exists(path));
            }
        }
        fs::create_dir_all(&self.root).map_err(|source| CertError::Io {
            path: self.root.clone(),
            source,
        })?;
        create_private_dir(&self.ca_dir())?;
        let pem = ca.cert().to_pem();
        self.write_pair(
            &self.ca_own_cert_path(),
            &pem,
            &self.ca_key_path(),
            &ca.key_pem(),
        )?;
        if let Err(err) = write_new(&self.ca_cert_path(), &pem, false) {
            let _ = fs::remove_file(self.ca_key_path());
            let _ = fs::remove_file(self.ca_own_cert_path());
            return Err(err);
        }
        Ok(())
    }

    /// Writes an identity to `node-<id>.pem`/`.key`, or to its client's
    /// files ([`CertDir::named_client_paths`]), by its role.
    ///
    /// # Errors
    /// As [`CertDir::write_ca`].
    pub fn write_identity(&self, identity: &Identity) -> Result<(), CertError> {
        let (cert, key) = self.identity_paths(identity);
        self.write_pair(&cert, &identity.cert_pem(), &key, &identity.key_pem())
    }

    /// Where [`CertDir::write_identity`] writes `identity`.
    pub fn identity_paths(&self, identity: &Identity) -> (PathBuf, PathBuf) {
        match (identity.role(), identity.client()) {
            (Role::Node(id), _) => self.node_paths(id),
            (Role::Client, Some(client)) => self.named_client_paths(client.name()),
            (Role::Client, None) => self.client_paths(),
        }
    }

    /// Reads `ca.pem`: the CA certificates trusted (one, or a bundle).
    ///
    /// # Errors
    /// [`CertError::Io`] or [`CertError::Pem`].
    pub fn load_ca_cert(&self) -> Result<CaCert, CertError> {
        let path = self.ca_cert_path();
        let pem = read(&path)?;
        parse_bundle(&pem, &path)
    }

    /// Reads the CA and its private key, to issue more certificates:
    /// `ca/ca.key` with `ca/ca.pem` (or `ca.pem` if there is none), else
    /// `ca.key` beside `ca.pem`, as directories written before the CA had a
    /// directory of its own keep it. The CA is the certificate whose
    /// public key is the key's.
    ///
    /// # Errors
    /// [`CertError::Io`] (no key in either place: the new one is named),
    /// [`CertError::Pem`], [`CertError::KeyReadable`] or
    /// [`CertError::CaKeyMismatch`].
    pub fn load_ca(&self) -> Result<ClusterCa, CertError> {
        let (key_path, cert_path) = if self.ca_key_path().exists() {
            let own = self.ca_own_cert_path();
            let cert = if own.exists() {
                own
            } else {
                self.ca_cert_path()
            };
            (self.ca_key_path(), cert)
        } else if self.old_ca_key_path().exists() {
            (self.old_ca_key_path(), self.ca_cert_path())
        } else {
            (self.ca_key_path(), self.ca_cert_path())
        };
        check_private(&key_path)?;
        let key_pem = read(&key_path)?;
        let bundle = parse_bundle(&read(&cert_path)?, &cert_path)?;
        let key = std::str::from_utf8(&key_pem)
            .ok()
            .and_then(|pem| KeyPair::from_pem(pem).ok())
            .ok_or(CertError::Pem {
                path: key_path.clone(),
                what: "CA private key",
            })?;
        ClusterCa::from_parts(&bundle, key, &key_path)
    }

    /// Reads node `id`'s identity and checks that it names that node and
    /// chains to `ca.pem`.
    ///
    /// # Errors
    /// [`CertError`] for missing, unparsable, foreign or mislabelled files.
    pub fn load_node(&self, id: NodeId) -> Result<Identity, CertError> {
        let (cert, key) = self.node_paths(id);
        let identity = self.load_pair(&cert, &key)?;
        if identity.role() != Role::Node(id) {
            return Err(CertError::NoIdentity);
        }
        self.load_ca_cert()?.verify(identity.chain(), true)?;
        Ok(identity)
    }

    /// Reads the first client's identity (`client.pem`) and checks that it
    /// is a client's and chains to `ca.pem`.
    ///
    /// # Errors
    /// As [`CertDir::load_node`].
    pub fn load_client(&self) -> Result<Identity, CertError> {
        self.load_named_client(FIRST_CLIENT)
    }

    /// Reads client `name`'s identity (`client-<name>.pem`, or `client.pem`
    /// for [`FIRST_CLIENT`]) and checks that it names that client and
    /// chains to `ca.pem`.
    ///
    /// # Errors
    /// [`CertError::InvalidClientName`] for a name no client can have,
    /// [`CertError::OtherClient`] for files naming another client, else as
    /// [`CertDir::load_node`].
    pub fn load_named_client(&self, name: &str) -> Result<Identity, CertError> {
        check_client_name(name)?;
        let (cert, key) = self.named_client_paths(name);
        let identity = self.load_pair(&cert, &key)?;
        let Some(client) = identity
            .client()
            .filter(|_| identity.role() == Role::Client)
        else {
            return Err(CertError::NoIdentity);
        };
        if client.name() != name {
            return Err(CertError::OtherClient {
                path: cert,
                found: client.to_string(),
            });
        }
        self.load_ca_cert()?.verify(identity.chain(), false)?;
        Ok(identity)
    }

    fn load_pair(&self, cert: &Path, key: &Path) -> Result<Identity, CertError> {
        let cert_pem = read(cert)?;
        check_private(key)?;
        let key_pem = read(key)?;
        Identity::parse(&cert_pem, &key_pem, cert)
    }

    fn write_pair(
        &self,
        cert: &Path,
        cert_pem: &str,
        key: &Path,
        key_pem: &str,
    ) -> Result<(), CertError> {
        for path in [cert, key] {
            if path.exists() {
                return Err(CertError::Exists(path.to_owned()));
            }
        }
        fs::create_dir_all(&self.root).map_err(|source| CertError::Io {
            path: self.root.clone(),
            source,
        })?;
        write_new(key, key_pem, true)?;
        if let Err(err) = write_new(cert, cert_pem, false) {
            let _ = fs::remove_file(key);
            return Err(err);
        }
        Ok(())
    }
}

/// Creates `dir` (and its parents) with mode `0700` on Unix: the CA's key
/// lives there.
fn create_private_dir(dir: &Path) -> Result<(), CertError> {
    let io = |source| CertError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(io)
}

/// Refuses a private key that its group or others may read (Unix only).
fn check_private(path: &Path) -> Result<(), CertError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let metadata = fs::metadata(path).map_err(|source| CertError::Io {
            path: path.to_owned(),
            source,
        })?;
        let mode = metadata.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(CertError::KeyReadable {
                path: path.to_owned(),
                mode,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>, CertError> {
    fs::read(path).map_err(|source| CertError::Io {
        path: path.to_owned(),
        source,
    })
}

fn write_new(path: &Path, text: &str, secret: bool) -> Result<(), CertError> {
    let io = |source| CertError::Io {
        path: path.to_owned(),
        source,
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(path).map_err(|err| {
        if err.kind() == std::io::ErrorKind::AlreadyExists {
            CertError::Exists(path.to_owned())
        } else {
            io(err)
        }
    })?;
    let written = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all());
    if let Err(err) = written {
        let _ = fs::remove_file(path);
        return Err(io(err));
    }
    Ok(())
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn identities_round_trip_through_pem() {
        let ca = ClusterCa::generate().unwrap();
        let node = ca
            .issue_node(NodeId::new(7), &["127.0.0.1".into(), "db7.example".into()])
            .unwrap();
        assert_eq!(node.role(), Role::Node(NodeId::new(7)));
        let again = Identity::from_pem(&node.cert_pem(), &node.key_pem()).unwrap();
        assert_eq!(again.chain(), node.chain());
        assert_eq!(again.role(), node.role());
        let client = ca.issue_client().unwrap();
        assert_eq!(client.role(), Role::Client);
        ca.cert().verify(client.chain(), false).unwrap();
        // The client certificate may not act as a server.
        assert!(ca.cert().verify(client.chain(), true).is_err());
        let reloaded = ClusterCa::from_pem(&ca.cert().to_pem(), &ca.key_pem()).unwrap();
        let later = reloaded.issue_node(NodeId::new(8), &[]).unwrap();
        ca.cert().verify(later.chain(), true).unwrap();
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

    #[test]
    fn leaves_last_90_days_by_default_and_the_ca_ten_years() {
        let ca = ClusterCa::generate().unwrap();
        let days = |der: &CertificateDer<'_>| {
            let info = CertInfo::parse(der).unwrap();
            (info.not_after - info.not_before) as f64 / 86_400.0
        };
        // An hour of slack before the issue time.
        let leaf = days(&ca.issue_node(NodeId::new(1), &[]).unwrap().chain()[0]);
        assert!((leaf - 90.0).abs() < 0.1, "{leaf}");
        let ca_days = days(ca.cert().der());
        assert!((ca_days - 3650.0).abs() < 0.1, "{ca_days}");
        let mut short = ClusterCa::generate().unwrap();
        short.set_validity(Duration::from_secs(7 * 86_400));
        let week = days(&short.issue_client().unwrap().chain()[0]);
        assert!((week - 7.0).abs() < 0.1, "{week}");
    }

    #[test]
    fn a_bundle_trusts_every_ca_in_it_and_a_ca_key_finds_its_own_certificate() {
        let old = ClusterCa::generate().unwrap();
        let new = ClusterCa::generate().unwrap();
        let bundle = CaCert::bundle([old.cert(), new.cert(), old.cert()]);
        assert_eq!(bundle.ders().len(), 2);
        let parsed = CaCert::from_pem(&bundle.to_pem()).unwrap();
        assert_eq!(parsed, bundle);
        for ca in [&old, &new] {
            let node = ca.issue_node(NodeId::new(1), &[]).unwrap();
            bundle.verify(node.chain(), true).unwrap();
        }
        // The key picks its certificate out of the bundle.
        let reloaded = ClusterCa::from_pem(&bundle.to_pem(), &new.key_pem()).unwrap();
        assert_eq!(reloaded.cert(), new.cert());
        let third = ClusterCa::generate().unwrap();
        assert!(matches!(
            ClusterCa::from_pem(&bundle.to_pem(), &third.key_pem()),
            Err(CertError::CaKeyMismatch { .. })
        ));
        // A CA's certificate is shown as a CA, a leaf with its serial.
        let info = CertInfo::parse(new.cert().der()).unwrap();
        assert_eq!(info.kind, CertKind::Ca);
        let leaf = new
            .issue_node(NodeId::new(4), &["10.0.0.4".into()])
            .unwrap();
        let info = CertInfo::parse(&leaf.chain()[0]).unwrap();
        assert_eq!(info.kind, CertKind::Node(NodeId::new(4)));
        assert_eq!(info.ip_addresses, ["10.0.0.4".parse::<IpAddr>().unwrap()]);
        assert_eq!(
            Some(info.serial),
            crate::revoked::Serial::of(&leaf.chain()[0])
        );
    }

    #[test]
    fn reserved_and_invalid_names_are_refused() {
        let ca = ClusterCa::generate().unwrap();
        for bad in [
            "client.gossip-kv",
            "node-3.gossip-kv",
            "gossip-kv",
            "",
            "a b",
        ] {
            assert!(
                matches!(
                    ca.issue_node(NodeId::new(1), &[bad.to_owned()]),
                    Err(CertError::InvalidName(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn foreign_certificates_do_not_verify() {
        let ours = ClusterCa::generate().unwrap();
        let theirs = ClusterCa::generate().unwrap();
        let node = theirs.issue_node(NodeId::new(1), &[]).unwrap();
        assert!(matches!(
            ours.cert().verify(node.chain(), true),
            Err(CertError::WrongCa(_))
        ));
    }

    #[test]
    fn pem_encoding_matches_the_parser() {
        for len in 0..10 {
            let data: Vec<u8> = (0..len).map(|i: u8| i.wrapping_mul(37)).collect();
            let pem = pem_encode("CERTIFICATE", &data);
            if len > 0 {
                let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
                assert_eq!(der.as_ref(), &data[..]);
            }
        }
    }

    #[cfg(unix)]
    #[test]
    fn keys_readable_by_group_or_others_are_refused() {
        use std::os::unix::fs::PermissionsExt as _;

        let dir = std::env::temp_dir().join(format!("gkv-key-mode-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let certs = CertDir::new(&dir);
        let ca = ClusterCa::generate().unwrap();
        certs.write_ca(&ca).unwrap();
        certs
            .write_identity(&ca.issue_node(NodeId::new(3), &[]).unwrap())
            .unwrap();
        certs.write_identity(&ca.issue_client().unwrap()).unwrap();
        assert!(certs.load_node(NodeId::new(3)).is_ok());
        let chmod = |path: &Path, mode: u32| {
            fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
        };
        let (_, node_key) = certs.node_paths(NodeId::new(3));
        let (_, client_key) = certs.client_paths();
        for (path, mode) in [(&node_key, 0o644), (&node_key, 0o640), (&client_key, 0o604)] {
            chmod(path, mode);
            let refused = if path == &node_key {
                certs.load_node(NodeId::new(3)).map(drop)
            } else {
                certs.load_client().map(drop)
            };
            assert!(
                matches!(&refused, Err(CertError::KeyReadable { mode: m, .. }) if *m == mode),
                "{refused:?}"
            );
            chmod(path, 0o600);
        }
        // The CA's key lives in a directory of its own, closed to others.
        assert!(certs.ca_key_path().starts_with(certs.ca_dir()));
        assert!(!certs.old_ca_key_path().exists());
        let dir_mode = fs::metadata(certs.ca_dir()).unwrap().permissions().mode() & 0o777;
        assert_eq!(dir_mode, 0o700);
        chmod(&certs.ca_key_path(), 0o644);
        assert!(matches!(
            certs.load_ca(),
            Err(CertError::KeyReadable { .. })
        ));
        assert!(certs.load_node(NodeId::new(3)).is_ok() && certs.load_client().is_ok());
        let _ = fs::remove_dir_all(&dir);
    }
}
