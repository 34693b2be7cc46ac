//! Floods a node with handshakes that never complete, to measure how it
//! holds up (docs/multi-host.md, "Security"). Every Initial packet goes
//! through a one-way relay on 127.0.0.2 that drops the node's answers, so
//! no handshake ever finishes and a Retry never arrives: what spoofed
//! sources or a half-open flood look like to the node.
//!
//! ```text
//! cargo run --release -p transport-quic --example handshake_flood -- \
//!     127.0.0.1:7400 400 20
//! ```
//! (target address, handshakes per second, seconds). The node is dialed as
//! `node-1.gossip-kv`; the certificate offered does not matter, the
//! handshake never gets that far.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use transport_quic::certs::{ClusterCa, node_name};
use transport_quic::tls;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [target, rate, seconds] = args.as_slice() else {
        eprintln!("usage: handshake_flood TARGET_ADDR PER_SECOND SECONDS");
        std::process::exit(2);
    };
    let target: SocketAddr = target.parse().expect("TARGET_ADDR is HOST:PORT");
    let rate: u32 = rate.parse().expect("PER_SECOND is a count");
    let seconds: u64 = seconds.parse().expect("SECONDS is a count");
    let duration = Duration::from_secs(seconds);

    let relay = one_way_relay(target, duration + Duration::from_secs(1));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let ca = ClusterCa::generate().unwrap();
    let identity = ca.issue_client().unwrap();
    let config = tls::quinn_client(tls::client_config(&identity, ca.cert()).unwrap()).unwrap();
    let endpoint = {
        let _guard = runtime.enter();
        quinn::Endpoint::client(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).unwrap()
    };
    let started = Instant::now();
    let mut sent: u64 = 0;
    let mut held = Vec::new();
    while started.elapsed() < duration {
        let due = u64::try_from(started.elapsed().as_millis()).unwrap() * u64::from(rate) / 1000;
        while sent < due {
            let _guard = runtime.enter();
            match endpoint.connect_with(config.clone(), relay, &node_name(lww_crdt::NodeId::new(1)))
            {
                Ok(connecting) => held.push(connecting),
                Err(err) => eprintln!("connect: {err}"),
            }
            sent += 1;
        }
        thread::sleep(Duration::from_millis(5));
    }
    println!("{sent} handshakes started in {seconds} s; none can complete");
}

/// Forwards datagrams to `target` from 127.0.0.2 and drops the answers.
fn one_way_relay(target: SocketAddr, lifetime: Duration) -> SocketAddr {
    let inbound = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let outbound = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 2), 0)).unwrap();
    let addr = inbound.local_addr().unwrap();
    inbound
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    thread::spawn(move || {
        let started = Instant::now();
        let mut buf = [0u8; 2048];
        while started.elapsed() < lifetime {
            if let Ok((len, _)) = inbound.recv_from(&mut buf) {
                let _ = outbound.send_to(&buf[..len], target);
            }
        }
    });
    addr
}
