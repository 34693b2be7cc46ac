//! TLS: rustls configurations on the ring provider, pinned to the cluster
//! CA, and the checks that tie a certificate to a node id or to the client
//! role.
//!
//! Servers require a client certificate chaining to the CA
//! (`WebPkiClientVerifier`); clients trust only the CA. Both may trust a
//! bundle of CAs (a CA change), and both may refuse certificates whose
//! serial a [`DenyList`] holds: the `*_with_revoked` configurations check
//! it during the handshake, after the chain, so a revoked certificate
//! cannot connect at all. Only TLS 1.3 is offered (QUIC needs nothing
//! else).

use std::sync::Arc;

use lww_crdt::NodeId;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, DnsName, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};

use crate::certs::{CaCert, ClientIdentity, Identity, Role, node_name};
use crate::revoked::DenyList;

/// ALPN of the node-to-node gossip protocol, version 2 (links carry streams
/// both ways, and datagrams).
pub const PEER_ALPN: &[u8] = b"gossip-kv/2";

/// ALPN of the client request protocol, version 1.
pub const CLIENT_ALPN: &[u8] = b"gossip-kv-client/1";

/// Why a TLS configuration could not be built. Nothing was built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rustls refused the certificate, key or CA (a key that does not
    /// match its certificate, an unusable CA, ...).
    #[error("TLS configuration refused: {0}")]
    Rustls(#[from] rustls::Error),
    /// A certificate verifier could not be built from the CA.
    #[error("certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// The identity's role does not fit the configuration (a client
    /// identity for a node's server, or the reverse).
    #[error("a {got} identity cannot be used here; {wanted} needed")]
    Role {
        /// The identity's role.
        got: Role,
        /// What the configuration needs.
        wanted: &'static str,
    },
    /// quinn refused the rustls configuration (no TLS 1.3 initial suite).
    #[error("QUIC needs a TLS 1.3 initial cipher suite")]
    NoInitialCipherSuite,
}

/// The endpoint configuration of a node: its stateless-reset key, and the
/// key that marks the connection ids it issues as its own, both derived
/// from the node's private key so that they outlive the process. A node
/// killed and started again at the same address then recognizes a peer's
/// packets on a connection of its earlier life and answers them with a
/// stateless reset the peer can verify; the peer drops that connection at
/// once and dials anew, instead of sending into it until the idle timeout
/// (30 s) says it is dead. With keys drawn at random by each process, the
/// new one drops such packets unanswered.
pub fn endpoint_config(identity: &Identity) -> quinn::EndpointConfig {
    let derive = |label: &[u8]| {
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        context.update(label);
        context.update(identity.key().secret_der());
        context.finish()
    };
    let reset = derive(b"gossip-kv stateless reset key\0");
    let mut config = quinn::EndpointConfig::new(Arc::new(ring::hmac::Key::new(
        ring::hmac::HMAC_SHA256,
        reset.as_ref(),
    )));
    let ids = derive(b"gossip-kv connection id key\0");
    let mut id_key = [0u8; 8];
    id_key.copy_from_slice(&ids.as_ref()[..8]);
    let id_key = u64::from_le_bytes(id_key);
    config.cid_generator(move || {
        Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(id_key))
    });
    config
}

/// The ring crypto provider every configuration here uses, with TLS 1.3's
/// AES-128-GCM-SHA256 first: QUIC protects its Initial packets with it
/// anyway, and its SHA-256 runs on the CPU's SHA extensions where ring's
/// SHA-384 does not, which made the transcript hashing of AES-256-GCM-
/// SHA384 a seventh of a handshake's CPU.
pub fn provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .sort_by_key(|suite| suite.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    Arc::new(provider)
}

fn roots(ca: &CaCert) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for der in ca.ders() {
        roots.add(der.clone())?;
    }
    Ok(Arc::new(roots))
}

/// A client certificate verifier that refuses, after the chain checks,
/// a chain holding a revoked certificate.
#[derive(Debug)]
struct DenyingClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    revoked: DenyList,
}

impl ClientCertVerifier for DenyingClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        self.revoked.check(std::slice::from_ref(end_entity))?;
        self.revoked.check(intermediates)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A server certificate verifier that refuses, after the chain and name
/// checks, a chain holding a revoked certificate.
#[derive(Debug)]
struct DenyingServerVerifier {
    inner: Arc<WebPkiServerVerifier>,
    revoked: DenyList,
}

