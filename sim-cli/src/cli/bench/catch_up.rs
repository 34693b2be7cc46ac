//! `sim-cli bench catch-up`: a fresh node catching up a large map from one
//! peer over loopback QUIC, beside raw quinn moving the same number of
//! bytes on one stream between the same certificates, in the same run.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use gossip::{Config, Member, Node, NodeHandle};
use lww_crdt::{NodeId, PhysicalClock, SystemClock};
use serde::Serialize;
use transport_quic::certs::{ClusterCa, Identity, node_name};
use transport_quic::{QuicConfig, QuicHandle, QuicTransport, tls};

use crate::cli::bench::median_of;
use crate::cli::node::parse_message_bytes;
use crate::cli::output;

/// `sim-cli bench catch-up`.
#[derive(Debug, Args)]
pub(crate) struct CatchUpArgs {
    /// Keys the seeded node holds.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) keys: u64,
    /// Bytes per key (at least 8).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(8..=4096))]
    pub(crate) key_bytes: u64,
    /// Bytes per value.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(0..=65_536))]
    pub(crate) value_bytes: u64,
    /// Gossip interval of both nodes in ms.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) interval_ms: u64,
    /// The largest gossip message in bytes.
    #[arg(long, default_value_t = 1 << 20, value_parser = parse_message_bytes)]
    pub(crate) max_message_bytes: usize,
    /// Runs of each measurement (medians count).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=20))]
    pub(crate) runs: u64,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Runs `sim-cli bench catch-up`.
///
/// # Errors
/// As [`measure`].
pub(crate) fn run(args: &CatchUpArgs) -> anyhow::Result<ExitCode> {
    let report = measure(args)?;
    output::emit(&output::bench::catch_up(&report, args.json));
    Ok(ExitCode::SUCCESS)
}

/// What `bench catch-up` measured.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct CatchUpReport {
    /// Keys caught up.
    pub(crate) keys: u64,
    /// Bytes per key.
    pub(crate) key_bytes: u64,
    /// Bytes per value.
    pub(crate) value_bytes: u64,
    /// Gossip interval of both nodes (ms).
    pub(crate) interval_ms: u64,
    /// The largest gossip message (bytes).
    pub(crate) max_message_bytes: usize,
    /// Key and value bytes of the data set: `keys * (key_bytes +
    /// value_bytes)`.
    pub(crate) data_bytes: u64,
    /// Seconds of each gossip run, from the fresh node's start until it
    /// held every entry and the seeded node's version vector.
    pub(crate) gossip_secs: Vec<f64>,
    /// Gossip frame bytes the fresh node received in each run.
    pub(crate) gossip_bytes: Vec<u64>,
    /// Gossip frames the fresh node received in each run.
    pub(crate) gossip_frames: Vec<u64>,
    /// The median run's seconds, and the bytes and frames of that run.
    pub(crate) median_secs: f64,
    /// Wire bytes of the median run.
    pub(crate) median_bytes: u64,
    /// Keys per second in the median run.
    pub(crate) keys_per_sec: f64,
    /// Seconds the same catch-up takes with frames carried by hand between
    /// two nodes in one thread: the protocol's own work (deltas, encoding,
    /// decoding, merging), without network, encryption or timers.
    pub(crate) memory_secs: f64,
    /// Seconds of each raw-quinn run moving `median_bytes` on one stream,
    /// handshake included.
    pub(crate) raw_wire_secs: Vec<f64>,
    /// Seconds of each raw-quinn run moving `data_bytes`.
    pub(crate) raw_data_secs: Vec<f64>,
    /// Wire throughput ratio: gossip's wire bytes per second over raw
    /// quinn's moving those same bytes (medians).
    pub(crate) wire_ratio: f64,
    /// Goodput ratio: the data set's bytes per second through gossip over
    /// raw quinn's moving the data set once (medians).
    pub(crate) data_ratio: f64,
}

fn identities(ca: &ClusterCa) -> anyhow::Result<(Identity, Identity)> {
    let loopback = ["127.0.0.1".to_owned()];
    Ok((
        ca.issue_node(NodeId::new(1), &loopback)?,
        ca.issue_node(NodeId::new(2), &loopback)?,
    ))
}

fn key_of(i: u64, key_bytes: usize) -> String {
    let digits = format!("{i:x}");
    let mut key = String::with_capacity(key_bytes);
    key.push('k');
    for _ in 0..key_bytes.saturating_sub(1 + digits.len()) {
        key.push('0');
    }
    key.push_str(&digits);
    key
}

