//! [`CertDir`]: the directory of PEM certificates and keys, and its file helpers.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use lww_crdt::NodeId;
use rcgen::KeyPair;

use super::ca::{CaCert, ClusterCa, parse_bundle};
use super::identity::Identity;
use super::names::{Role, check_client_name};
use super::{CertError, FIRST_CLIENT};

/// A directory of cluster certificates; see the [module documentation](super)
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

pub(super) fn read(path: &Path) -> Result<Vec<u8>, CertError> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