impl ServerCertVerifier for DenyingServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        self.revoked.check(std::slice::from_ref(end_entity))?;
        self.revoked.check(intermediates)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn root_hint_subjects(&self) -> Option<&[DistinguishedName]> {
        self.inner.root_hint_subjects()
    }
}

fn need_node(identity: &Identity) -> Result<NodeId, TlsError> {
    identity.node_id().ok_or(TlsError::Role {
        got: identity.role(),
        wanted: "a node identity",
    })
}

/// A node's server configuration: presents the node's certificate, requires
/// a client certificate from the CA, and offers [`PEER_ALPN`] (and
/// [`CLIENT_ALPN`] when `serve_clients`).
///
/// # Errors
/// [`TlsError`] for a client identity or an unusable certificate or key.
pub fn server_config(
    identity: &Identity,
    ca: &CaCert,
    serve_clients: bool,
) -> Result<rustls::ServerConfig, TlsError> {
    let mut alpn = vec![PEER_ALPN.to_vec()];
    if serve_clients {
        alpn.push(CLIENT_ALPN.to_vec());
    }
    node_server_config(identity, ca, alpn, None)
}

/// [`server_config`] refusing, during the handshake, a client or peer
/// certificate whose serial `revoked` holds (now or after a
/// [`replace`](DenyList::replace)). It offers no TLS session resumption:
/// a resumed session skips the certificate checks, so every handshake is
/// a full one.
///
/// # Errors
/// As [`server_config`].
pub fn server_config_with_revoked(
    identity: &Identity,
    ca: &CaCert,
    serve_clients: bool,
    revoked: &DenyList,
) -> Result<rustls::ServerConfig, TlsError> {
    let mut alpn = vec![PEER_ALPN.to_vec()];
    if serve_clients {
        alpn.push(CLIENT_ALPN.to_vec());
    }
    node_server_config(identity, ca, alpn, Some(revoked))
}

/// A node's configuration for an HTTPS API on TCP: presents the node's
/// certificate, requires a client certificate from the CA, and offers
/// HTTP/1.1. The server must still check that the client's certificate is
/// a client's ([`client_identity`]), not a node's.
///
/// # Errors
/// [`TlsError`] for a client identity or an unusable certificate or key.
pub fn https_server_config(
    identity: &Identity,
    ca: &CaCert,
) -> Result<rustls::ServerConfig, TlsError> {
    node_server_config(identity, ca, vec![b"http/1.1".to_vec()], None)
}

/// [`https_server_config`] refusing, during the handshake, a client
/// certificate whose serial `revoked` holds; without session resumption,
/// as [`server_config_with_revoked`].
///
/// # Errors
/// As [`https_server_config`].
pub fn https_server_config_with_revoked(
    identity: &Identity,
    ca: &CaCert,
    revoked: &DenyList,
) -> Result<rustls::ServerConfig, TlsError> {
    node_server_config(identity, ca, vec![b"http/1.1".to_vec()], Some(revoked))
}

/// TLS 1.3 presenting the node's certificate, requiring one from the CA,
/// offering `alpn`.
fn node_server_config(
    identity: &Identity,
    ca: &CaCert,
    alpn: Vec<Vec<u8>>,
    revoked: Option<&DenyList>,
) -> Result<rustls::ServerConfig, TlsError> {
    need_node(identity)?;
    let provider = provider();
    let webpki =
        WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider.clone()).build()?;
    let verifier: Arc<dyn ClientCertVerifier> = match revoked {
        Some(revoked) => Arc::new(DenyingClientVerifier {
            inner: webpki,
            revoked: revoked.clone(),
        }),
        None => webpki,
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.chain().to_vec(), identity.key().clone_key())?;
    config.alpn_protocols = alpn;
    if revoked.is_some() {
        // A resumed session keeps the certificate it was made with, unchecked:
        // a revoked one would come back on it.
        config.send_tls13_tickets = 0;
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    }
    Ok(config)
}

fn client_builder(
    identity: &Identity,
    ca: &CaCert,
    alpn: &[u8],
    revoked: Option<&DenyList>,
) -> Result<rustls::ClientConfig, TlsError> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?;
    let builder = match revoked {
        Some(revoked) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(DenyingServerVerifier {
                inner: WebPkiServerVerifier::builder_with_provider(roots(ca)?, provider).build()?,
                revoked: revoked.clone(),
            })),
        None => builder.with_root_certificates(roots(ca)?),
    };
    let mut config =
        builder.with_client_auth_cert(identity.chain().to_vec(), identity.key().clone_key())?;
    config.alpn_protocols = vec![alpn.to_vec()];
    if revoked.is_some() {
        // Resuming would skip checking the server's certificate again.
        config.resumption = rustls::client::Resumption::disabled();
    }
    Ok(config)
}

