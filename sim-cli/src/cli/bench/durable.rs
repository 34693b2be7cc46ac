//! `sim-cli bench durable`: what a data directory costs a node, each figure
//! beside the memory-only baseline measured in the same run.
//!
//! - **client writes**: one node (`sim::node::run`, a founder on loopback)
//!   and `--clients` clients putting for `--secs` seconds each over QUIC,
//!   memory-only and with `--sync never`, `interval` and `always`.
//! - **catch-up**: a fresh node taking `--keys` entries from one peer over
//!   loopback QUIC, memory-only and persisting to a data directory
//!   (`--sync never`: entries applied from peers are synced in batches by
//!   the group commit of later client writes, or at the stop).
//! - **reopen**: the data directory the catch-up filled, opened and read
//!   into a node until it could serve.
//! - **disk**: bytes per entry on disk, and the bytes the process wrote
//!   (`/proc/self/io`) per byte of keys and values: the write
//!   amplification as the kernel counts it.
//! - **rejoin**: that node, down while `--changed` of the keys change on
//!   its peer, reopened and caught up: the bytes it receives, against the
//!   full catch-up's.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use gossip::{Config, Driver, Member, Node, NodeHandle, Persist};
use lww_crdt::{NodeId, SystemClock};
use serde::Serialize;
use sim::client::{Client, Credentials, Target};
use sim::node::{self, NodeConfig, SyncMode, store::Store};
use transport_quic::certs::{CertDir, ClusterCa};
use transport_quic::{QuicConfig, QuicTransport};

/// `sim-cli bench durable`.
#[derive(Debug, Args)]
pub(crate) struct DurableArgs {
    /// Concurrent clients writing to the node.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub(crate) clients: u64,
    /// Seconds each write measurement runs.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub(crate) secs: u64,
    /// Keys of the catch-up, reopen and rejoin measurements (16-byte keys,
    /// 100-byte values).
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) keys: u64,
    /// The fraction of the keys that change while the node is down.
    #[arg(long, default_value_t = 0.01)]
    pub(crate) changed: f64,
    /// Where to put the data directories (default: the system temp dir).
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Client writes to one node under one storage setting.
#[derive(Clone, Debug, Serialize)]
struct WriteReport {
    storage: String,
    puts: u64,
    puts_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// `puts_per_sec` over the memory-only node's.
    ratio_to_memory: f64,
}

/// Everything `bench durable` measured.
#[derive(Clone, Debug, Serialize)]
struct DurableReport {
    clients: u64,
    secs: u64,
    writes: Vec<WriteReport>,
    keys: u64,
    catch_up_memory_secs: f64,
    catch_up_durable_secs: f64,
    /// Durable over memory-only catch-up time.
    catch_up_ratio: f64,
    catch_up_bytes: u64,
    reopen_secs: f64,
    /// Of which opening the directory and reading the map back.
    reopen_read_secs: f64,
    disk_bytes_per_entry: f64,
    /// Bytes the process wrote during the durable catch-up, over the bytes
    /// of the keys and values caught up.
    write_amplification: f64,
    changed_keys: u64,
    rejoin_bytes: u64,
    /// Rejoin bytes over the full catch-up's.
    rejoin_fraction: f64,
}

