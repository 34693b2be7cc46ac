//! Named clients, roles, the audit log, revocation and certificate
//! lifetimes, end to end through the `sim-cli` binary: a read-only client
//! reads but cannot write, over QUIC and HTTPS; writes are audited with the
//! client's name; a revoked client or node is refused at the handshake once
//! the deny-list file changes, without a restart; a malformed list stops
//! the node at its start; `certs` checks client names, issues 90-day
//! certificates by default, shows serials, and finds the CA in `ca/` or
//! beside `ca.pem`.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use support::{LIMIT, NodeProc, TempDir, eventually, free_addr, json, run, stderr, stdout};
use transport_quic::certs::CertDir;

/// `sim-cli certs` with `args` after `--out DIR`; must succeed.
fn certs(dir: &str, args: &[&str]) {
    let mut all = vec!["certs", "--out", dir];
    all.extend_from_slice(args);
    let o = run(&all);
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
}

/// `sim-cli CMD ARGS --node ADDR --certs DIR [--client NAME]`.
fn client(
    cmd: &str,
    args: &[&str],
    node: &str,
    dir: &str,
    name: Option<&str>,
) -> std::process::Output {
    let mut all = vec![cmd];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--node", node, "--certs", dir]);
    if let Some(name) = name {
        all.extend_from_slice(&["--client", name]);
    }
    run(&all)
}

