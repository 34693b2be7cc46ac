//! [`Identity`]: a certificate chain with its private key, and their PEM encoding.

use std::fmt;
use std::path::Path;

use lww_crdt::NodeId;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::CertError;
use super::names::{ClientIdentity, Role, client_in_certificate, role_of};

/// A certificate chain (leaf first) with its private key, and the role the
/// leaf names.
pub struct Identity {
    pub(super) role: Role,
    pub(super) client: Option<ClientIdentity>,
    pub(super) chain: Vec<CertificateDer<'static>>,
    pub(super) key: PrivateKeyDer<'static>,
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
    /// ([`parse_client_name`](super::parse_client_name)).
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

    pub(super) fn parse(
        cert_pem: &[u8],
        key_pem: &[u8],
        path: &Path,
    ) -> Result<Identity, CertError> {
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

pub(super) fn pem_encode(label: &str, der: &[u8]) -> String {
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
    use crate::certs::ClusterCa;

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
}
