//! The HTTP/JSON API end to end, against nodes run in-process: odd keys
//! round-trip, values and stamps come back raw or as JSON, errors are JSON
//! with stable codes and the right statuses, a listing pages through keys
//! while writes go on, a write over HTTP on one node is read on another,
//! and `--http` off loopback is refused at the start.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use lww_crdt::NodeId;
use sim::node::{NodeConfig, Peer};
use support::{InProcess, LIMIT, TempDir, certs, eventually, free_addr};

/// A response: status, headers (lower-case names) and body.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 request on a fresh connection.
fn request(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    // A refused body may close the connection before it is all sent.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head: {}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

fn free_tcp() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn config(dir: &TempDir, certs: &str, id: u64, peers: Vec<Peer>, http: SocketAddr) -> NodeConfig {
    let _ = dir;
    let mut config = NodeConfig::new(NodeId::new(id), free_addr().parse().unwrap(), certs);
    config.peers = peers;
    config.incarnation = Some(1);
    config.interval_ms = 20;
    config.drain_ms = 200;
    config.max_message_bytes = 64 * 1024;
    config.http = Some(http);
    config
}

/// The peer entry that names `config`'s node.
fn seed_of(config: &NodeConfig) -> Peer {
    Peer {
        id: Some(config.id),
        address: config.listen.to_string(),
    }
}

/// Node 0, founding, and node 1 joining through it, each serving HTTP.
fn two_nodes(
    dir: &TempDir,
    certs: &str,
    http0: SocketAddr,
    http1: SocketAddr,
) -> (InProcess, InProcess) {
    let zero_config = config(dir, certs, 0, vec![], http0);
    let seed = seed_of(&zero_config);
    let zero = InProcess::start(zero_config);
    let one = InProcess::start(config(dir, certs, 1, vec![seed], http1));
    (zero, one)
}

/// Waits until the API answers.
fn serving(addr: SocketAddr) {
    assert!(
        eventually(LIMIT, || TcpStream::connect(addr).is_ok()),
        "the HTTP API never listened on {addr}"
    );
}

#[test]
fn keys_values_stamps_and_errors_over_http() {
    let dir = TempDir::new("http-routes");
    let certs = certs(&dir, "c", "0");
    let addr = free_tcp();
    let node = InProcess::start(config(&dir, &certs, 0, vec![], addr));
    serving(addr);

    // Keys with slashes, spaces, percent signs and unicode round-trip.
    let keys = [
        "plain",
        "a/b/c",
        "with space",
        "100%",
        "clé-ключ-鍵",
        "/leading",
    ];
    for key in keys {
        let path = format!("/v1/kv/{}", percent(key));
        let put = request(addr, "PUT", &path, format!("value of {key}").as_bytes());
        assert_eq!(put.status, 200, "{key}: {}", put.text());
        let stamp = put.header("x-gossip-kv-stamp").unwrap().to_owned();
        assert_eq!(put.json()["stamp"]["member"], 0);
        let get = request(addr, "GET", &path, b"");
        assert_eq!(get.status, 200, "{key}");
        assert_eq!(get.text(), format!("value of {key}"));
        assert_eq!(get.header("x-gossip-kv-stamp"), Some(stamp.as_str()));
        let json = request(addr, "GET", &format!("{path}?format=json"), b"").json();
        assert_eq!(json["key"], key);
        assert_eq!(json["value"], format!("value of {key}"));
    }

    // Errors: JSON, a stable code, the right status.
    let absent = request(addr, "GET", "/v1/kv/absent", b"");
    assert_eq!(
        (absent.status, absent.json()["code"].clone()),
        (404, "not_found".into())
    );
    let deleted = request(addr, "DELETE", "/v1/kv/plain", b"");
    assert_eq!(deleted.status, 200);
    let gone = request(addr, "GET", "/v1/kv/plain", b"");
    assert_eq!(
        (gone.status, gone.json()["code"].clone()),
        (404, "deleted".into())
    );
    let format = request(addr, "GET", "/v1/kv/a%2Fb%2Fc?format=xml", b"");
    assert_eq!(
        (format.status, format.json()["code"].clone()),
        (400, "bad_format".into())
    );
    let binary = request(addr, "PUT", "/v1/kv/bin", &[0xff, 0xfe, 0x00]);
    assert_eq!(
        (binary.status, binary.json()["code"].clone()),
        (400, "not_utf8".into())
    );
    let big = request(addr, "PUT", "/v1/kv/big", &vec![b'x'; 100 * 1024]);
    assert_eq!(
        (big.status, big.json()["code"].clone()),
        (413, "too_large".into())
    );
    // Under the body cap but too large for one gossip message.
    let entry = request(addr, "PUT", "/v1/kv/entry", &vec![b'x'; 40 * 1024]);
    assert_eq!(
        (entry.status, entry.json()["code"].clone()),
        (413, "too_large".into())
    );
    let limit = request(addr, "GET", "/v1/kv?limit=0", b"");
    assert_eq!(
        (limit.status, limit.json()["code"].clone()),
        (400, "bad_limit".into())
    );
    let route = request(addr, "GET", "/v2/nothing", b"");
    assert_eq!(
        (route.status, route.json()["code"].clone()),
        (404, "no_route".into())
    );
    for refused in ["/v1/kv/bin", "/v1/kv/big", "/v1/kv/entry"] {
        assert_eq!(
            request(addr, "GET", refused, b"").status,
            404,
            "{refused} was written"
        );
    }

    // Members, status and health.
    let members = request(addr, "GET", "/v1/members", b"").json();
    assert_eq!(members[0]["id"], 0);
    let status = request(addr, "GET", "/v1/status", b"").json();
    assert_eq!(status["keys"], keys.len() - 1);
    let health = request(addr, "GET", "/v1/health", b"");
    assert_eq!(
        (health.status, health.json()["ready"].clone()),
        (200, true.into())
    );
    node.stop().unwrap();
}

#[test]
fn a_listing_pages_through_every_key_while_writes_go_on() {
    let dir = TempDir::new("http-list");
    let certs = certs(&dir, "c", "0");
    let addr = free_tcp();
    let node = InProcess::start(config(&dir, &certs, 0, vec![], addr));
    serving(addr);
    for i in 0..250 {
        let put = request(addr, "PUT", &format!("/v1/kv/p{i:03}"), b"v");
        assert_eq!(put.status, 200);
    }
    let writer = std::thread::spawn(move || {
        for i in 0..100 {
            request(addr, "PUT", &format!("/v1/kv/q{i:03}"), b"v");
            request(addr, "PUT", &format!("/v1/kv/p{i:03}x"), b"new");
        }
    });
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(after) => format!("/v1/kv?prefix=p&limit=40&after={}", percent(after)),
            None => "/v1/kv?prefix=p&limit=40".to_owned(),
        };
        let page = request(addr, "GET", &path, b"").json();
        for item in page["keys"].as_array().unwrap() {
            seen.push(item["key"].as_str().unwrap().to_owned());
        }
        match page["next_after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    writer.join().unwrap();
    // In order, no key twice, every key written before the listing began,
    // and nothing outside the prefix.
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "out of order");
    let set: BTreeSet<&str> = seen.iter().map(String::as_str).collect();
    for i in 0..250 {
        assert!(set.contains(format!("p{i:03}").as_str()), "p{i:03} missing");
    }
    assert!(seen.iter().all(|key| key.starts_with('p')));
    node.stop().unwrap();
}