fn value_of(i: u64, value_bytes: usize) -> String {
    let seed = format!("v{i}-");
    seed.chars().cycle().take(value_bytes).collect()
}

fn gossip_config(args: &CatchUpArgs, id: u64) -> anyhow::Result<Config> {
    Ok(
        Config::for_interval(NodeId::new(id), args.interval_ms, 10_000)
            .max_message_bytes(args.max_message_bytes)
            .build()?,
    )
}

/// A node holding the benchmark's data set, knowing `peers`.
fn seeded(args: &CatchUpArgs, peers: Vec<Member>) -> anyhow::Result<Node> {
    let key_bytes = usize::try_from(args.key_bytes)?;
    let value_bytes = usize::try_from(args.value_bytes)?;
    let mut node = Node::new(gossip_config(args, 1)?, peers);
    for i in 0..args.keys {
        node.put(
            key_of(i, key_bytes),
            value_of(i, value_bytes),
            SystemClock.now_ms(),
        )
        .context("seeding the map")?;
    }
    Ok(node)
}

/// One catch-up over loopback QUIC: (seconds, bytes, frames) the fresh node
/// took and received.
fn quic_run(ca: &ClusterCa, args: &CatchUpArgs) -> anyhow::Result<(f64, u64, u64)> {
    let quic_config = QuicConfig::builder()
        .exchange_idle(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(10))
        .build()?;
    let (one, two) = identities(ca)?;
    let a = QuicTransport::builder(one, ca.cert().clone())
        .config(quic_config.clone())
        .build()?;
    let b = QuicTransport::builder(two, ca.cert().clone())
        .config(quic_config)
        .build()?;
    a.add_peer(b.id(), b.local_addr());
    b.add_peer(a.id(), a.local_addr());
    let member = |t: &QuicTransport| Member {
        id: t.id(),
        address: t.local_addr().to_string(),
    };
    let (member_a, member_b) = (member(&a), member(&b));
    let b_quic: QuicHandle = b.handle();

    // Built before anything is timed.
    let seeded = seeded(args, vec![member_b])?;
    let target = seeded.version_vector().clone();
    let (a_handle, a_thread) = gossip::spawn(seeded, a, SystemClock);

    let start = Instant::now();
    let fresh = Node::new(gossip_config(args, 2)?, [member_a]);
    let (b_handle, b_thread) = gossip::spawn(fresh, b, SystemClock);
    let deadline = start + Duration::from_secs(600);
    let done = |h: &NodeHandle| {
        h.with_node(|n| n.map().entry_count() as u64 == args.keys && *n.version_vector() == target)
    };
    while !done(&b_handle) {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the fresh node did not catch up within 10 minutes"
        );
        thread::sleep(Duration::from_millis(2));
    }
    let secs = start.elapsed().as_secs_f64();
    let stats = b_quic.stats();
    for (handle, thread) in [(a_handle, a_thread), (b_handle, b_thread)] {
        handle.shutdown();
        let _ = thread.join();
    }
    Ok((secs, stats.bytes_received, stats.frames_received))
}

/// Measures `bench catch-up`.
///
/// # Errors
/// Setup failures (certificates, sockets), or a catch-up that does not
/// finish within ten minutes.
fn measure(args: &CatchUpArgs) -> anyhow::Result<CatchUpReport> {
    let ca = ClusterCa::generate()?;
    let mut runs = Vec::new();
    for _ in 0..args.runs {
        runs.push(quic_run(&ca, args)?);
    }
    let gossip_secs: Vec<f64> = runs.iter().map(|r| r.0).collect();
    let median_secs = median_of(&gossip_secs);
    let (_, median_bytes, _) = runs
        .iter()
        .copied()
        .min_by(|a, b| {
            (a.0 - median_secs)
                .abs()
                .total_cmp(&(b.0 - median_secs).abs())
        })
        .context("no runs")?;
    let memory_secs = in_memory(args)?;
    let data_bytes = args.keys * (args.key_bytes + args.value_bytes);
    let mut raw_wire_secs = Vec::new();
    let mut raw_data_secs = Vec::new();
    for _ in 0..args.runs {
        raw_wire_secs.push(raw_quinn(&ca, median_bytes)?);
        raw_data_secs.push(raw_quinn(&ca, data_bytes)?);
    }
    Ok(CatchUpReport {
        keys: args.keys,
        key_bytes: args.key_bytes,
        value_bytes: args.value_bytes,
        interval_ms: args.interval_ms,
        max_message_bytes: args.max_message_bytes,
        data_bytes,
        gossip_bytes: runs.iter().map(|r| r.1).collect(),
        gossip_frames: runs.iter().map(|r| r.2).collect(),
        keys_per_sec: args.keys as f64 / median_secs,
        wire_ratio: median_of(&raw_wire_secs) / median_secs,
        data_ratio: median_of(&raw_data_secs) / median_secs,
        gossip_secs,
        median_secs,
        median_bytes,
        memory_secs,
        raw_wire_secs,
        raw_data_secs,
    })
}