/// A node's configuration for dialing its peers: presents the node's
/// certificate, trusts only the CA, offers [`PEER_ALPN`]. Dial with the
/// server name [`node_name`]`(peer)`, so the peer is authenticated as that
/// node.
///
/// # Errors
/// [`TlsError`] for a client identity or an unusable certificate or key.
pub fn peer_client_config(
    identity: &Identity,
    ca: &CaCert,
) -> Result<rustls::ClientConfig, TlsError> {
    need_node(identity)?;
    client_builder(identity, ca, PEER_ALPN, None)
}

/// [`peer_client_config`] refusing, during the handshake, a peer whose
/// certificate's serial `revoked` holds; without session resumption, so
/// every dial checks the peer's certificate anew.
///
/// # Errors
/// As [`peer_client_config`].
pub fn peer_client_config_with_revoked(
    identity: &Identity,
    ca: &CaCert,
    revoked: &DenyList,
) -> Result<rustls::ClientConfig, TlsError> {
    need_node(identity)?;
    client_builder(identity, ca, PEER_ALPN, Some(revoked))
}

/// A client's configuration: presents the client certificate, trusts only
/// the CA, offers [`CLIENT_ALPN`].
///
/// # Errors
/// [`TlsError`] for a node identity or an unusable certificate or key.
pub fn client_config(identity: &Identity, ca: &CaCert) -> Result<rustls::ClientConfig, TlsError> {
    if identity.role() != Role::Client {
        return Err(TlsError::Role {
            got: identity.role(),
            wanted: "a client identity",
        });
    }
    client_builder(identity, ca, CLIENT_ALPN, None)
}

/// Wraps a rustls server configuration for quinn.
///
/// # Errors
/// [`TlsError::NoInitialCipherSuite`].
pub fn quinn_server(config: rustls::ServerConfig) -> Result<quinn::ServerConfig, TlsError> {
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(Arc::new(config))
        .map_err(|_| TlsError::NoInitialCipherSuite)?;
    Ok(quinn::ServerConfig::with_crypto(Arc::new(crypto)))
}

/// Wraps a rustls client configuration for quinn.
///
/// # Errors
/// [`TlsError::NoInitialCipherSuite`].
pub fn quinn_client(config: rustls::ClientConfig) -> Result<quinn::ClientConfig, TlsError> {
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(Arc::new(config))
        .map_err(|_| TlsError::NoInitialCipherSuite)?;
    Ok(quinn::ClientConfig::new(Arc::new(crypto)))
}

/// Whether `leaf` (already verified against the CA by the handshake) is
/// valid for `name`.
pub fn valid_for(leaf: &CertificateDer<'_>, name: &str) -> bool {
    let Ok(dns) = DnsName::try_from(name) else {
        return false;
    };
    webpki::EndEntityCert::try_from(leaf)
        .and_then(|cert| cert.verify_is_valid_for_subject_name(&ServerName::DnsName(dns)))
        .is_ok()
}

/// Whether `leaf` proves node `id`: valid for `node-<id>.gossip-kv`.
pub fn proves_node(leaf: &CertificateDer<'_>, id: NodeId) -> bool {
    valid_for(leaf, &node_name(id))
}

/// Whether `leaf` is a client certificate: it names one client
/// ([`client_identity`]).
pub fn proves_client(leaf: &CertificateDer<'_>) -> bool {
    client_identity(leaf).is_some()
}

/// The client `leaf` (already verified against the CA by the handshake)
/// names, with its role; `None` for a node's certificate or one naming no
/// single client.
pub fn client_identity(leaf: &CertificateDer<'_>) -> Option<ClientIdentity> {
    crate::certs::client_in_certificate(leaf)
}

/// The ALPN protocol and the peer's certificate chain of an established
/// quinn connection.
pub(crate) fn handshake_facts(
    conn: &quinn::Connection,
) -> (Option<Vec<u8>>, Option<Vec<CertificateDer<'static>>>) {
    let alpn = conn
        .handshake_data()
        .and_then(|data| data.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|data| data.protocol);
    let chain = conn
        .peer_identity()
        .and_then(|identity| identity.downcast::<Vec<CertificateDer<'static>>>().ok())
        .map(|chain| *chain);
    (alpn, chain)
}
