//! The certificate directory: write, load, refuse what does not fit, and
//! run a node from what was loaded.

// Test helpers unwrap like the tests they serve (clippy.toml allows it
// inside #[test] functions only).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use gossip::{MessageKind, Transmit, Transport};
use lww_crdt::NodeId;
use transport_quic::certs::{CaCert, CertDir, CertError, ClusterCa, Role};
use transport_quic::{QuicClient, QuicConfig, QuicTransport};

use common::receive;

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "transport-quic-{name}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_cluster_directory_round_trips() {
    let tmp = TempDir::new("roundtrip");
    let dir = CertDir::new(tmp.0.join("certs"));
    let ca = ClusterCa::generate().unwrap();
    dir.write_ca(&ca).unwrap();
    for id in [1, 2] {
        dir.write_identity(
            &ca.issue_node(NodeId::new(id), &["127.0.0.1".into(), "localhost".into()])
                .unwrap(),
        )
        .unwrap();
    }
    dir.write_identity(&ca.issue_client().unwrap()).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(dir.root())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "ca",
            "ca.pem",
            "client.key",
            "client.pem",
            "node-1.key",
            "node-1.pem",
            "node-2.key",
            "node-2.pem"
        ]
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.node_paths(NodeId::new(1)).1)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // The CA's key is in a directory of its own, beside a copy of its
    // certificate.
    assert!(dir.ca_key_path().ends_with("ca/ca.key"));
    assert_eq!(
        std::fs::read(dir.ca_own_cert_path()).unwrap(),
        std::fs::read(dir.ca_cert_path()).unwrap()
    );

    // Reloaded, the CA issues more certificates that chain to ca.pem.
    let reloaded = dir.load_ca().unwrap();
    assert_eq!(reloaded.cert(), ca.cert());
    dir.write_identity(&reloaded.issue_node(NodeId::new(3), &[]).unwrap())
        .unwrap();

    // Two nodes and a client run from the files.
    let ca_cert = dir.load_ca_cert().unwrap();
    let one = dir.load_node(NodeId::new(1)).unwrap();
    assert_eq!(one.role(), Role::Node(NodeId::new(1)));
    let node1 = QuicTransport::builder(one, ca_cert.clone())
        .serve_clients(true)
        .build()
        .unwrap();
    let mut node3 = QuicTransport::builder(dir.load_node(NodeId::new(3)).unwrap(), ca_cert.clone())
        .peer(NodeId::new(1), node1.local_addr())
        .build()
        .unwrap();
    node3
        .send(Transmit {
            to: NodeId::new(1),
            kind: MessageKind::Syn,
            exchange: 1,
            from_initiator: true,
            payload: b"from the files".to_vec(),
        })
        .unwrap();
    let mut node1 = node1;
    let got = receive(&mut node1, 1, Duration::from_secs(15));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].from, NodeId::new(3));
    let requests = node1.requests().unwrap();
    let server = std::thread::spawn(move || {
        let request = requests.recv_timeout(Duration::from_secs(15)).unwrap();
        request.responder.respond(request.body).unwrap();
    });
    let client = QuicClient::connect(
        node1.local_addr(),
        "localhost",
        &dir.load_client().unwrap(),
        &ca_cert,
        QuicConfig::default(),
    )
    .unwrap();
    assert_eq!(client.request(b"ping").unwrap(), b"ping");
    server.join().unwrap();
}

#[test]
fn the_ca_is_found_in_its_directory_or_beside_ca_pem_as_it_used_to_be() {
    let tmp = TempDir::new("ca-places");
    // A directory written before the CA had a directory of its own.
    let old = CertDir::new(tmp.0.join("old"));
    let ca = ClusterCa::generate().unwrap();
    std::fs::create_dir_all(old.root()).unwrap();
    std::fs::write(old.ca_cert_path(), ca.cert().to_pem()).unwrap();
    std::fs::write(old.old_ca_key_path(), ca.key_pem()).unwrap();
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(
            old.old_ca_key_path(),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    }
    assert_eq!(old.load_ca().unwrap().cert(), ca.cert());
    assert_eq!(old.ca_keys_present(), [old.old_ca_key_path()]);
    // Neither place: the error names the new one.
    let empty = CertDir::new(tmp.0.join("empty"));
    match empty.load_ca() {
        Err(CertError::Io { path, .. }) => assert_eq!(path, empty.ca_key_path()),
        other => panic!("{other:?}"),
    }
    // During a CA change ca.pem is a bundle: the key in ca/ still issues
    // with its own certificate, ca/ca.pem.
    let new_dir = CertDir::new(tmp.0.join("new"));
    let next = ClusterCa::generate().unwrap();
    new_dir.write_ca(&next).unwrap();
    std::fs::write(
        new_dir.ca_cert_path(),
        CaCert::bundle([ca.cert(), next.cert()]).to_pem(),
    )
    .unwrap();
    let loaded = new_dir.load_ca().unwrap();
    assert_eq!(loaded.cert(), next.cert());
    let node = loaded.issue_node(NodeId::new(1), &[]).unwrap();
    new_dir.write_identity(&node).unwrap();
    new_dir.load_node(NodeId::new(1)).unwrap();
}

#[test]
fn writing_never_replaces_and_loading_checks_everything() {
    let tmp = TempDir::new("checks");
    let dir = CertDir::new(&tmp.0);
    let ca = ClusterCa::generate().unwrap();
    dir.write_ca(&ca).unwrap();
    let before = std::fs::read(dir.ca_key_path()).unwrap();
    let other = ClusterCa::generate().unwrap();
    assert!(matches!(dir.write_ca(&other), Err(CertError::Exists(_))));
    assert_eq!(std::fs::read(dir.ca_key_path()).unwrap(), before);

    // Missing files.
    assert!(matches!(
        dir.load_node(NodeId::new(4)),
        Err(CertError::Io { .. })
    ));
    // Node 4's files holding node 5's certificate.
    let five = ca.issue_node(NodeId::new(5), &[]).unwrap();
    let (cert, key) = dir.node_paths(NodeId::new(4));
    std::fs::write(&cert, five.cert_pem()).unwrap();
    std::fs::write(&key, five.key_pem()).unwrap();
    // A key its group or others can read is refused before anything else.
    assert!(matches!(
        dir.load_node(NodeId::new(4)),
        Err(CertError::KeyReadable { .. })
    ));
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    assert!(matches!(
        dir.load_node(NodeId::new(4)),
        Err(CertError::NoIdentity)
    ));
    // A certificate from another CA under the right name.
    let foreign = other.issue_node(NodeId::new(6), &[]).unwrap();
    dir.write_identity(&foreign).unwrap();
    assert!(matches!(
        dir.load_node(NodeId::new(6)),
        Err(CertError::WrongCa(_))
    ));
    // Not PEM at all.
    let (cert, key) = dir.client_paths();
    std::fs::write(&cert, b"not a certificate").unwrap();
    std::fs::write(&key, b"not a key").unwrap();
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    assert!(matches!(dir.load_client(), Err(CertError::Pem { .. })));
    // A node identity cannot build a client, a client identity cannot
    // build a node.
    assert!(
        QuicTransport::builder(ca.issue_client().unwrap(), ca.cert().clone())
            .build()
            .is_err()
    );
}
