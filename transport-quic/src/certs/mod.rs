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

use std::path::PathBuf;
use std::time::Duration;

mod ca;
mod dir;
mod identity;
mod info;
mod names;

pub use ca::{CaCert, ClusterCa};
pub use dir::CertDir;
pub use identity::Identity;
pub use info::{CertInfo, CertKind, not_after};
pub use names::{
    ClientIdentity, ClientRole, Role, check_client_name, client_in_certificate,
    node_in_certificate, node_name, parse_client_name, parse_node_name, role_of,
};

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
