//! [`CertInfo`]: what one certificate holds that an operator needs, and [`not_after`].

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use lww_crdt::NodeId;
use rustls::pki_types::CertificateDer;

use super::CertError;
use super::ca::parse_bundle;
use super::dir::read;
use super::names::{ClientIdentity, Role, client_in_certificate, role_of};

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