#[test]
fn a_write_over_http_on_one_node_is_read_over_http_on_another() {
    let dir = TempDir::new("http-two");
    let certs = certs(&dir, "c", "0,1");
    let (http0, http1) = (free_tcp(), free_tcp());
    let (zero, one) = two_nodes(&dir, &certs, http0, http1);
    serving(http0);
    serving(http1);
    assert!(
        eventually(LIMIT, || request(http1, "GET", "/v1/health", b"").status
            == 200),
        "node 1 never became ready"
    );
    assert!(eventually(LIMIT, || {
        request(http1, "PUT", "/v1/kv/colour", b"blue").status == 200
    }));
    assert!(
        eventually(LIMIT, || request(http0, "GET", "/v1/kv/colour", b"").text()
            == "blue"),
        "node 0 never read the write made on node 1"
    );
    one.stop().unwrap();
    zero.stop().unwrap();
}

#[test]
fn off_loopback_the_api_is_https_and_takes_only_client_certificates() {
    if !curl_installed() {
        eprintln!("curl is not installed: HTTPS is not tried");
        return;
    }
    let dir = TempDir::new("http-tls");
    let certs = certs(&dir, "c", "0");
    let port = free_tcp().port();
    let wildcard: SocketAddr = format!("0.0.0.0:{port}").parse().unwrap();
    let node = InProcess::start(config(&dir, &certs, 0, vec![], wildcard));
    let local: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    serving(local);
    let base = format!("https://127.0.0.1:{port}");
    let curl_path = |auth: &[String], path: &str| {
        std::process::Command::new("curl")
            .args([
                "-sS",
                "-f",
                "--max-time",
                "10",
                "--cacert",
                &format!("{certs}/ca.pem"),
            ])
            .args(auth)
            .arg(format!("{base}{path}"))
            .output()
            .unwrap()
    };
    let curl = |auth: &[String]| curl_path(auth, "/v1/health");
    let with = |name: &str| {
        vec![
            "--cert".to_owned(),
            format!("{certs}/{name}.pem"),
            "--key".to_owned(),
            format!("{certs}/{name}.key"),
        ]
    };
    let client = curl(&with("client"));
    assert!(
        client.status.success(),
        "{}",
        String::from_utf8_lossy(&client.stderr)
    );
    assert!(String::from_utf8_lossy(&client.stdout).contains("\"ready\":true"));
    // What a Prometheus scrape with the client certificate gets
    // (docs/multi-host.md).
    let scrape = curl_path(&with("client"), "/metrics");
    assert!(String::from_utf8_lossy(&scrape.stdout).contains("gossip_kv_keys 0"));
    // No certificate, or a node's certificate: refused.
    assert!(
        !curl(&[]).status.success(),
        "a client without a certificate got in"
    );
    assert!(
        !curl(&with("node-0")).status.success(),
        "a node certificate got in as a client"
    );
    // Plain HTTP on that port gets nothing.
    let plain = std::process::Command::new("curl")
        .args([
            "-sS",
            "-f",
            "--max-time",
            "5",
            &format!("http://127.0.0.1:{port}/v1/health"),
        ])
        .output()
        .unwrap();
    assert!(!plain.status.success());
    node.stop().unwrap();
}

