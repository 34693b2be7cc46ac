//! Certificates: a cluster CA, node and client identities, and the directory
//! they live in.
//!
//! Every certificate is issued by one cluster CA (made here with rcgen) and
//! names its holder in a DNS subject alternative name:
//!
//! - a node's certificate names `node-<id>.gossip-kv` ([`node_name`]), plus
//!   the IP addresses and DNS names it is reached at; it may act as TLS
//!   server and as TLS client (it dials its peers).
//! - the client certificate names `client.gossip-kv` ([`CLIENT_NAME`]) and
//!   may only act as a TLS client.
//!
//! Names under `.gossip-kv` are reserved for these roles: a node certificate
//! cannot carry another node's name or the client name as an extra name.
//!
//! # Directory layout
//!
//! [`CertDir`] reads and writes PEM files in one directory:
//!
//! | file | content | who needs it |
//! |---|---|---|
//! | `ca.pem` | the cluster CA certificate | every node and client |
//! | `ca.key` | the CA private key (PKCS#8) | only whoever issues certificates; keep it offline |
//! | `node-<id>.pem` | node `<id>`'s certificate | node `<id>` |
//! | `node-<id>.key` | node `<id>`'s private key (PKCS#8) | node `<id>` |
//! | `client.pem` | the client certificate | clients |
//! | `client.key` | the client private key (PKCS#8) | clients |
//!
//! `<id>` is the decimal node id. Private keys are written with mode `0600`
//! on Unix, and a key its group or others may read is refused when loaded
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

/// The DNS name the client certificate carries.
pub const CLIENT_NAME: &str = "client.gossip-kv";

/// The common name of the cluster CA. Certificates issued by a CA loaded
/// from files name this issuer, so a CA made elsewhere must use it too.
pub const CA_COMMON_NAME: &str = "gossip-kv cluster CA";

/// How long a new CA certificate is valid by default (ten years).
pub const DEFAULT_CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// How long a new node or client certificate is valid by default (two years).
pub const DEFAULT_LEAF_VALIDITY: Duration = Duration::from_secs(2 * 365 * 24 * 3600);

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
    #[error("certificate names no single gossip-kv identity (node-<id>.{DOMAIN} or {CLIENT_NAME})")]
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

/// The cluster CA certificate: the only trust anchor nodes and clients
/// accept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaCert {
    der: CertificateDer<'static>,
}

