//! The cluster CA: the trusted CA certificates ([`CaCert`]) and the issuing CA ([`ClusterCa`]).

use std::fmt;
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

use super::identity::{Identity, pem_encode};
use super::names::{ClientIdentity, Role, node_name};
use super::{CA_COMMON_NAME, CertError, DEFAULT_CA_VALIDITY, DEFAULT_LEAF_VALIDITY, DOMAIN};

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
pub(super) fn parse_bundle(pem: &[u8], path: &Path) -> Result<CaCert, CertError> {
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

    pub(super) fn from_parts(
        bundle: &CaCert,
        key: KeyPair,
        path: &Path,
    ) -> Result<ClusterCa, CertError> {
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
    /// `client.gossip-kv`, the client [`FIRST_CLIENT`](super::FIRST_CLIENT)
    /// with role `write`, and is only fit for TLS client authentication.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::{CertInfo, CertKind};

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
}