fn curl_installed() -> bool {
    std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_ok()
}

/// Percent-encodes everything but unreserved characters.
fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The `curl` lines of docs/http-api.md's `sh` blocks, run in order against
/// a node (each
/// with `-f`, so an error status fails it), so that the examples stay true.
/// Skipped, saying so, where curl is not installed (`.ci/run` installs it).
#[test]
fn the_curl_examples_of_the_docs_run() {
    if !curl_installed() {
        eprintln!("curl is not installed: the docs' examples are not run");
        return;
    }
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/http-api.md"))
        .unwrap();
    // The curl lines of the `sh` blocks (the others need a real host).
    let mut in_sh = false;
    let mut examples: Vec<&str> = Vec::new();
    for line in docs.lines() {
        if line.starts_with("```") {
            in_sh = line == "```sh";
        } else if in_sh && line.starts_with("curl ") {
            examples.push(line);
        }
    }
    assert!(examples.len() >= 8, "too few examples: {examples:?}");
    let dir = TempDir::new("http-docs");
    let certs = certs(&dir, "c", "0");
    let addr = free_tcp();
    let node = InProcess::start(config(&dir, &certs, 0, vec![], addr));
    serving(addr);
    for example in examples {
        let line = example.replace("127.0.0.1:8001", &addr.to_string());
        let output = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("curl -sS -f {}", &line["curl ".len()..]))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{example}\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    node.stop().unwrap();
}

/// `name{labels} value` lines and `#` comments, every value a number:
/// the samples by name and labels.
fn parse_metrics(page: &str) -> std::collections::BTreeMap<String, f64> {
    let mut samples = std::collections::BTreeMap::new();
    for line in page
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not a sample: {line}"));
        let name_end = series.find('{').unwrap_or(series.len());
        assert!(
            series[..name_end]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
                && series.starts_with("gossip_kv_"),
            "bad metric name: {line}"
        );
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {line}"));
        samples.insert(series.to_owned(), value);
    }
    samples
}