/// Runs `sim-cli bench durable`.
///
/// # Errors
/// Setup failures (certificates, sockets, directories), a node that does
/// not start, or a catch-up that does not finish within ten minutes.
pub(crate) fn run(args: &DurableArgs) -> anyhow::Result<ExitCode> {
    let base = args
        .dir
        .clone()
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("gossip-kv-durable-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
    let report = measure(args, &base);
    let _ = std::fs::remove_dir_all(&base);
    let report = report?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn measure(args: &DurableArgs, base: &Path) -> anyhow::Result<DurableReport> {
    let ca = ClusterCa::generate()?;
    let certs = base.join("certs");
    let out = CertDir::new(&certs);
    out.write_ca(&ca)?;
    out.write_identity(&ca.issue_node(NodeId::new(1), &["127.0.0.1".to_owned()])?)?;
    out.write_identity(&ca.issue_client()?)?;

    let settings: [(&str, Option<SyncMode>); 4] = [
        ("memory", None),
        ("never", Some(SyncMode::Never)),
        (
            "interval",
            Some(SyncMode::Interval(Duration::from_millis(100))),
        ),
        ("always", Some(SyncMode::Always)),
    ];
    let mut writes: Vec<WriteReport> = Vec::new();
    for (name, sync) in settings {
        let data = sync.map(|_| base.join(format!("writes-{name}")));
        let (puts, mut latencies) = client_writes(args, &certs, data, sync)?;
        latencies.sort_by(f64::total_cmp);
        let puts_per_sec = puts as f64 / args.secs as f64;
        let memory = writes.first().map_or(puts_per_sec, |m| m.puts_per_sec);
        writes.push(WriteReport {
            storage: name.to_owned(),
            puts,
            puts_per_sec,
            p50_ms: percentile(&latencies, 0.50),
            p99_ms: percentile(&latencies, 0.99),
            ratio_to_memory: puts_per_sec / memory.max(f64::MIN_POSITIVE),
        });
    }

    let data = base.join("catch-up");
    let (memory_secs, _) = catch_up(&ca, args, None, 0)?;
    let written_before = process_bytes_written();
    let (durable_secs, full_bytes) = catch_up(&ca, args, Some(&data), 0)?;
    let written = process_bytes_written().saturating_sub(written_before);
    let data_bytes = args.keys * (16 + 100);

    let start = Instant::now();
    let (store, saved) = Store::open(&data, NodeId::new(2), SyncMode::Never)?;
    let read_secs = start.elapsed().as_secs_f64();
    let node = Node::with_state(gossip_config(2)?, saved.map, []);
    let reopen_secs = start.elapsed().as_secs_f64();
    anyhow::ensure!(
        node.map().entry_count() as u64 == args.keys,
        "the reopened node holds {} entries, not {}",
        node.map().entry_count(),
        args.keys
    );
    let disk_bytes = dir_bytes(&data);
    drop((node, store));

    let changed = ((args.keys as f64 * args.changed).round() as u64).min(args.keys);
    let (_, rejoin_bytes) = catch_up(&ca, args, Some(&data), changed)?;
    Ok(DurableReport {
        clients: args.clients,
        secs: args.secs,
        writes,
        keys: args.keys,
        catch_up_memory_secs: memory_secs,
        catch_up_durable_secs: durable_secs,
        catch_up_ratio: durable_secs / memory_secs,
        catch_up_bytes: full_bytes,
        reopen_secs,
        reopen_read_secs: read_secs,
        disk_bytes_per_entry: disk_bytes as f64 / args.keys as f64,
        write_amplification: written as f64 / data_bytes as f64,
        changed_keys: changed,
        rejoin_bytes,
        rejoin_fraction: rejoin_bytes as f64 / full_bytes.max(1) as f64,
    })
}

/// `--clients` clients putting for `--secs` to one node: the puts and
/// each one's latency in ms.
fn client_writes(
    args: &DurableArgs,
    certs: &Path,
    data: Option<PathBuf>,
    sync: Option<SyncMode>,
) -> anyhow::Result<(u64, Vec<f64>)> {
    let listen = std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?;
    let mut config = NodeConfig::new(NodeId::new(1), listen, certs);
    config.incarnation = Some(1);
    config.data_dir = data;
    config.sync = sync.unwrap_or(SyncMode::Always);
    config.leave_on_stop = config.data_dir.is_none();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = thread::spawn(move || {
        node::run(config, async {
            let _ = stopped.await;
            "the benchmark is done"
        })
    });
    let credentials = Credentials::load(certs)?;
    let connect = || -> anyhow::Result<Client> {
        let target = Target::resolve(&listen.to_string(), None, None)?;
        Ok(Client::connect(
            target,
            &credentials,
            Duration::from_secs(5),
        )?)
    };
    // Until the node serves.
    let deadline = Instant::now() + Duration::from_secs(20);
    let probe = loop {
        if let Ok(client) = connect()
            && client.put("probe", "x").is_ok()
        {
            break client;
        }
        anyhow::ensure!(Instant::now() < deadline, "the node did not start");
        thread::sleep(Duration::from_millis(50));
    };
    probe.close();
    let done = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..args.clients {
        let client = connect()?;
        let done = Arc::clone(&done);
        clients.push(thread::spawn(move || -> anyhow::Result<Vec<f64>> {
            let value = "v".repeat(100);
            let mut latencies = Vec::new();
            let mut n = 0u64;
            while !done.load(Ordering::Relaxed) {
                let key = format!("c{c:02}-{n:011}");
                let start = Instant::now();
                client.put(&key, &value)?;
                latencies.push(start.elapsed().as_secs_f64() * 1e3);
                n += 1;
            }
            client.close();
            Ok(latencies)
        }));
    }
    thread::sleep(Duration::from_secs(args.secs));
    done.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for client in clients {
        let client = client
            .join()
            .map_err(|_| anyhow::anyhow!("a client panicked"))?;
        latencies.extend(client?);
    }
    let _ = stop.send(());
    running
        .join()
        .map_err(|_| anyhow::anyhow!("the node panicked"))??;
    Ok((latencies.len() as u64, latencies))
}

fn gossip_config(id: u64) -> anyhow::Result<Config> {
    Ok(Config::for_interval(NodeId::new(id), 1, 10_000).build()?)
}

/// A fresh node (or, with `data` already filled, the node reopened from
/// it) catching up from a peer that holds `--keys` keys, `changed` of them
/// written again after the first `--keys`: (seconds, bytes received).
fn catch_up(
    ca: &ClusterCa,
    args: &DurableArgs,
    data: Option<&Path>,
    changed: u64,
) -> anyhow::Result<(f64, u64)> {
    let loopback = ["127.0.0.1".to_owned()];
    let quic_config = QuicConfig::builder()
        .exchange_idle(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(10))
        .build()?;
    let a = QuicTransport::builder(ca.issue_node(NodeId::new(1), &loopback)?, ca.cert().clone())
        .config(quic_config.clone())
        .build()?;
    let b = QuicTransport::builder(ca.issue_node(NodeId::new(2), &loopback)?, ca.cert().clone())
        .config(quic_config)
        .build()?;
    a.add_peer(b.id(), b.local_addr());
    b.add_peer(a.id(), a.local_addr());
    let member = |t: &QuicTransport| Member {
        id: t.id(),
        address: t.local_addr().to_string(),
    };
    let (member_a, member_b) = (member(&a), member(&b));
    let b_stats = b.handle();

    // The peer: the same keys and stamps in every run (one origin, stamps
    // from a fixed clock), then `changed` of them again.
    let mut seeded = Node::new(gossip_config(1)?, [member_b]);
    let value = "v".repeat(100);
    let mut at = 1_700_000_000_000u64;
    for i in 0..args.keys + changed {
        at += 1;
        seeded.put(format!("k{:015x}", i % args.keys), value.clone(), at)?;
    }
    let target = seeded.version_vector().clone();
    let (a_handle, a_thread) = gossip::spawn(seeded, a, SystemClock);

    let start = Instant::now();
    let mut store = None;
    let fresh = match data {
        Some(dir) => {
            let (opened, saved) = Store::open(dir, NodeId::new(2), SyncMode::Never)?;
            store = Some(opened);
            Node::with_state(gossip_config(2)?, saved.map, [member_a])
        }
        None => Node::new(gossip_config(2)?, [member_a]),
    };
    let mut driver = Driver::new(fresh, SystemClock);
    if let Some(store) = &store {
        driver.persist_to(Arc::clone(store) as Arc<dyn Persist>);
    }
    let (b_handle, b_thread) = gossip::spawn_driver(driver, b);
    let deadline = start + Duration::from_secs(600);
    let done = |h: &NodeHandle| h.with_node(|n| *n.version_vector() == target);
    while !done(&b_handle) {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the node did not catch up within 10 minutes"
        );
        thread::sleep(Duration::from_millis(2));
    }
    let secs = start.elapsed().as_secs_f64();
    let bytes = b_stats.stats().bytes_received;
    for (handle, thread) in [(a_handle, a_thread), (b_handle, b_thread)] {
        handle.shutdown();
        let _ = thread.join();
    }
    if let Some(store) = store {
        store.close()?;
    }
    Ok((secs, bytes))
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Bytes this process has written to storage so far (`write_bytes` of
/// `/proc/self/io`); 0 where there is no such file.
fn process_bytes_written() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|line| line.strip_prefix("write_bytes: "))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The bytes of the files under `dir`, as allocated on disk (a preallocated
/// journal counts only what it holds).
fn dir_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_bytes(&entry.path()),
            Ok(meta) => meta.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

fn print_report(r: &DurableReport) {
    println!(
        "{} clients putting for {} s each to one node (16-ish-byte keys, 100-byte values)",
        r.clients, r.secs
    );
    println!(
        "{:<9} {:>9} {:>9} {:>8} {:>8} {:>10}",
        "storage", "puts", "puts/s", "p50 ms", "p99 ms", "vs memory"
    );
    for w in &r.writes {
        println!(
            "{:<9} {:>9} {:>9.0} {:>8.2} {:>8.2} {:>9.2}x",
            w.storage, w.puts, w.puts_per_sec, w.p50_ms, w.p99_ms, w.ratio_to_memory
        );
    }
    println!();
    println!(
        "catch-up of {} keys: memory-only {:.2} s, with a data directory {:.2} s ({:.2}x), {} bytes received",
        r.keys, r.catch_up_memory_secs, r.catch_up_durable_secs, r.catch_up_ratio, r.catch_up_bytes
    );
    println!(
        "reopen until it serves: {:.2} s ({:.2} s opening and reading the map); disk {:.1} bytes/entry; \
         written {:.2} bytes per byte of data",
        r.reopen_secs, r.reopen_read_secs, r.disk_bytes_per_entry, r.write_amplification
    );
    println!(
        "rejoin after {} keys changed: {} bytes received, {:.2} % of the full catch-up",
        r.changed_keys,
        r.rejoin_bytes,
        r.rejoin_fraction * 100.0
    );
}