/// The catch-up with no transport: both nodes in this thread, every frame
/// handed over at once, ticks as fast as the nodes go.
fn in_memory(args: &CatchUpArgs) -> anyhow::Result<f64> {
    let member = |id| Member {
        id: NodeId::new(id),
        address: String::new(),
    };
    let mut a = seeded(args, vec![member(2)])?;
    let target = a.version_vector().clone();
    let mut b = Node::new(gossip_config(args, 2)?, [member(1)]);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(600);
    while *b.version_vector() != target || b.map().entry_count() as u64 != args.keys {
        anyhow::ensure!(Instant::now() < deadline, "in-memory catch-up stalled");
        let now = SystemClock.now_ms();
        b.handle_tick(now);
        loop {
            let mut quiet = true;
            while let Some(t) = b.poll_transmit() {
                let _ = a.handle_message(b.id(), &t.payload, SystemClock.now_ms());
                quiet = false;
            }
            while let Some(t) = a.poll_transmit() {
                let _ = b.handle_message(a.id(), &t.payload, SystemClock.now_ms());
                quiet = false;
            }
            if quiet {
                break;
            }
        }
        thread::sleep(Duration::from_millis(1));
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Seconds raw quinn takes to move `bytes` on one stream between two
/// endpoints with the nodes' certificates, handshake included.
fn raw_quinn(ca: &ClusterCa, bytes: u64) -> anyhow::Result<f64> {
    let (one, two) = identities(ca)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let server_config = tls::quinn_server(tls::server_config(&two, ca.cert(), false)?)?;
    let client_config = tls::quinn_client(tls::peer_client_config(&one, ca.cert())?)?;
    let local = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    runtime.block_on(async move {
        let server = quinn::Endpoint::server(server_config, local)?;
        let server_addr = server.local_addr()?;
        let client = quinn::Endpoint::client(local)?;
        let receiver = tokio::spawn(async move {
            let incoming = server.accept().await.context("no connection")?;
            let conn = incoming.await?;
            let (mut send, mut recv) = conn.accept_bi().await?;
            let mut got = 0u64;
            while let Some(chunk) = recv.read_chunk(usize::MAX, true).await? {
                got += chunk.bytes.len() as u64;
            }
            send.write_all(&got.to_le_bytes()).await?;
            send.finish()?;
            let _ = send.stopped().await;
            server.wait_idle().await;
            anyhow::Ok(got)
        });
        let chunk = vec![0x5a_u8; 1 << 20];
        let start = Instant::now();
        let conn = client
            .connect_with(client_config, server_addr, &node_name(NodeId::new(2)))?
            .await?;
        let (mut send, mut recv) = conn.open_bi().await?;
        let mut left = bytes;
        while left > 0 {
            let n = usize::try_from(left.min(chunk.len() as u64))?;
            send.write_all(&chunk[..n]).await?;
            left -= n as u64;
        }
        send.finish()?;
        let ack = recv.read_to_end(8).await?;
        let secs = start.elapsed().as_secs_f64();
        conn.close(0u32.into(), b"done");
        client.wait_idle().await;
        let got = receiver.await??;
        anyhow::ensure!(
            got == bytes && ack == bytes.to_le_bytes(),
            "raw quinn moved {got} of {bytes} bytes"
        );
        Ok(secs)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_have_the_asked_sizes() {
        assert_eq!(key_of(0, 16).len(), 16);
        assert_eq!(key_of(999_999, 16).len(), 16);
        assert_ne!(key_of(1, 16), key_of(16, 16));
        assert_eq!(value_of(12, 100).len(), 100);
    }
}