#[test]
fn the_metrics_page_parses_and_its_counters_move() {
    let dir = TempDir::new("http-metrics");
    let certs = certs(&dir, "c", "0,1");
    let (http0, http1) = (free_tcp(), free_tcp());
    let (zero, one) = two_nodes(&dir, &certs, http0, http1);
    serving(http0);
    let first = request(http0, "GET", "/metrics", b"");
    assert_eq!(first.status, 200);
    assert!(first.text().ends_with("# EOF\n"), "{}", first.text());
    let before = parse_metrics(&first.text());
    for i in 0..5 {
        assert_eq!(
            request(http0, "PUT", &format!("/v1/kv/m{i}"), b"v").status,
            200
        );
    }
    assert!(eventually(LIMIT, || {
        request(http1, "GET", "/v1/kv/m4", b"").status == 200
    }));
    let after = parse_metrics(&request(http0, "GET", "/metrics", b"").text());
    let put = r#"gossip_kv_http_requests_total{route="/v1/kv/{*key}",method="PUT",status="200"}"#;
    assert_eq!(after.get(put).copied(), Some(5.0), "{after:#?}");
    assert_eq!(after.get("gossip_kv_keys").copied(), Some(5.0));
    assert_eq!(
        after.get(r#"gossip_kv_members{state="alive"}"#).copied(),
        Some(1.0)
    );
    // The gossip counters move as the two nodes exchange (scraped again
    // until they have, each a few intervals at most).
    let moving = [
        "gossip_kv_exchanges_completed_total",
        r#"gossip_kv_messages_total{direction="sent",kind="syn"}"#,
        "gossip_kv_entries_sent_total",
        "gossip_kv_quic_bytes_sent_total",
    ];
    let mut now = after;
    let all_moved = eventually(LIMIT, || {
        let moved = moving.iter().all(|name| {
            now.get(*name).copied().unwrap_or(0.0) > before.get(*name).copied().unwrap_or(0.0)
        });
        if !moved {
            now = parse_metrics(&request(http0, "GET", "/metrics", b"").text());
        }
        moved
    });
    assert!(
        all_moved,
        "some of {moving:?} did not move: {before:#?} {now:#?}"
    );
    one.stop().unwrap();
    zero.stop().unwrap();
}

#[test]
fn a_watch_on_one_node_receives_a_write_made_on_another() {
    let dir = TempDir::new("http-watch");
    let certs = certs(&dir, "c", "0,1");
    let (http0, http1) = (free_tcp(), free_tcp());
    let (zero, one) = two_nodes(&dir, &certs, http0, http1);
    serving(http0);
    serving(http1);
    assert!(eventually(LIMIT, || {
        request(http1, "GET", "/v1/health", b"").status == 200
    }));
    let mut watch = TcpStream::connect(http0).unwrap();
    watch.set_read_timeout(Some(LIMIT)).unwrap();
    watch
        .write_all(format!("GET /v1/watch?prefix=w/ HTTP/1.1\r\nHost: {http0}\r\n\r\n").as_bytes())
        .unwrap();
    // Let the watch subscribe before anything is written.
    let mut seen = String::new();
    let mut buffer = [0u8; 4096];
    let n = watch.read(&mut buffer).unwrap();
    seen.push_str(&String::from_utf8_lossy(&buffer[..n]));
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    assert!(seen.contains("text/event-stream"), "{seen}");
    // Outside the prefix, then inside, on node 1; then a delete on node 0.
    assert_eq!(request(http1, "PUT", "/v1/kv/other", b"x").status, 200);
    assert_eq!(
        request(http1, "PUT", "/v1/kv/w%2Fcolour", b"blue").status,
        200
    );
    let deadline = std::time::Instant::now() + LIMIT;
    while !seen.contains("\"key\":\"w/colour\"") && std::time::Instant::now() < deadline {
        if let Ok(n) = watch.read(&mut buffer) {
            seen.push_str(&String::from_utf8_lossy(&buffer[..n]));
        }
    }
    assert!(seen.contains("event: put"), "{seen}");
    assert!(seen.contains("\"value\":\"blue\""), "{seen}");
    assert!(
        seen.contains("\"from\":\"1\"") && seen.contains("\"origin\":1"),
        "{seen}"
    );
    assert!(!seen.contains("\"key\":\"other\""), "{seen}");
    assert_eq!(
        request(http0, "DELETE", "/v1/kv/w%2Fcolour", b"").status,
        200
    );
    while !seen.contains("event: delete") && std::time::Instant::now() < deadline {
        if let Ok(n) = watch.read(&mut buffer) {
            seen.push_str(&String::from_utf8_lossy(&buffer[..n]));
        }
    }
    assert!(seen.contains("\"from\":\"local\""), "{seen}");
    drop(watch);
    one.stop().unwrap();
    zero.stop().unwrap();
}

/// The browser the status page test drives, if installed (`.ci/run`
/// installs Debian's chromium).
fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|name| {
            std::process::Command::new(name)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

#[test]
fn the_status_page_shows_the_members_of_a_three_node_cluster_in_a_browser() {
    let Some(browser) = chromium() else {
        eprintln!("no chromium installed: the status page is not loaded in a browser");
        return;
    };
    let dir = TempDir::new("http-page");
    let certs = certs(&dir, "c", "0,1,2");
    let http0 = free_tcp();
    let zero_config = config(&dir, &certs, 0, vec![], http0);
    let seed = seed_of(&zero_config);
    let zero = InProcess::start(zero_config);
    let one = InProcess::start(config(&dir, &certs, 1, vec![seed.clone()], free_tcp()));
    let two = InProcess::start(config(&dir, &certs, 2, vec![seed], free_tcp()));
    serving(http0);
    assert!(eventually(LIMIT, || {
        let members = request(http0, "GET", "/v1/members", b"").json();
        members.as_array().is_some_and(|m| m.len() == 3)
    }));
    let page = request(http0, "GET", "/", b"");
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let url = format!("http://{http0}/");
    let shot = dir.join("status.png");
    let chrome = |extra: &[&str]| {
        std::process::Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--window-size=1200,800",
                "--virtual-time-budget=5000",
            ])
            .args(extra)
            .arg(&url)
            .output()
            .unwrap()
    };
    let dom = chrome(&["--dump-dom"]);
    let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
    assert_eq!(dom.matches("class=\"member\"").count(), 3, "{dom}");
    for id in 0..3 {
        assert!(
            dom.contains(&format!("<td class=\"num\">{id}</td>")),
            "member {id} missing: {dom}"
        );
    }
    assert!(dom.contains("gossip-kv node 0"), "{dom}");
    let screenshot = chrome(&[&format!("--screenshot={}", shot.display())]);
    let png = std::fs::read(&shot).unwrap_or_else(|_| {
        panic!(
            "no screenshot: {}",
            String::from_utf8_lossy(&screenshot.stderr)
        )
    });
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    two.stop().unwrap();
    one.stop().unwrap();
    zero.stop().unwrap();
}