/// The serial `certs --show` prints for `file`.
fn serial_of(file: &str) -> String {
    let o = run(&["certs", "--show", file, "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    json(&o)[0]["serial"].as_str().unwrap().to_owned()
}

fn start(dir: &TempDir, id: u64, args: &[&str]) -> NodeProc {
    let mut all = vec!["--id".to_owned(), id.to_string()];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    NodeProc::start(&[], &all, dir.join(&format!("node-{id}.log")))
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A TLS connection to `addr` presenting client `name`'s certificate.
fn tls_to(
    addr: SocketAddr,
    dir: &str,
    name: &str,
) -> Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>, String> {
    let certs = CertDir::new(dir);
    let identity = certs.load_named_client(name).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for der in certs.load_ca_cert().unwrap().ders() {
        roots.add(der.clone()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(transport_quic::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(identity.chain().to_vec(), identity.key().clone_key())
        .unwrap();
    let server_name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let conn = rustls::ClientConnection::new(Arc::new(config), server_name).unwrap();
    let tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    Ok(rustls::StreamOwned::new(conn, tcp))
}

/// One HTTPS request presenting client `name`'s certificate from `dir`:
/// the status and body, or the TLS error.
fn https(
    addr: SocketAddr,
    dir: &str,
    name: &str,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, String), String> {
    let mut tls = tls_to(addr, dir, name)?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    match tls.read_to_end(&mut raw) {
        Ok(_) => {}
        // Some servers close without close_notify; what came counts.
        Err(_) if !raw.is_empty() => {}
        Err(e) => return Err(e.to_string()),
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no response: {text:?}"))?;
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    Ok((status, body))
}

#[test]
fn a_read_only_client_reads_but_cannot_write_over_quic_or_https_and_writes_are_audited() {
    let dir = TempDir::new("roles");
    let c = dir.str("c");
    certs(
        &c,
        &["--nodes", "0", "--name", "127.0.0.1", "--client", "dash"],
    );
    certs(&c, &["--add", "--client", "app", "--role", "write"]);
    let addr = free_addr();
    let port = free_tcp_port();
    let http = format!("0.0.0.0:{port}");
    let node = start(
        &dir,
        0,
        &["--listen", &addr, "--certs", &c, "--http", &http],
    );
    node.listen_addr(LIMIT);
    let https_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert!(eventually(LIMIT, || TcpStream::connect(https_addr).is_ok()));

    // The writer writes, over QUIC and HTTPS.
    let o = client("put", &["colour", "blue"], &addr, &c, Some("app"));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let (status, _) = https(https_addr, &c, "app", "PUT", "/v1/kv/shape", "round").unwrap();
    assert_eq!(status, 200);

    // The reader reads, over QUIC and HTTPS ...
    let o = client("get", &["colour", "--raw"], &addr, &c, Some("dash"));
    assert_eq!(
        (o.status.code(), stdout(&o).as_str()),
        (Some(0), "blue"),
        "{}",
        stderr(&o)
    );
    let (status, body) = https(https_addr, &c, "dash", "GET", "/v1/kv/shape", "").unwrap();
    assert_eq!((status, body.as_str()), (200, "round"));
    // ... and cannot write: a typed refusal naming the client and its role.
    for (cmd, args) in [("put", &["colour", "red"][..]), ("delete", &["colour"][..])] {
        let o = client(cmd, args, &addr, &c, Some("dash"));
        assert_eq!(o.status.code(), Some(2), "{cmd}");
        let err = stderr(&o);
        assert!(err.contains("client \"dash\" has role read"), "{err}");
    }
    let o = client("get", &["colour", "--raw"], &addr, &c, Some("dash"));
    assert_eq!(stdout(&o), "blue", "a refused write changed the value");
    for method in ["PUT", "DELETE"] {
        let (status, body) =
            https(https_addr, &c, "dash", method, "/v1/kv/shape", "square").unwrap();
        assert_eq!(status, 403, "{method}: {body}");
        let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(doc["code"], "forbidden");
        assert!(
            doc["message"]
                .as_str()
                .unwrap()
                .contains("\"dash\" has role read")
        );
    }
    // GOSSIP_KV_CLIENT picks the identity as --client does.
    let o = std::process::Command::new(support::bin())
        .args(["put", "colour", "red", "--node", &addr, "--certs", &c])
        .env("GOSSIP_KV_CLIENT", "dash")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // The first client, client.pem, still writes.
    let o = client("put", &["colour", "green"], &addr, &c, None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    // Every write taken is in the audit log with its client, and the
    // refusals too.
    let audited = |needles: &[&str]| {
        eventually(LIMIT, || {
            node.log().lines().any(|line| {
                line.contains("gossip_kv::audit") && needles.iter().all(|n| line.contains(n))
            })
        })
    };
    assert!(
        audited(&[
            "INFO",
            "client=\"app\"",
            "via=\"quic\"",
            "op=\"put\"",
            "key=\"colour\""
        ]),
        "{}",
        node.log()
    );
    assert!(audited(&[
        "INFO",
        "client=\"app\"",
        "via=\"https\"",
        "key=\"shape\""
    ]));
    assert!(audited(&["INFO", "client=\"client\"", "role=\"write\""]));
    assert!(audited(&[
        "WARN",
        "client=\"dash\"",
        "role=\"read\"",
        "op=\"delete\""
    ]));
    assert!(
        !node
            .log()
            .lines()
            .any(|l| l.contains("INFO") && l.contains("client=\"dash\""))
    );
}

#[test]
fn revoked_clients_and_nodes_are_refused_at_the_handshake_once_the_list_changes() {
    let dir = TempDir::new("revoked");
    let c = dir.str("c");
    certs(
        &c,
        &[
            "--nodes",
            "1,2",
            "--name",
            "127.0.0.1",
            "--client",
            "laptop",
        ],
    );
    let list = dir.join("revoked.txt");
    std::fs::write(&list, "# revoked certificates\n").unwrap();
    let list_str = list.to_string_lossy().into_owned();
    let (addr1, addr2) = (free_addr(), free_addr());
    let port = free_tcp_port();
    let http = format!("0.0.0.0:{port}");
    let one = start(
        &dir,
        1,
        &[
            "--listen",
            &addr1,
            "--certs",
            &c,
            "--revoked",
            &list_str,
            "--http",
            &http,
        ],
    );
    one.listen_addr(LIMIT);
    let peer = format!("1={addr1}");
    let two = start(
        &dir,
        2,
        &["--listen", &addr2, "--certs", &c, "--peer", &peer],
    );
    two.listen_addr(LIMIT);
    let https_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert!(eventually(LIMIT, || TcpStream::connect(https_addr).is_ok()));
    // Ready (200) only once node 1 has completed an exchange with node 2,
    // which may come a moment after its port opens.
    assert!(eventually(LIMIT, || matches!(
        https(https_addr, &c, "laptop", "GET", "/v1/health", ""),
        Ok((200, _))
    )));

    // Before: the laptop reads (and holds an HTTPS connection open), and a
    // write on node 2 reaches node 1.
    let mut open = tls_to(https_addr, &c, "laptop").unwrap();
    let keep_alive = format!("GET /v1/health HTTP/1.1\r\nHost: {https_addr}\r\n\r\n");
    open.write_all(keep_alive.as_bytes()).unwrap();
    let mut head = [0u8; 12];
    open.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    let o = client("get", &["k"], &addr1, &c, Some("laptop"));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(https(https_addr, &c, "laptop", "GET", "/v1/health", "").is_ok());
    assert!(eventually(LIMIT, || client(
        "put",
        &["before", "x"],
        &addr2,
        &c,
        None
    )
    .status
    .success()));
    assert!(eventually(LIMIT, || client(
        "get",
        &["before"],
        &addr1,
        &c,
        None
    )
    .status
    .success()));

    // The laptop's certificate revoked: node 1 re-reads the list and
    // refuses it at the handshake, over QUIC and HTTPS, without a restart.
    let laptop = serial_of(&format!("{c}/client-laptop.pem"));
    std::fs::write(
        &list,
        format!("# revoked certificates\n{laptop}  # lost laptop\n"),
    )
    .unwrap();
    assert!(
        eventually(LIMIT, || {
            let o = client("get", &["k"], &addr1, &c, Some("laptop"));
            o.status.code() == Some(2) && stderr(&o).contains("Revoked")
        }),
        "{}",
        one.log()
    );
    assert!(https(https_addr, &c, "laptop", "GET", "/v1/health", "").is_err());
    assert!(one.log().contains("revocation list reloaded"));
    // The HTTPS connection it held open was cut.
    let mut rest = Vec::new();
    let _ = open.read_to_end(&mut rest);
    assert!(
        one.log()
            .contains("closed the HTTPS connection of a client whose certificate was revoked"),
        "{}",
        one.log()
    );
    assert!(
        one.log()
            .contains("refused connection: TLS handshake failed")
    );
    // Other clients go on.
    let o = client("get", &["before"], &addr1, &c, None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let status = json(&client("status", &["--json"], &addr1, &c, None));
    assert_eq!(status["security"]["revoked_serials"], 1);
    let refused_clients = status["security"]["revoked_refused"].as_u64().unwrap();
    assert!(refused_clients >= 2, "{status}");

    // A malformed line on reload: the previous list stays in force.
    std::fs::write(&list, format!("{laptop}\nnot a serial\n")).unwrap();
    assert!(eventually(LIMIT, || one
        .log()
        .contains("line 2: \"not a serial\"")));
    let o = client("get", &["k"], &addr1, &c, Some("laptop"));
    assert_eq!(o.status.code(), Some(2));

    // Node 2's certificate revoked too: node 1 refuses it both ways, so
    // writes on node 2 no longer reach node 1.
    let node2 = serial_of(&format!("{c}/node-2.pem"));
    std::fs::write(&list, format!("{laptop}\n{node2}\n")).unwrap();
    assert!(eventually(LIMIT, || {
        let status = json(&client("status", &["--json"], &addr1, &c, None));
        status["security"]["revoked_serials"] == 2
            && status["security"]["revoked_refused"].as_u64().unwrap() > refused_clients
    }));
    // Wait for whatever was in flight, then write on node 2.
    std::thread::sleep(Duration::from_millis(500));
    let o = client("put", &["after", "y"], &addr2, &c, None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    std::thread::sleep(Duration::from_secs(3));
    let o = client("get", &["after"], &addr1, &c, None);
    assert_eq!(
        o.status.code(),
        Some(1),
        "a revoked node's write reached node 1"
    );

    // Lifted: the two exchange again.
    std::fs::write(&list, "").unwrap();
    assert!(eventually(LIMIT, || client(
        "get",
        &["after"],
        &addr1,
        &c,
        None
    )
    .status
    .success()));
}

#[test]
fn a_malformed_revocation_list_stops_the_node_at_its_start() {
    let dir = TempDir::new("revoked-bad");
    let c = dir.str("c");
    certs(&c, &["--nodes", "1", "--name", "127.0.0.1"]);
    let list = dir.join("revoked.txt");
    std::fs::write(&list, "# fine\n0a1b\n\nzz-not-hex\n").unwrap();
    let addr = free_addr();
    let o = run(&[
        "node",
        "--id",
        "1",
        "--listen",
        &addr,
        "--certs",
        &c,
        "--revoked",
        &list.to_string_lossy(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("--revoked") && err.contains("line 4") && err.contains("zz-not-hex"),
        "{err}"
    );
    // A missing file too.
    let o = run(&[
        "node",
        "--id",
        "1",
        "--listen",
        &addr,
        "--certs",
        &c,
        "--revoked",
        &dir.str("none"),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--revoked"), "{}", stderr(&o));
}

#[test]
fn certs_checks_client_names_and_issues_90_day_certificates_by_default() {
    let dir = TempDir::new("client-names");
    let c = dir.str("c");
    for bad in ["Alice", "a.b", "-x", "x-", "client", "", &"a".repeat(64)] {
        let flag = format!("--client={bad}");
        let o = run(&["certs", "--out", &c, "--nodes", "1", &flag]);
        assert_eq!(o.status.code(), Some(2), "{bad:?}");
        assert!(stderr(&o).contains("--client"), "{bad:?}: {}", stderr(&o));
        assert!(!dir.join("c").exists(), "{bad:?}: something was written");
    }
    let o = run(&[
        "certs", "--out", &c, "--nodes", "1", "--client", "ops", "--role", "admin",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("read or write"), "{}", stderr(&o));
    certs(
        &c,
        &[
            "--nodes", "1", "--client", "ops", "--client", "ci", "--role", "write",
        ],
    );
    let days = |file: &str| {
        let o = run(&["certs", "--show", &format!("{c}/{file}"), "--json"]);
        let doc = json(&o);
        let span = doc[0]["not_after"].as_i64().unwrap() - doc[0]["not_before"].as_i64().unwrap();
        (span as f64 / 86_400.0, doc)
    };
    for file in ["node-1.pem", "client.pem", "client-ops.pem"] {
        let (span, _) = days(file);
        // An hour of slack before the issue time.
        assert!((span - 90.04).abs() < 0.01, "{file}: {span}");
    }
    let (ca_span, doc) = days("ca.pem");
    assert!(ca_span > 3649.0, "{ca_span}");
    assert_eq!(doc[0]["kind"], "ca");
    let (_, doc) = days("client-ci.pem");
    assert_eq!(doc[0]["client"]["name"], "ci");
    assert_eq!(doc[0]["client"]["role"], "write");
    // --valid-days sets it; the text shows the serial and role.
    certs(&c, &["--add", "--client", "short", "--valid-days", "7"]);
    let (span, _) = days("client-short.pem");
    assert!((span - 7.04).abs() < 0.01, "{span}");
    let o = run(&["certs", "--show", &format!("{c}/client-short.pem")]);
    let text = stdout(&o);
    assert!(
        text.contains("serial") && text.contains("client \"short\" (role read)"),
        "{text}"
    );
    assert!(
        text.contains("7 days left") || text.contains("6 days left"),
        "{text}"
    );
    let o = run(&[
        "certs",
        "--out",
        &c,
        "--add",
        "--client",
        "x",
        "--valid-days",
        "0",
    ]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn certs_add_finds_the_ca_in_its_directory_or_beside_ca_pem() {
    let dir = TempDir::new("ca-dir");
    let c = dir.str("c");
    certs(&c, &["--nodes", "1", "--name", "127.0.0.1"]);
    assert!(dir.join("c/ca/ca.key").exists());
    assert!(!dir.join("c/ca.key").exists());
    certs(&c, &["--add", "--nodes", "2", "--client", "ops"]);
    let certs_dir = CertDir::new(&c);
    certs_dir.load_node(lww_crdt::NodeId::new(2)).unwrap();
    certs_dir.load_named_client("ops").unwrap();

    // A directory made before the CA had a directory of its own.
    std::fs::rename(dir.join("c/ca/ca.key"), dir.join("c/ca.key")).unwrap();
    std::fs::remove_dir_all(dir.join("c/ca")).unwrap();
    certs(&c, &["--add", "--nodes", "3"]);
    certs_dir.load_node(lww_crdt::NodeId::new(3)).unwrap();
    // Neither: the error says where the CA was looked for.
    std::fs::remove_file(dir.join("c/ca.key")).unwrap();
    let o = run(&["certs", "--out", &c, "--add", "--nodes", "4"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("ca/ca.key"), "{}", stderr(&o));
}

#[test]
fn a_node_warns_at_its_start_when_its_certificate_expires_within_14_days() {
    let dir = TempDir::new("expiry");
    let (soon, later) = (dir.str("soon"), dir.str("later"));
    certs(
        &soon,
        &["--nodes", "1", "--name", "127.0.0.1", "--valid-days", "13"],
    );
    certs(
        &later,
        &["--nodes", "1", "--name", "127.0.0.1", "--valid-days", "15"],
    );
    for (c, warned) in [(&soon, true), (&later, false)] {
        let addr = free_addr();
        let node = start(&dir, 1, &["--listen", &addr, "--certs", c]);
        node.listen_addr(LIMIT);
        assert_eq!(
            node.log().contains("certificate expires soon"),
            warned,
            "{}",
            node.log()
        );
        let status = json(&client("status", &["--json"], &addr, c, None));
        let shown = run(&["certs", "--show", &format!("{c}/node-1.pem"), "--json"]);
        assert_eq!(
            status["security"]["certificate_not_after"],
            json(&shown)[0]["not_after"]
        );
        let text = stdout(&client("status", &[], &addr, c, None));
        let days = if warned {
            "12 days left"
        } else {
            "14 days left"
        };
        assert!(text.contains(days), "{text}");
        drop(node);
        let _ = std::fs::remove_file(dir.join("node-1.log"));
    }
}