impl CaCert {
    /// Parses the first certificate of a PEM text.
    ///
    /// # Errors
    /// [`CertError::Pem`] when there is none.
    pub fn from_pem(pem: &str) -> Result<CaCert, CertError> {
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|_| CertError::Pem {
            path: PathBuf::from("<memory>"),
            what: "CA certificate",
        })?;
        Ok(CaCert { der })
    }

    /// The certificate, DER-encoded.
    pub fn der(&self) -> &CertificateDer<'static> {
        &self.der
    }

    /// The certificate as PEM text.
    pub fn to_pem(&self) -> String {
        pem_encode("CERTIFICATE", self.der.as_ref())
    }

    /// Checks that `chain` (leaf first) is issued by this CA, is currently
    /// valid, and is fit for TLS client authentication, and for server
    /// authentication too when `server` is set.
    ///
    /// # Errors
    /// [`CertError::WrongCa`] or [`CertError::Invalid`]; nothing changes.
    pub fn verify(&self, chain: &[CertificateDer<'_>], server: bool) -> Result<(), CertError> {
        let leaf = chain.first().ok_or(CertError::NoIdentity)?;
        let cert = webpki::EndEntityCert::try_from(leaf).map_err(CertError::Invalid)?;
        let anchor = webpki::anchor_from_trusted_cert(&self.der).map_err(CertError::Invalid)?;
        let now = UnixTime::now();
        let anchors = [anchor];
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
            cert: CaCert { der },
            issuer: Issuer::new(params, key),
            validity: DEFAULT_LEAF_VALIDITY,
        })
    }

    /// A CA from its certificate and private key in PEM. The certificate
    /// must name [`CA_COMMON_NAME`] as its subject (as every CA this module
    /// makes does): issuing checks each new certificate against it.
    ///
    /// # Errors
    /// [`CertError::Pem`] or [`CertError::Generate`] for unusable input.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<ClusterCa, CertError> {
        let cert = CaCert::from_pem(cert_pem)?;
        let key = KeyPair::from_pem(key_pem).map_err(|_| CertError::Pem {
            path: PathBuf::from("<memory>"),
            what: "CA private key",
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

    /// Issues the client certificate: it names `client.gossip-kv` and is
    /// only fit for TLS client authentication.
    ///
    /// # Errors
    /// As [`ClusterCa::issue_node`].
    pub fn issue_client(&self) -> Result<Identity, CertError> {
        self.issue(
            CLIENT_NAME,
            vec![dns_san(CLIENT_NAME)?],
            vec![ExtendedKeyUsagePurpose::ClientAuth],
            Role::Client,
        )
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
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl Identity {
    /// An identity from PEM texts: the certificate chain (leaf first) and
    /// the private key. The role comes from the leaf's names: exactly one
    /// of `node-<id>.gossip-kv` and `client.gossip-kv`.
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
        Ok(Identity { role, chain, key })
    }

    /// The role the certificate names.
    pub fn role(&self) -> Role {
        self.role
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
    for name in parsed.valid_dns_names() {
        let found = if name.eq_ignore_ascii_case(CLIENT_NAME) {
            Role::Client
        } else if let Some(id) = parse_node_name(&name.to_ascii_lowercase()) {
            Role::Node(id)
        } else {
            continue;
        };
        if role.is_some_and(|r| r != found) {
            return Err(CertError::NoIdentity);
        }
        role = Some(found);
    }
    role.ok_or(CertError::NoIdentity)
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

    /// `ca.pem`.
    pub fn ca_cert_path(&self) -> PathBuf {
        self.root.join("ca.pem")
    }

    /// `ca.key`.
    pub fn ca_key_path(&self) -> PathBuf {
        self.root.join("ca.key")
    }

    /// `node-<id>.pem` and `node-<id>.key`.
    pub fn node_paths(&self, id: NodeId) -> (PathBuf, PathBuf) {
        (
            self.root.join(format!("node-{id}.pem")),
            self.root.join(format!("node-{id}.key")),
        )
    }

    /// `client.pem` and `client.key`.
    pub fn client_paths(&self) -> (PathBuf, PathBuf) {
        (self.root.join("client.pem"), self.root.join("client.key"))
    }

    /// Writes `ca.pem` and `ca.key`, creating the directory if needed.
    ///
    /// # Errors
    /// [`CertError::Exists`] if either file exists, [`CertError::Io`]
    /// otherwise; neither file is left behind on failure.
    pub fn write_ca(&self, ca: &ClusterCa) -> Result<(), CertError> {
        self.write_pair(
            &self.ca_cert_path(),
            &ca.cert().to_pem(),
            &self.ca_key_path(),
            &ca.key_pem(),
        )
    }

    /// Writes an identity to `node-<id>.pem`/`.key` or
    /// `client.pem`/`.key`, by its role.
    ///
    /// # Errors
    /// As [`CertDir::write_ca`].
    pub fn write_identity(&self, identity: &Identity) -> Result<(), CertError> {
        let (cert, key) = match identity.role() {
            Role::Node(id) => self.node_paths(id),
            Role::Client => self.client_paths(),
        };
        self.write_pair(&cert, &identity.cert_pem(), &key, &identity.key_pem())
    }

    /// Reads `ca.pem`.
    ///
    /// # Errors
    /// [`CertError::Io`] or [`CertError::Pem`].
    pub fn load_ca_cert(&self) -> Result<CaCert, CertError> {
        let path = self.ca_cert_path();
        let pem = read(&path)?;
        let der = CertificateDer::from_pem_slice(&pem).map_err(|_| CertError::Pem {
            path,
            what: "CA certificate",
        })?;
        Ok(CaCert { der })
    }

    /// Reads `ca.pem` and `ca.key`, to issue more certificates.
    ///
    /// # Errors
    /// [`CertError::Io`] or [`CertError::Pem`].
    pub fn load_ca(&self) -> Result<ClusterCa, CertError> {
        let cert = self.load_ca_cert()?;
        let path = self.ca_key_path();
        check_private(&path)?;
        let key_pem = read(&path)?;
        let key = std::str::from_utf8(&key_pem)
            .ok()
            .and_then(|pem| KeyPair::from_pem(pem).ok())
            .ok_or(CertError::Pem {
                path,
                what: "CA private key",
            })?;
        Ok(ClusterCa {
            cert,
            issuer: Issuer::new(ca_params(DEFAULT_CA_VALIDITY), key),
            validity: DEFAULT_LEAF_VALIDITY,
        })
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

    /// Reads the client identity and checks that it is the client's and
    /// chains to `ca.pem`.
    ///
    /// # Errors
    /// As [`CertDir::load_node`].
    pub fn load_client(&self) -> Result<Identity, CertError> {
        let (cert, key) = self.client_paths();
        let identity = self.load_pair(&cert, &key)?;
        if identity.role() != Role::Client {
            return Err(CertError::NoIdentity);
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
        chmod(&certs.ca_key_path(), 0o644);
        assert!(matches!(
            certs.load_ca(),
            Err(CertError::KeyReadable { .. })
        ));
        assert!(certs.load_node(NodeId::new(3)).is_ok() && certs.load_client().is_ok());
        let _ = fs::remove_dir_all(&dir);
    }
}