#[test]
fn writes_during_the_drain_are_refused_with_503() {
    let dir = TempDir::new("http-drain");
    let certs = certs(&dir, "c", "0,1");
    let http1 = free_tcp();
    let mut zero_config = config(&dir, &certs, 0, vec![], free_tcp());
    // Stopped as for a restart (with a data directory), not leaving: node 1
    // still counts on it.
    zero_config.data_dir = Some(dir.join("zero"));
    zero_config.leave_on_stop = false;
    let seed = seed_of(&zero_config);
    let zero = InProcess::start(zero_config);
    let mut one_config = config(&dir, &certs, 1, vec![seed], http1);
    // Its peer gone without a word, the drain waits for its exchanges to
    // time out: long enough to write into.
    one_config.drain_ms = 3_000;
    let one = InProcess::start(one_config);
    serving(http1);
    assert!(eventually(LIMIT, || {
        request(http1, "GET", "/v1/health", b"").status == 200
    }));
    zero.stop().unwrap();
    let stopping = std::thread::spawn(move || one.stop());
    let mut refused = None;
    assert!(
        eventually(LIMIT, || {
            let put = request(http1, "PUT", "/v1/kv/late", b"v");
            if put.status == 503 {
                refused = Some(put.json());
                return true;
            }
            assert_eq!(put.status, 200, "{}", put.text());
            false
        }),
        "no write was refused while draining"
    );
    let refused = refused.unwrap();
    assert_eq!(refused["code"], "shutting_down", "{refused}");
    let health = request(http1, "GET", "/v1/health", b"");
    assert_eq!(
        (health.status, health.json()["draining"].clone()),
        (503, true.into())
    );
    stopping.join().unwrap().unwrap();
    assert!(
        TcpStream::connect(http1).is_err(),
        "the API still listens after the stop"
    );
}

#[test]
fn a_client_trickling_its_headers_is_cut_off() {
    let dir = TempDir::new("http-slow-head");
    let certs = certs(&dir, "c", "0");
    let addr = free_tcp();
    let node = InProcess::start(config(&dir, &certs, 0, vec![], addr));
    serving(addr);
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.set_read_timeout(Some(LIMIT)).unwrap();
    let start = std::time::Instant::now();
    slow.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    // One header line a second, never the end of the head.
    let trickle = std::thread::spawn({
        let mut slow = slow.try_clone().unwrap();
        move || {
            for i in 0.. {
                std::thread::sleep(std::time::Duration::from_secs(1));
                if slow.write_all(format!("X-{i}: y\r\n").as_bytes()).is_err() {
                    return;
                }
            }
        }
    });
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    let took = start.elapsed();
    assert!(
        took >= sim::node::http::HEADER_READ_TIMEOUT && took < LIMIT,
        "closed after {took:?}"
    );
    assert!(
        !String::from_utf8_lossy(&rest).contains("200 OK"),
        "{}",
        String::from_utf8_lossy(&rest)
    );
    let _ = slow.shutdown(std::net::Shutdown::Both);
    trickle.join().unwrap();
    // Others were served meanwhile and still are.
    assert_eq!(request(addr, "GET", "/v1/health", b"").status, 200);
    node.stop().unwrap();
}
